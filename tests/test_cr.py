"""Certified removal (utils/baselines/certified_removal.py) on fresh random float64 problems:
the objective against autograd, the Newton step against a dense solve, Corollary 1 and the
Hessian-Lipschitz constant attacked on many inputs, the Hessian-free step against the Newton
step, epsilon <-> sigma_b, and the loud refusal when the optimum is not reached."""
import math

import pytest
import torch
import torch.nn.functional as F

from models import Logistic
from utils.baselines import certified_removal as cr
from utils.common.data import unit_rows
from utils.common.errors import InputError
from utils.proposed.hf import recursion
from utils.training.functional import FlatModel
from utils.training.train import SGDConfig


def problem(gen, n=40, q=5, C=3, lam=0.1, scale=1.0, sigma=0.5):
    X = torch.randn(n, q, generator=gen, dtype=torch.float64) * scale
    y = torch.randint(0, C, (n,), generator=gen)
    b = sigma * torch.randn(C * (q + 1), generator=gen, dtype=torch.float64)
    return cr.Objective(X, y, C, lam, b), X, y, b


def reference_loss(w, X, y, C, lam, b, keep, n_reg):
    """L_b written directly with F.linear / F.cross_entropy on the parameter layout."""
    q = X.shape[1]
    W, bias = w[:C * q].view(C, q), w[C * q:]
    ce = F.cross_entropy(F.linear(X[keep], W, bias), y[keep], reduction="sum")
    return ce + 0.5 * n_reg * lam * w @ w + b @ w


def random_w(gen, d, scale=1.0):
    return scale * torch.randn(d, generator=gen, dtype=torch.float64)


def test_gradient_hessian_and_residual_match_autograd():
    gen = torch.Generator().manual_seed(0)
    for trial in range(5):
        obj, X, y, b = problem(gen, scale=1 + trial)
        keep = torch.rand(len(y), generator=gen) > 0.3
        w = random_w(gen, obj.d)
        f = lambda v: reference_loss(v, X, y, obj.C, obj.lam, b, keep, len(y))
        g = torch.func.grad(f)(w)
        H = torch.autograd.functional.hessian(f, w)
        assert torch.allclose(obj.gradient(w, keep), g, rtol=1e-10, atol=1e-10)
        assert torch.allclose(obj.hessian(w, keep), H, rtol=1e-10, atol=1e-10)
        v = random_w(gen, obj.d)
        assert torch.allclose(obj.hvp(w, keep, v), H @ v, rtol=1e-10, atol=1e-10)
        beta, margin = obj.residual(w, keep)
        assert beta == pytest.approx(float(g.norm()), rel=1e-12) and 0 < margin < 1e-9 * max(1.0, beta)
        assert obj.value(w, keep) == pytest.approx(float(f(w)), rel=1e-12)


def test_spectral_norm_is_the_largest_singular_value():
    gen = torch.Generator().manual_seed(8)
    for _ in range(20):
        X = torch.randn(int(torch.randint(1, 50, (1,), generator=gen)), 7, generator=gen, dtype=torch.float64)
        assert cr.spectral_norm(X) == pytest.approx(float(torch.linalg.svdvals(X)[0]), rel=1e-12)


def test_newton_step_is_the_dense_solve():
    gen = torch.Generator().manual_seed(1)
    for lam in (1e-3, 1.0):
        obj, X, y, b = problem(gen, lam=lam)
        keep = obj.all()
        keep[:3] = False
        w = random_w(gen, obj.d, 0.3)
        f = lambda v: reference_loss(v, X, y, obj.C, lam, b, keep, len(y))
        expect = w - torch.linalg.solve(torch.autograd.functional.hessian(f, w), torch.func.grad(f)(w))
        got, s, H, g = cr.newton_step(obj, w, keep)
        assert torch.allclose(got, expect, rtol=1e-9, atol=1e-11)


def test_polish_reaches_the_optimum_and_refuses_loudly_when_it_cannot():
    gen = torch.Generator().manual_seed(2)
    obj, X, y, b = problem(gen, lam=1e-2, scale=3.0)
    w, gnorm, steps = cr.polish(obj, torch.zeros(obj.d, dtype=torch.float64), obj.all(), 1e-9)
    assert gnorm <= 1e-9 and float(obj.gradient(w, obj.all()).norm()) == gnorm and steps > 0
    with pytest.raises(InputError, match="optimum was not reached"):
        cr.polish(obj, torch.zeros(obj.d, dtype=torch.float64), obj.all(), 1e-9, max_newton=1)
    with pytest.raises(InputError, match="--cr_tol"):
        cr.polish(obj, w, obj.all(), 1e-30, max_newton=5)   # below float64 rounding: never met


def test_third_central_moment_and_hessian_lipschitz_constant_are_never_exceeded():
    gen = torch.Generator().manual_seed(3)
    # the moment bound: |E_p (v - E_p v)^3| <= range(v)^3 / (6 sqrt 3), range <= sqrt(2) ||v||
    worst = 0.0
    for _ in range(2000):
        C = int(torch.randint(2, 8, (1,), generator=gen))
        p = torch.softmax(3 * torch.randn(C, generator=gen, dtype=torch.float64), 0)
        v = torch.randn(C, generator=gen, dtype=torch.float64)
        m = p @ v
        third = float(p @ (v - m) ** 3)
        assert abs(third) <= float(v.max() - v.min()) ** 3 * cr.GAMMA_BINARY * (1 + 1e-12)
        worst = max(worst, abs(third) / float(v.norm()) ** 3)
    assert worst <= cr.GAMMA_LOGITS
    # two-point p with v = (1, -1)/sqrt 2 attains the constant: it cannot be lowered
    t = (1 - 1 / math.sqrt(3)) / 2
    p, v = torch.tensor([t, 1 - t], dtype=torch.float64), torch.tensor([1, -1], dtype=torch.float64) / math.sqrt(2)
    assert abs(float(p @ (v - p @ v) ** 3)) == pytest.approx(cr.GAMMA_LOGITS, rel=1e-12)
    # per-sample Hessians at random pairs of points (and finite differences): Lipschitz with
    # constant gamma ||x~_i||^3
    for trial in range(200):
        obj, X, y, b = problem(gen, n=1, q=4, C=int(torch.randint(2, 6, (1,), generator=gen)),
                               scale=float(torch.rand(1, generator=gen)) * 4, lam=0.0)
        keep = obj.all()
        w1 = random_w(gen, obj.d, 2.0)
        h = 10.0 ** float(torch.empty(1).uniform_(-6, 0, generator=gen))
        w2 = w1 + h * random_w(gen, obj.d)
        gap = float(torch.linalg.matrix_norm(obj.hessian(w1, keep) - obj.hessian(w2, keep), ord=2))
        assert gap <= obj.hessian_lipschitz(keep) * float((w1 - w2).norm()) * (1 + 1e-9) + 1e-13


def residual_after(obj, w, keep):
    beta, margin = obj.residual(w, keep)
    return beta + margin


@pytest.mark.parametrize("lam", [1e-3, 1e-1, 1.0])
def test_corollary_1_bounds_the_exact_residual_one_removal_and_in_sequence(lam):
    gen = torch.Generator().manual_seed(4 + int(1000 * lam))
    checked = 0
    for trial in range(8):
        unit = trial % 2 == 0
        obj, X, y, b = problem(gen, n=30, q=4, C=3, lam=lam, scale=1.0 if unit else 3.0, sigma=0.3)
        if unit:
            obj = cr.Objective(unit_rows(X), y, 3, lam, b)
        w, _, _ = cr.polish(obj, torch.zeros(obj.d, dtype=torch.float64), obj.all(), 1e-10)
        # one removal of a random set U
        keep = obj.all()
        keep[torch.randperm(len(y), generator=gen)[:int(torch.randint(1, 6, (1,), generator=gen))]] = False
        w_minus, s, H, g = cr.newton_step(obj, w, keep)
        assert cr.newton_bound(obj, keep, s, H, g) >= residual_after(obj, w_minus, keep)
        # single-sample requests in sequence, each step from the last release
        keep = obj.all()
        for u in torch.randperm(len(y), generator=gen)[:6].tolist():
            keep[u] = False
            w, s, H, g = cr.newton_step(obj, w, keep)
            assert cr.newton_bound(obj, keep, s, H, g) >= residual_after(obj, w, keep)
            checked += 1
    assert checked == 48


def test_remove_sequence_spends_the_budget_and_retrains_when_it_would_be_exceeded():
    gen = torch.Generator().manual_seed(5)
    obj, X, y, b = problem(gen, n=40, q=4, lam=0.01, scale=2.0)
    w, _, _ = cr.polish(obj, torch.zeros(obj.d, dtype=torch.float64), obj.all(), 1e-10)
    requests = torch.randperm(40, generator=gen)[:8]
    _, free = cr.remove_sequence(obj, w, requests, cr.Policy("newton", math.inf, 1e-10))
    budget = 2.5 * max(r.residual for r in free)     # about two requests per retrain
    w_end, got = cr.remove_sequence(obj, w, requests, cr.Policy("newton", budget, 1e-10))
    assert any(r.retrained for r in got) and all(r.spent <= budget for r in got)
    keep = obj.all()
    keep[requests] = False
    assert residual_after(obj, w_end, keep) <= got[-1].residual * (1 + 1e-9)
    for r in got:                                     # a retrain restarts the sum at its own residual
        assert (r.spent == r.residual) if r.retrained else r.bound >= r.residual
    record = cr.summarize(got, sigma=1.0, delta=1e-5)
    assert record["retrained"] == sum(r.retrained for r in got)
    assert record["requests_before_retrain"] == next(k for k, r in enumerate(got) if r.retrained)


def test_epsilon_and_sigma_invert_each_other():
    gen = torch.Generator().manual_seed(6)
    assert cr.c_delta(1e-5) == pytest.approx(math.sqrt(2 * math.log(1.5e5)))
    for _ in range(100):
        eps, delta, budget = (10.0 ** float(torch.empty(1).uniform_(a, z, generator=gen))
                              for a, z in ((-2, 2), (-12, -0.5), (-4, 2)))
        sigma = cr.sigma_for(eps, delta, budget)
        assert cr.epsilon_for(sigma, delta, budget) == pytest.approx(eps, rel=1e-12)
        assert cr.budget_for(sigma, delta, eps) == pytest.approx(budget, rel=1e-12)
        assert cr.sigma_for(cr.epsilon_for(sigma, delta, budget), delta, budget) == pytest.approx(sigma, rel=1e-12)
    with pytest.raises(InputError, match="--delta"):
        cr.c_delta(1.0)


def perturbed_problem(seed, lam, n=30, q=4, C=3):
    """A random softmax problem in float64 with its perturbation b: (X, y, fm, b, objective)."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, q, generator=gen, dtype=torch.float64)
    y = torch.randint(0, C, (n,), generator=gen)
    torch.manual_seed(0)
    fm = FlatModel(Logistic(q, C).double())
    b = 0.3 * torch.randn(fm.d, generator=gen, dtype=torch.float64)
    return X, y, fm, b, cr.Objective(X, y, C, lam, b)


def test_the_hessian_free_step_agrees_with_the_newton_step_near_the_optimum():
    """Full-batch gradient descent with b / n in its gradient and small constant steps ends at
    the optimum; a_u is then d w / ds, the influence H_D^{-1} grad CE_u, while the Newton step
    uses H_{D \\ u}: they differ by at most ||hess CE_u|| ||a_u|| / lambda_min(H_{D \\ u}) (a
    second-order term, 1/n of the step), and both remove the sample to first order."""
    lam = 1.0
    X, y, fm, b, obj = perturbed_problem(7, lam)
    n, w0 = len(X), fm.initial_vector()
    for lr in (0.5, 0.2):
        cfg = SGDConfig(lr, 1.0, 1e6, lam, linear=b / n)
        rows = torch.tensor([3, 11])
        w_T, A, _ = recursion(fm, w0, X, y, [torch.arange(n)] * int(60 / lr), cfg, rows, rho_iters=0)
        assert float(obj.gradient(w_T, obj.all()).norm()) < 1e-8     # converged to the optimum
        for k, u in enumerate(rows.tolist()):
            keep = obj.all()
            keep[u] = False
            newton, s, H, g = cr.newton_step(obj, w_T, keep)
            hf = w_T + A[k]
            one = obj.all() & (torch.arange(n) == u)
            second = (float(torch.linalg.matrix_norm(obj.hessian(w_T, one) - obj.mu * torch.eye(obj.d,
                                                     dtype=torch.float64), ord=2))
                      * float(A[k].norm()) / float(torch.linalg.eigvalsh(H)[0]))
            assert float((hf - newton).norm()) <= second * (1 + 1e-6) + 1e-9
            assert second < 0.2 * float(s.norm())
            # the residual of the hf step is of second order too: far below the gradient it removes
            assert residual_after(obj, hf, keep) < 0.2 * float(g.norm())


def test_the_second_order_hf_step_leaves_a_smaller_residual_near_the_optimum():
    """With --hf_order 2 the hf step is a_u + q_u, the Taylor expansion of the retrained optimum
    to second order in u's weight: on a converged run its exact residual on D \\ u is of third
    order, below the first-order step's (second-order) residual."""
    from utils.proposed.hfconfig import HFConfig, UnlearnConfig
    lam = 0.5
    X, y, fm, b, obj = perturbed_problem(11, lam)
    n = len(X)
    cfg = SGDConfig(0.5, 1.0, 1e6, lam, linear=b / n)
    rows = torch.tensor([3, 11, 20])
    w_T, A, _, Q = recursion(fm, fm.initial_vector(), X, y, [torch.arange(n)] * 120, cfg, rows,
                             UnlearnConfig(hf=HFConfig(order=2)), rho_iters=0)
    assert float(obj.gradient(w_T, obj.all()).norm()) < 1e-8     # converged to the optimum
    for k, u in enumerate(rows.tolist()):
        keep = obj.all()
        keep[u] = False
        first, second = residual_after(obj, w_T + A[k], keep), residual_after(obj, w_T + A[k] + Q[k], keep)
        assert second < 0.5 * first, (u, first, second)


def test_main_cr_end_to_end_and_main_eva_measures_it_against_its_own_retrain(tmp_path):
    """A tiny run of the script: the record, the certificate it states, and main_eva's CR row."""
    import json

    from helpers import run_script
    flags = ["--model", "logistic", "--dataset", "wine", "--num_dataset", "80", "--epochs", "3", "--batch_size", "16",
             "--lr", "0.05", "--regularization", "0.05", "--num_forget", "3", "--gpu", "-1", "--quiet",
             "--log_dir", str(tmp_path / "log"), "--results_dir", str(tmp_path / "r")]
    cr_flags = ["--epsilon", "1", "--delta", "1e-5", "--cr_budget", "0.5", "--removal", "hf"]
    bad = run_script("main_CR.py", *flags, "--epsilon", "1", check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--cr_budget" in bad.stderr
    newton2 = run_script("main_CR.py", *flags, "--cr_budget", "1", "--removal", "newton", "--hf_order", "2", check=False)
    assert newton2.returncode == 2 and newton2.stderr.startswith("error: --hf_order 2")
    run_script("main_retrain.py", *flags)
    r = json.loads(run_script("main_CR.py", *flags, *cr_flags, "--json").stdout)
    assert r["removal"] == "hf" and r["requests"] == 3 and r["reference"] == "CR_Retrain"
    assert r["sigma_b"] == pytest.approx(cr.sigma_for(1.0, 1e-5, 0.5))
    assert r["budget_spent"] <= 0.5 and r["certified_epsilon"] <= 1.0
    assert r["certified_epsilon"] == pytest.approx(cr.epsilon_for(r["sigma_b"], 1e-5, r["budget_spent"]))
    assert r["gradient_residual"] == r["gradient_residuals"][-1] and r["gradient_residual_bound"] is None
    assert (r["retrained"] == 0) == (r["requests_before_retrain"] == r["requests"])
    assert 0 <= r["retrained"] <= r["requests"] - r["requests_before_retrain"]
    if r["retrained"] == 0:     # the sum of the exact residuals is what the budget spent
        assert r["budget_spent"] >= sum(r["gradient_residuals"])
    eva = json.loads(run_script("main_eva.py", *flags, *cr_flags, "--json").stdout)
    assert eva["CR"]["reference"] == "CR_Retrain" and eva["CR"]["distance"] == pytest.approx(r["distance"])
    assert eva["CR"]["removed"] is None and eva["CR_Retrain"]["distance"] > 0


def test_repair_steps_shrink_the_residual_by_the_proven_factor():
    """Gradient steps of size 1 / L (L = N lambda + ||X~_D||^2 / 2 >= the Hessian on any subset):
    grad(w - g / L) = (I - H_bar / L) g with mu <= H_bar <= L, so ||grad|| falls by >= 1 - mu / L."""
    gen = torch.Generator().manual_seed(9)
    for trial in range(10):
        obj, X, y, b = problem(gen, n=30, q=4, lam=0.3, scale=1.0 + trial)
        keep = obj.all()
        keep[torch.randperm(30, generator=gen)[:3]] = False
        w = random_w(gen, obj.d)
        L = obj.smoothness(keep)
        assert L >= float(torch.linalg.eigvalsh(obj.hessian(w, keep))[-1])
        before = float(obj.gradient(w, keep).norm())
        after = float(obj.gradient(cr.repair(obj, w, keep, 3), keep).norm())
        assert after <= (1 - obj.mu / L) ** 3 * before * (1 + 1e-9)
