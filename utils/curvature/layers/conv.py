"""Conv2d (groups = 1): z = conv(a; W) + b.

f(a; dW) and grad_W f(a, dg) are single GEMMs against the input unfolded once per step (a is
fixed); f(da; W) and f^T(dg; W) fold the block into the batch; f^T(g; dW) and grad_W f(da, g)
fold it into the channels, in the channels-last layout."""
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_weight

from utils.curvature.layers.base import Rule


def conv_args(layer):
    return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)


def unfold(layer, a):
    """The input patches of a convolution as one matrix (in*kh*kw, b*Ho*Wo), so that
    conv(a, dW) = dW_flat @ patches and grad_W <dg, conv(a, W)> = dg_flat @ patches^T."""
    cols = F.unfold(a, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    return cols.transpose(0, 1).reshape(cols.shape[1], -1)


def out_hw(layer, shape):
    """Output height and width of a convolution on inputs of ``shape`` (b, C, H, W)."""
    return tuple((size + 2 * p - dl * (kk - 1) - 1) // st + 1 for size, p, dl, kk, st in
                 zip(shape[2:], layer.padding, layer.dilation, layer.kernel_size, layer.stride))


def adjoint(layer, g, W, in_hw):
    """conv^T: the cotangent of a convolution's input (size in_hw) from that of its output."""
    hw = out_hw(layer, (None, None, *in_hw))
    extra = [size - ((o - 1) * st - 2 * p + dl * (kk - 1) + 1) for size, o, st, p, dl, kk in
             zip(in_hw, hw, layer.stride, layer.padding, layer.dilation, layer.kernel_size)]
    return F.conv_transpose2d(g, W, None, layer.stride, layer.padding, extra, 1, layer.dilation)


def nhwc(t):
    """Channels-last layout: oneDNN runs these small-channel convolutions faster in it."""
    return t.contiguous(memory_format=torch.channels_last)


class Conv2d(Rule):
    parametrised = True

    def __init__(self, module, weight=None, bias=None):
        if module.groups != 1:
            raise ValueError("grouped convolutions are not supported by the layered engine")
        super().__init__(module, weight, bias)

    def forward(self, a, W, b):
        """saved: (input shape, unfolded input patches)."""
        return F.conv2d(a, W, b, **conv_args(self.module)), (a.shape, unfold(self.module, a))

    def backward(self, saved, g, W):
        return adjoint(self.module, g, W, saved[0][2:])

    def tangent(self, saved, da, W, dW, db):
        in_shape, cols = saved
        k = len(dW)
        dz = dW.reshape(k * W.shape[0], -1) @ cols                          # (k*out, b*Ho*Wo)
        dz = dz.view(k, W.shape[0], in_shape[0], *out_hw(self.module, in_shape)).transpose(1, 2)
        if db is not None:
            dz = dz + db[:, None, :, None, None]
        if da is not None:
            dz = dz + F.conv2d(nhwc(da.flatten(0, 1)), nhwc(W), **conv_args(self.module)).view(dz.shape)
        return dz

    def reverse(self, saved, dg, g, W, dW):
        in_shape = saved[0]
        k, b = dg.shape[:2]
        out = adjoint(self.module, dg.flatten(0, 1), W, in_shape[2:])
        folded = dW.transpose(0, 1).reshape(W.shape[0], k * W.shape[1], *W.shape[2:])
        cross = adjoint(self.module, nhwc(g), nhwc(folded), in_shape[2:])
        return out.view(k, *in_shape) + cross.view(b, k, *in_shape[1:]).transpose(0, 1)

    def hvp(self, saved, dg, da, g, hv_W, hv_b):
        cols = saved[1]
        k, C = dg.shape[0], hv_W.shape[1]
        dgf = dg.transpose(1, 2).reshape(k * C, -1)                           # (k*out, b*Ho*Wo)
        hv_W.copy_((dgf @ cols.T).view(hv_W.shape))
        if da is not None:
            daf = da.transpose(0, 1).flatten(1, 2)                            # (b, k*in, H, W)
            shape = (C, k * hv_W.shape[2], *hv_W.shape[3:])
            cross = conv2d_weight(daf, shape, g, **conv_args(self.module))
            hv_W.add_(cross.view(C, k, *hv_W.shape[2:]).transpose(0, 1))
        if hv_b is not None:
            hv_b.copy_(dg.sum((1, 3, 4)))
