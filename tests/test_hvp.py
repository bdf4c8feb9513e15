"""The block step Jacobian equals per-vector autograd, for every engine and model."""
import pytest
import torch

from models import build_model
from utils.training.functional import FlatModel, data_loss
from utils.curvature.hvp import Step, choose_engine, step_jacobian
from utils.common.errors import InputError

CASES = [("logistic", "mnist", (1, 28, 28)), ("mlp", "wine", (13,)), ("cnn", "mnist", (1, 28, 28)),
         ("cnn", "cifar", (3, 32, 32)), ("lenet", "mnist", (1, 28, 28))]


def engines_for(name):
    return ["jvp", "vjp", "layers"] + (["closed"] if name == "logistic" else [])


def setup(name, dataset, shape, seed, b=5):
    torch.manual_seed(seed)
    fm = FlatModel(build_model(name, dataset).double())
    w = fm.initial_vector() + 0.1 * torch.randn(fm.d, dtype=torch.float64)
    X = torch.randn(b, *shape, dtype=torch.float64)
    y = torch.randint(0, 3, (b,))
    return fm, w, X, y


def reference(fm, w, X, y, lam, clip, V):
    """J v one vector at a time: autograd HVP, then the explicit clipping Jacobian."""
    L = lambda v: data_loss(fm, v, X, y, len(y))
    g = torch.autograd.functional.jacobian(L, w) + lam * w
    out = []
    for v in V:
        hv = torch.autograd.functional.hvp(L, w, v)[1] + lam * v
        if g.norm() > clip:
            gh = g / g.norm()
            Cmat = (clip / g.norm()) * (torch.eye(len(w), dtype=w.dtype) - torch.outer(gh, gh)) \
                if len(w) < 2000 else None
            hv = Cmat @ hv if Cmat is not None else (clip / g.norm()) * (hv - gh * (gh @ hv))
        out.append(hv)
    return g, torch.stack(out)


@pytest.mark.parametrize("name,dataset,shape,seed", [(*case, seed) for case, seed in zip(CASES, [101, 202, 303, 404, 505])])
@pytest.mark.parametrize("active", [False, True])
def test_block_product_matches_autograd(name, dataset, shape, seed, active):
    fm, w, X, y = setup(name, dataset, shape, seed=seed + int(active))
    lam = 0.05
    g = torch.autograd.functional.jacobian(lambda v: data_loss(fm, v, X, y, len(y)), w) + lam * w
    clip = 0.5 * float(g.norm()) if active else 10 * float(g.norm())
    V = torch.randn(4, fm.d, dtype=torch.float64)
    g, ref = reference(fm, w, X, y, lam, clip, V)
    for engine in engines_for(name):
        op = step_jacobian(Step(fm, w, X, y, lam, g, clip), engine)
        assert op.clipping == active
        torch.testing.assert_close(op.apply(V), ref, rtol=1e-9, atol=1e-10)
        # the fused in-place update a <- (I - eta J) a
        A = op.to_internal(V.clone()).contiguous()
        op.contract_(A, 0.3)
        torch.testing.assert_close(op.from_internal(A), V - 0.3 * ref, rtol=1e-9, atol=1e-10)
        # J^T is the adjoint of J
        U2 = torch.randn(4, fm.d, dtype=torch.float64)
        lhs = (op.jac(op.to_internal(V)) * op.to_internal(U2)).sum()
        rhs = (op.to_internal(V) * op.jac_T(op.to_internal(U2))).sum()
        torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-10)


def test_chunking_gives_same_result_and_budget_error():
    fm, w, X, y = setup("mlp", "wine", (13,), seed=3)
    g = torch.randn(fm.d, dtype=torch.float64)
    V = torch.randn(7, fm.d, dtype=torch.float64)
    whole = step_jacobian(Step(fm, w, X, y, 0.01, g, 1e9, mem_budget_mb=1024), "jvp").apply(V)
    op = step_jacobian(Step(fm, w, X, y, 0.01, g, 1e9, mem_budget_mb=0.5), "jvp")
    assert op.chunk < 7
    torch.testing.assert_close(op.apply(V), whole, rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="mem_budget_mb"):
        step_jacobian(Step(fm, w, X, y, 0.01, g, 1e9, mem_budget_mb=1e-4), "jvp")


def test_closed_form_equals_generic_in_float32():
    fm, w, X, y = setup("logistic", "mnist", (1, 28, 28), seed=5, b=32)
    fm.module.float()
    w, X = w.float(), X.float()
    g = torch.randn(fm.d)
    V = torch.randn(16, fm.d)
    for clip in (1e9, 0.5 * float(g.norm())):
        closed = step_jacobian(Step(fm, w, X, y, 0.5, g, clip), "closed").apply(V)
        generic = step_jacobian(Step(fm, w, X, y, 0.5, g, clip), "jvp").apply(V)
        torch.testing.assert_close(closed, generic, rtol=1e-4, atol=1e-5)


def test_layered_engine_handles_pooling_ties_like_autograd():
    """Equal values in a pooling window (ReLU zeros, constant images): the layered engine
    routes through the same arg-max as autograd."""
    fm, w, X, y = setup("cnn", "mnist", (1, 28, 28), seed=11)
    X[:2] = 0.5                                   # constant images: every window ties
    g = torch.zeros(fm.d, dtype=torch.float64)
    V = torch.randn(3, fm.d, dtype=torch.float64)
    _, ref = reference(fm, w, X, y, 0.0, 1e9, V)
    torch.testing.assert_close(step_jacobian(Step(fm, w, X, y, 0.0, g, 1e9), "layers").apply(V), ref,
                               rtol=1e-9, atol=1e-10)


def test_auto_engine_choice():
    for name, dataset, shape in CASES:
        fm = setup(name, dataset, shape, seed=0)[0]
        assert choose_engine(fm) == ("closed" if name == "logistic" else "layers")
    fm = FlatModel(build_model("resnet18", "cifar", pretrained="none"))
    assert choose_engine(fm) == "vjp"
    with pytest.raises(InputError, match="layers"):
        choose_engine(fm, "layers")


def test_per_sample_grads_match_autograd():
    for name, dataset, shape in CASES[:2]:
        fm, w, X, y = setup(name, dataset, shape, seed=9)
        g = torch.zeros(fm.d, dtype=torch.float64)
        for engine in (["closed", "jvp"] if name == "logistic" else ["jvp"]):
            op = step_jacobian(Step(fm, w, X, y, 0.0, g, 1.0), engine)
            G = op.from_internal(op.per_sample_grads())
            for i in range(len(y)):
                ref = torch.autograd.functional.jacobian(
                    lambda v: data_loss(fm, v, X[i:i + 1], y[i:i + 1], 1), w)
                torch.testing.assert_close(G[i], ref, rtol=1e-10, atol=1e-12)


class _StridedNet(torch.nn.Module):
    """A chain with what the repository's models lack: strided, padded and dilated
    convolutions, overlapping padded pooling, a conv that is not followed by pooling."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.c2 = torch.nn.Conv2d(4, 3, 3, stride=2, padding=2, dilation=2, bias=False)
        self.pool = torch.nn.MaxPool2d(3, 2, padding=1)
        self.fc = torch.nn.Linear(3 * 4 * 4, 3)

    def layers(self):
        return [self.c1, torch.nn.ReLU(), self.c2, self.pool, torch.nn.ReLU(), torch.nn.Flatten(), self.fc]

    def forward(self, x):
        for layer in self.layers():
            x = layer(x)
        return x


def test_layered_engine_on_strided_padded_convolutions():
    torch.manual_seed(4)
    fm = FlatModel(_StridedNet().double())
    w = fm.initial_vector()
    X = torch.randn(3, 2, 16, 16, dtype=torch.float64)   # even size: the stride-2 adjoint pads
    y = torch.randint(0, 3, (3,))
    V = torch.randn(4, fm.d, dtype=torch.float64)
    g, ref = reference(fm, w, X, y, 0.1, 1e9, V)
    torch.testing.assert_close(step_jacobian(Step(fm, w, X, y, 0.1, g, 1e9), "layers").apply(V), ref,
                               rtol=1e-9, atol=1e-10)
