"""The order-2 recursion (--hf_order 2): q_u = (1/2) d^2 w_T / ds_u^2 against second finite
differences of retrains, the set term along 1_U, the dense reference, the engines' products
against autograd, bank against replay, and the flag's keys and refusals."""
import json
import os

import pytest
import torch

from helpers import WINE, run_script
from test_hf import tiny
from utils.common.experiment import Experiment
from utils.common.options import parse_args
from utils.curvature.hvp import Step, step_jacobian
from utils.curvature.third import second_order_products
from utils.proposed.hf import bank_dir, precompute_bank, recursion
from utils.proposed.hfconfig import HFConfig, UnlearnConfig
from utils.proposed.reference import dense_second_order
from utils.proposed.replay import Replay
from utils.training.functional import FlatModel, data_loss
from utils.training.train import SGDConfig, clip_by_norm, make_schedule

ORDER2 = HFConfig(order=2)


class SmallCNN(torch.nn.Module):
    """Conv(1,3,3)-MaxPool2-ReLU-Conv(3,4,3)-MaxPool2-ReLU-FC(4,3) on 1 x 12 x 12 inputs: the
    cnn's layer types (its ``layers()`` chain runs the layered engine) at d = 157."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = torch.nn.Conv2d(1, 3, 3), torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 3)

    def layers(self):
        return [self.c1, torch.nn.MaxPool2d(2), torch.nn.ReLU(), self.c2, torch.nn.MaxPool2d(2), torch.nn.ReLU(),
                torch.nn.Flatten(), self.fc]

    def forward(self, x):
        for layer in self.layers():
            x = layer(x)
        return x


def small_cnn(n, seed):
    torch.manual_seed(seed)
    fm = FlatModel(SmallCNN().double())
    return fm, fm.initial_vector(), torch.randn(n, 1, 12, 12, dtype=torch.float64), torch.randint(0, 3, (n,))


def path_weights(batch, members, s, norm):
    """Per-sample weights of the batch loss sum_i v_i CE_i on the path of docs/method.md
    ('Second order', line 1) at weight s on ``members``: 'batch' v_i = (1 - s [i in members])/b;
    'mean' the chord D_B + s sum_{u in B cap members} (D_{B minus u} - D_B)."""
    b = len(batch)
    inside = torch.tensor([int(i) in members for i in batch], dtype=torch.float64)
    if norm == "batch" or b == 1:
        return (1.0 - s * inside) / b
    k = float(inside.sum())
    return 1.0 / b + s * k / (b * (b - 1)) - s * inside / (b - 1)


def path_sgd(fm, w0, X, y, schedule, cfg, members, s, norm):
    """w_T at weight s on ``members`` along that path (plain autograd)."""
    w = w0.clone()
    for t, b in enumerate(schedule):
        v = w.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(data_loss(fm, v, X[b], y[b], 1, path_weights(b, members, s, norm)), v)
        w = w - cfg.step_size(t) * clip_by_norm(g + cfg.lam * w, cfg.clip)
    return w


def clips_somewhere(fm, w0, X, y, schedule, cfg):
    """Whether clipping is active at some step of training."""
    w, active = w0.clone(), False
    for t, b in enumerate(schedule):
        v = w.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(data_loss(fm, v, X[b], y[b], len(b)), v)
        g = g + cfg.lam * w
        active |= bool(g.norm() > cfg.clip)
        w = w - cfg.step_size(t) * clip_by_norm(g, cfg.clip)
    return active


def second_difference(fm, w0, X, y, schedule, cfg, members, norm, h):
    plus, zero, minus = (path_sgd(fm, w0, X, y, schedule, cfg, members, s, norm) for s in (h, 0.0, -h))
    return (plus - minus) / (2 * h), (plus - 2 * zero + minus) / (2 * h * h)


@pytest.mark.parametrize("name,dataset,shape,clip,norm,seed", [
    ("logistic", "wine", (13,), 100.0, "batch", 10008), ("logistic", "wine", (13,), 0.3, "mean", 38),
    ("mlp", "wine", (13,), 100.0, "mean", 10003), ("mlp", "wine", (13,), 0.3, "batch", 33),
    ("smallcnn", None, (1, 12, 12), 1e4, "batch", 1), ("smallcnn", None, (1, 12, 12), 0.2, "mean", 2)])
def test_q_is_half_the_second_derivative(name, dataset, shape, clip, norm, seed):
    """Rows q_u (two samples) and the set term q_U (three samples, two in one batch) against
    (w_T(h e) - 2 w_T(0) + w_T(-h e)) / (2 h^2) along e = e_u and e = 1_U. (ReLU and max-pooling
    are piecewise smooth: on the networks the seeds are ones whose differences cross no kink.)"""
    n = 8
    fm, w0, X, y = tiny(name, dataset, shape, n, seed=seed) if dataset else small_cnn(n, seed)
    schedule = make_schedule(n, 4, 2, seed=3)
    cfg = SGDConfig(0.5, 0.99, clip, 0.01)
    assert clips_somewhere(fm, w0, X, y, schedule, cfg) == (clip < 1)
    method = UnlearnConfig(norm, hf=ORDER2)
    rows = torch.tensor([0, n - 1])
    _, A, _, Q = recursion(fm, w0, X, y, schedule, cfg, rows, method, rho_iters=0)
    U = torch.tensor([1, 2, 5])
    assert max(int(torch.isin(b, U).sum()) for b in schedule) >= 2
    _, AU, _, QU = recursion(fm, w0, X, y, schedule, cfg, U, method, rho_iters=0, summed=True)
    h = 1e-3
    for members, a, q in [([0], A[0], Q[0]), ([n - 1], A[1], Q[1]), (U.tolist(), AU[0], QU[0])]:
        fd1, fd2 = second_difference(fm, w0, X, y, schedule, cfg, members, norm, h)
        assert fd2.norm() > 1e-4 * fd1.norm() and fd2.norm() > 1e-6
        torch.testing.assert_close(a, fd1, rtol=1e-4, atol=1e-5 * float(fd1.norm()))
        torch.testing.assert_close(q, fd2, rtol=1e-4, atol=1e-4 * float(fd2.norm()))


def test_engines_equal_the_dense_reference():
    """Closed form, layered and torch.func engines against explicit Hessians, third
    derivatives and clipping derivatives: rows and the summed set term, both normalisations,
    clipping on and off (a reduced grid; the engines agree to rounding)."""
    n, lam, lr, decay = 9, 0.02, 0.8, 0.98
    fm, w0, X, y = tiny("logistic", "wine", (13,), n, seed=4)
    schedule = make_schedule(n, 4, 2, seed=2)
    rows = torch.tensor([1, 4, 8])
    for norm, clip, engines in [("batch", 100.0, ("closed", "layers")), ("mean", 0.4, ("closed", "vjp"))]:
        cfg = SGDConfig(lr, decay, clip, lam)
        for summed in (False, True):
            directions = [rows.tolist()] if summed else [[u] for u in rows.tolist()]
            w, Ar, Qr = dense_second_order(fm, w0, X, y, schedule, cfg, directions, UnlearnConfig(norm))
            assert Qr.norm() > 1e-3
            for engine in engines:
                w_T, A, _, Q = recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig(norm, hf=ORDER2), engine,
                                         rho_iters=0, summed=summed)
                torch.testing.assert_close(w_T, w)
                torch.testing.assert_close(A, Ar, rtol=1e-8, atol=1e-12)
                torch.testing.assert_close(Q, Qr, rtol=1e-8, atol=1e-12)


def test_order_one_rows_are_unchanged_by_order_two():
    """The a_u an order-2 run carries are the order-1 recursion's (which stays untouched)."""
    fm, w0, X, y = tiny("mlp", "wine", (13,), 8, seed=2)
    schedule = make_schedule(8, 4, 2, seed=1)
    cfg = SGDConfig(0.5, 0.99, 0.3, 0.01)
    rows = torch.tensor([0, 3, 6])
    w1, A1, _ = recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig("mean"), rho_iters=0)
    w2, A2, _, Q = recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig("mean", hf=ORDER2), rho_iters=0)
    torch.testing.assert_close(w2, w1, rtol=0, atol=0)
    torch.testing.assert_close(A2, A1, rtol=1e-10, atol=1e-14)
    assert Q.norm() > 1e-4


@pytest.mark.parametrize("name,dataset,shape,engine", [
    ("logistic", "wine", (13,), "closed"), ("mlp", "wine", (13,), "layers"), ("cnn", "mnist", (1, 28, 28), "vjp")])
def test_third_derivative_and_sample_products_against_autograd(name, dataset, shape, engine):
    fm, w, X, y = tiny(name, dataset, shape, 5, seed=9)
    w = w + 0.1 * torch.randn_like(w)
    g = torch.randn(fm.d, dtype=torch.float64)
    step = Step(fm, w, X, y, 0.1, g, 0.5)
    op = step_jacobian(step, engine)
    products = second_order_products(step, op, engine)
    V = torch.randn(3, fm.d, dtype=torch.float64)
    third = op.from_internal(products.third(op.to_internal(V)))
    pos = torch.tensor([0, 3, 3])
    sample = op.from_internal(products.sample_hvp(pos, op.to_internal(V)))
    for k, v in enumerate(V):
        L = lambda u: data_loss(fm, u, X, y, len(y))
        hv = lambda u: torch.autograd.grad(torch.autograd.grad(L(u), u, create_graph=True)[0] @ v, u,
                                           create_graph=True)[0]
        u = w.detach().requires_grad_(True)
        expect = torch.autograd.grad(hv(u) @ v, u)[0]                    # d/dw (v^T H(w) v) = D^3 L[v, v]
        torch.testing.assert_close(third[k], expect, rtol=1e-8, atol=1e-10)
        i = int(pos[k])
        Li = lambda u: data_loss(fm, u, X[i:i + 1], y[i:i + 1], 1)
        u = w.detach().requires_grad_(True)
        expect = torch.autograd.grad(torch.autograd.grad(Li(u), u, create_graph=True)[0] @ v, u)[0]
        torch.testing.assert_close(sample[k], expect, rtol=1e-8, atol=1e-10)


SMALL = WINE + ["--epochs", "2", "--num_dataset", "40"]


def test_bank_equals_replay_for_one_sample_and_keys(tmp_path):
    args = parse_args(SMALL + ["--num_forget", "1", "--hf_order", "2", "--hf_candidates", "forget",
                               "--log_dir", str(tmp_path)])
    exp = Experiment(args)
    w_T, _ = exp.original()
    bank, _ = precompute_bank(exp, w_T)
    assert bank.manifest["order"] == 2
    assert bank.storage_bytes == 2 * exp.fm.d * 4                         # a_u and q_u, float32
    from_bank = bank.gather(exp.U)[0][0]
    replay = Replay(exp, w_T)
    torch.testing.assert_close(replay.vectors(exp.U)[0], from_bank, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(replay.unlearn_batch(w_T, exp.U)[0], w_T + from_bank, rtol=1e-6, atol=1e-7)
    first = Experiment(parse_args(SMALL + ["--num_forget", "1", "--hf_candidates", "forget", "--log_dir", str(tmp_path)]))
    assert bank_dir(first, exp.U.tolist()) != bank_dir(exp, exp.U.tolist())
    assert first.method_paths("Proposed") != exp.method_paths("Proposed")
    assert first.method_paths("Proposed_noise") != exp.method_paths("Proposed_noise")
    assert first.method_paths("Retrain") == exp.method_paths("Retrain")
    assert HFConfig.from_flags(vars(args)) == ORDER2 and not ORDER2.is_paper and ORDER2.row_name == "Proposed[order2]"


@pytest.mark.parametrize("extra, words", [
    (["--hf_order", "3"], "--hf_order: must be 1"),
    (["--hf_order", "2", "--hf_variant", "authors"], "derived for the paper's recursion only"),
    (["--hf_order", "2", "--hf_curvature", "ggn"], "derived for the paper's recursion only"),
    (["--hf_order", "2", "--hf_damping", "0.1"], "derived for the paper's recursion only")])
def test_bad_orders_are_refused_before_work(extra, words, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(SMALL + extra)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0]


def test_order_two_release_and_refusals_as_a_user_meets_them(tmp_path):
    """One main_proposed.py run: the release records certificate_applies false; U-LiRA
    refuses order 2 in one line."""
    flags = SMALL + ["--num_forget", "2", "--hf_order", "2", "--hf_mode", "replay", "--batch_unlearn",
                     "--application", "--log_dir", str(tmp_path / "l"), "--results_dir", str(tmp_path / "r"), "--json"]
    out = json.loads(run_script("main_proposed.py", *flags).stdout)
    assert out["Proposed_noise"]["certificate_applies"] is False
    assert out["Proposed"]["hf_order"] == 2 and out["Proposed"]["hf_label"] == "order2"
    proc = run_script("main_ULIRA.py", *SMALL, "--hf_order", "2", "--n_shadows", "6", "--log_dir", str(tmp_path / "l"),
                      check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --hf_order 2")
    assert not os.path.exists(os.path.join(tmp_path, "r", "ULIRA"))
