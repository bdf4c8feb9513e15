"""Exact Hessian-vector products of a layer chain, for a whole block of vectors at once.

For a network that is a chain of layers with a rule in ``utils.curvature.layers`` (Linear, Conv2d,
MaxPool2d, ReLU, Flatten) ending in softmax cross-entropy (the models that define
``layers()``: logistic, mlp, cnn, lenet), H V is one forward pass of tangents (the
R-operator) and one reverse pass of the tangents of the cotangents. The k vectors of a block
are folded into the batch or channel dimension of each matrix product and convolution, so
that a layer costs a few large GEMM/convolution calls instead of k small ones (what ``vmap``
over autograd runs).

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
everywhere; at ties and zeros the same sub-gradient as autograd is used). Each layer's four
passes are one rule object (``utils.curvature.layers``); this module runs the chain. The network input
carries no tangent, so the first layer's input cotangent is never formed.
"""
import torch
import torch.nn.functional as F

from utils.curvature.layers import chain


def has_layers(fm):
    return hasattr(fm.module, "layers")


def layer_chain(fm):
    """The rules of the model's ``layers()`` chain, memoised on the FlatModel."""
    if getattr(fm, "_layer_chain", None) is None:
        fm._layer_chain = chain(fm.module)
    return fm._layer_chain


class LayeredHVP:
    """H V for the batch loss (1/N) sum_i CE_i(w) at one w; rows of V are vectors of R^d."""

    def __init__(self, fm, w, X, y, normaliser):
        self.rules = layer_chain(fm)
        self.params = fm.unflatten(w)
        self.slices = {}
        start = 0
        for name, numel, shape in zip(fm.names, fm.numels, fm.shapes):
            self.slices[name] = (start, start + numel, shape)
            start += numel
        self.d = fm.d
        self.weights = [(self.params.get(r.weight), self.params.get(r.bias)) for r in self.rules]
        self.saved = []
        a = X
        with torch.no_grad():
            for rule, (W, b) in zip(self.rules, self.weights):
                a, saved = rule.forward(a, W, b)
                self.saved.append(saved)
            self.P = torch.softmax(a, dim=1)
            self.N = normaliser
            g = (self.P - F.one_hot(y, self.P.shape[1]).to(self.P.dtype)) / normaliser
            self.cotangents = [None] * len(self.rules)
            # g_l for l >= 1 (the first layer's input carries no tangent, so g_0 is never used)
            for l in range(len(self.rules) - 1, 0, -1):
                self.cotangents[l] = g
                if l > 1:
                    g = self.rules[l].backward(self.saved[l], g, self.weights[l][0])

    def _split(self, V):
        """Parameter parts of the block: {name: (k, *shape) view of V's columns}."""
        return {n: V[:, s:e].view(len(V), *shape) for n, (s, e, shape) in self.slices.items()}

    def __call__(self, V):
        """H V for a block V (k, d)."""
        dV = self._split(V)
        tangents, da = [], None                 # da_{l-1}: the tangent of layer l's input
        for rule, saved, (W, _) in zip(self.rules, self.saved, self.weights):
            tangents.append(da)
            if da is not None or rule.parametrised:
                da = rule.tangent(saved, da, W, dV.get(rule.weight), dV.get(rule.bias))
        dg = self.P * (da - (self.P * da).sum(-1, keepdim=True)) / self.N
        HV = V.new_empty(len(V), self.d)
        hv = self._split(HV)
        for l in range(len(self.rules) - 1, -1, -1):
            rule, saved, g = self.rules[l], self.saved[l], self.cotangents[l]
            if rule.parametrised:
                rule.hvp(saved, dg, tangents[l], g, hv[rule.weight], hv.get(rule.bias))
            if l > 0:
                dg = rule.reverse(saved, dg, g, self.weights[l][0], dV.get(rule.weight))
        return HV
