"""Linear: z = a W^T + b, the block of k directions folded into the rows of single GEMMs."""
import torch.nn.functional as F

from utils.curvature.layers.base import Rule


def left_mm(M, T):
    """M @ T[k] for every k in one GEMM: M (p, q), T (k, q, r) -> (k, p, r)."""
    k, q, r = T.shape
    return (M @ T.transpose(0, 1).reshape(q, k * r)).view(len(M), k, r).transpose(0, 1)


class Linear(Rule):
    parametrised = True

    def forward(self, a, W, b):
        return F.linear(a, W, b), a

    def backward(self, a, g, W):
        return g @ W

    def tangent(self, a, da, W, dW, db):
        dz = left_mm(a, dW.transpose(1, 2))
        if db is not None:
            dz = dz + db[:, None, :]
        if da is not None:
            dz = dz + da @ W.T
        return dz

    def reverse(self, a, dg, g, W, dW):
        return dg @ W + left_mm(g, dW)

    def hvp(self, a, dg, da, g, hv_W, hv_b):
        hv_W.copy_(dg.transpose(1, 2) @ a)
        if da is not None:
            hv_W.add_(left_mm(g.T, da))
        if hv_b is not None:
            hv_b.copy_(dg.sum(1))
