"""Noise floor of the distance: the perturbation, the weighted batch loss, the three floor
kinds, caching through main_eva.py, the table rule and the aggregate / figure columns."""
import copy
import glob
import json

import pytest
import torch

from helpers import run_script
from utils.evaluation.compare import _label, setting_of, aggregate_csv, aggregate_markdown, text_table
from utils.common.experiment import Experiment
from utils.common.errors import InputError
from utils.evaluation.floor import KINDS, WITHIN, annotate, ensure_floor, floor_model, perturbed_w0
from utils.training.functional import FlatModel
from utils.common.options import parse_args
from tools.sweep_figures import floor_curve
from utils.training.train import DataTerm, batch_gradient, sgd

# strongly convex: L2-regularised multinomial logistic regression on Wine
LOGISTIC = ["--model", "logistic", "--dataset", "wine", "--num_dataset", "80", "--batch_size", "16",
            "--epochs", "4", "--lr", "0.1", "--lr_decay", "0.999", "--clip", "100",
            "--regularization", "0.01", "--num_forget", "5", "--gpu", "-1", "--quiet"]


def experiment(dirs, flags=LOGISTIC, *extra):
    return Experiment(parse_args(list(flags) + list(dirs) + list(extra)))


def test_perturbation_is_relative_seeded_and_small():
    w0 = torch.randn(5000, generator=torch.Generator().manual_seed(11))
    xi = torch.randn(5000, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    got = perturbed_w0(w0, 4)
    want = w0.double() * (1 + 1e-7 * xi)
    ulp = torch.finfo(torch.float32).eps * w0.double().abs()
    assert ((got.double() - want).abs() <= ulp).all()        # one rounding of the exact value
    assert (got != w0).float().mean() > 0.5                  # most entries actually move
    assert torch.equal(got, perturbed_w0(w0, 4)) and not torch.equal(got, perturbed_w0(w0, 5))
    rel = ((got.double() - w0.double()) / w0.double()).abs().max()
    assert 1e-8 < rel < 1e-6


def test_weighted_batch_gradient_matches_per_sample_loop(dirs):
    exp = experiment(dirs)
    gen = torch.Generator().manual_seed(23)
    w = torch.randn(exp.fm.d, generator=gen)
    weight = torch.rand(exp.n, generator=gen)
    weight[exp.U] = 0.0
    batch = exp.schedule[0]
    got = batch_gradient(exp.fm, w, exp.X, exp.y, batch, 0.01, DataTerm(weight=weight))
    want = 0.01 * w
    for i in batch.tolist():
        wi = w.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(exp.fm.logits(wi, exp.X[i:i + 1]), exp.y[i:i + 1])
        (g,) = torch.autograd.grad(loss, wi)
        want = want + weight[i] * g / len(batch)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


def test_perturb_floor_is_the_perturbed_retrain_and_tiny_on_a_convex_model(dirs):
    exp = experiment(dirs)
    a = exp.args
    w_retrain = exp.retrain(progress=False)
    w_T = exp.train_original(progress=False)
    w_floor, details = floor_model(exp, "perturb")
    xi = torch.randn(exp.fm.d, generator=torch.Generator().manual_seed(a.seed + 3), dtype=torch.float64)
    start = (exp.w0.double() * (1 + 1e-7 * xi)).float()
    want = sgd(exp.fm, start, exp.X, exp.y, exp.schedule, exp.sgd_config, keep=exp.keep)
    assert torch.equal(w_floor, want) and details["perturb_seed"] == a.seed + 3
    floor = float((w_floor - w_retrain).norm())
    original = float((w_T - w_retrain).norm())
    assert 0 < floor < 1e-3 * original


@pytest.mark.parametrize("kind", ["float64", "threads"])
def test_other_floor_kinds(dirs, kind):
    exp = experiment(dirs)
    w_retrain = exp.retrain(progress=False)
    w_T = exp.train_original(progress=False)
    threads = torch.get_num_threads()
    w, details = floor_model(exp, kind)
    assert torch.get_num_threads() == threads                # restored
    floor = float((w.double() - w_retrain.double()).norm())
    assert floor < 1e-3 * float((w_T - w_retrain).norm())
    if kind == "float64":
        assert w.dtype == torch.float64 and floor > 0
        fm64 = FlatModel(copy.deepcopy(exp.fm.module).double())
        want = sgd(fm64, exp.w0.double(), exp.X.double(), exp.y, exp.schedule, exp.sgd_config, keep=exp.keep)
        assert torch.equal(w, want)
    else:
        assert details["threads"] != details["reference_threads"] == threads


def test_main_eva_computes_caches_and_reports_the_floor(dirs):
    flags = LOGISTIC + dirs
    run_script("main_retrain.py", *flags)
    first = run_script("main_eva.py", *flags, "--json")
    rows = json.loads(first.stdout)
    assert "computing the noise floor" in first.stderr
    assert "Floor" not in rows and set(rows) == {"Original", "Retrain"}
    floor = rows["Original"]["floor"]
    assert all(r["floor"] == floor for r in rows.values())
    assert 0 < floor < 1e-3 * rows["Original"]["distance"]
    assert rows["Original"]["floor_ratio"] == pytest.approx(rows["Original"]["distance"] / floor)
    assert rows["Original"]["within_floor"] is False
    # the floor's model is cached under the forget folder and equals a fresh computation
    (pt,) = glob.glob(str(dirs[1]) + "/**/Floor-*.pt", recursive=True)
    (ret,) = glob.glob(str(dirs[1]) + "/**/Retrain-*.pt", recursive=True)
    w_floor = torch.load(pt, weights_only=True)["w"]
    w_retrain = torch.load(ret, weights_only=True)["w"]
    assert floor == pytest.approx(float((w_floor.double() - w_retrain.double()).norm()), rel=1e-12)
    second = run_script("main_eva.py", *flags, "--json")
    assert "computing the noise floor" not in second.stderr and json.loads(second.stdout) == rows


def test_floor_is_keyed_by_its_kind_and_needs_the_retrain_first(dirs):
    exp = experiment(dirs, LOGISTIC, "--floor", "threads")
    with pytest.raises(InputError, match="main_retrain.py"):
        ensure_floor(exp)
    assert not glob.glob(str(dirs[1]) + "/**/Floor-*", recursive=True)
    paths = {kind: experiment(dirs, LOGISTIC, "--floor", kind).method_paths("Floor")[0] for kind in KINDS}
    assert len(set(paths.values())) == 3


def test_annotate_applies_the_rule():
    rows = {"Floor": {"distance": 2.0}, "A": {"distance": 2.0 * WITHIN}, "B": {"distance": 2.0 * WITHIN + 1e-9},
            "Original": {"distance": 40.0}}
    out = annotate(rows)
    assert "Floor" not in out and set(out) == {"A", "B", "Original"}
    assert out["A"]["within_floor"] and not out["B"]["within_floor"] and not out["Original"]["within_floor"]
    assert out["Original"]["floor_ratio"] == 20.0 and out["A"]["floor"] == 2.0
    zero = annotate({"Floor": {"distance": 0.0}, "A": {"distance": 0.0}, "B": {"distance": 1e-12}})
    assert zero["A"]["floor_ratio"] is None and zero["A"]["within_floor"] and not zero["B"]["within_floor"]
    assert annotate({"A": {"distance": 1.0}}) == {"A": {"distance": 1.0}}
    text = text_table({n: dict(r, test_acc=0.5) for n, r in out.items()})
    lines = text.splitlines()
    assert any(line.strip().startswith("A ~") for line in lines)
    assert not any(line.strip().startswith(("B ~", "Original ~")) for line in lines)
    assert "1.5 x floor" in lines[-1]


def _stat(mean, std=0.0):
    return {"mean": mean, "std": std, "runs": 3}


def test_aggregate_tables_and_figure_carry_the_floor():
    setting = {"dataset": "mnist", "model": "cnn", "num_dataset": 1000, "num_forget": 10, "lr": 0.05, "epochs": 20}
    floor = _stat(0.03, 0.01)
    agg = {"k1": {"setting": setting, "label": "mnist/cnn m=10", "seeds": [1, 2, 3],
                  "methods": {"Original": {"distance": _stat(0.14), "floor": floor},
                              "Proposed": {"distance": _stat(0.04), "floor": floor},
                              "Retrain": {"distance": _stat(0.0), "floor": floor}}}}
    md = aggregate_markdown(agg)
    line = next(x for x in md.splitlines() if x.startswith("| mnist/cnn m=10 "))   # distance table first
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == "0.03 ± 0.01"
    assert cells[3] == "0.14 ± 0 (4.67x)" and cells[4] == "0.04 ± 0 (1.33x) ~"
    assert "| setting | seeds | floor | Original | Proposed |" in md and "1.5 x floor" in md
    header = aggregate_csv(agg).splitlines()[0].split(",")
    assert "floor_mean" in header and "floor_ratio_mean" in header
    assert floor_curve(agg, "num_forget") == {("mnist", "cnn"): [(10, 0.03, 0.01)]}
    assert _label(setting) == "mnist/cnn n=1000 m=10 lr=0.05 epochs=20"
    assert _label(dict(setting, floor="threads")).endswith(" epochs=20 floor=threads")


def test_explicit_candidate_lists_of_equal_size_pool_across_seeds(dirs):
    """Per-seed --hf_candidates lists (each seed's largest U) share one setting when their
    sizes match; a different size is a different setting."""
    def setting(seed, cands):
        return setting_of(experiment(dirs, LOGISTIC, "--seed", str(seed), "--hf_candidates", cands))
    a, b = setting(1, "0,3,5,7,9,11,13,15,17,19"), setting(2, "2,4,6,8,10,12,14,16,18,20")
    assert a == b and a["hf_candidates"] == "10 explicit"
    assert setting(1, "0,3,5,7,9,11,13,15,17") != a
    assert setting(1, "all")["hf_candidates"] == "all"
