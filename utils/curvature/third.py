"""The products the order-2 recursion needs beyond J_t (docs/method.md, "Second order"):

    third(A)[k]          = D^3 L_B(w)[a_k, a_k] = d/de H_B(w + e a_k) a_k at e = 0,
                           L_B = (1/N) sum_{i in B} CE_i
    sample_hvp(pos, A)[k] = hess CE_{i_k}(w) a_k,  i_k = the batch sample at position pos[k]

for a block A (k, d) in the internal layout of the step's J_t operator (``utils.curvature.hvp``).

* ``LogisticSecondOrder`` (closed form, softmax cross-entropy on one Linear layer): with
  logit directions dz_i = A_k x~_i, m_i = p_i . dz_i and v_i = sum_c p_ic (dz_ic - m_i)^2,

      D^3 L_B[a, a] = (1/N) sum_i [p_i (dz_i - m_i)^2 - p_i v_i] x~_i^T
      hess CE_i a   = [p_i (dz_i - m_i)] x~_i^T

  (the first is the derivative of the softmax Hessian product p (dz - m) along dz).
* ``TorchFuncSecondOrder`` (any model): the forward-mode derivative (``jvp``) of the
  forward-over-reverse Hessian-vector product, vmapped over the rows; per-sample products
  by a vmapped jvp of one sample's gradient.

Both work on row chunks of the J_t operator's size (its memory budget).
"""
import torch
from torch.func import grad, jvp, vmap

from utils.training.functional import data_loss


class LogisticSecondOrder:
    """Closed-form products from a ``LogisticJacobian`` ``op`` (its batch, softmax and layout)."""

    def __init__(self, op):
        self.op = op

    def third(self, A):
        op = self.op
        out = []
        for c in A.split(op.chunk):
            k = len(c)
            dZ = (c.reshape(k * op.C, op.D1) @ op.Xt.T).view(k, op.C, -1)        # (k, C, b)
            dev = dZ - (op.PT * dZ).sum(1, keepdim=True)
            sq = dev * dev
            T = op.PT * (sq - (op.PT * sq).sum(1, keepdim=True))
            out.append((T.reshape(k * op.C, -1) @ op.Xt).view(k, -1) / op.N)
        return torch.cat(out) if len(out) > 1 else out[0]

    def sample_hvp(self, pos, A):
        op = self.op
        x = op.Xt[pos]                                                          # (k, D+1)
        p = op.P[pos]                                                           # (k, C)
        dz = torch.einsum("kcj,kj->kc", A.reshape(len(A), op.C, op.D1), x)
        r = p * (dz - (p * dz).sum(1, keepdim=True))
        return (r[:, :, None] * x[:, None, :]).reshape(len(A), -1)


class TorchFuncSecondOrder:
    """torch.func products for any FlatModel ``fm`` at w on the batch (X, y), normaliser N,
    on row chunks of ``chunk`` vectors."""

    def __init__(self, fm, w, X, y, normaliser, chunk):
        self.w, self.X, self.y, self.chunk = w, X, y, max(1, chunk)
        grad_fn = grad(lambda v: data_loss(fm, v, X, y, normaliser))
        hvp = lambda v, a: jvp(grad_fn, (v,), (a,))[1]
        self._third = vmap(lambda a: jvp(lambda v: hvp(v, a), (w,), (a,))[1])
        one = grad(lambda v, x, t: data_loss(fm, v, x[None], t[None], 1))
        self._sample = vmap(lambda x, t, a: jvp(lambda v: one(v, x, t), (w,), (a,))[1])

    def third(self, A):
        out = [self._third(c) for c in A.split(self.chunk)]
        return torch.cat(out) if len(out) > 1 else out[0]

    def sample_hvp(self, pos, A):
        return self._sample(self.X[pos], self.y[pos], A)


def second_order_products(step, op, engine):
    """The products for one step (``step``: the ``Step`` J_t ``op`` was built from; ``engine``
    its engine name): the closed form for engine 'closed', torch.func otherwise."""
    if engine == "closed":
        return LogisticSecondOrder(op)
    N = len(step.y) if step.normaliser is None else step.normaliser
    return TorchFuncSecondOrder(step.fm, step.w, step.X, step.y, N, op.chunk)


def clip_second(op, G, clip):
    """Rows D^2 clip_c(g_t)[v, v] for the rows v of G (internal layout): zero while clipping is
    inactive, else -(c/r^2) [2 (g^.v) v + (v.v - 3 (g^.v)^2) g^], r = ||g_t||, g^ = g_t / r."""
    if not op.clipping:
        return torch.zeros_like(G)
    r = clip / op.s
    alpha = G @ op.g_hat                                                        # (k,)
    vv = (G * G).sum(1)
    out = (2 * alpha)[:, None] * G + (vv - 3 * alpha * alpha)[:, None] * op.g_hat[None, :]
    return out.mul_(-clip / (r * r))
