"""ROC summaries shared by the membership-inference audits.

For membership labels l_i in {0, 1} and scores s_i (higher = "member"):

    AUC          = P(s_member > s_nonmember) + 0.5 P(tie)          (Mann-Whitney form)
    TPR@FPR<=a   = max { TPR(t) : FPR(t) <= a } over all thresholds t

With N negatives the FPR grid is 1/N, so TPR at a < 1/N is the TPR at FPR = 0.
"""
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def tpr_at_fpr(labels, scores, alpha):
    """Largest true-positive rate among thresholds whose false-positive rate is <= alpha."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= alpha].max())


def roc_summary(labels, scores, alphas=(0.01,)):
    """{'auc', 'tpr_at_<a>', 'fpr', 'tpr'} for binary ``labels`` and real ``scores``."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.min() == labels.max():
        raise ValueError("ROC needs both members and non-members")
    fpr, tpr, _ = roc_curve(labels, scores)
    out = {"auc": float(roc_auc_score(labels, scores)), "fpr": fpr, "tpr": tpr}
    for a in alphas:
        out[f"tpr_at_{a:g}"] = tpr_at_fpr(labels, scores, a)
    return out
