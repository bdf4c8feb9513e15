"""U-LiRA: can an attacker tell an unlearned model from a retrained one? (in the spirit of
Hayes et al. 2024, "Inexact unlearning needs more careful evaluations").

The distance to Retrain says how far a method lands from one retrain; this test says
whether the difference is visible to a likelihood-ratio attacker who knows the training
recipe and can train shadow models.

Shadows. The pool is the n training samples; the targets are the forget set U.
``keep[k]`` (``utils.audits.lira.keep_masks``) puts every sample in the training set D_k of
exactly K/2 shadows. Shadow k, with the target's SGD (epochs, batch, lr, decay, clip,
lambda) from its own initial weights and batch schedule (``utils.audits.lira.shadow_seed``),
yields, for U_k = U inside D_k:

    Original_k     w_T of D_k (nothing unlearned: the upper reference)
    Proposed_k     w_T + sum_{u in U_k} a_u, the Hessian-free recursion run in replay mode
                   (one replay of the shadow's training, the summed approximator)
    Retrain_k      the exact retrain on D_k \\ U_k (same w_0, same schedule, U_k removed)
    Retrain'_k     an independent exact retrain on D_k \\ U_k from a fresh seed (own w_0
                   and schedule): the "method" of the Retrain row, the test's calibration

Test. phi = log-scaled confidence (``utils.audits.lira.logit_score``). For a method M, target u
and held-out shadow k (leave-one-shadow-out: the Gaussians never see the models scored):

    alternative  N(mu_M, s_M^2)  fitted to phi_u(M_j),       j != k, u in D_j
    null         N(mu_R, s_R^2)  fitted to phi_u(Retrain_j), j != k (all: none saw u)
    Lambda(w)  = log N(phi_u(w); mu_M, s_M^2) - log N(phi_u(w); mu_R, s_R^2)

Every pair (k, u) with u in D_k gives a positive, Lambda(M_k), and a negative,
Lambda(Retrain_k). AUC and TPR at 1% / 0.1% FPR over all pairs say how well M's models
are told apart from retrained ones: 0.5 / alpha is indistinguishable. The AUC's standard
deviation is bootstrapped over the targets (a target's pairs are resampled together). Retrain'_k has the
law of Retrain_k, so the Retrain row is ~0.5 up to the test's own noise.
"""
import os
import time

import numpy as np
import torch
from scipy.stats import norm
from tqdm import tqdm

from models import build_model
from utils.common import artifacts, keys, resources
from utils.common.errors import InputError
from utils.training.finite import require_finite
from utils.training.functional import FlatModel
from utils.proposed.hf import recursion
from utils.audits.lira import KEEP_MASK_BYTES, STD_FLOOR, keep_masks, model_scores, shadow_seed
from utils.common.provenance import provenance
from utils.audits.roc import roc_summary
from utils.training.train import make_schedule, sgd

KEEP_SEED_OFFSET = 27644437        # the shadows' keep masks: decorrelated from LiRA's and from U
INDEPENDENT_OFFSET = 100_000       # shadow index offset of the independent retrains' seeds
ALPHAS = (0.01, 0.001)
MIN_SHADOWS = 6                    # leave-one-out keeps >= 2 alternative scores per target
BOOTSTRAP_REPS = 200               # resamplings of the targets for the AUC's standard deviation


# ---------------------------------------------------------------------- the test
def check_shadow_count(K):
    if K % 2 or K < MIN_SHADOWS:
        raise InputError(f"--n_shadows: U-LiRA needs an even number of shadows >= {MIN_SHADOWS} (each target "
                         f"in half of them; leaving one out keeps >= 2 scores per Gaussian), got {K}")


def gaussian_fit(S, mask, fix_variance=False):
    """Per-column (mu, sd) of S (J, P) over the rows where ``mask`` (J, P) is True; unbiased
    variance; with ``fix_variance`` one variance for all columns (the mean of theirs)."""
    S = np.asarray(S, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    count = mask.sum(0)
    if count.min() < 2:
        raise ValueError("a Gaussian fit needs at least 2 scores per column")
    mu = np.where(mask, S, 0.0).sum(0) / count
    var = np.where(mask, (S - mu) ** 2, 0.0).sum(0) / (count - 1)
    if fix_variance:
        var = np.full_like(var, var.mean())
    return mu, np.maximum(np.sqrt(var), STD_FLOOR)


def heldout_scores(phi_method, phi_null, member, fix_variance=False):
    """(positives, negatives): Lambda of M_k and of Retrain_k for every pair (k, u) with
    member[k, u], the Gaussians fitted leaving shadow k out.

    phi_method, phi_null: (K, m) scores of the method's and the retrained shadow models on
    the targets; member: (K, m) bool, target u in shadow k's training set."""
    phi_method = np.asarray(phi_method, dtype=np.float64)
    phi_null = np.asarray(phi_null, dtype=np.float64)
    member = np.asarray(member, dtype=bool)
    pos, neg = [], []
    for k in range(len(member)):
        others = np.arange(len(member)) != k
        sel = member[k]
        if not sel.any():
            continue
        mu_a, sd_a = gaussian_fit(phi_method[others], member[others], fix_variance)
        mu_0, sd_0 = gaussian_fit(phi_null[others], np.ones_like(member[others]), fix_variance)

        def lam(phi):
            return norm.logpdf(phi, mu_a[sel], sd_a[sel]) - norm.logpdf(phi, mu_0[sel], sd_0[sel])
        pos.append(lam(phi_method[k, sel]))
        neg.append(lam(phi_null[k, sel]))
    return np.concatenate(pos), np.concatenate(neg)


def paired_gap(phi_method, phi_null, member):
    """mean |phi_u(M_k) - phi_u(Retrain_k)| over the pairs (k, u) with member[k, u]: how far a
    method's shadow sits from its own exact retrain on the score the attacker reads (for
    Original the signal to remove; for the independent retrain the seed-to-seed spread)."""
    member = np.asarray(member, dtype=bool)
    gap = np.abs(np.asarray(phi_method, dtype=np.float64) - np.asarray(phi_null, dtype=np.float64))
    return float(gap[member].mean())


def pair_targets(member):
    """Target index of every pair, in ``heldout_scores``' order (shadow by shadow, targets ascending)."""
    return np.nonzero(np.asarray(member, dtype=bool))[1]


def bootstrap_auc_sd(pos, neg, targets, reps=BOOTSTRAP_REPS, seed=0):
    """Standard deviation of the AUC over ``reps`` resamplings of the targets with replacement
    (all pairs of a drawn target come along: a target's pairs are not independent)."""
    from sklearn.metrics import roc_auc_score
    targets = np.asarray(targets)
    ids = np.unique(targets)
    rows = [np.flatnonzero(targets == t) for t in ids]
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(reps):
        idx = np.concatenate([rows[i] for i in rng.integers(0, len(ids), len(ids))])
        aucs.append(roc_auc_score(np.r_[np.ones(len(idx)), np.zeros(len(idx))], np.r_[pos[idx], neg[idx]]))
    return float(np.std(aucs, ddof=1))


def summarise(pos, neg, alphas=ALPHAS):
    """AUC, TPR at each FPR alpha, number of pairs and the ROC curve (positives = method)."""
    r = roc_summary(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg], alphas)
    out = {"auc": r["auc"], "pairs": len(pos), "curve": (r["fpr"], r["tpr"])}
    for a in alphas:
        out[f"tpr_at_{a:g}"] = r[f"tpr_at_{a:g}"]
    return out


# ---------------------------------------------------------------------- the shadows
def cache_paths(exp):
    """(shadows path, Proposed path) under the training folder's cache/, keyed by
    keys.FAMILIES['ulira-shadows' / 'ulira-proposed'] and the forget set U."""
    extra = {"U": exp.U.tolist()}
    return (exp.cache_path("ulira-shadows", keys.FAMILIES["ulira-shadows"], extra),
            exp.cache_path("ulira-proposed", keys.FAMILIES["ulira-proposed"], extra))


def initial_weights(exp, seed):
    a = exp.args
    torch.manual_seed(seed)
    return FlatModel(build_model(a.model, a.dataset, a.pretrained)).initial_vector().to(exp.device)


def shadow_setup(exp, keep_k, U, seed):
    """(X_k, y_k, w0, schedule, positions of U_k in D_k, keep mask of D_k \\ U_k) of one shadow."""
    a = exp.args
    idx = np.flatnonzero(keep_k)
    rows = np.flatnonzero(np.isin(idx, U))
    t = torch.as_tensor(idx, device=exp.device)
    kept = torch.ones(len(idx), dtype=torch.bool)
    kept[torch.as_tensor(rows, dtype=torch.long)] = False
    schedule = [b.to(exp.device) for b in make_schedule(len(idx), a.batch_size, a.epochs, seed, a.reshuffle)]
    return exp.X[t], exp.y[t], initial_weights(exp, seed), schedule, torch.as_tensor(rows, dtype=torch.long), \
        kept.to(exp.device)


def replay_unlearn(exp, w0, X, y, schedule, rows):
    """(w_T, w_T + sum_{u in rows} a_u): one replay of training with the summed recursion."""
    w_T, A, _ = recursion(exp.fm, w0, X, y, schedule, exp.sgd_config, rows, exp.unlearn, rho_iters=0, summed=True)
    w_P = w_T + A[0] if len(rows) else w_T.clone()
    return w_T, require_finite(w_P, "a U-LiRA shadow's Proposed model", "lower --lr")


BASE_MODELS = ("Original", "Retrain", "Retrain_independent")     # the shadow cache
PROPOSED_MODELS = ("Proposed",)                                  # the Proposed shadow cache, per variant


def cache_expect(K, n, d, names):
    """{entry: shape} of a shadow cache holding the models ``names``: keep (K, n), each model
    (K, d) and its seconds (K,)."""
    return {"keep": (K, n), **{name: (K, d) for name in names}, **{f"{name}_s": (K,) for name in names}}


def cache_bytes(K, n, d, elt, names):
    """Estimated size of a shadow cache file (``cache_expect``; elt bytes per parameter)."""
    return K * (n + len(names) * (d * elt + 8)) + 4096


def check_resources(exp, K):
    """Before any shadow is trained: the K shadows fit in memory (the keep masks as they are
    built, the four (K, d) model blocks, the (K, m) scores) and the caches still to be written
    fit the file-size limit and the free space, in a writable directory; InputError otherwise."""
    n, d, m, elt = exp.n, exp.fm.d, len(exp.U), exp.w0.element_size()
    resources.check_memory(
        f"--n_shadows {K}: the U-LiRA shadows ({K:,} x 4 models of d={d:,}, keep masks {K:,} x n={n:,})",
        K * (n * KEEP_MASK_BYTES + 4 * d * elt + 4 * m * 8 * 3), "lower --n_shadows")
    sizes = {path: cache_bytes(K, n, d, elt, names)
             for path, names in zip(cache_paths(exp), (BASE_MODELS, PROPOSED_MODELS)) if not os.path.exists(path)}
    if sizes:
        exp.check_writable([os.path.dirname(next(iter(sizes)))], sizes)


def shadow_models(exp, K, progress=True):
    """{'keep' (K, n) bool, 'Original', 'Proposed', 'Retrain', 'Retrain_independent': (K, d),
    '<name>_s': (K,) seconds}, and the seconds spent now (0 when all was cached).

    Cached under the training folder (``cache_paths``): the Original and Retrain shadows
    once per (K, retrain_norm, U), Proposed once more per recursion variant. Held under
    locks, so a second process on the same configuration waits and reuses."""
    check_resources(exp, K)
    base_path, prop_path = cache_paths(exp)
    with artifacts.lock(base_path, "the U-LiRA shadows"), artifacts.lock(prop_path, "the U-LiRA Proposed shadows"):
        return _cached_or_computed(exp, K, progress, base_path, prop_path)


def _load(path, keep, d, names):
    """The shadow cache at ``path`` (None when absent), verified: its integrity record, the
    entries and shapes of ``cache_expect``, finite models and seconds, and the keep masks."""
    if not os.path.exists(path):
        return None
    K, n = keep.shape
    t = artifacts.load_tensors(path, remedy=f"delete {path} and rerun", expect=cache_expect(K, n, d, names),
                               finite=[*names, *(f"{name}_s" for name in names)])
    if t["keep"].dtype != torch.bool or not torch.equal(t["keep"], torch.from_numpy(keep)):
        raise InputError(f"U-LiRA shadow cache {path} does not match the keep masks; delete it and rerun")
    return t


def _cached_or_computed(exp, K, progress, base_path, prop_path):
    a, method = exp.args, exp.unlearn
    keep = keep_masks(K, exp.n, a.seed + KEEP_SEED_OFFSET).numpy()
    U = exp.U.numpy()
    d = exp.fm.d
    base, prop = _load(base_path, keep, d, BASE_MODELS), _load(prop_path, keep, d, PROPOSED_MODELS)
    if base is not None and prop is not None:
        return dict(base, **prop), 0.0
    new = {name: torch.empty(K, d, dtype=exp.w0.dtype) for name in ("Original", "Proposed", "Retrain",
                                                                  "Retrain_independent")}
    secs = {f"{name}_s": torch.zeros(K, dtype=torch.float64) for name in new}
    start = time.perf_counter()
    for k in tqdm(range(K), desc="U-LiRA shadows", disable=not (progress and exp.progress)):
        seed = shadow_seed(a.seed, k)
        X, y, w0, schedule, rows, kept = shadow_setup(exp, keep[k], U, seed)
        if prop is None:
            t0 = time.perf_counter()
            w_T, w_P = replay_unlearn(exp, w0, X, y, schedule, rows)
            new["Original"][k], new["Proposed"][k] = w_T.cpu(), w_P.cpu()
            secs["Proposed_s"][k] = time.perf_counter() - t0
            if base is not None and not torch.allclose(w_T.cpu(), base["Original"][k], rtol=1e-5, atol=1e-6):
                raise InputError(f"the replay of shadow {k} does not end at its cached Original; delete "
                                 f"{base_path} and rerun")
        if base is None:
            if prop is not None:        # Proposed cached, the shadows not: train the Original alone
                t0 = time.perf_counter()
                new["Original"][k] = sgd(exp.fm, w0, X, y, schedule, exp.sgd_config).cpu()
                secs["Original_s"][k] = time.perf_counter() - t0
            t0 = time.perf_counter()
            new["Retrain"][k] = sgd(exp.fm, w0, X, y, schedule, exp.sgd_config, keep=kept, norm=method.retrain_norm).cpu()
            secs["Retrain_s"][k] = time.perf_counter() - t0
            seed2 = shadow_seed(a.seed, k + INDEPENDENT_OFFSET)
            _, _, w0b, schedule_b, _, _ = shadow_setup(exp, keep[k], U, seed2)
            t0 = time.perf_counter()
            new["Retrain_independent"][k] = sgd(exp.fm, w0b, X, y, schedule_b, exp.sgd_config, keep=kept,
                                                norm=method.retrain_norm).cpu()
            secs["Retrain_independent_s"][k] = time.perf_counter() - t0
    seconds = time.perf_counter() - start
    record = {"config": exp.train_config(), "n_shadows": K, "forget_indices": exp.U.tolist(),
              "data_source": exp.data.source, "provenance": provenance(exp)}
    keep_t = torch.from_numpy(keep)
    if base is None:
        base = {"keep": keep_t, **{n: new[n] for n in BASE_MODELS}, **{f"{n}_s": secs[f"{n}_s"] for n in BASE_MODELS}}
        artifacts.save_tensors(base_path, base)
        artifacts.write_json(base_path[:-3] + ".json", dict(record, seconds=seconds))
    if prop is None:
        prop = {"keep": keep_t, "Proposed": new["Proposed"], "Proposed_s": secs["Proposed_s"]}
        artifacts.save_tensors(prop_path, prop)
        artifacts.write_json(prop_path[:-3] + ".json", dict(record, hf=method.hf.label,
                                                            retrain_norm=method.retrain_norm, seconds=seconds))
    return dict(base, **prop), seconds


def target_scores(exp, models):
    """{name: (K, m) phi of each shadow model of ``models`` on the targets U}."""
    U = exp.U.to(exp.device)
    X, y = exp.X[U], exp.y[U]
    out = {}
    for name in ("Original", "Proposed", "Retrain", "Retrain_independent"):
        W = models[name]
        out[name] = np.stack([model_scores(exp.fm, W[k].to(exp.device), X, y, exp.eval_batch) for k in range(len(W))])
    return out
