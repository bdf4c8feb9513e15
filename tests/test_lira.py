"""LiRA (utils/audits/lira.py, utils/audits/shadows.py, main_MIAL.py) against independent NumPy references."""
import json
import math
import sys

import numpy as np
import pytest
import torch

import main_MIAL
from helpers import WINE, run_script
from utils.common.data import load_data
from utils.common.experiment import Experiment
from utils.audits.lira import gaussian_fits, keep_masks, logit_score, model_scores, offline_lira, online_lira
from utils.common.errors import InputError
from utils.common.options import parse_args
from utils.audits.roc import roc_summary
from utils.audits.shadows import build_pool


def reference_score(logits, y):
    """log p_y - log sum_{j != y} p_j from explicit softmax probabilities (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    out = []
    for zi, yi in zip(z, y):
        p = np.exp(zi - zi.max())
        p /= p.sum()
        out.append(math.log(p[yi]) - math.log(sum(p[j] for j in range(len(p)) if j != yi)))
    return np.array(out)


def test_logit_score_matches_reference_and_is_stable():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3, size=(50, 7))
    y = rng.integers(0, 7, 50)
    got = logit_score(torch.tensor(logits, dtype=torch.float32), torch.tensor(y)).numpy()
    assert np.allclose(got, reference_score(logits.astype(np.float32), y), atol=1e-9)
    # a margin of 1000 makes 1 - p_y underflow to 0 in any probability-space formula
    huge = torch.tensor([[1000.0, 0.0, 0.0], [0.0, 0.0, 1000.0]])
    assert np.allclose(logit_score(huge, torch.tensor([0, 0])).numpy(), [1000 - math.log(2), -1000])


def reference_lira(target, S, keep, fix_variance):
    """Per-sample loops: unbiased Gaussian fits, log-density ratio and log one-sided OUT CDF."""
    K, P = S.shape
    stats = []
    for i in range(P):
        s_in, s_out = S[keep[:, i], i], S[~keep[:, i], i]
        stats.append((s_in.mean(), s_in.var(ddof=1), s_out.mean(), s_out.var(ddof=1)))
    stats = np.array(stats)
    if fix_variance:
        stats[:, 1], stats[:, 3] = stats[:, 1].mean(), stats[:, 3].mean()
    logpdf = lambda x, mu, var: -0.5 * (x - mu) ** 2 / var - 0.5 * math.log(2 * math.pi * var)
    online = np.array([logpdf(target[i], stats[i, 0], stats[i, 1]) - logpdf(target[i], stats[i, 2], stats[i, 3])
                       for i in range(P)])
    offline = np.array([math.log(0.5 * math.erfc(-(target[i] - stats[i, 2]) / math.sqrt(2 * stats[i, 3])))
                        for i in range(P)])
    return online, offline


@pytest.mark.parametrize("fix_variance", [False, True])
def test_online_and_offline_lira_match_reference(fix_variance):
    rng = np.random.default_rng(1)
    K, P = 8, 40
    keep = keep_masks(K, P, seed=3).numpy()
    S = rng.normal(size=(K, P)) * rng.uniform(0.5, 2, P) + 1.5 * keep + rng.normal(size=P)
    target = rng.normal(size=P) + 1.0
    online, offline = reference_lira(target, S, keep, fix_variance)
    assert np.allclose(online_lira(target, S, keep, fix_variance), online, atol=1e-10)
    assert np.allclose(offline_lira(target, S, keep, fix_variance), offline, atol=1e-10)


def test_lira_separates_members_drawn_from_the_in_distribution():
    """Targets whose scores come from each sample's IN Gaussian are members; from OUT, not."""
    rng = np.random.default_rng(2)
    K, P = 16, 400
    keep = keep_masks(K, P, seed=0).numpy()
    mu_out, gap = rng.normal(size=P), rng.uniform(1, 3, P)
    S = mu_out + gap * keep + 0.5 * rng.normal(size=(K, P))
    member = rng.random(P) < 0.5
    target = mu_out + gap * member + 0.5 * rng.normal(size=P)
    assert roc_summary(member, online_lira(target, S, keep))["auc"] > 0.9
    assert roc_summary(member, offline_lira(target, S, keep))["auc"] > 0.9
    mu_in, _, mu_o, _ = gaussian_fits(S, keep)
    assert np.all(mu_in > mu_o - 1)


def test_keep_masks_are_balanced():
    K, P = 12, 300
    keep = keep_masks(K, P, seed=5)
    assert keep.dtype == torch.bool and keep.shape == (K, P)
    assert torch.all(keep.sum(0) == K // 2)                       # every sample IN for exactly K/2 shadows
    assert torch.all((keep.sum(1) - P / 2).abs() < 4 * math.sqrt(P / 4))   # each shadow ~ half the pool
    assert torch.equal(keep, keep_masks(K, P, seed=5)) and not torch.equal(keep, keep_masks(K, P, seed=6))
    for bad in (3, 2, 7):
        with pytest.raises(InputError, match="--n_shadows"):
            keep_masks(bad, P, seed=0)


def test_pool_labels_stay_aligned_when_shuffled():
    """The pool mixes train-split and test-split samples; after shuffling, each score must
    still be the score of that sample under its own label, looked up independently."""
    args = parse_args(["--dataset", "wine", "--model", "mlp", "--num_dataset", "100", "--num_forget", "5",
                       "--gpu", "-1"])
    data = load_data(args.dataset, args.data_dir, args.num_dataset, args.test_train_rate, args.seed)
    pool = build_pool(data, n_nonmembers=60, seed=0, min_nonmembers=5, device=torch.device("cpu"))
    assert set(pool.split.tolist()) == {0, 1} and pool.member.sum() == 100 and len(pool) == 160
    torch.manual_seed(0)
    from models import build_model
    from utils.training.functional import FlatModel
    fm = FlatModel(build_model("mlp", "wine", "none"))
    w = torch.randn(fm.d)
    perm = np.random.default_rng(0).permutation(len(pool))
    shuffled = pool.permuted(perm)
    got = model_scores(fm, w, shuffled.X, shuffled.y)
    splits = (data.train_split, data.test_split)
    for i in range(len(shuffled)):
        split = splits[shuffled.split[i]]
        x = split.fetch(torch.tensor([shuffled.pos[i]]))
        y = split.labels[torch.tensor([shuffled.pos[i]])]
        assert got[i] == pytest.approx(model_scores(fm, w, x, y)[0], rel=1e-5)   # float32 logits
    assert np.allclose(got, model_scores(fm, w, pool.X, pool.y)[perm])
    # the authors' bug (labels in pool order, inputs shuffled) would change the scores
    assert not np.allclose(got, model_scores(fm, w, shuffled.X, pool.y))


def test_pool_too_small_is_refused(dirs, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["main_MIAL.py", *WINE, *dirs, "--num_forget", "40", "--n_shadows", "4"])
    Experiment(parse_args(sys.argv[1:])).original()
    Experiment(parse_args(sys.argv[1:])).save_method("Retrain", torch.zeros(1091), {})
    with pytest.raises(InputError, match="pool too small"):
        main_MIAL.main(parse_args(sys.argv[1:]))
    monkeypatch.setattr(sys, "argv", ["main_MIAL.py", *WINE, *dirs, "--n_nonmembers", "100", "--n_shadows", "4"])
    Experiment(parse_args(sys.argv[1:])).save_method("Retrain", torch.zeros(1091), {})
    with pytest.raises(InputError, match="--n_nonmembers"):
        main_MIAL.main(parse_args(sys.argv[1:]))
    monkeypatch.setattr(sys, "argv", ["main_MIAL.py", *WINE, *dirs, "--n_shadows", "5"])
    with pytest.raises(InputError, match="--n_shadows"):
        main_MIAL.main(parse_args(sys.argv[1:]))


def test_main_mial_end_to_end(dirs, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["main_MIAL.py", *WINE, *dirs, "--n_shadows", "4"])
    with pytest.raises(InputError, match="main_retrain.py"):
        main_MIAL.main(parse_args(sys.argv[1:]))
    exp = Experiment(parse_args(WINE + dirs))
    exp.original()
    with pytest.raises(InputError, match="main_retrain.py"):
        main_MIAL.main(parse_args(sys.argv[1:]))
    exp.save_method("Retrain", exp.retrain(progress=False), {"note": "test"})
    first = run_script("main_MIAL.py", *WINE, *dirs, "--n_shadows", "4", "--json", "--log_scale")
    summary = json.loads(first.stdout)
    assert set(summary) == {"Original", "Retrain"}
    for entry in summary.values():
        assert {"auc_all", "auc_forget", "tpr_at_1fpr_forget", "tpr_at_0.1fpr_forget", "offline_auc_forget"} <= set(entry)
    second = run_script("main_MIAL.py", *WINE, *dirs, "--n_shadows", "4", "--json")
    assert json.loads(second.stdout) == summary                     # cached shadows, same numbers
    assert len(list((tmp_path / "log").rglob("lira-shadows-*.pt"))) == 1
    assert sorted(p.suffix for p in (tmp_path / "results").iterdir()) == [".json", ".png", ".txt"]
