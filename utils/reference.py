"""Slow, obviously-right reference of the approximator recursion (``utils.hf.recursion``),
for tests: every step forms the d x d matrices explicitly.

    H_t = hess (1/|B_t|) sum_{i in B_t} CE_i (w_t) + lambda I          (autograd, dense)
    C_t = I  if ||g_t|| <= c,  else (c/||g_t||) (I - g_t g_t^T / ||g_t||^2)
    a_u <- (I - eta_t C_t H_t) a_u + [u in B_t] eta_t C_t inj_u         (inj: ``utils.hf.injection``)
    w_{t+1} = w_t - eta_t clip_c(g_t)

Cost O(T d^3 + T |B| d^2): tiny models only.
"""
import torch

from utils.functional import data_loss
from utils.hf import injection
from utils.train import clip_by_norm


def dense_recursion(fm, w0, X, y, schedule, cfg, rows, norm="batch"):
    """(w_T, A) with A[r] = a_{rows[r]}, both by explicit matrices (float64 advised)."""
    ref = torch.zeros(len(rows), fm.d, dtype=w0.dtype)
    w = w0.clone()
    I = torch.eye(fm.d, dtype=w0.dtype)
    lam, clip = cfg.lam, cfg.clip
    for t, b in enumerate(schedule):
        eta = cfg.step_size(t)
        L = lambda v: data_loss(fm, v, X[b], y[b], len(b))
        g = torch.autograd.functional.jacobian(L, w) + lam * w
        H = torch.autograd.functional.hessian(L, w) + lam * I
        C = I if g.norm() <= clip else \
            (clip / g.norm()) * (I - torch.outer(g, g) / g.norm() ** 2)
        G = torch.stack([torch.autograd.functional.jacobian(
            lambda v: data_loss(fm, v, X[i:i + 1], y[i:i + 1], 1), w) for i in b])
        inj = injection(G, norm)
        ref = ref @ (I - eta * C @ H).T
        for r, u in enumerate(rows.tolist()):
            if u in b.tolist():
                ref[r] += eta * C @ inj[b.tolist().index(u)]
        w = w - eta * clip_by_norm(g, clip)
    return w, ref
