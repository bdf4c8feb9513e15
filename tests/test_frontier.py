"""The certified-release frontier: tools/frontier.py on synthetic releases, and the QUICK
Certify.sh sweep end to end (main_proposed --application --noise_seeds, LiRA, MIA-U)."""
import csv
import glob
import json
import math
import os
import subprocess

import numpy as np
import pytest
import torch

from helpers import ROOT, run_script
from tools.frontier import load_rows, write_frontier


def fake_release(d, tag, sigma, eps, k, rng):
    """Write the three kinds of --json outputs of one release with random figures; returns them."""
    acc, dist = rng.uniform(0, 1, k), rng.uniform(0, 10, k)
    lira = rng.uniform(0, 1, (k, 3))
    miau = rng.uniform(0, 1, k)
    draws = {"test_acc": dict(mean=acc.mean(), std=acc.std(), min=acc.min(), max=acc.max(), k=k),
             "distance": dict(mean=dist.mean(), std=dist.std(), min=dist.min(), max=dist.max(), k=k)}
    noisy = {"sigma": sigma, "certified_epsilon": eps, "delta": 0.1, "sensitivity": 2.0,
             "certified_epsilon_note": "certified" if eps is not None else "nothing certified: no noise",
             "realised_distance": 0.01, "looseness_ratio": 200.0, "noise_seeds": k, "noise_draws": draws}
    with open(os.path.join(d, f"{tag}-proposed.json"), "w") as f:
        json.dump({"Proposed": {"test_acc": 0.9}, "Proposed_noise": noisy}, f)
    for i in range(k):
        with open(os.path.join(d, f"{tag}-lira-{i}.json"), "w") as f:
            json.dump({"Retrain": {"auc_forget": 0.5}, "Proposed_noise": dict(zip(
                ["auc_forget", "tpr_at_1fpr_forget", "tpr_at_0.1fpr_forget"], lira[i]))}, f)
        with open(os.path.join(d, f"{tag}-miau-{i}.json"), "w") as f:
            json.dump({"Proposed_noise": {"auc_heldout": miau[i]}}, f)
    return acc, lira, miau


def test_frontier_aggregates_each_release_over_its_draws(tmp_path):
    rng = np.random.RandomState(3)
    truth = {}
    for tag, sigma, eps in [("stdb", 0.5, 3.0), ("stda", 1e-3, None), ("eps1", 2.0, 1.0)]:
        truth[tag] = fake_release(str(tmp_path), tag, sigma, eps, 3, rng)
    rows = write_frontier(str(tmp_path), "synthetic")
    assert [r["release"] for r in rows] == ["stda", "stdb", "eps1"]            # sorted by sigma
    for r in rows:
        acc, lira, miau = truth[r["release"]]
        assert r["lira_auc_forget"] == pytest.approx(lira[:, 0].mean())
        assert r["lira_auc_forget_std"] == pytest.approx(lira[:, 0].std())
        assert r["lira_tpr_at_0.1fpr_forget"] == pytest.approx(lira[:, 2].mean())
        assert (r["miau_auc_heldout_min"], r["miau_auc_heldout_max"]) == pytest.approx((miau.min(), miau.max()))
        assert r["test_acc"] == pytest.approx(acc.mean())
    md = (tmp_path / "frontier.md").read_text()
    assert "infinite (nothing certified: no noise)" in md
    table = list(csv.DictReader(open(tmp_path / "frontier.csv")))
    assert [t["certified_epsilon"] for t in table] == ["inf", "3", "1"]
    assert (tmp_path / "frontier.png").stat().st_size > 0
    os.remove(tmp_path / "stdb-miau-2.json")
    proc = subprocess.run(["python3", "-m", "tools.frontier", "--release_dir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "stdb-miau-2.json is missing" in proc.stderr


def quick_sweep(tmp_path, parts="proposed"):
    env = dict(os.environ, QUICK="1", LOG_DIR=str(tmp_path / "log"), RESULTS_DIR=str(tmp_path / "results"),
               HFU_OFFLINE="1", PARTS=parts)
    return subprocess.run(["bash", os.path.join(ROOT, "Certify.sh")], env=env, capture_output=True, text=True)


def test_quick_certify_sweep(tmp_path):
    first = quick_sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    release_dir = tmp_path / "results" / "wine_mlp"
    for ext in ("md", "csv", "png"):
        assert (release_dir / f"frontier.{ext}").stat().st_size > 0
    rows = load_rows(str(release_dir))
    assert len(rows) == 2                                      # sigma 1e-4 and the sigma of epsilon 1
    for r in rows:                                             # every figure finite, or null with a reason
        assert r["k"] == 2 and math.isfinite(r["Delta"]) and r["realised_distance"] > 0
        assert r["looseness_ratio"] == pytest.approx(r["Delta"] / r["realised_distance"])
        for key in ("test_acc", "distance", "lira_auc_forget", "lira_tpr_at_1fpr_forget", "miau_auc_heldout"):
            assert math.isfinite(r[key]) and r[key + "_min"] <= r[key] <= r[key + "_max"]
        assert r["certified_epsilon"] is not None or r["certified_epsilon_note"].startswith("nothing certified")
    eps = [r["certified_epsilon"] for r in rows]
    assert all(a > b for a, b in zip(eps, eps[1:]))           # certified epsilon falls as sigma grows
    eps1 = next(r for r in rows if r["release"] == "eps1")
    assert eps1["certified_epsilon"] == pytest.approx(1.0, rel=1e-6)
    # accuracy falls with sigma, within the spread of the draws
    low, high = rows[0], rows[-1]
    assert high["test_acc"] <= low["test_acc"] + high["test_acc_std"] + low["test_acc_std"]
    assert high["distance"] > low["distance"]
    # the two draws of a release are two different saved models
    for r in rows:
        assert r["test_acc_min"] < r["test_acc_max"] or r["distance_min"] < r["distance_max"]
    saved = glob.glob(str(tmp_path / "log" / "*" / "forget-*" / "Proposed_noise-*.pt"))
    assert len(saved) == 2 * len(rows)
    assert not torch.equal(*[torch.load(p, weights_only=True)["w"] for p in saved[:2]])
    again = quick_sweep(tmp_path)
    assert again.returncode == 0 and "+ python3" not in again.stderr


def test_quick_certify_sweep_certified_removal(tmp_path):
    """The certified-removal part: newton and hf at epsilon 1, MIA-U on each, the frontier table."""
    first = quick_sweep(tmp_path, "cr")
    assert first.returncode == 0, first.stderr[-3000:]
    cr_dir = tmp_path / "results" / "cr"
    for ext in ("md", "csv", "png"):
        assert (cr_dir / f"cr_frontier.{ext}").stat().st_size > 0
    table = list(csv.DictReader(open(cr_dir / "cr_frontier.csv")))
    assert sorted(t["removal"] for t in table) == ["hf", "newton"]
    for t in table:
        assert float(t["certified_epsilon"]) <= 1.0 and float(t["budget_spent"]) <= float(t["budget"])
        assert 0 <= int(t["requests_before_retrain"]) <= int(t["requests"]) == 6
        assert 0 <= float(t["miau_auc_heldout"]) <= 1 and float(t["nonprivate_test_acc"]) > 0
    newton = next(t for t in table if t["removal"] == "newton")
    assert float(newton["bound_over_residual_median"]) >= 1.0      # Corollary 1 holds on every request
    again = quick_sweep(tmp_path, "cr")
    assert again.returncode == 0 and "+ python3" not in again.stderr


def test_main_proposed_rejects_a_draw_outside_noise_seeds(tmp_path):
    proc = run_script("main_proposed.py", "--model", "mlp", "--dataset", "wine", "--num_dataset", "40",
                      "--gpu", "-1", "--log_dir", str(tmp_path), "--application", "--noise_seeds", "2",
                      "--noise_seed", "2", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --noise_seed") \
        and proc.stderr.count("\n") == 1
    assert os.listdir(tmp_path) == []
