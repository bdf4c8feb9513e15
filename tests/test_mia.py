"""MIA-U (utils/audits/mia.py, main_MIAU.py): features by hand, the attack's calibration, end to end."""
import json
import sys

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import main_MIAU
from helpers import WINE, run_script
from utils.common.experiment import Experiment
from utils.common.errors import InputError
from utils.common.options import parse_args
from utils.audits.mia import FEATURES, audit, features, posteriors
from utils.audits.roc import roc_summary, tpr_at_fpr


def random_posteriors(rng, N, C):
    p = rng.random((N, C)) + 1e-3
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("method", FEATURES)
def test_features_match_hand_computation(method):
    rng = np.random.default_rng(0)
    po, pu = random_posteriors(rng, 7, 4), random_posteriors(rng, 7, 4)
    got = features(po, pu, method)
    for i in range(7):
        order = sorted(range(4), key=lambda j: -po[i, j])           # descending p_orig
        so, su = [po[i, j] for j in order], [pu[i, j] for j in order]
        expected = {
            "direct_diff": [po[i, j] - pu[i, j] for j in range(4)],
            "sorted_diff": [a - b for a, b in zip(so, su)],
            "direct_concat": list(po[i]) + list(pu[i]),
            "sorted_concat": so + su,
            "l2_distance": [sum((po[i, j] - pu[i, j]) ** 2 for j in range(4)) ** 0.5],
        }[method]
        assert np.allclose(got[i], expected, atol=1e-15)


def test_sorted_features_use_the_original_models_order():
    po = np.array([[0.1, 0.7, 0.2]])
    pu = np.array([[0.5, 0.3, 0.2]])
    assert np.allclose(features(po, pu, "sorted_diff"), [[0.7 - 0.3, 0.2 - 0.2, 0.1 - 0.5]])
    assert np.allclose(features(po, pu, "sorted_concat"), [[0.7, 0.2, 0.1, 0.3, 0.2, 0.5]])


def test_tpr_at_fpr_against_threshold_sweep():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = rng.normal(size=300) + labels
    for alpha in (0.0, 0.01, 0.1, 0.5):
        best = 0.0
        for t in np.r_[np.inf, np.unique(scores)]:               # predict member when score >= t
            fpr = np.mean(scores[labels == 0] >= t)
            if fpr <= alpha:
                best = max(best, np.mean(scores[labels == 1] >= t))
        assert tpr_at_fpr(labels, scores, alpha) == pytest.approx(best)
    assert roc_summary(labels, scores)["auc"] == pytest.approx(
        np.mean(scores[labels == 1][:, None] > scores[labels == 0][None, :])
        + 0.5 * np.mean(scores[labels == 1][:, None] == scores[labels == 0][None, :]))


def leaky_pair(rng, n_pos=30, n_neg=120, dim=200, C=3):
    """Posteriors of a deliberately leaky (original, unlearned) pair: the unlearned model is an
    almost unregularised logistic regression fitted on the negatives only (dim > n, so it
    interpolates them); the positives get labels it does not predict, and the original
    model, fitted on everything, memorises them."""
    X = rng.normal(size=(n_pos + n_neg, dim))
    y = rng.integers(0, C, n_pos + n_neg)
    unl = LogisticRegression(C=1e4, max_iter=3000).fit(X[n_pos:], y[n_pos:])
    y[:n_pos] = (unl.predict(X[:n_pos]) + 1) % C
    orig = LogisticRegression(C=1e4, max_iter=3000).fit(X, y)
    return orig.predict_proba(X), unl.predict_proba(X), n_pos


@pytest.mark.parametrize("method", ["sorted_diff", "sorted_concat", "l2_distance"])
def test_leaky_pair_is_detected_held_out(method):
    po, pu, n_pos = leaky_pair(np.random.default_rng(2))
    F = features(po, pu, method)
    r = audit(F[:n_pos], F[n_pos:], "LR", seed=0, repeats=2)
    assert r["auc_heldout"] > 0.95 and r["tpr_at_1fpr"] > 0.5
    assert r["auc_insample"] > 0.95


@pytest.mark.parametrize("method", ["direct_concat", "sorted_concat", "direct_diff"])
def test_identical_models_give_chance_held_out(method):
    """Same model before and after: positives and negatives are exchangeable training samples,
    so the held-out AUC must be 0.5 up to sampling error (std ~ 1/sqrt(12 m) per repetition)."""
    rng = np.random.default_rng(3)
    p = random_posteriors(rng, 400, 5)
    aucs = [audit(features(p, p, method)[:60], features(p, p, method)[60:], "LR", seed=s, repeats=3)["auc_heldout"]
            for s in range(3)]
    assert abs(np.mean(aucs) - 0.5) < 4 * (1 / np.sqrt(12 * 60)) / np.sqrt(3) + 0.02


def test_insample_overstates_on_pure_noise():
    """Where nothing leaks, the authors' in-sample figure is still above chance with an
    MLP attack while the held-out figure is not: why the held-out one is reported first."""
    rng = np.random.default_rng(4)
    F = rng.normal(size=(60, 10))
    r = audit(F[:30], F[30:], "MLP", seed=0, repeats=2)
    assert r["auc_insample"] > 0.8
    assert abs(r["auc_heldout"] - 0.5) < 0.2


def test_posteriors_are_softmax_of_logits():
    torch.manual_seed(0)
    from models import build_model
    from utils.training.functional import FlatModel
    fm = FlatModel(build_model("mlp", "wine", "none"))
    X = torch.randn(9, 13)
    w = fm.initial_vector()
    p = posteriors(fm, w, X, batch_size=4)
    assert p.dtype == np.float64 and np.allclose(p.sum(1), 1)
    assert np.allclose(p, torch.softmax(fm.module(X), 1).detach().numpy(), atol=1e-6)


def make_targets(argv):
    """In-process, as the method scripts would: Original, Retrain and a stand-in 'Proposed'
    (the original model itself, so MIA-U must find nothing there)."""
    exp = Experiment(parse_args(argv))
    w_T = exp.original()[0]
    exp.save_method("Retrain", exp.retrain(progress=False), {"note": "test"})
    exp.save_method("Proposed", w_T, {"note": "test stand-in: the original model"})


def test_main_miau_names_missing_models(dirs, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["main_MIAU.py", *WINE, *dirs])
    with pytest.raises(InputError, match="main_retrain.py"):
        main_MIAU.main(parse_args(sys.argv[1:]))
    Experiment(parse_args(WINE + dirs)).original()
    with pytest.raises(InputError, match="main_retrain.py"):
        main_MIAU.main(parse_args(sys.argv[1:]))
    monkeypatch.setattr(sys, "argv", ["main_MIAU.py", *WINE, *dirs, "--num_forget", "1"])
    with pytest.raises(InputError, match="--num_forget"):
        main_MIAU.main(parse_args(sys.argv[1:]))


def test_main_miau_end_to_end(dirs, tmp_path):
    """'Proposed' is the original model itself, so forgotten and retained samples have the same
    features [p_orig, p_orig] and are exchangeable training samples: its held-out AUC must be 0.5
    within sampling error. Under no signal the Mann-Whitney AUC of m positives against m
    negatives has standard deviation sqrt((2m + 1) / (12 m^2)) (Hanley & McNeil); 4 of them."""
    m = 60
    flags = [*WINE, *dirs, "--num_forget", str(m)]
    make_targets(flags)
    out = run_script("main_MIAU.py", *flags, "--json", "--method", "direct_concat")
    summary = json.loads(out.stdout)
    assert set(summary) == {"Retrain", "Proposed"}
    for entry in summary.values():
        assert {"auc_heldout", "auc_insample", "tpr_at_1fpr"} <= set(entry)
        assert 0 <= entry["auc_heldout"] <= 1
    assert summary["Proposed"]["n_pos"] == summary["Proposed"]["n_neg"] == m
    sd = np.sqrt((2 * m + 1) / (12 * m * m))
    assert abs(summary["Proposed"]["auc_heldout"] - 0.5) < 4 * sd
    assert "main_NU.py" in out.stderr                      # notice naming a missing method's command
    files = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert [f.rsplit(".", 1)[1] for f in files] == ["json", "png", "txt"]
    saved = json.loads((tmp_path / "results" / files[0]).read_text())
    assert saved["targets"] == summary and saved["config"]["method"] == "direct_concat"


def test_audit_is_deterministic():
    rng = np.random.default_rng(5)
    F = rng.normal(size=(40, 4))
    a, b = audit(F[:10], F[10:], "MLP", seed=3, repeats=1), audit(F[:10], F[10:], "MLP", seed=3, repeats=1)
    assert {k: v for k, v in a.items() if k != "curves"} == {k: v for k, v in b.items() if k != "curves"}
