"""Training and exact retraining against independent references."""
import copy
import json
import os

import pytest
import torch

from helpers import WINE, hand_loop, run_script
from utils.common.experiment import Experiment
from utils.common.options import parse_args
from utils.training.train import sgd


def experiment(dirs, *extra):
    return Experiment(parse_args(WINE + list(dirs) + list(extra)))


def test_same_seed_bit_identical(dirs):
    w1 = experiment(dirs).train_original(progress=False)
    w2 = experiment(dirs).train_original(progress=False)
    w3 = experiment(dirs, "--seed", "5").train_original(progress=False)
    assert torch.equal(w1, w2)
    assert not torch.allclose(w1, w3)


def test_empty_forget_set_reproduces_original(dirs):
    for norm in ["batch", "mean"]:
        exp = experiment(dirs, "--retrain_norm", norm)
        exp.keep[:] = True                       # U emptied (--num_forget 0 is refused)
        assert torch.equal(exp.retrain(progress=False), exp.train_original(progress=False))


@pytest.mark.parametrize("norm", ["batch", "mean"])
def test_retrain_matches_hand_written_loop(dirs, norm):
    exp = experiment(dirs, "--retrain_norm", norm, "--num_forget", "20")
    w = exp.retrain(progress=False)
    ref = hand_loop(exp, exp.keep.tolist(), norm)
    assert torch.allclose(w, ref, atol=1e-5, rtol=1e-4)


def test_batch_and_mean_variants_differ(dirs):
    wb = experiment(dirs, "--retrain_norm", "batch", "--num_forget", "20").retrain(progress=False)
    wm = experiment(dirs, "--retrain_norm", "mean", "--num_forget", "20").retrain(progress=False)
    assert (wb - wm).norm() > 1e-4 * wb.norm()


def test_retrain_never_reads_forgotten_samples(dirs):
    exp = experiment(dirs, "--retrain_norm", "mean", "--num_forget", "20")
    rest = exp.keep.nonzero().squeeze(1)
    clean_subset = exp.X[rest].clone()
    exp.X[exp.U] = float("nan")
    w = exp.retrain(progress=False)
    assert torch.isfinite(w).all()
    # the same SGD on the remaining samples alone, batches re-indexed into the subset
    position = torch.full((exp.n,), -1, dtype=torch.long)
    position[rest] = torch.arange(len(rest))
    schedule = [position[b[exp.keep[b]]] for b in exp.schedule]
    w_subset = sgd(exp.fm, exp.w0, clean_subset, exp.y[rest], schedule, exp.sgd_config)
    assert torch.equal(w, w_subset)


@pytest.mark.parametrize("norm", ["batch", "mean"])
def test_emptied_batch_gives_no_nan(dirs, norm):
    probe = experiment(dirs, "--batch_size", "4")
    first = ",".join(str(int(i)) for i in probe.schedule[0])
    exp = experiment(dirs, "--batch_size", "4", "--forget_indices", first, "--retrain_norm", norm)
    w = exp.retrain(progress=False)
    assert torch.isfinite(w).all()
    assert torch.allclose(w, hand_loop(exp, exp.keep.tolist(), norm), atol=1e-5, rtol=1e-4)


def test_original_is_cached_and_keyed(dirs):
    exp = experiment(dirs)
    w, seconds = exp.original()
    assert seconds > 0
    w_again, seconds_again = experiment(dirs).original()
    assert seconds_again == 0 and torch.equal(w, w_again)
    assert experiment(dirs, "--lr", "0.02").train_dir != exp.train_dir
    assert experiment(dirs, "--num_forget", "3").train_dir == exp.train_dir
    with open(exp.train_dir + "/manifest.json") as f:
        assert json.load(f)["config"]["lr"] == 0.01


def test_main_retrain_json(dirs):
    """The saved Retrain model is the independent hand-written loop on D \\ U, and the printed
    Original distance and Retrain test accuracy are those of that reference."""
    out = json.loads(run_script("main_retrain.py", *WINE, *dirs, "--json").stdout)
    exp = experiment(dirs)
    ref = hand_loop(exp, exp.keep.tolist(), "batch")           # --retrain_norm defaults to batch
    w = torch.load(out["Retrain"]["model"], weights_only=True)["w"]
    assert torch.allclose(w, ref, atol=1e-5, rtol=1e-4)
    w_T = torch.load(os.path.join(exp.train_dir, "original.pt"), weights_only=True)["w"]
    assert out["Original"]["distance"] == pytest.approx(float((w_T - ref).norm()), rel=1e-3)
    assert out["Original"]["distance"] > 1e-3
    assert out["Retrain"]["distance"] == 0.0
    with torch.no_grad():
        module = copy.deepcopy(exp.fm.module)
        torch.nn.utils.vector_to_parameters(ref, module.parameters())
        acc = float((module(exp.X_test).argmax(1) == exp.y_test).float().mean())
    assert out["Retrain"]["test_acc"] == pytest.approx(acc, abs=1.5 / len(exp.y_test))
