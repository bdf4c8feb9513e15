"""Non-finite or diverged results stop the run with one line; nothing non-finite is saved."""
import glob
import math
import re

import pytest
import torch

from helpers import WINE, run_script
from utils.baselines import newton
from utils.baselines.firstorder import NegGradConfig, neggrad
from utils.common.errors import InputError
from utils.common.experiment import Experiment
from utils.training.finite import distance, require_finite
from utils.proposed.hf import check_divergence
from utils.common.options import parse_args
from utils.common.report import fmt, table
from utils.training.train import SGDConfig, sgd

FLAGS = WINE + ["--epochs", "2", "--num_dataset", "40", "--num_forget", "3"]
# MNIST logistic whose Hessian-free recursion leaves the reachable ball at step 37 of 40
DIVERGING = ["--model", "logistic", "--dataset", "mnist", "--num_dataset", "100", "--epochs", "4",
             "--batch_size", "10", "--lr", "1.0", "--lr_decay", "1", "--clip", "5", "--regularization",
             "0.5", "--num_forget", "2", "--hf_candidates", "forget", "--gpu", "-1", "--quiet"]


def one_error_line(proc):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0])
    return errors[0]


def test_require_finite():
    t = torch.randn(5, generator=torch.Generator().manual_seed(3))
    assert require_finite(t, "x", "h") is t and require_finite(2.5, "x", "h") == 2.5
    for bad in (float("nan"), float("inf"), -float("inf")):
        u = t.clone()
        u[2] = bad
        with pytest.raises(InputError, match=r"the thing is not finite \(1 of 5 entries.*: lower --lr"):
            require_finite(u, "the thing", "lower --lr")
        with pytest.raises(InputError, match="lower --lr"):
            require_finite(bad, "the thing", "lower --lr")


def test_reach_bound_against_a_sum_and_two_sgd_runs():
    for lr, decay, c, T in [(0.05, 0.995, 5.0, 480), (0.3, 1.0, 2.0, 17), (1.0, 0.9, 0.5, 1)]:
        assert SGDConfig(lr, decay, c, 0.0).reach_bound(T) == pytest.approx(2 * c * sum(lr * decay ** t for t in range(T)))
    # the bound holds for an original and a retrain with large steps (tight clipping)
    a = parse_args(FLAGS + ["--lr", "0.5", "--clip", "0.5", "--lr_decay", "0.99"])
    exp = Experiment(a)
    w_T = exp.train_original()
    w_re = exp.retrain()
    gap = float((w_T - w_re).norm())
    assert 0 < gap <= exp.sgd_config.reach_bound(len(exp.schedule))


def test_check_divergence_bounds_every_row():
    A = torch.randn(4, 30, generator=torch.Generator().manual_seed(7))
    largest = float(A.norm(dim=1).max())
    check_divergence(A, 3, 10, largest * 1.001, None)
    with pytest.raises(InputError, match=r"diverged at step 4 of 10 .*: lower --lr$"):
        check_divergence(A, 3, 10, largest * 0.999, None)
    A[1, 5] = float("nan")
    with pytest.raises(InputError, match=r"max \|\|a_u\|\| = nan"):
        check_divergence(A, 0, 10, 1e30, None)


def test_diverging_recursion_stops_keeping_the_original(tmp_path):
    dirs = ["--log_dir", str(tmp_path / "log"), "--results_dir", str(tmp_path / "res")]
    line = one_error_line(run_script("main_proposed.py", *DIVERGING, *dirs, check=False))
    assert "the Hessian-free recursion diverged at step" in line and "of 40" in line
    assert "measured rho" in line and line.endswith("lower --lr")
    assert len(glob.glob(str(tmp_path / "log" / "*" / "original.pt"))) == 1
    assert not glob.glob(str(tmp_path / "log" / "**" / "shard-*"), recursive=True)
    assert not glob.glob(str(tmp_path / "log" / "**" / "Proposed*"), recursive=True)


def test_training_that_overflows_stops_and_saves_nothing(tmp_path):
    dirs = ["--log_dir", str(tmp_path / "log"), "--results_dir", str(tmp_path / "res")]
    proc = run_script("main_retrain.py", *FLAGS, *dirs, "--lr", "1e30", "--clip", "1e30", check=False)
    line = one_error_line(proc)
    assert re.match(r"error: train original: the gradient went non-finite at step \d+ of \d+ ", line)
    assert line.endswith("lower --lr or --clip")
    assert not glob.glob(str(tmp_path / "log" / "**" / "*.pt"), recursive=True)


def test_sgd_names_the_step():
    exp = Experiment(parse_args(FLAGS))
    w0 = exp.w0.clone()
    w0[0] = float("inf")
    with pytest.raises(InputError, match=f"retrain: the gradient went non-finite at step 1 of {len(exp.schedule)}"):
        sgd(exp.fm, w0, exp.X, exp.y, exp.schedule, SGDConfig(0.1, 1.0, 1.0, 0.0), desc="retrain")


def test_neggrad_and_newton_results_are_checked(tmp_path, monkeypatch):
    exp = Experiment(parse_args(FLAGS + ["--log_dir", str(tmp_path), "--neggrad_lr_scale", "1e300"]))
    w = exp.train_original()
    with pytest.raises(InputError, match="NegGrad's ascent at step 1 of .*--neggrad_lr_scale"):
        neggrad(exp.fm, w, exp.X, exp.y, exp.U, NegGradConfig.from_args(exp.args))
    w_bad = w.clone()
    w_bad[3] = float("nan")
    with pytest.raises(InputError, match="the NU model is not finite"):
        exp.save_method("NU", w_bad, {})
    assert not glob.glob(str(tmp_path / "**" / "NU-*"), recursive=True)
    # a singular (zero) Cholesky factor: the IJ step divides by zero and is refused
    factor = {"L": torch.zeros(exp.fm.d, exp.fm.d, dtype=torch.float64)}
    monkeypatch.setattr(newton, "ij_precompute", lambda exp, w_T: (factor, 0.0, True))
    with pytest.raises(InputError, match="jackknife step's result is not finite.*--damping_factor"):
        newton.unlearn_ij(exp, w)


def test_distance_in_float64_and_checked():
    a = torch.full((10,), 3e30)                       # its float32 square overflows
    assert distance(a, torch.zeros(10), "d", "h") == pytest.approx(3e30 * math.sqrt(10), rel=1e-6)
    with pytest.raises(InputError, match="d is not finite"):
        distance(a * 1e9, torch.zeros(10), "d", "h")


def test_tables_print_non_finite_literally():
    assert fmt(None) == "-" and fmt(float("nan")) == "nan" and fmt(float("inf")) == "inf"
    assert fmt(-float("inf")) == "-inf" and fmt(0.5) == "0.5000"
    text = table([{"m": "A", "x": float("nan"), "y": None}], ["m", "x", "y"])
    assert text.splitlines()[-1].split() == ["A", "nan", "-"]
