"""Quick modes of the sweeps: the full pipeline, tables whose numbers are the per-run results,
a rerun that skips a step only while its outputs exist, paths with spaces, and Ctrl-C."""
import csv
import glob
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from helpers import ROOT


def sweep_env(log, results, **extra):
    return dict(os.environ, QUICK="1", LOG_DIR=str(log), RESULTS_DIR=str(results), HFU_OFFLINE="1",
                MODELS="logistic", **extra)


def sweep(name, log, results, **extra):
    return subprocess.run(["bash", os.path.join(ROOT, name)], env=sweep_env(log, results, **extra),
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished quick MNIST (logistic) sweep, its log and results folders containing spaces."""
    tmp = tmp_path_factory.mktemp("sweep")
    log, results = tmp / "my log", tmp / "my results"
    proc = sweep("MNIST.sh", log, results)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(log=log, results=results, stderr=proc.stderr)


def steps(stderr, mark):
    return [line for line in stderr.splitlines() if line.startswith(mark + " python3")]


def check_tables(results):
    """Every number of eva_summary.csv is the mean / std over seeds of the per-run JSON files."""
    runs = [json.loads(open(p).read()) for p in glob.glob(str(results / "eva-*.json"))]
    assert sorted(r["seed"] for r in runs) == [1, 42]
    with open(results / "eva_summary.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"Original", "Retrain", "Proposed", "NU", "IJ"}
    for method, row in rows.items():
        for metric in ["distance", "test_acc", "forget_acc"]:
            values = [r["methods"][method][metric] for r in runs]
            assert float(row[f"{metric}_mean"]) == pytest.approx(np.mean(values), rel=1e-9)
            assert float(row[f"{metric}_std"]) == pytest.approx(np.std(values), rel=1e-9, abs=1e-12)
    for r in runs:   # the convex setting: the Hessian-free update moves w_T towards Retrain
        d = {m: r["methods"][m]["distance"] for m in r["methods"]}
        assert d["Retrain"] == 0 and 0 < d["Proposed"] < d["Original"]
    assert (results / "eva_summary.md").stat().st_size > 0
    assert (results / "fig_mnist_logistic_num_forget.png").stat().st_size > 0


def test_tables_hold_the_per_run_numbers(finished):
    check_tables(finished["results"])
    assert len(steps(finished["stderr"], "+")) == 2 * 5 and not steps(finished["stderr"], "cached:")


def test_rerun_skips_every_step(finished):
    again = sweep("MNIST.sh", finished["log"], finished["results"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert not steps(again.stderr, "+") and len(steps(again.stderr, "cached:")) == 2 * 5


def test_deleted_results_are_regenerated(finished):
    shutil.rmtree(finished["results"])
    again = sweep("MNIST.sh", finished["log"], finished["results"])
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = steps(again.stderr, "+")
    assert len(rerun) == 2 and all(" main_eva.py " in line for line in rerun)
    check_tables(finished["results"])


def test_deleted_configuration_folder_is_regenerated(finished):
    (folder,) = glob.glob(str(finished["log"] / "mnist-logistic-*-s1-*"))
    shutil.rmtree(folder)
    again = sweep("MNIST.sh", finished["log"], finished["results"])
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = steps(again.stderr, "+")
    # the four steps that wrote there; main_eva's result files still exist
    assert len(rerun) == 4 and all("--seed 1 " in line and " main_eva.py " not in line for line in rerun)
    assert os.path.exists(os.path.join(folder, "original.pt"))
    check_tables(finished["results"])


def test_ctrl_c_prints_one_line_and_rerun_resumes(finished):
    (folder,) = glob.glob(str(finished["log"] / "mnist-logistic-*-s42-*"))
    shutil.rmtree(folder)
    stamps = finished["log"] / ".sweep-stamps"
    # as from a terminal: SIGINT at its default even when the test runner was started in the
    # background (where it inherits SIGINT ignored, and bash cannot trap an ignored signal)
    proc = subprocess.Popen(["bash", os.path.join(ROOT, "MNIST.sh")], env=sweep_env(finished["log"], finished["results"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not glob.glob(str(stamps / "*.partial")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)                       # Ctrl-C: the whole foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "sweep MNIST interrupted; rerun the same command to resume"
    assert err.count("interrupted") == 1 and "Traceback" not in err
    assert not glob.glob(str(stamps / "*.partial"))
    again = sweep("MNIST.sh", finished["log"], finished["results"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert steps(again.stderr, "+") and all("--seed 42 " in line for line in steps(again.stderr, "+"))
    check_tables(finished["results"])


def test_replay_sweep_without_second_order(finished, tmp_path):
    """SECOND_ORDER=0 runs no NU/IJ; EXTRA="--hf_mode replay --batch_unlearn" gives the bank
    sweep's Proposed (one summed replay against the bank's rows)."""
    proc = sweep("MNIST.sh", tmp_path / "log", tmp_path / "results", SEEDS="42", SECOND_ORDER="0",
                 EXTRA="--hf_mode replay --batch_unlearn")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = steps(proc.stderr, "+")
    assert ran and not [line for line in ran if "main_NU.py" in line or "main_IJ.py" in line]
    assert all("--hf_mode replay --batch_unlearn" in line for line in ran)

    def proposed(results):
        (path,) = [p for p in glob.glob(str(results / "eva-*.json")) if json.loads(open(p).read())["seed"] == 42]
        return json.loads(open(path).read())["methods"]

    replay, bank = proposed(tmp_path / "results"), proposed(finished["results"])
    assert "NU" not in replay and "NU" in bank
    assert replay["Proposed"]["distance"] == pytest.approx(bank["Proposed"]["distance"], rel=1e-4)
    assert replay["Original"]["distance"] == bank["Original"]["distance"]


def test_variants_sweep_shows_each_variant_as_a_row(finished, tmp_path):
    """VARIANTS="paper uncorrected authors": one Proposed run per label, one table with a row
    each, kept apart by the aggregate. Under --retrain_norm batch 'uncorrected' is the paper's
    recursion, so its row equals Proposed's; 'authors' differs."""
    results = tmp_path / "results"
    proc = sweep("MNIST.sh", finished["log"], results, VARIANTS="paper uncorrected authors", SECOND_ORDER="0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = steps(proc.stderr, "+")
    assert len([line for line in ran if "main_proposed.py" in line]) == 3 * 2           # three labels, two seeds
    assert len([line for line in ran if " main_eva.py " in line and "--proposed_rows" in line]) == 2
    for p in glob.glob(str(results / "eva-*.json")):
        rows = json.loads(open(p).read())["methods"]
        assert rows["Proposed[uncorrected]"]["distance"] == rows["Proposed"]["distance"]
        assert rows["Proposed[authors]"]["distance"] != rows["Proposed"]["distance"]
    with open(results / "eva_summary.csv") as f:
        seeds = {r["method"]: r["seeds"] for r in csv.DictReader(f)}
    assert {"Proposed", "Proposed[uncorrected]", "Proposed[authors]"} <= set(seeds)


def test_quick_miau_sweep(tmp_path):
    proc = sweep("MIAU.sh", tmp_path / "log", tmp_path / "results")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = (tmp_path / "results" / "MIAU_summary.md").read_text()
    for path in glob.glob(str(tmp_path / "results" / "MIAU-*.json")):
        for target, entry in json.loads(open(path).read())["targets"].items():
            assert target in summary and 0 <= entry["auc_heldout"] <= 1


def test_sweep_stops_at_first_failure(tmp_path):
    env = dict(os.environ, QUICK="1", LOG_DIR=str(tmp_path / "log"), RESULTS_DIR=str(tmp_path / "r"),
               EXTRA="--num_dataset 0")
    proc = subprocess.run(["bash", os.path.join(ROOT, "MNIST.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "stopped: this command failed: python3 main_retrain.py" in proc.stderr
    assert proc.stderr.count("+ python3") == 1
    assert not glob.glob(str(tmp_path / "log" / ".sweep-stamps" / "*"))


@pytest.mark.parametrize("labels, needle", [
    ("paper authors bogus", "error: VARIANTS: unknown part 'bogus' of 'bogus'"),
    ("authors paper+sample_clip", "error: VARIANTS: 'paper+sample_clip': 'paper' (the paper's recursion, no quirk) "
                                  "contradicts 'sample_clip'"),
    ("authors inject_first+sample_clip+uncorrected", "error: VARIANTS: 'authors' and "
                                                     "'inject_first+sample_clip+uncorrected' name the same variant"),
])
def test_every_variants_label_is_checked_before_the_first_command(tmp_path, labels, needle):
    """A bad label anywhere in VARIANTS stops the sweep in one line naming VARIANTS (not a flag
    the user never passed), before any command runs or writes."""
    proc = sweep("Wine.sh", tmp_path / "log", tmp_path / "results", VARIANTS=labels)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(needle)
    assert "--proposed_rows" not in proc.stderr and not (tmp_path / "log").exists()
