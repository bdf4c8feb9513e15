"""Clipped mini-batch SGD with per-step decay (SPEC sections 5 and 7).

    eta_t   = lr * lr_decay^t
    g_t     = (1/N_t) sum_{i in B_t, i kept} grad CE_i(w_t) + lambda * w_t
    w_{t+1} = w_t - eta_t * clip_c(g_t),     clip_c(g) = g * min(1, c / ||g||)

An optional fixed vector ``linear`` (``SGDConfig.linear``) is added to g_t before clipping: the
gradient of a linear term, e.g. certified removal's b^T w / n (``utils.baselines.certified_removal``).

N_t = |B_t| for training and the paper's retrain; N_t = |B_t \\ U| for the authors'
mean-normalised retrain, where an emptied batch contributes no data term. An optional
per-sample weight v_i multiplies CE_i in the data term (samples of weight 0 are dropped,
so v = 1 off U and 0 on U is exactly the retrain); the linearity diagnostic uses
v_u = 1 - s on U.
"""
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from tqdm import tqdm

from utils.common.errors import InputError
from utils.training.functional import data_gradient


def clip_by_norm(g, c):
    """clip_c(g) = g * min(1, c / ||g||)."""
    norm = torch.linalg.vector_norm(g)
    return g * torch.clamp(c / norm, max=1.0) if norm > 0 else g


@dataclass(frozen=True)
class SGDConfig:
    """The training run's step sizes, clipping and regularisation, built once from the
    flags (``--lr --lr_decay --clip --regularization``) and passed whole:
    eta_t = lr * lr_decay^t, clip c, L2 weight lambda; ``linear``: an optional fixed vector
    added to every g_t (None, the default, adds nothing)."""
    lr: float
    lr_decay: float
    clip: float
    lam: float
    linear: Optional[torch.Tensor] = field(default=None, compare=False)

    @classmethod
    def from_args(cls, args):
        return cls(args.lr, args.lr_decay, args.clip, args.regularization)

    def step_size(self, t):
        """eta_t = lr * lr_decay^t."""
        return self.lr * self.lr_decay ** t

    def reach_bound(self, steps):
        """2 c sum_{t < steps} eta_t: the farthest apart two clipped SGD runs can end."""
        if self.lr_decay == 1:
            total = self.lr * steps
        else:
            total = self.lr * (1 - self.lr_decay ** steps) / (1 - self.lr_decay)
        return 2 * self.clip * total


def make_schedule(n, batch_size, epochs, seed, reshuffle=False):
    """List of index batches B_0..B_{T-1}; T = epochs * ceil(n / batch_size).

    One permutation of range(n) drawn from ``seed`` is reused every epoch (the authors'
    behaviour) unless ``reshuffle``, which draws a fresh one per epoch.
    """
    gen = torch.Generator().manual_seed(seed + 2)
    perm = torch.randperm(n, generator=gen)
    batches = []
    for epoch in range(epochs):
        if reshuffle and epoch > 0:
            perm = torch.randperm(n, generator=gen)
        batches.extend(perm.split(batch_size))
    return batches


def pack_schedule(batches):
    """Schedule -> (flat indices, batch sizes) tensors for storage."""
    return torch.cat(batches), torch.tensor([len(b) for b in batches])


def unpack_schedule(flat, sizes):
    return list(flat.split(sizes.tolist()))


def kept_batch(batch, keep):
    """B_t restricted to kept samples (``keep`` a bool mask over range(n), or None)."""
    return batch if keep is None else batch[keep[batch]]


def normaliser(batch, kept, norm):
    """|B_t| for norm='batch' (paper eq. 5); |B_t \\ U| for norm='mean'."""
    return len(batch) if norm == "batch" else len(kept)


@dataclass(frozen=True, eq=False)
class DataTerm:
    """Which samples of a batch enter the data term of g_t, and its normaliser N_t:
    ``keep`` an optional bool mask over range(n) (None: every sample), ``norm`` 'batch'
    (N_t = |B_t|) or 'mean' (N_t = the kept count), ``weight`` an optional float tensor v over
    range(n) multiplying CE_i (None: v = 1; v_i = 0 removes sample i)."""
    keep: Optional[torch.Tensor] = None
    norm: str = "batch"
    weight: Optional[torch.Tensor] = None


def batch_gradient(fm, w, X, y, batch, lam, term=DataTerm()):
    """g_t = (1/N_t) sum_{i in B_t kept} v_i grad CE_i(w) + lambda w; no data term if none kept
    (``term``: a ``DataTerm``)."""
    kept = kept_batch(batch, term.keep)
    weight = term.weight
    if weight is not None:
        kept = kept[weight[kept] != 0]
    g = lam * w
    if len(kept) > 0:
        v = None if weight is None else weight[kept].to(w.dtype)
        g = g + data_gradient(fm, w, X[kept], y[kept], normaliser(batch, kept, term.norm), v)
    return g


def sgd(fm, w0, X, y, schedule, cfg, keep=None, norm="batch",
        on_step=None, progress=False, desc="train", hint="lower --lr or --clip", weight=None):
    """Run clipped SGD (``cfg``: an SGDConfig) from w0 over ``schedule``; returns w_T.

    keep: optional bool mask over the n samples; samples outside it are never indexed.
    keep, norm, weight: the data term (``DataTerm``).
    on_step(t, w_t, batch, eta_t, g_t) is called before each update (used by the
    Hessian-free precompute to run its recursion alongside training).
    A non-finite gradient or iterate stops the run: InputError naming ``desc``, the step
    and ``hint`` (the flag to change).
    """
    w = w0.detach().clone()
    T = len(schedule)
    term = DataTerm(keep, norm, weight)
    for t, batch in enumerate(tqdm(schedule, desc=desc, disable=not progress, leave=False)):
        eta = cfg.step_size(t)
        g = batch_gradient(fm, w, X, y, batch, cfg.lam, term)
        if cfg.linear is not None:
            g = g + cfg.linear
        gnorm = float(torch.linalg.vector_norm(g))
        if not math.isfinite(gnorm):
            raise InputError(f"{desc}: the gradient went non-finite at step {t + 1} of {T} "
                             f"(||g|| = {gnorm:.3g}, ||w|| = {float(w.norm()):.3g}): {hint}")
        if on_step is not None:
            on_step(t, w, batch, eta, g)
        w = w - eta * clip_by_norm(g, cfg.clip)
    if not bool(torch.isfinite(w).all()):
        raise InputError(f"{desc}: the parameters went non-finite at step {T} of {T}: {hint}")
    return w
