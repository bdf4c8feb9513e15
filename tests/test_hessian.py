"""The exact Hessian module against torch.autograd.functional.hessian on small random models."""
import json

import pytest
import torch
from torch import nn

from helpers import WINE, run_script
from models import MLP, Logistic
from utils.training.functional import FlatModel, per_sample_ce
from utils.curvature import hessian
from utils.curvature.hessian import chunk_sizes, gradient_sum, hessian_sum


class TinyCNN(nn.Module):
    """Conv -> max-pool -> ReLU -> Dropout -> Linear on 1x6x6 inputs (d = 2*9+2 + 8*3+3 = 47)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(nn.functional.max_pool2d(self.conv(x), 2))).flatten(1))

    def layers(self):
        return [self.conv, nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), self.fc]


CASES = {"logistic": (lambda: Logistic(6, 3), (6,)),
         "mlp": (lambda: MLP(5, 3, hidden=4), (5,)),
         "cnn": (TinyCNN, (1, 6, 6))}


def problem(name, n, seed):
    torch.manual_seed(seed)
    make, shape = CASES[name]
    fm = FlatModel(make().double())
    w = torch.randn(fm.d, dtype=torch.float64)
    X = torch.randn(n, *shape, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    return fm, w, X, y


def reference(fm, w, X, y, lam):
    """hess of sum_i [CE_i + (lam/2)||w||^2] by plain autograd."""
    return torch.autograd.functional.hessian(
        lambda v: per_sample_ce(fm, v, X, y).sum() + len(y) * lam / 2 * v.dot(v), w)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("engine", ["jvp", "layers"])
def test_generic_matches_autograd(name, engine, monkeypatch):
    fm, w, X, y = problem(name, 9, seed=sum(map(ord, name)))
    lam = 0.37
    # several column chunks (of uneven size) and several sample chunks
    monkeypatch.setattr(hessian, "chunk_sizes", lambda d, n, *_: (d // 3 + 1, 4))
    H = hessian_sum(fm, w, X, y, lam, engine=engine)
    ref = reference(fm, w, X, y, lam)
    assert H.shape == (fm.d, fm.d)
    torch.testing.assert_close(H, ref, rtol=1e-10, atol=1e-10)
    if name != "logistic":  # the non-convex models really exercise an indefinite Hessian
        assert torch.linalg.eigvalsh(ref)[0] < 0


@pytest.mark.parametrize("budget_mb, regime", [(0.01, "below one call"), (1.0, "one column"),
                                               (1024.0, "many columns")])
def test_chunk_sizes_respect_budget(budget_mb, regime):
    """The working set 4 d k + 8 k b act (in 4-byte elements) fits the budget whenever the
    smallest call (k = b = 1) does, and b takes what k leaves; else one column, one sample."""
    d, n, act = 5000, 1000, 300
    work = lambda k, b: (4 * d * k + 8 * k * b * act) * 4
    budget = budget_mb * 2 ** 20
    k, b = chunk_sizes(d, n, act, 4, budget_mb)
    assert 1 <= k <= d and 1 <= b <= n
    if work(1, 1) > budget:
        assert (k, b) == (1, 1)
    else:
        assert work(k, b) <= budget
        assert b == n or work(k, b + 1) > budget
    assert regime == ("below one call" if work(1, 1) > budget else "one column" if k == 1 else "many columns")


@pytest.mark.parametrize("budget", [0.001, 100.0])
def test_logistic_closed_form_matches_generic_and_autograd(budget):
    fm, w, X, y = problem("logistic", 23, seed=5)
    H_closed = hessian_sum(fm, w, X, y, 0.1, mem_budget_mb=budget, engine="closed")
    H_generic = hessian_sum(fm, w, X, y, 0.1, engine="jvp")
    torch.testing.assert_close(H_closed, H_generic, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(H_closed, reference(fm, w, X, y, 0.1), rtol=1e-10, atol=1e-10)
    assert torch.equal(hessian_sum(fm, w, X, y, 0.1, mem_budget_mb=budget), H_closed)  # 'auto' picks the closed form


def test_gradient_sum_and_empty_set():
    fm, w, X, y = problem("mlp", 7, seed=3)
    lam = 0.2
    v = w.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(per_sample_ce(fm, v, X, y).sum() + len(y) * lam / 2 * v.dot(v), v)
    torch.testing.assert_close(gradient_sum(fm, w, X, y, lam), ref)
    assert torch.count_nonzero(gradient_sum(fm, w, X[:0], y[:0], lam)) == 0
    assert torch.count_nonzero(hessian_sum(fm, w, X[:0], y[:0], lam)) == 0


def test_bench_naive_reference_agrees(dirs):
    flags = WINE + ["--model", "logistic", "--epochs", "2", "--num_dataset", "30",
                                 "--num_forget", "2", "--naive_samples", "3", "--json"]
    out = json.loads(run_script("bench/bench_hessian.py", *flags, *dirs).stdout)
    assert out["d"] == 42 and [r["method"] for r in out["rows"]] == ["ours (closed)", "ours (jvp)", "naive per-sample"]
    assert out["max_abs_diff_vs_naive"] < 1e-4 and out["ratio"] > 0
