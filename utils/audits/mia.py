"""Membership inference against unlearning (Chen et al., CCS 2021; SPEC section 11).

For a sample x, p_orig = softmax(f(w_T; x)) and p_unl = softmax(f(w_unl; x)) are the
posteriors of the original and of the unlearned model. The attack tells forgotten
samples (label 1) from retained training samples (label 0) using one feature vector
per sample, built by ``--features`` (o = argsort(p_orig) in descending order):

    direct_diff    p_orig - p_unl                                   (C values)
    sorted_diff    p_orig[o] - p_unl[o]                              (C values)
    l2_distance    ||p_orig - p_unl||_2                              (1 value)
    direct_concat  [p_orig, p_unl]                                   (2C values)
    sorted_concat  [p_orig[o], p_unl[o]]                             (2C values)

The classifier is a scikit-learn logistic regression or MLP behind a StandardScaler.
Two measurements:

* in-sample (the authors'): fitted and scored on the same samples - it rewards
  memorising the attack's own training set, so it overstates the leak;
* held-out (reported first): out-of-fold scores of stratified k-fold cross-validation,
  so every sample is scored by a classifier that never saw it.

Both use balanced classes: the negatives are a seeded draw of as many retained samples
as there are forgotten ones, redrawn in each of ``repeats`` repetitions (a fresh fold
split each time); the reported figures are means over the repetitions.
"""
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from utils.audits.roc import roc_summary

FEATURES = ["direct_diff", "sorted_diff", "direct_concat", "sorted_concat", "l2_distance"]
DEFAULT_FOLDS = 5
DEFAULT_REPEATS = 5


def posteriors(fm, w, X, batch_size=2048):
    """softmax(f(w; X)) as a float64 NumPy array of shape (N, C), computed in batches."""
    out = []
    with torch.no_grad():
        for s in range(0, len(X), batch_size):
            out.append(torch.softmax(fm.logits(w, X[s:s + batch_size]).double(), dim=1).cpu())
    return torch.cat(out).numpy()


def features(p_orig, p_unl, method):
    """The attack's feature matrix for posteriors of shape (N, C) (see module docstring)."""
    p_orig = np.asarray(p_orig, dtype=np.float64)
    p_unl = np.asarray(p_unl, dtype=np.float64)
    if p_orig.shape != p_unl.shape:
        raise ValueError(f"posterior shapes differ: {p_orig.shape} vs {p_unl.shape}")
    if method in ("sorted_diff", "sorted_concat"):
        order = np.argsort(-p_orig, axis=1, kind="stable")
        p_orig = np.take_along_axis(p_orig, order, axis=1)
        p_unl = np.take_along_axis(p_unl, order, axis=1)
    if method in ("direct_diff", "sorted_diff"):
        return p_orig - p_unl
    if method in ("direct_concat", "sorted_concat"):
        return np.concatenate([p_orig, p_unl], axis=1)
    if method == "l2_distance":
        return np.linalg.norm(p_orig - p_unl, axis=1, keepdims=True)
    raise ValueError(f"unknown feature construction {method!r}; choose from {', '.join(FEATURES)}")


def attack_classifier(kind, seed):
    """StandardScaler + LogisticRegression ('LR') or + MLPClassifier ('MLP')."""
    if kind == "LR":
        clf = LogisticRegression(max_iter=2000)
    elif kind == "MLP":
        clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=2000, random_state=seed)
    else:
        raise ValueError(f"unknown attack model {kind!r}; choose LR or MLP")
    return make_pipeline(StandardScaler(), clf)


def attack_scores(clf, F):
    """Membership score of each row: P(member) from the fitted pipeline."""
    return clf.predict_proba(F)[:, 1]


def fit_and_score(kind, seed, F_fit, labels_fit, F_score):
    """Fit a fresh attack on (F_fit, labels_fit) and return its scores of F_score."""
    return attack_scores(attack_classifier(kind, seed).fit(F_fit, labels_fit), F_score)


def out_of_fold_scores(F, labels, kind, folds, seed):
    """Scores of every sample by a classifier fitted on the other folds (stratified k-fold)."""
    scores = np.empty(len(labels))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in split.split(F, labels):
        scores[test] = fit_and_score(kind, seed, F[train], labels[train], F[test])
    return scores


def audit(F_pos, F_neg, kind, seed, folds=DEFAULT_FOLDS, repeats=DEFAULT_REPEATS):
    """MIA-U figures for forgotten (F_pos) versus retained (F_neg) feature rows.

    Each repetition r draws len(F_pos) negatives (seed + r), then computes the held-out
    (out-of-fold) and the in-sample ROC. Returns means over repetitions, the std of the
    held-out AUC, and the ROC curves of repetition 0 for plotting.
    """
    m = len(F_pos)
    if m < 2:
        raise ValueError("MIA-U needs at least 2 forgotten samples")
    if len(F_neg) < m:
        raise ValueError(f"MIA-U needs at least {m} retained samples, got {len(F_neg)}")
    folds = min(folds, m)
    labels = np.r_[np.ones(m, dtype=int), np.zeros(m, dtype=int)]
    held, insample = [], []
    for r in range(repeats):
        rng = np.random.default_rng(seed + r)
        F = np.concatenate([F_pos, F_neg[rng.choice(len(F_neg), size=m, replace=False)]])
        held.append(roc_summary(labels, out_of_fold_scores(F, labels, kind, folds, seed + r)))
        insample.append(roc_summary(labels, fit_and_score(kind, seed + r, F, labels, F)))
    mean = lambda runs, key: float(np.mean([x[key] for x in runs]))
    return {"auc_heldout": mean(held, "auc"), "auc_heldout_std": float(np.std([x["auc"] for x in held])),
            "tpr_at_1fpr": mean(held, "tpr_at_0.01"),
            "auc_insample": mean(insample, "auc"), "tpr_at_1fpr_insample": mean(insample, "tpr_at_0.01"),
            "n_pos": m, "n_neg": m, "folds": folds, "repeats": repeats,
            "curves": {"heldout": (held[0]["fpr"], held[0]["tpr"]),
                       "insample": (insample[0]["fpr"], insample[0]["tpr"])}}
