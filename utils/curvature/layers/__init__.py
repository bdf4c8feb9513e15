"""Per-layer rules of the layered Hessian engine (``utils.curvature.layered_hvp``), one class per type.

A rule evaluates one layer z = f(a; W, b) of a chain in the four passes of an exact
Hessian-vector product (block dimension k first in every tangent; W, b, dW, db are None for a
parameter-free layer, and dW, db hold k directions):

    forward(a, W, b)              -> (z, saved)  primal output and what the other passes need
    backward(saved, g, W)         -> g_in        primal cotangent of the input, f^T(g; W)
    tangent(saved, da, W, dW, db) -> dz          f(da; W) + f(a; dW) + db  (da None: the input
                                                 carries no tangent)
    reverse(saved, dg, g, W, dW)  -> dg_in       tangent of the cotangent, f^T(dg; W) + f^T(g; dW)

and a rule with parameters (``parametrised``) also

    hvp(saved, dg, da, g, hv_W, hv_b)            writes (H v)_W = grad_W f(a, dg) + grad_W f(da, g)
                                                 and (H v)_b = sum of dg into hv_W, hv_b

ReLU and max-pooling are piecewise linear: their rules apply the primal pass's mask or arg-max
to every tangent (no second-order term). Adding a layer type is one new rule class and one
entry in ``RULES``; tests/test_layers.py checks each rule alone against per-vector autograd.
"""
from torch import nn

from utils.curvature.layers.conv import Conv2d
from utils.curvature.layers.flatten import Flatten
from utils.curvature.layers.input_conv_pool import InputConvPool
from utils.curvature.layers.linear import Linear
from utils.curvature.layers.pool import MaxPool2d
from utils.curvature.layers.relu import ReLU

RULES = {nn.Linear: Linear, nn.Conv2d: Conv2d, nn.MaxPool2d: MaxPool2d, nn.ReLU: ReLU,
         nn.Flatten: Flatten}


def rule_class(module):
    """The rule of ``module``'s type, or of its nearest registered base class."""
    for cls in type(module).__mro__:
        if cls in RULES:
            return RULES[cls]
    raise ValueError(f"layer {type(module).__name__} is not supported by the layered engine")


def chain(module):
    """The rules of ``module.layers()`` in order. A convolution on the network input followed
    by max-pooling becomes one ``InputConvPool`` (only the arg-max positions matter)."""
    prefix = {id(m): name for name, m in module.named_modules()}
    rules = []
    for layer in module.layers():
        rule = rule_class(layer)
        if rule.parametrised:
            p = prefix[id(layer)]
            rules.append(rule(layer, f"{p}.weight", f"{p}.bias" if layer.bias is not None else None))
        else:
            rules.append(rule(layer))
    if len(rules) > 1 and isinstance(rules[0], Conv2d) and isinstance(rules[1], MaxPool2d):
        rules[:2] = [InputConvPool(rules[0], rules[1])]
    return rules
