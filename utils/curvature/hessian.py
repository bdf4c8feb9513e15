"""Exact Hessians and gradient sums of the regularised loss over a set of samples.

For a set S of training samples and l_i(w) = CE_i(w) + (lambda/2) ||w||^2,

    hessian_sum(S)  = sum_{i in S} hess l_i(w)  = hess [sum_{i in S} CE_i](w) + |S| lambda I
    gradient_sum(S) = sum_{i in S} grad l_i(w)  = grad [sum_{i in S} CE_i](w) + |S| lambda w

The generic Hessian never forms a per-sample Hessian: for a chunk of samples S_j, the
Hessian of the summed loss is applied to a block of k basis vectors e_c at once,

    H[:, cols] += vmap_c  jvp(grad sum_{i in S_j} CE_i, w; e_c)      (forward-over-reverse)

so one vectorised call yields k columns of the summed Hessian of the whole chunk. Both k
and |S_j| are chosen so that the working set stays within ``mem_budget_mb``. The engine is
named and chosen as for the step Jacobian (``utils.curvature.hvp.choose_engine``): 'jvp' (as above),
'vjp' (reverse-over-reverse) or 'layers' (the layered engine, ``utils.curvature.layered_hvp``) apply
the block of basis vectors through ``utils.curvature.hvp.block_hvp``; 'closed', for the logistic model
(one Linear layer), is the closed form

    hess CE_i = (diag(p_i) - p_i p_i^T) (x) x~_i x~_i^T,     x~_i = [x_i, 1]

in the augmented (class, feature) layout, re-ordered to the parameter layout [W (C x in), b (C)]
by ``utils.curvature.hvp.logistic_layout``.
"""
import torch
from tqdm import tqdm

from utils.training.functional import data_gradient
from utils.curvature.hvp import block_hvp, choose_engine, logistic_layout


SAMPLE_CHUNK = 64   # samples per call the column count is first fitted to (one batch)


def chunk_sizes(d, n, act, elem_bytes, mem_budget_mb):
    """(columns per call k, samples per call b) for the generic Hessian.

    Per call the working set is about 4 d k (tangents, gradient columns and the result
    block) plus 8 k b act elements (primal and tangent activations of forward and backward):
    half of the budget bounds the first term, the rest the second. k is fitted so that a
    batch of SAMPLE_CHUNK samples fits (many columns on one sample run as tiny, slow
    products), then b takes what is left.
    """
    budget = mem_budget_mb * 2 ** 20 / elem_bytes
    k = int(max(1, min(d, budget / 2 / (4 * d), budget / 2 / (8 * min(n, SAMPLE_CHUNK) * act))))
    b = int(max(1, min(n, (budget - 4 * d * k) / (8 * k * act))))
    return k, b


def _block_hessian_sum(fm, w, X, y, mem_budget_mb, progress, engine):
    d, n = fm.d, len(y)
    k, b = chunk_sizes(d, n, fm.activation_numel(X[:1]), w.element_size(), mem_budget_mb)
    H = torch.zeros(d, d, dtype=w.dtype, device=w.device)
    eye = torch.eye(d, dtype=w.dtype, device=w.device)
    bar = tqdm(total=len(range(0, n, b)) * len(range(0, d, k)), desc=progress, disable=progress is None, leave=False)
    for s in range(0, n, b):
        hvp = block_hvp(fm, w, X[s:s + b], y[s:s + b], 1.0, engine)
        for c in range(0, d, k):
            H[c:c + k] += hvp(eye[c:c + k])  # rows = columns by symmetry of H
            bar.update()
    bar.close()
    return H


def _logistic_hessian_sum(fm, w, X, y, mem_budget_mb, progress):
    C = fm.shapes[-1][0]
    Xf = X.reshape(len(y), -1)
    p_in = Xf.shape[1]
    D = C * (p_in + 1)
    # per chunk: the (b, C(in+1)) matrix Q of rows p_i (x) x~_i and its pieces
    b = int(max(1, min(len(y), mem_budget_mb * 2 ** 20 / w.element_size() / (3 * D))))
    Haug = torch.zeros(C, p_in + 1, C, p_in + 1, dtype=w.dtype, device=w.device)
    starts = range(0, len(y), b)
    for s in tqdm(starts, desc=progress, disable=progress is None, leave=False):
        Xs = torch.cat([Xf[s:s + b], torch.ones(len(Xf[s:s + b]), 1, dtype=w.dtype, device=w.device)], 1)
        with torch.no_grad():
            P = torch.softmax(fm.logits(w, X[s:s + b]), 1)
        Q = (P[:, :, None] * Xs[:, None, :]).reshape(len(Xs), D)
        Haug -= (Q.T @ Q).view(C, p_in + 1, C, p_in + 1)
        for c in range(C):  # block diagonal term diag(p_i) (x) x~_i x~_i^T
            Haug[c, :, c, :] += Xs.T @ (P[:, c:c + 1] * Xs)
    _, to_params = logistic_layout(C, p_in, w.device)
    return Haug.view(D, D)[to_params][:, to_params]


def hessian_sum(fm, w, X, y, regularization, mem_budget_mb=1024.0, progress=None, engine="auto"):
    """sum_{i} hess l_i(w) over the samples (X, y): a symmetric d x d tensor.

    ``progress``: the label of a progress bar, or None for no bar.

    ``engine``: one of ``utils.curvature.hvp.ENGINES``, 'auto' choosing as ``utils.curvature.hvp.choose_engine``
    ('closed' for the logistic model, 'layers' for a ``layers()`` chain, else 'vjp').
    """
    w = w.detach()
    engine = choose_engine(fm, engine)
    if len(y) == 0:
        H = torch.zeros(fm.d, fm.d, dtype=w.dtype, device=w.device)
    elif engine == "closed":
        H = _logistic_hessian_sum(fm, w, X, y, mem_budget_mb, progress)
    else:
        H = _block_hessian_sum(fm, w, X, y, mem_budget_mb, progress, engine)
    H.diagonal().add_(len(y) * regularization)
    return H


def gradient_sum(fm, w, X, y, regularization):
    """sum_i grad l_i(w) = grad sum_i CE_i(w) + |S| lambda w over the samples (X, y)."""
    w = w.detach()
    if len(y) == 0:
        return torch.zeros_like(w)
    return data_gradient(fm, w, X, y, 1.0) + len(y) * regularization * w
