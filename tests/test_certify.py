"""Certified noise: analytic Gaussian sigma, the sensitivity bound, the rho estimate."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from helpers import WINE, run_script
from utils.proposed.certify import NOTHING_CERTIFIED, PowerIteration, analytic_gaussian_sigma, \
    certified_epsilon, geometric_quotient, log_gaussian_delta, sensitivity_bound
from utils.curvature.hvp import _Jacobian
from utils.training.train import SGDConfig


def gaussian_delta(sigma, epsilon, sensitivity=1.0):
    """Slow reference: delta achieved by N(0, sigma^2) at sensitivity Delta (Balle & Wang,
    Theorem 8), in the direct form (overflows for large epsilon, fine for these tests)."""
    a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
    return norm.cdf(a - b) - math.exp(epsilon) * norm.cdf(-a - b)


def test_sigma_matches_published_value():
    # Balle & Wang (2018): epsilon = 1, delta = 1e-5, Delta = 1 -> sigma ~ 3.73 (classical: 4.84)
    assert analytic_gaussian_sigma(1.0, 1e-5) == pytest.approx(3.73, abs=0.01)


@pytest.mark.parametrize("eps,delta,sens", [(1.0, 0.1, 1.0), (0.5, 1e-5, 2.5), (3.0, 1e-3, 0.2)])
def test_sigma_is_the_smallest_satisfying_the_exact_condition(eps, delta, sens):
    sigma = analytic_gaussian_sigma(eps, delta, sens)
    ref = brentq(lambda s: gaussian_delta(s, eps, sens) - delta, 1e-3 * sens, 1e3 * sens, xtol=1e-12)
    assert sigma == pytest.approx(ref, rel=1e-8)
    assert gaussian_delta(sigma * 0.99, eps, sens) > delta > gaussian_delta(sigma * 1.01, eps, sens)


def random_settings(seed, k):
    """k fresh (epsilon, delta, Delta) with epsilon in [0.05, 50], delta in [1e-8, 0.5]."""
    rng = np.random.RandomState(seed)
    return zip(10 ** rng.uniform(np.log10(0.05), np.log10(50), k), 10 ** rng.uniform(-8, np.log10(0.5), k),
               10 ** rng.uniform(-2, 1, k))


def test_certified_epsilon_round_trip():
    for eps, delta, sens in random_settings(7, 25):
        sigma = analytic_gaussian_sigma(eps, delta, sens)
        back, reason = certified_epsilon(sigma, delta, sens)
        assert reason == "certified" and back == pytest.approx(eps, rel=1e-6)
        assert gaussian_delta(sigma, back, sens) <= delta * (1 + 1e-9)      # what is returned is certified


def brute_epsilon(sigma, delta, sens, hi, points=200001):
    """Slow reference: the first point of a fine grid on [0, hi] where the direct formula
    Phi(a - b) - e^eps Phi(-a - b) is <= delta."""
    eps = np.linspace(0.0, hi, points)
    a, b = sens / (2 * sigma), eps * sigma / sens
    d = norm.cdf(a - b) - np.exp(eps) * norm.cdf(-a - b)
    first = int(np.argmax(d <= delta))
    assert d[first] <= delta
    return eps[first], hi / (points - 1)


def test_certified_epsilon_matches_a_brute_scan():
    rng = np.random.RandomState(11)
    for _ in range(12):
        sens, delta = 10 ** rng.uniform(-1, 1), 10 ** rng.uniform(-6, -1)
        sigma = sens * 10 ** rng.uniform(-0.7, 1)
        got, _ = certified_epsilon(sigma, delta, sens)
        ref, step = brute_epsilon(sigma, delta, sens, hi=2 * got + 1)
        assert ref - step <= got <= ref + 1e-9


def test_certified_epsilon_decreases_in_sigma_and_infinite_cases():
    sens, delta = 1.96, 0.1
    sigmas = np.geomspace(1e-4, 10, 30)
    eps = [certified_epsilon(s, delta, sens)[0] for s in sigmas]
    assert all(e1 > e2 for e1, e2 in zip(eps, eps[1:]) if e2 > 0)
    assert eps[-1] == 0.0 and gaussian_delta(10, 0.0, sens) <= delta
    # the log-space form agrees with the direct formula where the latter is representable
    for s, e in [(0.5, 3.0), (2.0, 0.2), (0.05, 600.0)]:
        direct = gaussian_delta(s, e, sens)
        assert math.log(direct) == pytest.approx(log_gaussian_delta(s, e, sens), rel=1e-6)
    for sigma, s in [(0.0, sens), (1.0, math.inf), (1e-200, sens)]:
        value, reason = certified_epsilon(sigma, delta, s)
        assert value is None and reason.startswith(NOTHING_CERTIFIED)


def test_geometric_quotient_and_bound():
    for a, b, K in [(0.99, 0.9, 50), (1.01, 0.995, 30), (0.7, 0.7, 12)]:
        direct = (a ** K - b ** K) / (a - b) if a != b else K * a ** (K - 1)
        assert geometric_quotient(a, b, K) == pytest.approx(direct, rel=1e-10)
    lr, g, c, T, Bs, m, B, rho = 0.05, 0.995, 5, 480, 32, 10, 32, 0.999
    explicit = (2 * lr ** 2 * c * (1 - g) * ((rho ** T - g ** T) / (rho - g) - (rho ** T - g ** (2 * T)) / (rho - g ** 2))
                + 2 * lr * c * (m / B) * rho ** Bs * g ** Bs * (rho ** T - g ** T) / (rho ** Bs - g ** Bs))
    cfg = SGDConfig(lr, g, c, 0.0)
    assert sensitivity_bound(cfg, T, Bs, m, B, rho) == pytest.approx(explicit, rel=1e-10)
    assert sensitivity_bound(cfg, T, Bs, 2 * m, B, rho) > sensitivity_bound(cfg, T, Bs, m, B, rho)


class Dense(_Jacobian):
    def __init__(self, H):
        self.H = H
        super().__init__(torch.zeros(len(H), dtype=H.dtype), 1.0, 0.0)

    def hvp_reg(self, V):
        return V @ self.H.T


def test_power_iteration_finds_the_operator_norm():
    torch.manual_seed(0)
    Q = torch.linalg.qr(torch.randn(30, 30, dtype=torch.float64))[0]
    H = Q @ torch.diag(torch.linspace(-0.5, 8.0, 30, dtype=torch.float64)) @ Q.T
    power = PowerIteration(30, torch.float64, "cpu", iters=5)
    for _ in range(20):
        power.step(Dense(H), 0.1)
    exact = torch.linalg.matrix_norm(torch.eye(30, dtype=torch.float64) - 0.1 * H, 2)
    assert power.rho == pytest.approx(float(exact), rel=1e-6)


@pytest.mark.slow
def test_main_proposed_end_to_end(dirs):
    import json
    run_script("main_retrain.py", *WINE, *dirs)
    out = json.loads(run_script("main_proposed.py", *WINE, *dirs, "--application", "--json").stdout)
    hf, noisy, orig = out["Proposed"], out["Proposed_noise"], out["Original"]
    assert hf["distance"] < 0.1 * orig["distance"]
    assert noisy["sigma"] == pytest.approx(analytic_gaussian_sigma(1.0, 0.1, noisy["sensitivity"]))
    assert noisy["rho"] > 0 and math.isfinite(noisy["sensitivity"])
    assert out["Proposed"]["precompute_s_now"] > 0
    again = json.loads(run_script("main_proposed.py", *WINE, *dirs, "--batch_unlearn", "--num_forget", "3",
                                  "--json").stdout)
    assert again["Proposed"]["precompute_s_now"] == 0.0          # bank reused for another U
    bad = run_script("main_proposed.py", *WINE, *dirs, "--mem_budget_mb", "-1", check=False)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --mem_budget_mb")
