"""MaxPool2d: z = a at the arg-max of each window, the arg-max fixed by the primal pass (at
ties the same index as autograd)."""
import torch.nn.functional as F

from utils.curvature.layers.base import ParameterFree


def max_pool(layer, a):
    """(pooled a, flat arg-max indices into each channel's H*W) of a MaxPool2d module."""
    return F.max_pool2d(a, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                        layer.ceil_mode, return_indices=True)


def unpool(dg, idx, in_shape):
    """Adjoint of taking values at the pooling arg-max: scatter-add dg (..., C, Ho, Wo) back
    to (..., C, H, W); idx has the primal shape (b, C, Ho, Wo)."""
    lead = dg.shape[:-4]
    out = dg.new_zeros(*lead, *in_shape[:2], in_shape[2] * in_shape[3])
    index = idx.flatten(2).expand(*lead, *idx.shape[:2], -1)
    return out.scatter_add_(-1, index, dg.flatten(-2)).view(*lead, *in_shape)


class MaxPool2d(ParameterFree):

    def forward(self, a, W, b):
        z, idx = max_pool(self.module, a)
        return z, (idx, a.shape)

    def backward(self, saved, g, W):
        idx, in_shape = saved
        return unpool(g, idx, in_shape)

    def tangent(self, saved, da, W, dW, db):
        idx, _ = saved
        k = len(da)
        index = idx.flatten(2).expand(k, *idx.shape[:2], -1)
        return da.reshape(*da.shape[:3], -1).gather(-1, index).view(k, *idx.shape)
