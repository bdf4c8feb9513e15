"""The approximator recursion: dense reference, exact derivative, and unlearning quality."""
import pytest
import torch

from helpers import WINE
from models import build_model
from utils.common.experiment import Experiment
from utils.training.functional import FlatModel, data_loss
from utils.proposed.bank import Bank
from utils.proposed.hf import injection, recursion
from utils.proposed.hfconfig import UnlearnConfig
from utils.common.options import parse_args
from utils.proposed.reference import dense_recursion
from utils.training.train import SGDConfig, clip_by_norm, make_schedule


def tiny(name, dataset, shape, n, seed):
    torch.manual_seed(seed)
    fm = FlatModel(build_model(name, dataset).double())
    X = torch.randn(n, *shape, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    return fm, fm.initial_vector(), X, y


def weighted_sgd(fm, w0, X, y, schedule, lr, decay, clip, lam, u, s):
    """Training with sample u's weight (1 - s) in every batch loss (normaliser |B_t|)."""
    w = w0.clone()
    for t, b in enumerate(schedule):
        weights = torch.ones(len(b), dtype=w.dtype)
        weights[b == u] = 1.0 - s
        v = w.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(data_loss(fm, v, X[b], y[b], len(b), weights), v)
        w = w - lr * decay ** t * clip_by_norm(g + lam * w, clip)
    return w


@pytest.mark.parametrize("name,dataset,shape,clip", [
    ("logistic", "wine", (13,), 100.0), ("logistic", "wine", (13,), 0.3),
    ("mlp", "wine", (13,), 100.0), ("mlp", "wine", (13,), 0.3),
    ("cnn", "mnist", (1, 28, 28), 100.0)])
def test_approximator_is_the_derivative(name, dataset, shape, clip):
    n = 10 if name != "cnn" else 6
    fm, w0, X, y = tiny(name, dataset, shape, n, seed=len(name) + int(clip))
    schedule = make_schedule(n, 4, 3, seed=1)
    lr, decay, lam = 0.5, 0.99, 0.01
    rows = torch.arange(n)
    w_T, A, rho_t = recursion(fm, w0, X, y, schedule, SGDConfig(lr, decay, clip, lam), rows)
    assert len(rho_t) == len(schedule)
    h = 1e-5
    for u in (0, n - 1):
        plus = weighted_sgd(fm, w0, X, y, schedule, lr, decay, clip, lam, u, h)
        minus = weighted_sgd(fm, w0, X, y, schedule, lr, decay, clip, lam, u, -h)
        fd = (plus - minus) / (2 * h)
        assert fd.norm() > 1e-3
        torch.testing.assert_close(A[u], fd, rtol=1e-5, atol=1e-7 * float(fd.norm()))


def test_recursion_equals_dense_matrices():
    """Explicit d x d Hessians and clipping Jacobians; both normalisations."""
    n, lam, lr, decay = 9, 0.02, 0.8, 0.98
    fm, w0, X, y = tiny("logistic", "wine", (13,), n, seed=4)
    schedule = make_schedule(n, 4, 3, seed=2)
    for norm in ("batch", "mean"):
        for clip in (100.0, 0.4):
            rows = torch.tensor([1, 4, 8])
            w, ref = dense_recursion(fm, w0, X, y, schedule, SGDConfig(lr, decay, clip, lam), rows, UnlearnConfig(norm))
            for engine in ("closed", "layers", "vjp"):
                w_T, A, _ = recursion(fm, w0, X, y, schedule, SGDConfig(lr, decay, clip, lam), rows, UnlearnConfig(norm), engine,
                                      rho_iters=0)
                torch.testing.assert_close(w_T, w)
                torch.testing.assert_close(A, ref, rtol=1e-8, atol=1e-12)


def test_summed_recursion_is_the_sum_of_the_rows():
    """summed=True (batch replay) against the dense reference's rows added up, with several
    rows of the set in one batch, both normalisations, clipping on and off."""
    n, lam, lr, decay = 12, 0.01, 0.6, 0.97
    fm, w0, X, y = tiny("mlp", "wine", (13,), n, seed=11)
    schedule = make_schedule(n, 6, 3, seed=5)
    rows = torch.tensor([0, 3, 5, 6, 10])
    assert max(int(torch.isin(b, rows).sum()) for b in schedule) >= 2
    for norm in ("batch", "mean"):
        for clip in (100.0, 0.3):
            cfg = SGDConfig(lr, decay, clip, lam)
            _, ref = dense_recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig(norm))
            w_T, S, _ = recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig(norm), rho_iters=0, summed=True)
            assert S.shape == (1, fm.d)
            assert ref.sum(0).norm() > 1e-3
            torch.testing.assert_close(S[0], ref.sum(0), rtol=1e-8, atol=1e-12)


def test_injection_mean_variant():
    G = torch.randn(5, 7, dtype=torch.float64)
    out = injection(G, "mean")
    for u in range(5):
        others = torch.cat([G[:u], G[u + 1:]]).mean(0)
        torch.testing.assert_close(out[u], (G[u] - others) / 5)
    torch.testing.assert_close(injection(G[:1], "mean"), G[:1])


def test_online_equals_batch():
    A = torch.randn(20, 50)
    bank = Bank(A, torch.arange(100, 120), torch.ones(3), {})
    w = torch.randn(50)
    U = torch.tensor([103, 117, 110])
    online, times = bank.unlearn_online(w, U)
    batch, _ = bank.unlearn_batch(w, U)
    assert len(times) == 3
    torch.testing.assert_close(online, batch)
    torch.testing.assert_close(online, w + A[3] + A[17] + A[10])


def distances(flags, norm="batch"):
    exp = Experiment(parse_args(flags + ["--retrain_norm", norm]))
    w_T, A, _ = recursion(exp.fm, exp.w0, exp.X, exp.y, exp.schedule, exp.sgd_config, exp.U, UnlearnConfig(norm), rho_iters=0)
    w_unl = w_T + A.sum(0)
    w_re = exp.retrain(progress=False)
    return float((w_unl - w_re).norm()), float((w_T - w_re).norm())


@pytest.mark.parametrize("norm", ["batch", pytest.param("mean", marks=pytest.mark.slow)])
def test_wine_unlearning_close_to_retrain(norm, tmp_path):
    ours, original = distances(WINE + ["--log_dir", str(tmp_path)], norm)
    assert ours < 0.1 * original, (ours, original)


def test_mnist_unlearning_close_to_retrain(tmp_path):
    """The paper's MNIST logistic setting (offline subset), approximators for U only."""
    flags = ["--model", "logistic", "--dataset", "mnist", "--epochs", "15", "--batch_size", "32",
             "--lr", "0.05", "--lr_decay", "0.995", "--clip", "5", "--regularization", "0.5",
             "--num_dataset", "1000", "--num_forget", "10", "--gpu", "-1", "--quiet",
             "--log_dir", str(tmp_path)]
    ours, original = distances(flags)
    assert ours < 0.15 * original, (ours, original)
