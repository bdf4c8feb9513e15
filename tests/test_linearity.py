"""Linearity diagnostic: w_T(1) is Retrain bit for bit, the first-order residual shrinks like
s^2 on a strongly convex model, and the command writes its table, JSON and PNG."""
import copy
import glob
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import ROOT, WINE
from utils.common.experiment import Experiment
from utils.training.functional import FlatModel
from utils.proposed.hf import recursion
from utils.proposed.hfconfig import UnlearnConfig
from utils.common.errors import InputError
from utils.evaluation.linearization import S_VALUES, diagnose, table_rows, weighted_train
from utils.common.options import parse_args

SMALL = WINE + ["--epochs", "3", "--num_dataset", "60", "--num_forget", "4"]
# strongly convex (lambda = 0.01), clipping never active (clip 1000), float64 below
CONVEX = ["--model", "logistic", "--dataset", "wine", "--num_dataset", "142", "--batch_size", "32",
          "--epochs", "3", "--lr", "0.2", "--lr_decay", "0.999", "--clip", "1000",
          "--regularization", "0.01", "--num_forget", "7", "--gpu", "-1", "--quiet"]


def linearity(*flags):
    """``python3 -m tools.linearity`` as a user runs it (from the repository root)."""
    return subprocess.run([sys.executable, "-m", "tools.linearity", *flags], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, HFU_OFFLINE="1"))


@pytest.mark.parametrize("norm", ["batch", "mean"])
def test_weight_one_minus_one_is_the_retrain_bit_for_bit(dirs, norm):
    exp = Experiment(parse_args(SMALL + dirs + ["--retrain_norm", norm]))
    w_one = weighted_train(exp.fm, exp.w0, exp.X, exp.y, exp.schedule, exp.sgd_config, exp.U, 1.0)
    if norm == "batch":
        assert torch.equal(w_one, exp.retrain(progress=False))
    else:   # the weighted loss keeps |B_t| as normaliser: it is not the mean-normalised retrain
        assert not torch.equal(w_one, exp.retrain(progress=False))
    w_zero = weighted_train(exp.fm, exp.w0, exp.X, exp.y, exp.schedule, exp.sgd_config, exp.U, 0.0)
    assert torch.equal(w_zero, exp.train_original(progress=False))


def test_residual_shrinks_like_s_squared_on_a_convex_model(dirs):
    """residual(s) = c2 s^2 + c3 s^3 + ...: a decade of s divides it by 100 (1 + 0.1 c3/c2) /
    (1 + 0.01 c3/c2); [80, 125] allows |c3/c2| up to about 2 (a wrong or missing a_u leaves a
    linear term: ratio ~10). In float64 the rounding (~1e-16 ||w||) is far below residual(0.01)."""
    exp = Experiment(parse_args(CONVEX + dirs))
    fm = FlatModel(copy.deepcopy(exp.fm.module).double())
    X, w0 = exp.X.double(), exp.w0.double()
    w_T, A, _ = recursion(fm, w0, X, exp.y, exp.schedule, exp.sgd_config, exp.U, UnlearnConfig("batch"), rho_iters=0)
    runs = [(s, weighted_train(fm, w0, X, exp.y, exp.schedule, exp.sgd_config, exp.U, s)) for s in S_VALUES]
    rows = {r["s"]: r for r in table_rows(w_T, runs, A.sum(0))}
    assert 80 < rows[0.1]["residual"] / rows[0.01]["residual"] < 125
    assert 80 < rows[0.3]["residual"] / rows[0.03]["residual"] < 125
    assert rows[0.01]["relative_residual"] < 0.01
    for s, w in runs:   # the table's numbers against a direct computation
        want = float(torch.sqrt(((w - w_T - s * A.sum(0)) ** 2).sum()))
        assert rows[s]["residual"] == pytest.approx(want, rel=1e-9)
        assert rows[s]["distance"] == pytest.approx(float(torch.sqrt(((w - w_T) ** 2).sum())), rel=1e-9)


def test_command_writes_table_json_and_png(dirs):
    proc = linearity(*SMALL, *dirs, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert [r["s"] for r in out["rows"]] == list(S_VALUES)
    assert out["retrain_max_abs_diff"] is None and out["approximators"] == "replay"   # no Retrain cached
    assert out["floor"] > 0 and out["floor"] < 1e-2 * out["rows"][-1]["distance"]
    assert out["rows"][-1]["distance"] > out["rows"][0]["distance"] > 0
    (png,) = glob.glob(str(dirs[3]) + "/linearity-*.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert glob.glob(str(dirs[3]) + "/linearity-*.txt") and glob.glob(str(dirs[1]) + "/**/Floor-*.pt", recursive=True)


def test_diagnostic_refuses_the_mean_normaliser(dirs):
    exp = Experiment(parse_args(SMALL + dirs + ["--retrain_norm", "mean"]))
    with pytest.raises(InputError, match="--retrain_norm"):
        diagnose(exp)
