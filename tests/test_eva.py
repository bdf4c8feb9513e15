"""main_eva.py end to end on a small Wine run: missing inputs, distances, aggregate."""
import csv
import glob
import json
import os

import numpy as np
import pytest
import torch

from helpers import WINE, hand_loop, run_script
from utils.common.experiment import Experiment
from utils.common.options import parse_args

FLAGS = WINE + ["--epochs", "3", "--num_dataset", "40", "--num_forget", "3"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run NU (trains the original), check eva's missing-Retrain message, then Retrain, IJ, eva."""
    tmp = tmp_path_factory.mktemp("eva")
    dirs = ["--log_dir", str(tmp / "log"), "--results_dir", str(tmp / "results")]
    fresh = run_script("main_eva.py", *FLAGS, *dirs, check=False)
    run_script("main_NU.py", *FLAGS, *dirs)
    no_retrain = run_script("main_eva.py", *FLAGS, *dirs, check=False)
    run_script("main_retrain.py", *FLAGS, *dirs)
    run_script("main_IJ.py", *FLAGS, *dirs)
    eva = run_script("main_eva.py", *FLAGS, *dirs, "--json")
    return dict(tmp=tmp, dirs=dirs, fresh=fresh, no_retrain=no_retrain, rows=json.loads(eva.stdout))


def test_missing_inputs_name_the_command(pipeline):
    for proc in (pipeline["fresh"], pipeline["no_retrain"]):
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and lines[-1].startswith("error: ")
        assert "main_retrain.py" in lines[-1]
    assert "--dataset wine" in pipeline["no_retrain"].stderr  # the command carries the user's flags


def test_distances_match_saved_files(pipeline):
    """Each row's distance is to the saved Retrain model, and that model is the independent
    hand-written retraining loop (so Retrain's own row is checked against something else)."""
    rows, log = pipeline["rows"], pipeline["tmp"] / "log"
    assert set(rows) >= {"Original", "Retrain", "NU", "IJ"}

    def load(pattern):
        (path,) = glob.glob(str(log / "**" / pattern), recursive=True)
        return torch.load(path, weights_only=True)["w"].double()

    exp = Experiment(parse_args(FLAGS + pipeline["dirs"]))
    w_ref = hand_loop(exp, exp.keep.tolist(), "batch").double()   # --retrain_norm defaults to batch
    w_retrain = load("Retrain-*.pt")
    gap = float((w_retrain - w_ref).norm())
    assert gap <= 1e-5 * float(w_ref.norm())
    models = {"Original": load("original.pt"), "NU": load("NU-*.pt"), "IJ": load("IJ-*.pt")}
    for name, w in models.items():
        expected = float(torch.sqrt(((w - w_retrain) ** 2).sum()))
        assert rows[name]["distance"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert abs(rows[name]["distance"] - float((w - w_ref).norm())) <= gap + 1e-9
        assert rows[name]["distance"] > 10 * gap
        assert 0 <= rows[name]["test_acc"] <= 1
    assert rows["Retrain"]["distance"] == 0
    assert rows["NU"]["precompute_s"] > 0 and rows["IJ"]["storage_bytes"] > 0


def test_result_files_carry_setting_and_seed(pipeline):
    results = pipeline["tmp"] / "results"
    (js,) = glob.glob(str(results / "eva-*.json"))
    assert os.path.exists(js[:-5] + ".txt")
    rec = json.loads(open(js).read())
    assert rec["seed"] == 42 and "seed" not in rec["setting"]
    assert rec["setting"]["dataset"] == "wine" and rec["setting"]["num_forget"] == 3
    assert rec["methods"]["NU"]["distance"] == pipeline["rows"]["NU"]["distance"]


def test_aggregate_mean_std_over_seeds(pipeline):
    results = pipeline["tmp"] / "results"
    (js,) = glob.glob(str(results / "eva-*.json"))
    rec = json.loads(open(js).read())
    other = json.loads(json.dumps(rec))  # a second seed of the same setting
    other["seed"] = 7
    for row in other["methods"].values():
        row["distance"] = row["distance"] * 3 + 0.5
    with open(results / "eva-copy-s7.json", "w") as f:
        json.dump(other, f)
    proc = run_script("main_eva.py", "--aggregate", "--json", *pipeline["dirs"])
    agg = json.loads(proc.stdout)
    (group,) = agg.values()
    assert group["seeds"] == [7, 42]
    for method in ["Original", "NU", "IJ"]:
        values = [rec["methods"][method]["distance"], other["methods"][method]["distance"]]
        stat = group["methods"][method]["distance"]
        assert stat["mean"] == pytest.approx(np.mean(values)) and stat["std"] == pytest.approx(np.std(values))
    with open(results / "eva_summary.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert float(rows["NU"]["distance_mean"]) == pytest.approx(group["methods"]["NU"]["distance"]["mean"])
    assert "| wine/mlp n=40 m=3 lr=0.01 epochs=3 | 2 |" in open(results / "eva_summary.md").read()


def test_aggregate_without_results(dirs):
    proc = run_script("main_eva.py", "--aggregate", *dirs, check=False)
    assert proc.returncode == 2 and "run main_eva.py" in proc.stderr.strip().splitlines()[-1]


def test_thread_counts_recorded_and_a_mismatch_noticed(dirs):
    """Each row carries the thread count its model was computed with (from its record); a
    Retrain computed with another count than Original gets the notice."""
    from utils.evaluation.compare import compare, thread_notice
    before = torch.get_num_threads()
    try:
        exp = Experiment(parse_args(FLAGS + dirs))
        torch.set_num_threads(1)
        exp.original()
        torch.set_num_threads(2)
        exp.save_method("Retrain", exp.retrain(progress=False), {})
        rows = compare(exp)
        assert rows["Original"]["threads"] == 1 and rows["Retrain"]["threads"] == 2
        assert "1 thread(s) and Retrain with 2" in thread_notice(rows)
        torch.set_num_threads(1)
        exp.save_method("Retrain", exp.retrain(progress=False), {})
        assert thread_notice(compare(exp)) is None
    finally:
        torch.set_num_threads(before)


TINY = ["--model", "logistic", "--dataset", "wine", "--num_dataset", "100", "--batch_size", "32", "--epochs", "3",
        "--num_forget", "5", "--gpu", "-1", "--quiet"]


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """A tiny Wine setting with Retrain, Proposed (and its certified release, 2 draws) and
    Proposed[authors] (no release)."""
    tmp = tmp_path_factory.mktemp("variants")
    flags = TINY + ["--log_dir", str(tmp / "log"), "--results_dir", str(tmp / "results")]
    run_script("main_retrain.py", *flags)
    run_script("main_proposed.py", *flags, "--application", "--noise_seeds", "2")
    run_script("main_proposed.py", *flags, "--hf_variant", "authors")
    return dict(tmp=tmp, flags=flags)


def floors(variants):
    return sorted(glob.glob(str(variants["tmp"] / "log" / "*" / "forget-*" / "Floor-*.pt")))


def test_float64_floor_evaluates_and_its_cache_is_reused(variants):
    """--floor float64: the floor model (stored in float64) is evaluated in the model's dtype,
    on the first run and from the cache on the second."""
    for attempt in range(2):
        proc = run_script("main_eva.py", *variants["flags"], "--floor", "float64", "--json", check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert ("computing the noise floor (float64)" in proc.stderr) == (attempt == 0)
        rows = json.loads(proc.stdout)
        assert 0 < rows["Original"]["floor"] < rows["Original"]["distance"]
        assert rows["Proposed"]["floor"] == rows["Original"]["floor"]


def test_noised_row_belongs_to_a_variant_shown(variants):
    """The release of the paper's recursion is not shown beside Proposed[authors] alone; with
    --application, the shown variant's own release is required (before the floor) and shown
    as Proposed_noise[authors]."""
    flags = variants["flags"]
    rows = json.loads(run_script("main_eva.py", *flags, "--proposed_rows", "authors", "--json").stdout)
    assert "Proposed[authors]" in rows and not any(name.startswith("Proposed_noise") for name in rows)
    rows = json.loads(run_script("main_eva.py", *flags, "--proposed_rows", "paper,authors", "--json").stdout)
    assert "Proposed_noise" in rows and "Proposed_noise[authors]" not in rows
    before = floors(variants)
    missing = run_script("main_eva.py", *flags, "--application", "--noise_seeds", "2", "--floor", "threads",
                         "--proposed_rows", "authors", check=False)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "no Proposed_noise model for the --proposed_rows variant 'authors'" in missing.stderr
    assert "main_proposed.py" in missing.stderr and "--application" in missing.stderr
    command = missing.stderr.split("; run: ")[1]
    assert "--hf_variant authors" in command and "--proposed_rows" not in command
    assert floors(variants) == before
    run_script("main_proposed.py", *flags, "--hf_variant", "authors", "--application", "--noise_seeds", "2")
    rows = json.loads(run_script("main_eva.py", *flags, "--application", "--noise_seeds", "2",
                                 "--proposed_rows", "authors", "--json").stdout)
    assert {"Proposed[authors]", "Proposed_noise[authors]"} <= set(rows) and "Proposed_noise" not in rows


def test_unsaved_proposed_row_is_refused_before_the_floor_retrain(variants):
    before = floors(variants)
    proc = run_script("main_eva.py", *variants["flags"], "--floor", "threads", "--proposed_rows",
                      "paper,authors,ggn+kappa=0.5", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "no Proposed model for the --proposed_rows variant 'ggn+kappa=0.5'" in proc.stderr
    assert "--hf_curvature ggn --hf_damping 0.5" in proc.stderr
    assert "computing the noise floor" not in proc.stderr and floors(variants) == before
