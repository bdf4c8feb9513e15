"""Slow, obviously-right reference of the approximator recursion (``utils.proposed.hf.recursion``),
for tests: every step forms the d x d matrices explicitly.

    K_t = hess (1/|B_t|) sum_{i in B_t} CE_i (w_t)                     (autograd, dense)
          or, curvature 'ggn', (1/|B_t|) sum_i J_i^T (diag p_i - p_i p_i^T) J_i
          (J_i the dense Jacobian of the logits of sample i)
    C_t = I  if ||g_t|| <= c,  else (c/||g_t||) (I - g_t g_t^T / ||g_t||^2)
    M_t = I - eta_t (C_t (K_t + lambda I) + kappa I)
    v_u = C_t inj_u (paper; inj: ``utils.proposed.hf.injection``), or inj of the per-sample clipped
          clip_c(grad CE_u + lambda w_t) (sample_clip); norm 'batch' when uncorrected
    a_u <- M_t a_u + [u in B_t] eta_t v_u         (paper order)
    a_u <- M_t (a_u + [u in B_t] eta_t v_u)       (inject_first)
    w_{t+1} = w_t - eta_t clip_c(g_t)

Cost O(T d^3 + T |B| d^2): tiny models only.

``dense_second_order`` is the order-2 recursion (docs/method.md, "Second order") the same way:
the third derivative of the batch loss and the second derivative of clip_c as directional
derivatives (autograd) of the dense d x d Hessian and clipping Jacobian, and per-sample d x d
Hessians:

    Delta_u = -inj_u(grad CE),  D Delta_u[a] = -inj_u(hess CE a)          (u in B and in the direction)
    g'      = K_t a + sum_u Delta_u
    q      <- M_t q - eta_t [ (1/2) D^2 clip_c(g_t)[g', g'] + C_t ((1/2) D^3 L_B[a, a] + sum_u D Delta_u[a]) ]
    a      <- M_t a - eta_t C_t sum_u Delta_u
"""
import torch

from utils.training.functional import data_loss
from utils.proposed.hf import injection
from utils.proposed.hfconfig import UnlearnConfig
from utils.training.train import clip_by_norm


def dense_curvature(fm, w, X, y, curvature):
    """The d x d mini-batch loss Hessian, or Gauss-Newton matrix, of (1/|B|) sum_i CE_i at w."""
    if curvature == "hessian":
        return torch.autograd.functional.hessian(lambda v: data_loss(fm, v, X, y, len(y)), w, vectorize=True)
    G = torch.zeros(len(w), len(w), dtype=w.dtype)
    for i in range(len(y)):
        J = torch.autograd.functional.jacobian(lambda v: fm.logits(v, X[i:i + 1])[0], w, vectorize=True)  # (C, d)
        p = torch.softmax(fm.logits(w, X[i:i + 1])[0], 0)
        G += J.T @ (torch.diag(p) - torch.outer(p, p)) @ J
    return G / len(y)


def dense_recursion(fm, w0, X, y, schedule, cfg, rows, method=UnlearnConfig()):
    """(w_T, A) with A[r] = a_{rows[r]}, both by explicit matrices (float64 advised); ``method``
    (``UnlearnConfig``) gives the retrain normaliser and the variant ``method.hf``."""
    ref = torch.zeros(len(rows), fm.d, dtype=w0.dtype)
    w = w0.clone()
    I = torch.eye(fm.d, dtype=w0.dtype)
    lam, clip = cfg.lam, cfg.clip
    hf = method.hf
    inj_norm = "batch" if hf.has("uncorrected") else method.retrain_norm
    for t, b in enumerate(schedule):
        eta = cfg.step_size(t)
        L = lambda v: data_loss(fm, v, X[b], y[b], len(b))
        g = torch.autograd.functional.jacobian(L, w) + lam * w
        K = dense_curvature(fm, w, X[b], y[b], hf.curvature) + lam * I
        C = I if g.norm() <= clip else \
            (clip / g.norm()) * (I - torch.outer(g, g) / g.norm() ** 2)
        M = I - eta * (C @ K + hf.damping * I)
        G = torch.stack([torch.autograd.functional.jacobian(
            lambda v: data_loss(fm, v, X[i:i + 1], y[i:i + 1], 1), w) for i in b])
        if hf.has("sample_clip"):
            V = injection(torch.stack([clip_by_norm(gi + lam * w, clip) for gi in G]), inj_norm)
        else:
            V = injection(G, inj_norm) @ C.T
        step = torch.zeros_like(ref)
        for r, u in enumerate(rows.tolist()):
            if u in b.tolist():
                step[r] = eta * V[b.tolist().index(u)]
        ref = (ref + step) @ M.T if hf.has("inject_first") else ref @ M.T + step
        w = w - eta * clip_by_norm(g, clip)
    return w, ref


def dense_second_order(fm, w0, X, y, schedule, cfg, directions, method=UnlearnConfig()):
    """(w_T, A, Q) of the paper's recursion at order 2 by explicit tensors (float64, d of a
    few dozen): A[r], Q[r] = a, q along 1_{directions[r]}, each a list of samples ([u]: the
    sample's own vectors; U: the set term)."""
    dirs = [list(d) for d in directions]
    A = torch.zeros(len(dirs), fm.d, dtype=w0.dtype)
    Q = torch.zeros_like(A)
    w = w0.clone()
    I = torch.eye(fm.d, dtype=w0.dtype)
    lam, clip, norm = cfg.lam, cfg.clip, method.retrain_norm
    jac, hess, jvp = torch.autograd.functional.jacobian, torch.autograd.functional.hessian, torch.autograd.functional.jvp
    clip_jac = lambda g: jac(lambda v: clip_by_norm(v, clip), g, create_graph=True, vectorize=True)
    for t, b in enumerate(schedule):
        eta = cfg.step_size(t)
        L = lambda v: data_loss(fm, v, X[b], y[b], len(b))
        g = jac(L, w) + lam * w
        K = hess(L, w, vectorize=True) + lam * I
        C = clip_jac(g).detach()
        # D^3 L_B[a, a] and D^2 clip_c[v, v]: directional derivatives of the dense Hessian and
        # of the dense clipping Jacobian (both by autograd)
        third = lambda a: jvp(lambda v: hess(L, v, create_graph=True, vectorize=True) @ a, w, a)[1]
        clip2 = lambda v: jvp(lambda h: clip_jac(h) @ v, g, v)[1]
        single = [lambda v, i=i: data_loss(fm, v, X[i:i + 1], y[i:i + 1], 1) for i in b.tolist()]
        G = torch.stack([jac(f, w) for f in single])
        Hs = torch.stack([hess(f, w, vectorize=True) for f in single])                           # (b, d, d)
        inj_grad = injection(G, norm)
        for r, members in enumerate(dirs):
            a, pos = A[r].clone(), [k for k, i in enumerate(b.tolist()) if i in members]
            delta = -inj_grad[pos].sum(0)
            d_delta = -injection(Hs @ a, norm)[pos].sum(0)
            gp = K @ a + delta
            M = I - eta * C @ K
            second = 0.5 * clip2(gp) + C @ (0.5 * third(a) + d_delta)
            Q[r] = M @ Q[r] - eta * second
            A[r] = M @ a - eta * C @ delta
        w = w - eta * clip_by_norm(g, clip)
    return w, A, Q
