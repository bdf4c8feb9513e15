"""Each layer rule of the layered engine alone against per-vector autograd (torch.func) on
fresh random inputs: forward, backward, tangent, reverse (tangent of the cotangent) and hvp."""
import pytest
import torch
from torch import nn
from torch.func import functional_call, jvp, vjp

from models import build_model
from utils.curvature.layers import RULES, chain, rule_class
from utils.curvature.layers.conv import Conv2d
from utils.curvature.layers.input_conv_pool import InputConvPool
from utils.curvature.layers.linear import Linear
from utils.curvature.layers.pool import MaxPool2d
from utils.curvature.layers.relu import ReLU

K = 3   # directions per block

CASES = {
    "linear": (lambda: nn.Linear(5, 4), (6, 5)),
    "linear_no_bias": (lambda: nn.Linear(5, 4, bias=False), (6, 5)),
    "conv": (lambda: nn.Conv2d(2, 3, 3, padding=1), (4, 2, 7, 7)),
    "conv_strided_dilated": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=2, dilation=2, bias=False),
                             (4, 2, 8, 8)),
    "maxpool": (lambda: nn.MaxPool2d(2), (4, 3, 6, 6)),
    "maxpool_overlapping_padded": (lambda: nn.MaxPool2d(3, 2, padding=1), (4, 3, 8, 8)),
    "relu": (lambda: nn.ReLU(), (4, 3, 5)),
    "flatten": (lambda: nn.Flatten(), (4, 3, 2, 2)),
}


def problem(name, seed):
    """(rule, f(a, *params), primals (a, *params), cotangent g of the output)."""
    torch.manual_seed(seed)
    make, shape = CASES[name]
    module = make().double()
    names = [n for n, _ in module.named_parameters()]
    rule = rule_class(module)
    rule = rule(module, "weight", "bias" if "bias" in names else None) if rule.parametrised else rule(module)
    params = [torch.randn_like(p) for _, p in module.named_parameters()]
    a = torch.randn(shape, dtype=torch.float64)

    def f(a, *p):
        return functional_call(module, dict(zip(names, p)), (a,))

    g = torch.randn_like(f(a, *params))
    return rule, f, (a, *params), g


def directions(primals, out, seed):
    torch.manual_seed(seed)
    return [torch.randn(K, *p.shape, dtype=p.dtype) for p in primals], torch.randn(K, *out.shape, dtype=out.dtype)


def weight_bias(rule, tensors):
    """(W, b) of a rule from (a, W[, b]) primals or tangents; None where absent."""
    if not rule.parametrised:
        return None, None
    return tensors[1], tensors[2] if rule.bias is not None else None


def pullback_tangent(f, primals, g, tangents, dg):
    """The tangent of (a, params, g) -> vjp_f(a, params)(g) in the direction (tangents, dg):
    the tangents of the cotangents of the input and of every parameter."""
    pull = lambda *pg: vjp(f, *pg[:-1])[1](pg[-1])
    return jvp(pull, (*primals, g), (*tangents, dg))[1]


@pytest.mark.parametrize("name", list(CASES))
def test_rule_matches_autograd(name):
    rule, f, primals, g = problem(name, seed=len(name))
    a = primals[0]
    W, b = weight_bias(rule, primals)
    z, saved = rule.forward(a, W, b)
    torch.testing.assert_close(z, f(*primals), rtol=1e-12, atol=1e-12)
    # primal backward: the input cotangent
    torch.testing.assert_close(rule.backward(saved, g, W), vjp(f, *primals)[1](g)[0], rtol=1e-12, atol=1e-12)
    D, dg = directions(primals, z, seed=len(name) + 100)
    dW, db = weight_bias(rule, D)
    # tangent forward, with and (for a layer with parameters) without an input tangent
    for da in ([D[0]] + ([None] if rule.parametrised else [])):
        ref = torch.stack([jvp(f, primals, (torch.zeros_like(a) if da is None else da[i],
                                            *[d[i] for d in D[1:]]))[1] for i in range(K)])
        torch.testing.assert_close(rule.tangent(saved, da, W, dW, db), ref, rtol=1e-12, atol=1e-12)
    # reverse: tangent of the input cotangent; hvp: tangents of the parameter cotangents
    for da in ([D[0]] + ([None] if rule.parametrised else [])):
        refs = [pullback_tangent(f, primals, g, (torch.zeros_like(a) if da is None else da[i],
                                                 *[d[i] for d in D[1:]]), dg[i]) for i in range(K)]
        got = rule.reverse(saved, dg, g, W, dW)
        torch.testing.assert_close(got, torch.stack([r[0] for r in refs]), rtol=1e-12, atol=1e-12)
        if rule.parametrised:
            hv_W, hv_b = torch.empty_like(dW), None if db is None else torch.empty_like(db)
            rule.hvp(saved, dg, da, g, hv_W, hv_b)
            torch.testing.assert_close(hv_W, torch.stack([r[1] for r in refs]), rtol=1e-12, atol=1e-12)
            if hv_b is not None:
                torch.testing.assert_close(hv_b, torch.stack([r[2] for r in refs]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding,bias", [(0, True), (1, False)])
def test_input_conv_pool_matches_autograd(padding, bias):
    """Conv2d then MaxPool2d on the network input (no input tangent): tangent and hvp."""
    torch.manual_seed(21 + padding)
    conv, pool = nn.Conv2d(2, 3, 3, padding=padding, bias=bias).double(), nn.MaxPool2d(2)
    rule = InputConvPool(Conv2d(conv, "weight", "bias" if bias else None), MaxPool2d(pool))
    x = torch.randn(4, 2, 9, 9, dtype=torch.float64)
    params = [torch.randn_like(p) for p in conv.parameters()]
    names = [n for n, _ in conv.named_parameters()]
    f = lambda x, *p: pool(functional_call(conv, dict(zip(names, p)), (x,)))
    W, b = params[0], params[1] if bias else None
    z, saved = rule.forward(x, W, b)
    torch.testing.assert_close(z, f(x, *params), rtol=1e-12, atol=1e-12)
    D, dg = directions(params, z, seed=5)
    dW, db = D[0], D[1] if bias else None
    zero = torch.zeros_like(x)
    ref = torch.stack([jvp(f, (x, *params), (zero, *[d[i] for d in D]))[1] for i in range(K)])
    torch.testing.assert_close(rule.tangent(saved, None, W, dW, db), ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(z)
    refs = [pullback_tangent(f, (x, *params), g, (zero, *[d[i] for d in D]), dg[i]) for i in range(K)]
    hv_W, hv_b = torch.empty_like(dW), None if db is None else torch.empty_like(db)
    rule.hvp(saved, dg, None, g, hv_W, hv_b)
    torch.testing.assert_close(hv_W, torch.stack([r[1] for r in refs]), rtol=1e-12, atol=1e-12)
    if bias:
        torch.testing.assert_close(hv_b, torch.stack([r[2] for r in refs]), rtol=1e-12, atol=1e-12)


def test_registry_and_chain():
    """Every supported type has a rule; a cnn's chain fuses its first conv and pool; other
    layers and grouped convolutions are refused by name."""
    assert set(RULES) == {nn.Linear, nn.Conv2d, nn.MaxPool2d, nn.ReLU, nn.Flatten}
    rules = chain(build_model("cnn", "mnist"))
    assert [type(r) for r in rules][:3] == [InputConvPool, ReLU, Conv2d]
    assert [r.weight for r in rules if r.parametrised] == ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
    assert isinstance(rules[-1], Linear) and rules[-1].bias == "fc2.bias"
    with pytest.raises(ValueError, match="Dropout"):
        rule_class(nn.Dropout())
    with pytest.raises(ValueError, match="grouped"):
        Conv2d(nn.Conv2d(2, 4, 3, groups=2))
