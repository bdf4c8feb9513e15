"""U-LiRA (utils/audits/ulira.py, main_ULIRA.py): the test statistic against slow references, its
calibration (Retrain ~ 0.5, Original above), and a QUICK run of the script on Wine."""
import glob
import json
import math
import os
import subprocess

import numpy as np
import pytest
import torch

from helpers import ROOT, run_script
from utils.common import artifacts
from utils.common.errors import InputError
from utils.common.experiment import Experiment
from utils.audits.lira import shadow_seed
from utils.common.options import parse_args
from utils.training.train import sgd
from utils.audits.ulira import (bootstrap_auc_sd, cache_paths, check_shadow_count, gaussian_fit, heldout_scores, pair_targets,
                         paired_gap, shadow_setup, summarise)

# Wine logistic regression, full-batch steps (one per epoch), large lr, little regularisation:
# members are visible, so the Original row is clearly above the Retrain row (the test has
# power); ~25 s on a loaded 2-core machine, then ~8 s cached.
QUICK = ["--model", "logistic", "--dataset", "wine", "--epochs", "30", "--num_dataset", "142",
         "--batch_size", "128", "--num_forget", "40", "--lr", "4", "--regularization", "1e-4",
         "--lr_decay", "0.9995", "--clip", "10", "--gpu", "-1", "--quiet", "--n_shadows", "6"]


def reference_fit(S, mask, fix_variance):
    """Per-column loops: mean and unbiased variance of the masked entries."""
    stats = [(S[mask[:, j], j].mean(), S[mask[:, j], j].var(ddof=1)) for j in range(S.shape[1])]
    mu, var = np.array(stats).T
    if fix_variance:
        var = np.full_like(var, var.mean())
    return mu, np.sqrt(var)


def reference_heldout(phi_m, phi_r, member, fix_variance):
    """Pair by pair: refit both Gaussians without shadow k, explicit log-density ratio."""
    K, m = member.shape
    logpdf = lambda x, mu, sd: -0.5 * ((x - mu) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))
    pos, neg = [], []
    for k in range(K):
        rest = [j for j in range(K) if j != k]
        mu_a, sd_a = reference_fit(phi_m[rest], member[rest], fix_variance)
        mu_0, sd_0 = reference_fit(phi_r[rest], np.ones((K - 1, m), bool), fix_variance)
        for u in range(m):
            if member[k, u]:
                lam = lambda x: logpdf(x, mu_a[u], sd_a[u]) - logpdf(x, mu_0[u], sd_0[u])
                pos.append(lam(phi_m[k, u]))
                neg.append(lam(phi_r[k, u]))
    return np.array(pos), np.array(neg)


def balanced_member(K, m, rng):
    """(K, m): every target in exactly K/2 shadows."""
    return np.stack([rng.permutation(K) < K // 2 for _ in range(m)], axis=1)


@pytest.mark.parametrize("fix_variance", [False, True])
def test_fit_and_heldout_scores_match_the_slow_reference(fix_variance):
    rng = np.random.default_rng(0)
    K, m = 8, 12
    member = balanced_member(K, m, rng)
    phi_r = rng.normal(size=(K, m)) * rng.uniform(0.5, 2, m) + rng.normal(size=m)
    phi_m = phi_r + 0.7 * member + 0.3 * rng.normal(size=(K, m))
    mu, sd = gaussian_fit(phi_m, member, fix_variance)
    assert np.allclose((mu, sd), reference_fit(phi_m, member, fix_variance), atol=1e-12)
    pos, neg = heldout_scores(phi_m, phi_r, member, fix_variance)
    ref_pos, ref_neg = reference_heldout(phi_m, phi_r, member, fix_variance)
    assert len(pos) == member.sum() and np.allclose(pos, ref_pos, atol=1e-9) and np.allclose(neg, ref_neg, atol=1e-9)


def test_summary_matches_pair_counting():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(0.8, 1, 300), rng.normal(0, 1, 500)
    pos[:20] = neg[:20]                                   # ties count one half
    auc = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    r = summarise(pos, neg)
    assert r["auc"] == pytest.approx(auc, abs=1e-12) and r["pairs"] == 300
    for alpha in (0.01, 0.001):
        tpr = max(np.mean(pos >= t) for t in np.r_[pos, neg, np.inf] if np.mean(neg >= t) <= alpha)
        assert r[f"tpr_at_{alpha:g}"] == pytest.approx(tpr)


def test_paired_gap_averages_member_pairs_only():
    rng = np.random.default_rng(4)
    member = balanced_member(6, 5, rng)
    a, b = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    slow = [abs(a[k, u] - b[k, u]) for k in range(6) for u in range(5) if member[k, u]]
    assert paired_gap(a, b, member) == pytest.approx(sum(slow) / len(slow), rel=1e-12)
    assert paired_gap(a, a, member) == 0.0


def test_pair_targets_follow_the_pair_order():
    rng = np.random.default_rng(3)
    member = balanced_member(6, 5, rng)
    expected = [u for k in range(6) for u in range(5) if member[k, u]]
    assert pair_targets(member).tolist() == expected


def test_bootstrap_sd_of_the_auc():
    """Independent pairs: close to the Hanley-McNeil standard error; separable: zero."""
    rng = np.random.default_rng(4)
    n = 400
    pos, neg = rng.normal(0.6, 1, n), rng.normal(0, 1, n)
    A = summarise(pos, neg)["auc"]
    q1, q2 = A / (2 - A), 2 * A * A / (1 + A)
    se = math.sqrt((A * (1 - A) + (n - 1) * (q1 - A * A) + (n - 1) * (q2 - A * A)) / (n * n))
    assert bootstrap_auc_sd(pos, neg, np.arange(n)) == pytest.approx(se, rel=0.3)
    assert bootstrap_auc_sd(np.ones(n), np.zeros(n), np.arange(n) // 4) == 0


def test_calibration_on_synthetic_shadows():
    """A method whose scores have the retrain's law gives AUC ~0.5; the same models as the
    null give exactly 0.5; a shift in the targets' scores is detected."""
    rng = np.random.default_rng(2)
    K, m = 16, 200
    member = balanced_member(K, m, rng)
    centre, spread = rng.normal(size=m), rng.uniform(0.5, 2, m)
    draw = lambda: centre + spread * rng.normal(size=(K, m))
    phi_r = draw()
    null = summarise(*heldout_scores(draw(), phi_r, member))
    assert abs(null["auc"] - 0.5) < 0.05 and null["tpr_at_0.01"] < 0.05
    assert summarise(*heldout_scores(phi_r, phi_r, member))["auc"] == 0.5
    shifted = summarise(*heldout_scores(draw() + spread * member, phi_r, member))
    assert shifted["auc"] > 0.7


def test_shadow_count_is_checked():
    for K in (4, 7):
        with pytest.raises(InputError, match="--n_shadows"):
            check_shadow_count(K)
    check_shadow_count(6)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """QUICK=1 ULIRA.sh (trains the shadows), then the script by hand with the same flags
    and --json (must reuse them and reproduce the sweep's numbers)."""
    tmp = tmp_path_factory.mktemp("ulira")
    log, res = tmp / "log", tmp / "res"
    env = dict(os.environ, QUICK="1", LOG_DIR=str(log), RESULTS_DIR=str(res), HFU_OFFLINE="1")
    proc = subprocess.run(["bash", os.path.join(ROOT, "ULIRA.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = glob.glob(str(res / "ULIRA-*.json"))
    sweep = json.loads(open(path).read())["targets"]
    flags = QUICK + ["--seed", "42", "--log_dir", str(log), "--results_dir", str(res)]
    caches = lambda: {p: os.stat(p).st_mtime_ns for p in glob.glob(str(log / "*" / "cache" / "ulira-*"))}
    before = caches()
    again = json.loads(run_script("main_ULIRA.py", *flags, "--json").stdout)
    return dict(tmp=tmp, flags=flags, first=sweep, second=again, text=proc.stderr,
                caches=(before, caches()))


def test_quick_run_writes_finite_results_and_reuses_its_shadows(quick):
    res, tmp = quick["first"], quick["tmp"]
    assert set(res) == {"Original", "Retrain", "Proposed"}
    for row in res.values():
        assert row["pairs"] == 6 // 2 * 40
        for k in ("auc", "tpr_at_1fpr", "tpr_at_0.1fpr"):
            assert math.isfinite(row[k]) and 0 <= row[k] <= 1
        assert math.isfinite(row["score_gap"]) and row["score_gap"] > 0
    assert res["Original"]["seconds"] is None and res["Proposed"]["seconds"] > 0
    assert quick["second"] == res                      # cached shadows: the same numbers
    before, after = quick["caches"]
    assert len(before) == 6 and before == after        # 2 x (.pt, .pt.sha256, .json), not rewritten
    assert "Original" in quick["text"] and "sweep ULIRA done" in quick["text"]
    for ext in ("txt", "json", "png"):
        assert len(glob.glob(str(tmp / "res" / f"ULIRA-*.{ext}"))) == 1


def test_quick_run_is_calibrated(quick):
    """The independent retrain is indistinguishable (noise only); the Original is not."""
    res = quick["first"]
    assert abs(res["Retrain"]["auc"] - 0.5) < 0.15
    assert res["Original"]["auc"] > res["Retrain"]["auc"] + 0.1


def test_cached_shadows_are_what_they_claim(quick):
    """Every target in half the shadows; Retrain_k is SGD on D_k without U_k; Proposed moves
    each shadow toward its retrain."""
    exp = Experiment(parse_args(quick["flags"]))
    base, prop = (artifacts.load_tensors(p) for p in cache_paths(exp))
    keep = base["keep"].numpy()
    assert (keep.sum(0) == 3).all()
    k = 1
    X, y, w0, schedule, rows, kept = shadow_setup(exp, keep[k], exp.U.numpy(), shadow_seed(exp.args.seed, k))
    assert len(rows) == np.isin(exp.U.numpy(), np.flatnonzero(keep[k])).sum()
    w_R = sgd(exp.fm, w0, X, y, schedule, exp.sgd_config, keep=kept, norm=exp.args.retrain_norm)
    assert torch.allclose(w_R, base["Retrain"][k], atol=1e-6)
    for j in range(len(keep)):
        assert (prop["Proposed"][j] - base["Retrain"][j]).norm() < (base["Original"][j] - base["Retrain"][j]).norm()


def test_a_variant_reuses_the_shadows_and_adds_its_row(quick):
    """--hf_variant authors: only Proposed is recomputed (one replay per shadow); Original and
    Retrain rows are the paper run's, from the same cached shadows."""
    log = quick["tmp"] / "log"
    shadows = glob.glob(str(log / "*" / "cache" / "ulira-shadows-*.pt"))
    before = {p: os.stat(p).st_mtime_ns for p in shadows}
    res = json.loads(run_script("main_ULIRA.py", *quick["flags"], "--hf_variant", "authors", "--json").stdout)
    assert set(res) == {"Original", "Retrain", "Proposed[authors]"}
    for row in ("Original", "Retrain"):
        assert res[row] == quick["first"][row]
    assert math.isfinite(res["Proposed[authors]"]["auc"])
    assert before == {p: os.stat(p).st_mtime_ns for p in shadows}
    assert len(glob.glob(str(log / "*" / "cache" / "ulira-proposed-*.pt"))) == 2
