"""The step Jacobian J_t of clipped SGD, applied to a whole block of vectors at once.

For the step w_{t+1} = w_t - eta_t clip_c(g_t(w_t)) with
g_t(w) = (1/|B_t|) sum_{i in B_t} grad CE_i(w) + lambda w, the Jacobian of w -> clip_c(g_t(w)) is

    J_t = C_t (H_Bt(w_t) + lambda I),        H_Bt = (1/|B_t|) sum_{i in B_t} hess CE_i(w_t)
    C_t = I                                         when ||g_t|| <= c
    C_t = (c/||g_t||) (I - g_hat g_hat^T)           otherwise, g_hat = g_t/||g_t||

The engines share one interface (rows of a block are vectors of R^d) and one vocabulary,
``ENGINES``, chosen per model by ``choose_engine`` (``utils.curvature.hessian`` uses the same names):

* ``closed`` (``LogisticJacobian``): the exact closed form for softmax cross-entropy on one
  Linear layer. With x~_i = [x_i, 1], p_i the softmax output and the parameters held in the
  "augmented" layout Theta = [W | b] (C x (D+1), ``logistic_layout``), a direction V gives
  logit directions dz_i = V x~_i, and  H_B V = (1/|B|) sum_i (diag(p_i) - p_i p_i^T) dz_i x~_i^T:
  two matrix products over the batch for a whole block of directions.
* ``layers`` (``LayeredJacobian``): the hand-written R-operator of ``utils.curvature.layered_hvp`` for
  models with a ``layers()`` chain, the block folded into large convolutions and GEMMs.
* ``jvp`` / ``vjp`` (``GenericJacobian``): any model, through torch.func — ``vmap`` over a
  Hessian-vector product (forward-over-reverse ``jvp`` of ``grad``, or reverse-over-reverse
  ``vjp``).

The last three run on row chunks sized so that an estimate of the working set stays under a
memory budget.

Each engine keeps vectors in an internal column order (a fixed permutation of the
parameter order; the identity for the other engines) so that the closed form works on
contiguous matrices; ``to_internal``/``from_internal`` convert. The fused in-place update
``contract_(A, eta)`` performs A <- A (I - eta J_t)^T row-wise, i.e. a <- (I - eta J_t) a
for every row a of A.

Two research options change the operator (``utils.proposed.hfconfig.HFConfig``; the defaults give the
paper's J_t above): curvature 'ggn' replaces H_Bt by the generalised Gauss-Newton matrix

    G_Bt = (1/|B_t|) sum_{i in B_t} J_f(x_i)^T (diag(p_i) - p_i p_i^T) J_f(x_i)

(J_f the Jacobian of the logits in w, p_i the softmax; ``GGNProduct``; G = H exactly for the
logistic model, whose closed form serves both), and damping kappa > 0 makes the operator
J_t + kappa I.
"""
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch.func import grad, jvp, vjp, vmap

from models import table_engine
from utils.training.functional import data_loss
from utils.curvature.layered_hvp import LayeredHVP, has_layers
from utils.common.errors import InputError

MB = 2 ** 20
# Working-set estimate of one vectorised HVP direction, in multiples of the activations
# of one forward pass of the batch (tangent activations, their cotangents, saved tensors).
HVP_ACTIVATION_FACTOR = 6
# The closed form updates the bank in row chunks of about this many bytes, so that each
# chunk stays in cache between its two matrix products.
CACHE_CHUNK_BYTES = 2 * MB
# On a CPU the layered engine takes chunks whose forward activations (one batch per vector)
# total about this much, so that a chunk's tangents stay in the last-level cache. Measured on
# the MNIST cnn (3.3 MB of activations per vector, 32 MB L3, 2 cores): chunks of 12-24
# vectors ran 20% faster than 52 and 8; this gives 15.
LAYERED_CACHE_BYTES = 48 * MB


@dataclass(frozen=True)
class Step:
    """What J_t of one step is built from: the model ``fm``, w_t, the batch (X, y), lambda,
    the batch gradient g_t, the clip norm c, the memory budget of the vectorised products (MB)
    and the data term's normaliser N (None: |B_t|), H_Bt = (1/N) sum_{i in B_t} hess CE_i."""
    fm: object
    w: torch.Tensor
    X: torch.Tensor
    y: torch.Tensor
    lam: float
    g: torch.Tensor
    clip: float
    mem_budget_mb: float = 1024.0
    normaliser: Optional[float] = None


def clip_factors(g, c):
    """(s, g_hat): C_t v = s (v - g_hat (g_hat . v)), or (1, None) when clipping is inactive."""
    norm = torch.linalg.vector_norm(g)
    if norm <= c:
        return 1.0, None
    return float(c / norm), g / norm


class _Jacobian:
    """Shared parts: the clipping Jacobian and the composite operators."""

    def __init__(self, g, clip, lam, damping=0.0):
        self.lam = lam
        self.damping = damping
        self.s, self.g_hat = clip_factors(g, clip)
        if self.g_hat is not None:
            self.g_hat = self.to_internal(self.g_hat)

    @property
    def clipping(self):
        return self.g_hat is not None

    def to_internal(self, V):
        return V

    def from_internal(self, V):
        return V

    def clip_apply(self, V):
        """C_t V for a block V (k, d), internal layout."""
        if self.g_hat is None:
            return V
        return self.s * (V - torch.outer(V @ self.g_hat, self.g_hat))

    def jac(self, V):
        """J_t V = C_t (H + lambda I) V (+ kappa V when damped; internal layout)."""
        out = self.clip_apply(self.hvp_reg(V))
        return out.add_(V, alpha=self.damping) if self.damping else out

    def jac_T(self, V):
        """J_t^T V = (H + lambda I) C_t V (+ kappa V; C_t and H are symmetric)."""
        out = self.hvp_reg(self.clip_apply(V))
        return out.add_(V, alpha=self.damping) if self.damping else out

    def apply(self, V):
        """J_t V for a block V (k, d) in parameter order (the public, layout-free form)."""
        return self.from_internal(self.jac(self.to_internal(V)))


class TorchFuncHVP:
    """V -> H V for a block V (k, d), H the Hessian of (1/N) sum_i CE_i at w, through
    torch.func vmapped over the rows: mode 'jvp' is forward-over-reverse (H v = d/de grad
    L(w + e v)), mode 'vjp' reverse-over-reverse (H v = v^T d(grad L)/dw, linearised once, on
    first use)."""

    def __init__(self, fm, w, X, y, normaliser, mode):
        self.w, self.mode = w, mode
        self.grad_fn = grad(lambda v: data_loss(fm, v, X, y, normaliser))
        self._vjp_fn = None

    def __call__(self, V):
        if self.mode == "jvp":
            return vmap(lambda v: jvp(self.grad_fn, (self.w,), (v,))[1])(V)
        if self._vjp_fn is None:
            self._vjp_fn = vjp(self.grad_fn, self.w)[1]
        return vmap(lambda v: self._vjp_fn(v)[0])(V)


class GGNProduct:
    """V -> G V for a block V (k, d), G = (1/N) sum_i J_f(x_i)^T (diag(p_i) - p_i p_i^T) J_f(x_i)
    the generalised Gauss-Newton matrix of softmax cross-entropy at w, through torch.func:
    a forward-mode product for the logit directions dz_i = J_f(x_i) v, the softmax Hessian
    applied to them, and the reverse-mode product of the logits (linearised once)."""

    def __init__(self, fm, w, X, normaliser):
        self.w, self.N = w, normaliser
        self.logits_fn = lambda v: fm.logits(v, X)
        logits, self._vjp_fn = vjp(self.logits_fn, w)
        self.P = torch.softmax(logits.detach(), dim=1)

    def _one(self, v):
        dz = jvp(self.logits_fn, (self.w,), (v,))[1]
        r = self.P * (dz - (self.P * dz).sum(1, keepdim=True))
        return self._vjp_fn(r)[0] / self.N

    def __call__(self, V):
        return vmap(self._one)(V)


def block_hvp(fm, w, X, y, normaliser, engine, curvature="hessian"):
    """V -> H V for a block V (k, d) of directions, H the Hessian of (1/normaliser) sum_i CE_i
    at w, by the engine 'layers', 'jvp' or 'vjp' (rows of the result: the products); with
    curvature 'ggn', V -> G V (``GGNProduct``, whatever the engine)."""
    if curvature == "ggn":
        return GGNProduct(fm, w, X, normaliser)
    if engine == "layers":
        return LayeredHVP(fm, w, X, y, normaliser)
    return TorchFuncHVP(fm, w, X, y, normaliser, engine)


class _BlockJacobian(_Jacobian):
    """J_t from a block Hessian-vector product (``block_hvp``), on row chunks of a block
    sized so that HVP_ACTIVATION_FACTOR activations per vector fit the memory budget."""

    def __init__(self, step, engine, curvature="hessian", damping=0.0):
        fm, w, X, y = step.fm, step.w, step.X, step.y
        N = len(y) if step.normaliser is None else step.normaliser
        self.w, self.X, self.y = w, X, y
        self.per_sample_grad_fn = vmap(grad(lambda v, x, t: data_loss(fm, v, x[None], t[None], 1)),
                                       in_dims=(None, 0, 0))
        per_vector = w.element_size() * (HVP_ACTIVATION_FACTOR * fm.activation_numel(X) + 4 * fm.d)
        self.chunk = int(step.mem_budget_mb * MB // per_vector)
        if self.chunk < 1:
            raise InputError(f"--mem_budget_mb: one Hessian-vector product needs about "
                             f"{per_vector / MB:.1f} MB; raise the budget")
        self.hvp_block = block_hvp(fm, w, X, y, N, engine, curvature)
        super().__init__(step.g, step.clip, step.lam, damping)

    def hvp_reg(self, V):
        """(H_B + lambda I) V, chunked over rows to the memory budget."""
        out = [self.hvp_block(c) + self.lam * c for c in V.split(self.chunk)]
        return torch.cat(out) if len(out) > 1 else out[0]

    def contract_(self, A, eta):
        """A[k] <- (I - eta J_t) A[k] for every row, in place, chunk by chunk."""
        for c in A.split(self.chunk):
            c.sub_(self.jac(c), alpha=eta)

    def per_sample_grads(self):
        """Rows grad CE_i(w_t), i in B_t (internal layout)."""
        return self.per_sample_grad_fn(self.w, self.X, self.y)


class GenericJacobian(_BlockJacobian):
    """J_t for any FlatModel via torch.func (``TorchFuncHVP``, mode 'jvp' or 'vjp')."""

    def __init__(self, step, mode="vjp", curvature="hessian", damping=0.0):
        super().__init__(step, mode, curvature, damping)


class LayeredJacobian(_BlockJacobian):
    """J_t for models with a ``layers()`` chain, by ``utils.curvature.layered_hvp``. On a CPU its chunks
    are also capped at LAYERED_CACHE_BYTES of forward activations."""

    def __init__(self, step, curvature="hessian", damping=0.0):
        super().__init__(step, "layers", curvature, damping)
        if step.w.device.type == "cpu":
            per_vector_activations = step.w.element_size() * step.fm.activation_numel(step.X)
            self.chunk = min(self.chunk, max(1, LAYERED_CACHE_BYTES // per_vector_activations))


class LogisticJacobian(_Jacobian):
    """Closed-form J_t for softmax cross-entropy on a single Linear(D, C) layer.

    Internal layout: Theta = [W | b] flattened row-major (C x (D+1)); the parameter order
    is W.flatten() then b. The Gauss-Newton matrix of this model is its Hessian, so the same
    form serves curvature 'ggn'.
    """

    def __init__(self, step, damping=0.0):
        fm, w, X, y = step.fm, step.w, step.X, step.y
        C, D = fm.shapes[0]
        self.C, self.D1 = C, D + 1
        self.N = len(y) if step.normaliser is None else step.normaliser
        Xf = X.reshape(len(X), -1)
        self.Xt = torch.cat([Xf, torch.ones(len(X), 1, dtype=Xf.dtype, device=Xf.device)], 1)
        self.perm, self.inv_perm = logistic_layout(C, D, w.device)
        self.theta = w[self.perm].view(C, self.D1)
        self.P = torch.softmax(self.Xt @ self.theta.T, dim=1)          # (b, C)
        self.PT = self.P.T.contiguous()                                 # (C, b)
        self.y = y
        per_vector = w.element_size() * 3 * len(y) * C
        self.chunk = int(step.mem_budget_mb * MB // per_vector)
        if self.chunk < 1:
            raise InputError(f"--mem_budget_mb: one Hessian-vector product needs about "
                             f"{per_vector / MB:.3f} MB; raise the budget")
        self.chunk = min(self.chunk, max(1, CACHE_CHUNK_BYTES // (w.element_size() * fm.d)))
        super().__init__(step.g, step.clip, step.lam, damping)
        if self.clipping:
            # q = (H + lambda I) g_hat, so that g_hat . (H + lambda I) v = q . v
            self.q = self.hvp_reg(self.g_hat[None])[0]

    def to_internal(self, V):
        return V[..., self.perm]

    def from_internal(self, V):
        return V[..., self.inv_perm]

    def _R(self, V):
        """R[k, c, i] = ((diag p_i - p_i p_i^T) dz_ki)_c, dz_ki = V_k x~_i; returned as (k*C, b)."""
        k = len(V)
        dZ = (V.reshape(k * self.C, self.D1) @ self.Xt.T).view(k, self.C, -1)    # (k, C, b)
        R = self.PT * (dZ - (self.PT * dZ).sum(1, keepdim=True))
        return R.view(k * self.C, -1)

    def hvp_reg(self, V):
        """(H_B + lambda I) V = (1/N) R X~ + lambda V (block V, internal layout)."""
        out = []
        for c in V.split(self.chunk):
            k = len(c)
            o = torch.addmm(c.reshape(k * self.C, self.D1), self._R(c), self.Xt,
                            beta=self.lam, alpha=1.0 / self.N)
            out.append(o.view(k, -1))
        return torch.cat(out) if len(out) > 1 else out[0]

    def contract_(self, A, eta):
        """A[k] <- (I - eta J_t) A[k] in place: one GEMM for dz, one fused addmm, and a
        rank-one correction when clipping is active (A must be contiguous, internal layout).
        Damping kappa scales A by a further -eta kappa."""
        es = eta * self.s
        beta = 1.0 - es * self.lam
        if self.damping:
            beta -= eta * self.damping
        for c in A.split(self.chunk):
            k = len(c)
            alpha = c @ self.q if self.clipping else None
            R = self._R(c)
            cv = c.view(k * self.C, self.D1)
            cv.addmm_(R, self.Xt, beta=beta, alpha=-es / self.N)
            if alpha is not None:
                c.addr_(alpha, self.g_hat, alpha=es)

    def per_sample_grads(self):
        """grad CE_i = (p_i - e_{y_i}) x~_i^T for i in B_t, rows in internal layout."""
        E = self.P - F.one_hot(self.y, self.C).to(self.P.dtype)
        return (E[:, :, None] * self.Xt[:, None, :]).reshape(len(self.y), -1)


_LAYOUT_CACHE = {}


def logistic_layout(C, D, device):
    """(perm, inv_perm) between the parameter order of Linear(D, C), [W row-major, b], and
    the augmented layout Theta = [W | b] (C x (D+1)) row-major: aug = flat[perm] and
    flat = aug[inv_perm]."""
    key = (C, D, str(device))
    if key not in _LAYOUT_CACHE:
        idx = torch.arange(C * D + C).view(-1)
        aug = torch.empty(C, D + 1, dtype=torch.long)
        aug[:, :D] = idx[:C * D].view(C, D)
        aug[:, D] = idx[C * D:]
        perm = aug.reshape(-1)
        _LAYOUT_CACHE[key] = (perm.to(device), torch.argsort(perm).to(device))
    return _LAYOUT_CACHE[key]


ENGINES = ["auto", "closed", "layers", "jvp", "vjp"]


def closed_form_available(fm):
    """Whether the model table gives the model the closed form (the logistic model)."""
    return table_engine(fm.module) == "closed"


def choose_engine(fm, engine="auto"):
    """The engine (one of ENGINES but 'auto') for the model: 'auto' -> the engine of the
    model table (``utils.common.catalog.MODEL_TABLE``: 'closed' for the logistic model); for a
    module no row builds, 'layers' when it has a ``layers()`` chain, else 'vjp' (measured
    faster than 'jvp' on the MNIST cnn: bench/bench_precompute.py). InputError when the
    engine asked for does not apply to the model."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; one of {ENGINES}")
    if engine == "auto":
        return table_engine(fm.module) or ("layers" if has_layers(fm) else "vjp")
    if engine == "closed" and not closed_form_available(fm):
        raise InputError("the closed-form Hessian engine exists only for --model logistic")
    if engine == "layers" and not has_layers(fm):
        raise InputError("the layered Hessian engine needs a model with a layers() chain")
    return engine


def step_jacobian(step, engine="auto", curvature="hessian", damping=0.0):
    """The J_t operator of one step (``step``: a ``Step``; engine: one of ENGINES; curvature
    'hessian' or 'ggn'; damping kappa >= 0 adds kappa I)."""
    engine = choose_engine(step.fm, engine)
    if engine == "closed":
        return LogisticJacobian(step, damping)
    if engine == "layers":
        return LayeredJacobian(step, curvature, damping)
    return GenericJacobian(step, engine, curvature, damping)
