"""Exact Hessian-vector products of a layer chain, for a whole block of vectors at once.

For a network that is a chain of Linear, Conv2d, MaxPool2d, ReLU and Flatten layers ending
in softmax cross-entropy (the models that define ``layers()``: mlp, cnn, lenet), H V is one
forward pass of tangents (the R-operator) and one reverse pass of the tangents of the
cotangents. The k vectors of a block are folded into the batch or channel dimension of each
matrix product and convolution, so that a layer costs a few large GEMM/convolution calls
instead of k small ones (what ``vmap`` over autograd runs).

Layer l maps a_{l-1} -> z_l = f(a_{l-1}; W_l) + b_l (Linear/Conv2d are bilinear in the input
and the weight). With the primal cotangents g_l = dL/dz_l of one ordinary backward pass at w
and a direction v with parameter parts (dW_l, db_l):

    forward:   dz_l = f(da_{l-1}; W_l) + f(a_{l-1}; dW_l) + db_l
               ReLU: da = [z > 0] dz;   MaxPool: da = dz at the arg-max of each window
    loss:      dg_L = (diag p - p p^T) dz_L / N          (L = (1/N) sum_i CE_i, p = softmax)
    reverse:   (H v)_{W_l} = grad_W f(a_{l-1}, dg_l) + grad_W f(da_{l-1}, g_l)
               (H v)_{b_l} = sum of dg_l over the batch (and positions)
               dg_{l-1}   = f^T(dg_l; W_l) + f^T(g_l; dW_l)  (then through ReLU masks / pooling)

ReLU and max-pooling are piecewise linear, so they add no second-order term (almost
everywhere; at ties and zeros the same sub-gradient as autograd is used).

How each term runs: f(a; dW) and grad_W f(a, dg) are single GEMMs against the layer input
unfolded once per step (a is fixed); f(da; W) and f^T(dg; W) fold the block into the batch;
f^T(g; dW) and grad_W f(da, g) fold it into the channels. A convolution on the network input
followed by max-pooling is evaluated at the pooling arg-max only (``_InputConvPool``).
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_weight


def has_layers(fm):
    return hasattr(fm.module, "layers")


def _layer_plan(fm):
    """[(layer, weight name, bias name)] of the model's chain (names None for parameter-free
    layers), memoised on the FlatModel."""
    if getattr(fm, "_layer_plan", None) is None:
        prefix = {id(m): name for name, m in fm.module.named_modules()}
        plan = []
        for layer in fm.module.layers():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                if isinstance(layer, nn.Conv2d) and layer.groups != 1:
                    raise ValueError("grouped convolutions are not supported by the layered engine")
                p = prefix[id(layer)]
                plan.append((layer, f"{p}.weight", f"{p}.bias" if layer.bias is not None else None))
            elif isinstance(layer, (nn.MaxPool2d, nn.ReLU, nn.Flatten)):
                plan.append((layer, None, None))
            else:
                raise ValueError(f"layer {type(layer).__name__} is not supported by the layered engine")
        if len(plan) > 1 and isinstance(plan[0][0], nn.Conv2d) and isinstance(plan[1][0], nn.MaxPool2d):
            plan[:2] = [(_InputConvPool(plan[0][0], plan[1][0]), plan[0][1], plan[0][2])]
        fm._layer_plan = plan
    return fm._layer_plan


class _InputConvPool:
    """Conv2d on the network input followed by MaxPool2d, as one layer. The input carries no
    tangent, so only the convolution at each window's arg-max matters:

        dp[b, c, q] = <x-patch at the arg-max of window q of channel c, dW_c> + db_c,
        (H v)_{W_c} = sum_{b, q} dg[b, c, q] (x-patch at that arg-max)

    a batched matrix product over channels on the pooled positions only (never the full
    conv-resolution tangents)."""

    def __init__(self, conv, pool):
        self.conv, self.pool = conv, pool

    def forward(self, x, W, bias):
        """(pooled output, pool indices, patches (C, b*Q, in*kh*kw) at the arg-max)."""
        z = F.conv2d(x, W, bias, **_conv_args(self.conv))
        p, idx = _pool(self.pool, z)
        c = self.conv
        cols = F.unfold(x, c.kernel_size, c.dilation, c.padding, c.stride).transpose(1, 2)
        b, C, K = len(x), W.shape[0], cols.shape[2]
        picked = cols.gather(1, idx.reshape(b, -1, 1).expand(-1, -1, K))      # (b, C*Q, K)
        patches = picked.view(b, C, -1, K).transpose(0, 1).reshape(C, -1, K)
        return p, idx, patches

    @staticmethod
    def tangent(patches, idx, dW, db):
        """dp (k, b, C, Ho, Wo) for weight directions dW (k, C, ...) and bias directions db."""
        k, C = dW.shape[:2]
        dp = torch.bmm(patches, dW.reshape(k, C, -1).permute(1, 2, 0))         # (C, b*Q, k)
        dp = dp.view(C, idx.shape[0], -1, k).permute(3, 1, 0, 2)
        if db is not None:
            dp = dp + db[:, None, :, None]
        return dp.reshape(k, *idx.shape)

    @staticmethod
    def weight_hvp(patches, dg):
        """(k, C, in*kh*kw): sum over b and positions of dg times the arg-max patches."""
        k, b, C = dg.shape[:3]
        dgc = dg.reshape(k, b, C, -1).permute(2, 0, 1, 3).reshape(C, k, -1)
        return torch.bmm(dgc, patches).transpose(0, 1)


def _conv_args(layer):
    return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)


def _unfold(layer, a):
    """The input patches of a convolution as one matrix (in*kh*kw, b*Ho*Wo), so that
    conv(a, dW) = dW_flat @ patches and grad_W <dg, conv(a, W)> = dg_flat @ patches^T."""
    cols = F.unfold(a, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    return cols.transpose(0, 1).reshape(cols.shape[1], -1)


def _conv_out_hw(layer, shape):
    """Output height and width of a convolution on inputs of ``shape`` (b, C, H, W)."""
    return tuple((size + 2 * p - dl * (kk - 1) - 1) // st + 1 for size, p, dl, kk, st in
                 zip(shape[2:], layer.padding, layer.dilation, layer.kernel_size, layer.stride))


def _conv_adjoint(layer, g, W, in_hw):
    """conv^T: the cotangent of a convolution's input (size in_hw) from that of its output."""
    hw = _conv_out_hw(layer, (None, None, *in_hw))
    extra = [size - ((o - 1) * st - 2 * p + dl * (kk - 1) + 1) for size, o, st, p, dl, kk in
             zip(in_hw, hw, layer.stride, layer.padding, layer.dilation, layer.kernel_size)]
    return F.conv_transpose2d(g, W, None, layer.stride, layer.padding, extra, 1, layer.dilation)


def _nhwc(t):
    """Channels-last layout: oneDNN runs these small-channel convolutions faster in it."""
    return t.contiguous(memory_format=torch.channels_last)


def _pool(layer, a):
    return F.max_pool2d(a, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                        layer.ceil_mode, return_indices=True)


def _unpool(dg, idx, in_shape):
    """Adjoint of taking values at the pooling arg-max: scatter-add dg (..., C, Ho, Wo) back
    to (..., C, H, W); idx has the primal shape (b, C, Ho, Wo)."""
    lead = dg.shape[:-4]
    out = dg.new_zeros(*lead, *in_shape[:2], in_shape[2] * in_shape[3])
    index = idx.flatten(2).expand(*lead, *idx.shape[:2], -1)
    return out.scatter_add_(-1, index, dg.flatten(-2)).view(*lead, *in_shape)


def _left_mm(M, T):
    """M @ T[k] for every k in one GEMM: M (p, q), T (k, q, r) -> (k, p, r)."""
    k, q, r = T.shape
    return (M @ T.transpose(0, 1).reshape(q, k * r)).view(len(M), k, r).transpose(0, 1)


class LayeredHVP:
    """H V for the batch loss (1/N) sum_i CE_i(w) at one w; rows of V are vectors of R^d."""

    def __init__(self, fm, w, X, y, normaliser):
        self.plan = _layer_plan(fm)
        self.params = fm.unflatten(w)
        self.slices = {}
        start = 0
        for name, numel, shape in zip(fm.names, fm.numels, fm.shapes):
            self.slices[name] = (start, start + numel, shape)
            start += numel
        self.d = fm.d
        self.inputs, self.aux = [], []
        a = X
        with torch.no_grad():
            for layer, wn, bn in self.plan:
                self.inputs.append(a)
                aux = None
                if isinstance(layer, _InputConvPool):
                    a, idx, patches = layer.forward(a, self.params[wn], self.params.get(bn))
                    aux = (idx, patches)
                elif isinstance(layer, nn.Linear):
                    a = F.linear(a, self.params[wn], self.params.get(bn))
                elif isinstance(layer, nn.Conv2d):
                    aux = _unfold(layer, a)
                    a = F.conv2d(a, self.params[wn], self.params.get(bn), **_conv_args(layer))
                elif isinstance(layer, nn.MaxPool2d):
                    aux = a.shape
                    a, idx = _pool(layer, a)
                    aux = (idx, aux)
                elif isinstance(layer, nn.ReLU):
                    aux = a > 0
                    a = a * aux
                else:
                    aux = a.shape
                    a = a.flatten(1)
                self.aux.append(aux)
            self.P = torch.softmax(a, dim=1)
            self.N = normaliser
            g = (self.P - F.one_hot(y, self.P.shape[1]).to(self.P.dtype)) / normaliser
            self.cotangents = [None] * len(self.plan)
            # g_l for l >= 1 (the first layer's input carries no tangent, so g_0 is never used)
            for l in range(len(self.plan) - 1, 0, -1):
                self.cotangents[l] = g
                if l > 1:
                    g = self._backward(l, g, None)

    def _split(self, V):
        """Parameter parts of the block: {name: (k, *shape) view of V's columns}."""
        return {n: V[:, s:e].view(len(V), *shape) for n, (s, e, shape) in self.slices.items()}

    def _backward(self, l, dg, dV):
        """Cotangent of layer l's input from that of its output. dV None: the primal pass
        (dg has no block dimension); else the tangent pass, dg_{l-1} = f^T(dg; W) + f^T(g_l; dW)."""
        layer, wn, _ = self.plan[l]
        aux = self.aux[l]
        if isinstance(layer, nn.Linear):
            W = self.params[wn]
            out = dg @ W
            if dV is not None:
                out = out + _left_mm(self.cotangents[l], dV[wn])
            return out
        if isinstance(layer, nn.Conv2d):
            W = self.params[wn]
            a = self.inputs[l]
            if dV is None:
                return _conv_adjoint(layer, dg, W, a.shape[2:])
            k, b = dg.shape[:2]
            out = _conv_adjoint(layer, dg.flatten(0, 1), W, a.shape[2:])
            dW = dV[wn]                                              # (k, out, in, kh, kw)
            folded = dW.transpose(0, 1).reshape(W.shape[0], k * W.shape[1], *W.shape[2:])
            cross = _conv_adjoint(layer, _nhwc(self.cotangents[l]), _nhwc(folded), a.shape[2:])
            return out.view(k, *a.shape) + cross.view(b, k, *a.shape[1:]).transpose(0, 1)
        if isinstance(layer, nn.MaxPool2d):
            idx, in_shape = aux
            return _unpool(dg, idx, in_shape)
        if isinstance(layer, nn.ReLU):
            return dg * aux
        return dg.reshape(*dg.shape[:-1], *aux[1:])

    def _forward_tangents(self, dV, k):
        """da_{l-1} for every layer l (None for the input) and dz_L of the logits."""
        tangents, da = [], None
        for l, (layer, wn, bn) in enumerate(self.plan):
            tangents.append(da)
            a, aux = self.inputs[l], self.aux[l]
            if isinstance(layer, _InputConvPool):
                da = layer.tangent(aux[1], aux[0], dV[wn], dV.get(bn))
            elif isinstance(layer, nn.Linear):
                dz = _left_mm(a, dV[wn].transpose(1, 2))
                if bn is not None:
                    dz = dz + dV[bn][:, None, :]
                if da is not None:
                    dz = dz + da @ self.params[wn].T
                da = dz
            elif isinstance(layer, nn.Conv2d):
                W = self.params[wn]
                dz = dV[wn].reshape(k * W.shape[0], -1) @ aux                    # (k*out, b*Ho*Wo)
                out_hw = _conv_out_hw(layer, a.shape)
                dz = dz.view(k, W.shape[0], len(a), *out_hw).transpose(1, 2)
                if bn is not None:
                    dz = dz + dV[bn][:, None, :, None, None]
                if da is not None:
                    dz = dz + F.conv2d(_nhwc(da.flatten(0, 1)), _nhwc(W), **_conv_args(layer)).view(dz.shape)
                da = dz
            elif da is None:
                continue                                     # parameter-free layer on the input
            elif isinstance(layer, nn.MaxPool2d):
                idx, _ = aux
                index = idx.flatten(2).expand(k, *idx.shape[:2], -1)
                da = da.reshape(*da.shape[:3], -1).gather(-1, index).view(k, *idx.shape)
            elif isinstance(layer, nn.ReLU):
                da = da * aux
            else:
                da = da.reshape(k, len(a), -1)
        return tangents, da

    def __call__(self, V):
        """H V for a block V (k, d)."""
        k = len(V)
        dV = self._split(V)
        tangents, dz = self._forward_tangents(dV, k)
        dg = self.P * (dz - (self.P * dz).sum(-1, keepdim=True)) / self.N
        HV = V.new_empty(k, self.d)
        hv = self._split(HV)
        for l in range(len(self.plan) - 1, -1, -1):
            layer, wn, bn = self.plan[l]
            if wn is not None:
                a, da, g = self.inputs[l], tangents[l], self.cotangents[l]
                if isinstance(layer, _InputConvPool):
                    hv[wn].copy_(layer.weight_hvp(self.aux[l][1], dg).view(hv[wn].shape))
                    if bn is not None:
                        hv[bn].copy_(dg.sum((1, 3, 4)))
                elif isinstance(layer, nn.Linear):
                    hv[wn].copy_(dg.transpose(1, 2) @ a)
                    if da is not None:
                        hv[wn].add_(_left_mm(g.T, da))
                    if bn is not None:
                        hv[bn].copy_(dg.sum(1))
                else:
                    W = self.params[wn]
                    dgf = dg.transpose(1, 2).reshape(k * W.shape[0], -1)     # (k*out, b*Ho*Wo)
                    hv[wn].copy_((dgf @ self.aux[l].T).view(hv[wn].shape))
                    if da is not None:
                        daf = da.transpose(0, 1).flatten(1, 2)              # (b, k*in, H, W)
                        cross = conv2d_weight(daf, (W.shape[0], k * W.shape[1], *W.shape[2:]), g,
                                              **_conv_args(layer))
                        hv[wn].add_(cross.view(W.shape[0], k, *W.shape[1:]).transpose(0, 1))
                    if bn is not None:
                        hv[bn].copy_(dg.sum((1, 3, 4)))
            if l > 0:
                dg = self._backward(l, dg, dV)
        return HV
