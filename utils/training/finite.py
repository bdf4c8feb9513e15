"""Checks that a computed result is a usable number before it is reported or saved.

A non-finite result stops the run with one line (``InputError``, exit status 2) naming what
went non-finite, where, and the flag to change; nothing non-finite is ever written.

Finite but meaningless results are caught by a bound of clipped SGD: every step moves w by
eta_t * clip_c(g_t), of norm at most eta_t c, so two runs from the same w_0 over the same
steps (the original and any retrain, whatever is deleted) end at most

    2 c sum_{t < T} eta_t

apart. An approximator of a deletion's effect on w_T whose norm exceeds this bound predicts
a retrained model that no clipped SGD run can reach: it has diverged (``SGDConfig.reach_bound``).
"""
import math

import torch

from utils.common.errors import InputError


def require_finite(tensor, what, hint):
    """Return ``tensor``; InputError "<what> is not finite (...): <hint>" when any entry is NaN/inf."""
    if torch.is_tensor(tensor):
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            raise InputError(f"{what} is not finite ({int(bad.sum())} of {tensor.numel()} entries "
                             f"NaN or inf): {hint}")
    elif not math.isfinite(tensor):
        raise InputError(f"{what} is not finite ({tensor}): {hint}")
    return tensor


def distance(a, b, what, hint):
    """||a - b||_2 computed in float64 (no overflow of float32 squares), required finite."""
    d = float(torch.linalg.vector_norm(a.double() - b.double()))
    return require_finite(d, what, hint)
