"""A convolution on the network input followed by max-pooling, as one layer. The input
carries no tangent, so only the convolution at each window's arg-max matters:

    dp[b, c, q] = <x-patch at the arg-max of window q of channel c, dW_c> + db_c,
    (H v)_{W_c} = sum_{b, q} dg[b, c, q] (x-patch at that arg-max)

a batched matrix product over channels on the pooled positions only (never the full
conv-resolution tangents). Being the first layer, it is never asked for an input cotangent
(no backward / reverse)."""
import torch
import torch.nn.functional as F

from utils.curvature.layers.base import Rule
from utils.curvature.layers.conv import conv_args
from utils.curvature.layers.pool import max_pool


class InputConvPool(Rule):
    parametrised = True

    def __init__(self, conv, pool):
        """conv, pool: the Conv2d and MaxPool2d rules it replaces."""
        super().__init__(conv.module, conv.weight, conv.bias)
        self.pool = pool.module

    def forward(self, x, W, b):
        """saved: (pool indices, patches (C, b*Q, in*kh*kw) at the arg-max)."""
        c = self.module
        z = F.conv2d(x, W, b, **conv_args(c))
        p, idx = max_pool(self.pool, z)
        cols = F.unfold(x, c.kernel_size, c.dilation, c.padding, c.stride).transpose(1, 2)
        n, C, K = len(x), W.shape[0], cols.shape[2]
        picked = cols.gather(1, idx.reshape(n, -1, 1).expand(-1, -1, K))     # (b, C*Q, K)
        patches = picked.view(n, C, -1, K).transpose(0, 1).reshape(C, -1, K)
        return p, (idx, patches)

    def tangent(self, saved, da, W, dW, db):
        """dp (k, b, C, Ho, Wo); da is None (the network input)."""
        idx, patches = saved
        k, C = dW.shape[:2]
        dp = torch.bmm(patches, dW.reshape(k, C, -1).permute(1, 2, 0))        # (C, b*Q, k)
        dp = dp.view(C, idx.shape[0], -1, k).permute(3, 1, 0, 2)
        if db is not None:
            dp = dp + db[:, None, :, None]
        return dp.reshape(k, *idx.shape)

    def hvp(self, saved, dg, da, g, hv_W, hv_b):
        """(H v)_W (k, C, in, kh, kw): sum over b and positions of dg times the arg-max patches."""
        patches = saved[1]
        k, b, C = dg.shape[:3]
        dgc = dg.reshape(k, b, C, -1).permute(2, 0, 1, 3).reshape(C, k, -1)
        hv_W.copy_(torch.bmm(dgc, patches).transpose(0, 1).view(hv_W.shape))
        if hv_b is not None:
            hv_b.copy_(dg.sum((1, 3, 4)))
