"""Certified noise for the Hessian-free method (SPEC section 8, ``--application``).

* sigma: the analytic Gaussian mechanism (Balle & Wang, ICML 2018): the smallest sigma with

      Phi(Delta/(2 sigma) - eps sigma/Delta) - e^eps Phi(-Delta/(2 sigma) - eps sigma/Delta) <= delta,

  computed with ``dp_accounting.get_sigma_gaussian`` (sensitivity 1) scaled by Delta.
* certified epsilon: the inverse for a given sigma, the smallest epsilon >= 0 with
  delta(epsilon) <= delta (delta(epsilon) is the left side above, decreasing in epsilon),
  found by bisection on log delta(epsilon) so that e^epsilon never overflows; infinite
  (None with a reason) when sigma = 0, Delta is infinite, or no finite epsilon is found.
* Delta: the authors' bound on ||w_unlearned - w_retrain|| (eta0 = lr, gamma = lr_decay,
  c = clip, T steps, Bs = ceil(n/|B|) steps per epoch, m deletions, rho >= sup_t ||I - eta_t J_t||):

      Delta = 2 eta0^2 c (1-gamma) [ (rho^T - gamma^T)/(rho - gamma) - (rho^T - gamma^{2T})/(rho - gamma^2) ]
            + 2 eta0 c (m/|B|) rho^Bs gamma^Bs (rho^T - gamma^T)/(rho^Bs - gamma^Bs)

  with every quotient (a^K - b^K)/(a - b) evaluated as the geometric sum
  sum_{k<K} a^k b^{K-1-k}, which stays finite when a = b.
* looseness: Delta against the realised distance ||w_unlearned - w_retrain|| and their ratio.
* noise draws: draw k of the release is the k-th N(0, I) vector of one CPU generator seeded
  with the training seed, so draw k does not depend on how many draws are made; figures of
  the K noised models are summarised by mean, std (population), min and max.
* rho: ||I - eta_t J_t||_2 by power iteration on M^T M (M = I - eta_t J_t), warm-started
  from the previous step's vector; the maximum over steps.
* the release (``certificate``, ``noised_releases``, ``certified_text``): the record of
  ``--application`` for one unlearned model, its K noised copies saved as Proposed_noise
  (draw k keyed by --noise_seed k), and the human lines that report them.
"""
import math
import os
from dataclasses import dataclass
from typing import Optional

import torch
from dp_accounting import get_sigma_gaussian
from scipy.special import log_ndtr

from utils.common import resources
from utils.common.errors import InputError

NOTHING_CERTIFIED = "nothing certified"
RHO_MEASURED = "power iteration (a lower estimate of sup_t ||I - eta_t J_t||)"


def analytic_gaussian_sigma(epsilon, delta, sensitivity=1.0):
    """Smallest sigma making N(0, sigma^2) noise (epsilon, delta)-DP at L2 sensitivity Delta."""
    return sensitivity * get_sigma_gaussian(epsilon, delta)


def log_gaussian_delta(sigma, epsilon, sensitivity=1.0):
    """log delta(epsilon) of the analytic Gaussian mechanism, stable for large epsilon:

        log delta = log Phi(a - b) + log(1 - exp(epsilon + log Phi(-a - b) - log Phi(a - b))),

    a = Delta/(2 sigma), b = epsilon sigma/Delta; -inf when delta(epsilon) <= 0."""
    a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
    head = float(log_ndtr(a - b))
    x = epsilon + float(log_ndtr(-a - b)) - head
    return head + math.log(-math.expm1(x)) if x < 0 else -math.inf


def certified_epsilon(sigma, delta, sensitivity, rel_tol=1e-12, max_epsilon=1e300):
    """(epsilon, reason): the smallest epsilon that N(0, sigma^2 I) certifies at ``delta``
    for L2 sensitivity ``sensitivity``; (None, NOTHING_CERTIFIED + why) when infinite.

    Bisection on the monotone condition log delta(epsilon) <= log delta; the returned value
    is the upper end of the final bracket, so it is always certified."""
    if not (sigma >= 0 and sensitivity >= 0 and 0 < delta < 1):
        raise ValueError(f"certified_epsilon: need sigma >= 0, sensitivity >= 0, 0 < delta < 1; "
                         f"got {sigma}, {sensitivity}, {delta}")
    if math.isinf(sensitivity) or math.isnan(sensitivity):
        return None, f"{NOTHING_CERTIFIED}: the sensitivity bound Delta is not finite"
    if sensitivity == 0 or math.isinf(sigma):
        return 0.0, "certified"
    if sigma == 0:
        return None, f"{NOTHING_CERTIFIED}: no noise (sigma = 0)"
    target = math.log(delta)

    def ok(eps):
        return log_gaussian_delta(sigma, eps, sensitivity) <= target

    if ok(0.0):
        return 0.0, "certified"
    lo, hi = 0.0, 1.0
    while not ok(hi):
        lo, hi = hi, 2 * hi
        if hi > max_epsilon:
            return None, f"{NOTHING_CERTIFIED}: no finite epsilon up to {max_epsilon:.0e} (sigma too small for Delta)"
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi, "certified"


def looseness(sensitivity, realised):
    """Delta, the realised distance to Retrain (None when no Retrain) and Delta / distance."""
    ratio = sensitivity / realised if realised is not None and realised > 0 else None
    return {"sensitivity": sensitivity, "realised_distance": realised, "looseness_ratio": ratio}


def noise_draws(d, seed, K, dtype):
    """The first K standard normal vectors in R^d of a CPU generator seeded with ``seed``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return [torch.randn(d, generator=gen, dtype=dtype) for _ in range(K)]


def spread(values):
    """mean, std, min, max of a non-empty list of floats (std over the K draws, ddof 0)."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "k": len(values)}


def geometric_quotient(a, b, K):
    """(a^K - b^K) / (a - b) = sum_{k=0}^{K-1} a^k b^(K-1-k)."""
    return sum(a ** k * b ** (K - 1 - k) for k in range(K))


def sensitivity_bound(cfg, T, steps_per_epoch, m, batch_size, rho):
    """The authors' bound Delta on ||w_unlearned - w_retrain|| (see module docstring), with
    eta0, gamma and c from ``cfg`` (the training run's ``utils.training.train.SGDConfig``)."""
    lr, gamma, clip = cfg.lr, cfg.lr_decay, cfg.clip
    first = 2 * lr ** 2 * clip * (1 - gamma) * (
        geometric_quotient(rho, gamma, T) - geometric_quotient(rho, gamma ** 2, T)
        if gamma != 1 else 0.0)
    Bs = steps_per_epoch
    second = (2 * lr * clip * (m / batch_size) * rho ** Bs * gamma ** Bs
              * geometric_quotient(rho, gamma, T) / geometric_quotient(rho, gamma, Bs))
    return first + second


class PowerIteration:
    """Running max over steps of ||I - eta_t J_t||_2, estimated by power iteration on
    v -> M^T M v, M = I - eta_t J_t, warm-started across steps."""

    def __init__(self, d, dtype, device, iters=2, seed=0):
        gen = torch.Generator(device="cpu").manual_seed(seed)
        self.v = torch.randn(1, d, generator=gen, dtype=dtype).to(device)
        self.v /= self.v.norm()
        self.iters = iters
        self.per_step = []

    def step(self, op, eta):
        """Estimate ||M_t|| with the step operator ``op`` (internal layout is orthogonal)."""
        v = op.to_internal(self.v)
        est = 0.0
        for _ in range(self.iters):
            u = v - eta * op.jac(v)
            est = float(u.norm())
            v = u - eta * op.jac_T(u)
            v = v / v.norm()
        self.v = op.from_internal(v)
        self.per_step.append(est)
        return est

    @property
    def rho(self):
        return max(self.per_step) if self.per_step else 1.0


@dataclass(frozen=True)
class ReleaseConfig:
    """The settings of ``--application``, built once from the flags: the target (epsilon,
    delta), --std sigma (0: calibrate by the analytic Gaussian mechanism), --rho (None: the
    measured rho), the seed of the noise generator (the training seed), --noise_seeds K draws
    and the draw --noise_seed reported."""
    epsilon: float
    delta: float
    std: float
    rho: Optional[float]
    seed: int
    noise_seeds: int
    noise_seed: int

    @classmethod
    def from_args(cls, args):
        """From the parsed flags (``utils.common.options.parse_args``)."""
        return cls(args.epsilon, args.delta, args.std, args.rho, args.seed, args.noise_seeds, args.noise_seed)


def certificate(release, exp, batch_size, rho_measured, applies):
    """The record of --application for ``exp`` (trained with mini-batches of ``batch_size``):
    rho (--rho, else ``rho_measured``), the bound Delta (``sensitivity_bound``), sigma, and the
    epsilon that sigma certifies at delta (None with the reason when nothing is certified);
    ``applies``: whether Delta is established for the recursion run (the paper's)."""
    rho = release.rho if release.rho is not None else rho_measured
    T = len(exp.schedule)
    Bs = math.ceil(exp.n / batch_size)
    delta_bound = sensitivity_bound(exp.sgd_config, T, Bs, len(exp.U), batch_size, rho)
    sigma = release.std if release.std > 0 else analytic_gaussian_sigma(release.epsilon, release.delta, delta_bound)
    eps, why = certified_epsilon(sigma, release.delta, delta_bound)
    return {"epsilon": release.epsilon, "delta": release.delta, "rho": rho,
            "rho_measured": rho_measured, "sensitivity": delta_bound, "sigma": sigma,
            "sigma_source": "--std" if release.std > 0 else "analytic Gaussian mechanism",
            "rho_source": "--rho" if release.rho is not None else RHO_MEASURED,
            "certified_epsilon": eps, "certified_epsilon_note": why,
            "certificate_applies": applies}


# memory per noised draw beyond its two d-vectors (the noise and the noised model): tensor
# headers and the draw's metrics dict with the release record (about 2.7 kB measured on Wine)
DRAW_OVERHEAD = 4096
# disk per draw beyond its d parameters: the model file's archive headers, its integrity
# record and its JSON, each at least one 4 kB block
DRAW_FILE_OVERHEAD = 3 * 4096


def check_release_fits(release, exp):
    """Before any work: the K = --noise_seeds draws of ``noised_releases``, all held in memory
    at once (their spread is reported in every draw's record), fit the memory available, and
    their K saved models fit the file-size limit and the free space; InputError naming
    --noise_seeds otherwise."""
    K, d, elt = release.noise_seeds, exp.fm.d, exp.w0.element_size()
    what = f"--noise_seeds {K}: the {K:,} noised releases (d={d:,})"
    resources.check_memory(what, K * (2 * d * elt + DRAW_OVERHEAD), "lower --noise_seeds")
    path = exp.with_flags(noise_seed=0).method_paths("Proposed_noise")[0]
    resources.check_file_sizes({path: d * elt + 4096})
    resources.check_free_space(os.path.dirname(path), K * (d * elt + DRAW_FILE_OVERHEAD), what,
                               "lower --noise_seeds or free space")


def noised_releases(release, exp, w, w_re, cert, common):
    """Save the K draws w + sigma z_k (``noise_draws``) as Proposed_noise keyed by
    --noise_seed k; return the record of draw ``release.noise_seed``, with the spread over
    the K draws (and the distance to the Retrain model ``w_re`` when there is one)."""
    if not math.isfinite(cert["sigma"]):
        raise InputError(f"--application: sigma is not finite (Delta {cert['sensitivity']:.4g}); "
                         f"pass a finite --std or a smaller --rho")
    realised = float((w - w_re).double().norm()) if w_re is not None else None
    cert = dict(cert, **looseness(cert["sensitivity"], realised), noise_seeds=release.noise_seeds)
    draws = []
    for z in noise_draws(exp.fm.d, release.seed, release.noise_seeds, w.dtype):
        w_k = w + cert["sigma"] * z.to(exp.device)
        if not bool(torch.isfinite(w_k).all()):
            raise InputError(f"--application: the noised release is not finite (Delta {cert['sensitivity']:.4g}, "
                             f"sigma {cert['sigma']:.4g}); pass a finite --std or a smaller --rho")
        metrics = exp.metrics(w_k)
        if w_re is not None:
            metrics["distance"] = float((w_k.double() - w_re.double()).norm())
        draws.append((w_k, metrics))
    keys = [k for k in ("test_acc", "forget_acc", "remain_acc", "test_loss", "distance") if k in draws[0][1]]
    cert["noise_draws"] = {k: spread([m[k] for _, m in draws]) for k in keys}
    for k, (w_k, metrics) in enumerate(draws):
        metrics.update(common, **cert, noise_seed=k)
        # the draw index keys the saved model
        metrics["model"] = exp.with_flags(noise_seed=k).save_method("Proposed_noise", w_k, metrics)
    return draws[release.noise_seed][1]


def certified_text(c):
    """Human lines for the certified release: mechanism, certified epsilon, looseness, spread."""
    eps = (f"{c['certified_epsilon']:.4g}" if c["certified_epsilon"] is not None
           else f"infinite ({c['certified_epsilon_note']})")
    lines = [f"certified noise: epsilon {c['epsilon']}, delta {c['delta']}, rho {c['rho']:.6f}, "
             f"Delta {c['sensitivity']:.4g}, sigma {c['sigma']:.4g} ({c['sigma_source']}); "
             f"certified epsilon at this sigma and delta: {eps}"]
    if c["rho_source"] == RHO_MEASURED:
        lines.append("note: rho is measured by power iteration, which can only underestimate the operator norm, "
                     "so Delta and the certified epsilon are estimates, not a proof; --rho with a proven upper "
                     "bound makes them rigorous")
    if c["realised_distance"] is None:
        lines.append(f"looseness: Delta {c['sensitivity']:.4g}; no Retrain model, so no realised distance")
    else:
        ratio = "-" if c["looseness_ratio"] is None else f"{c['looseness_ratio']:.4g}"
        lines.append(f"looseness: Delta {c['sensitivity']:.4g} vs realised ||w_unlearned - w_retrain|| "
                     f"{c['realised_distance']:.4g}: ratio {ratio}")
    for k, s in c["noise_draws"].items():
        lines.append(f"  {k} over {s['k']} noise draw(s): mean {s['mean']:.4f}, std {s['std']:.4f}, "
                     f"min {s['min']:.4f}, max {s['max']:.4f}")
    return "\n".join(lines)
