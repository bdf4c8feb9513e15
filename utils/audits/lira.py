"""Likelihood-ratio membership inference, LiRA (Carlini et al., S&P 2022; SPEC section 12).

Score of a model w on a labelled sample (x, y), from the logits z = f(w; x):

    phi = log p_y - log sum_{j != y} p_j = z_y - logsumexp_{j != y} z_j

(the softmax normaliser cancels, so phi never forms 1 - p_y and stays finite).

K shadow models are trained on halves of a pool; ``keep[k, i]`` says whether pool sample
i was in shadow k's training set. For every sample, the shadow scores where it was IN
and where it was OUT are fitted with Gaussians N(mu_in, s_in^2) and N(mu_out, s_out^2)
(unbiased per-sample variances; with ``fix_variance`` each variance is instead the
pooled within-sample variance, the mean of the per-sample variances, the same for all
samples). For a target's score phi:

    online  LiRA:  Lambda = log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)
    offline LiRA:  Lambda = log Phi((phi - mu_out) / s_out)      (one-sided, OUT only)

Higher Lambda = more likely a member. Standard deviations are floored at STD_FLOOR.
"""
import numpy as np
import torch
from scipy.stats import norm

from utils.common.errors import InputError

STD_FLOOR = 1e-6


def check_shadow_count(K):
    """K must be even (each sample IN for exactly K/2 shadows) and give >= 2 IN and OUT scores."""
    if K % 2 or K < 4:
        raise InputError(f"--n_shadows: LiRA needs an even number of shadow models >= 4 "
                         f"(each sample IN for exactly half, >= 2 scores per Gaussian), got {K}")


# bytes per entry of the (K, P) keep masks while ``keep_masks`` builds them: the float32 draw,
# argsort's int64 result and its int64 working copy, the bool mask and its transposed copy
KEEP_MASK_BYTES = 4 + 8 + 8 + 1 + 1


def keep_masks(K, P, seed):
    """Bool (K, P): for each pool sample a random permutation of the K shadows, the first K/2 IN."""
    check_shadow_count(K)
    gen = torch.Generator().manual_seed(seed)
    perms = torch.argsort(torch.rand(P, K, generator=gen), dim=1)   # row i: a permutation of range(K)
    keep = torch.zeros(P, K, dtype=torch.bool)
    keep.scatter_(1, perms[:, : K // 2], True)
    return keep.T.contiguous()


def logit_score(logits, y):
    """phi_i = z_{i,y_i} - logsumexp_{j != y_i} z_{i,j} in float64, for logits (N, C) and labels (N,)."""
    z = logits.double()
    y = y.long().view(-1, 1)
    others = z.scatter(1, y, float("-inf"))
    return z.gather(1, y).squeeze(1) - torch.logsumexp(others, dim=1)


def model_scores(fm, w, X, y, batch_size=2048):
    """phi of parameters w on every (X_i, y_i), as a float64 NumPy vector."""
    out = []
    with torch.no_grad():
        for s in range(0, len(y), batch_size):
            out.append(logit_score(fm.logits(w, X[s:s + batch_size]), y[s:s + batch_size]).cpu())
    return torch.cat(out).numpy()


def gaussian_fits(shadow_scores, keep, fix_variance=False):
    """Per-sample (mu_in, s_in, mu_out, s_out) from shadow scores (K, P) and keep (K, P)."""
    S = np.asarray(shadow_scores, dtype=np.float64)
    keep = np.asarray(keep, dtype=bool)
    fits = []
    for mask in (keep, ~keep):
        count = mask.sum(0)
        mu = np.where(mask, S, 0.0).sum(0) / count
        var = np.where(mask, (S - mu) ** 2, 0.0).sum(0) / (count - 1)
        if fix_variance:
            var = np.full_like(var, var.mean())
        fits += [mu, np.maximum(np.sqrt(var), STD_FLOOR)]
    return tuple(fits)


def online_lira(target_scores, shadow_scores, keep, fix_variance=False):
    """log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2) for every pool sample."""
    mu_in, s_in, mu_out, s_out = gaussian_fits(shadow_scores, keep, fix_variance)
    phi = np.asarray(target_scores, dtype=np.float64)
    return norm.logpdf(phi, mu_in, s_in) - norm.logpdf(phi, mu_out, s_out)


def offline_lira(target_scores, shadow_scores, keep, fix_variance=False):
    """log Phi((phi - mu_out) / s_out): how far above the OUT distribution the target's score is."""
    _, _, mu_out, s_out = gaussian_fits(shadow_scores, keep, fix_variance)
    return norm.logcdf((np.asarray(target_scores, dtype=np.float64) - mu_out) / s_out)


def shadow_seed(seed, k):
    """Seed of shadow k's initial weights and batch schedule (distinct from the target's)."""
    return 1_000_003 * (seed + 1) + 7 * k + 1

