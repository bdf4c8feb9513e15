"""Newton step and infinitesimal jackknife: accuracy on a strongly convex problem, edge cases."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from helpers import ROOT, WINE, run_script
from models import Logistic
from utils.common.experiment import Experiment
from utils.training.functional import FlatModel, per_sample_ce
from utils.curvature.hessian import gradient_sum, hessian_sum
from utils.baselines.newton import (DAMPING_GRID, factorize, full_hessian, ij_factor, ij_step, newton_step,
                          smallest_pd_damping, solve, unlearn_ij, unlearn_nu)
from utils.common.errors import InputError
from utils.common.options import parse_args


def optimum(fm, X, y, lam):
    """argmin_w mean_i CE_i(w) + (lam/2)||w||^2 by L-BFGS (independent of our Hessian)."""
    w = torch.zeros(fm.d, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=500, tolerance_grad=1e-13, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = per_sample_ce(fm, w, X, y).mean() + lam / 2 * w.dot(w)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


@pytest.mark.parametrize("seed", [0, 1])
def test_newton_and_ij_approach_leave_U_out_optimum(seed):
    torch.manual_seed(seed)
    n, m, lam = 80, 6, 0.05
    fm = FlatModel(Logistic(4, 3).double())
    X = torch.randn(n, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    U = torch.randperm(n)[:m]
    keep = torch.ones(n, dtype=torch.bool)
    keep[U] = False
    w_T, w_rest = optimum(fm, X, y, lam), optimum(fm, X[keep], y[keep], lam)
    assert gradient_sum(fm, w_T, X, y, lam).norm() < 1e-5  # w_T is the optimum
    H = hessian_sum(fm, w_T, X, y, lam)
    g_U = gradient_sum(fm, w_T, X[U], y[U], lam)
    w_ns, factor = newton_step(w_T, H, hessian_sum(fm, w_T, X[U], y[U], lam), g_U, n, m, 0.0)
    w_ij = ij_step(w_T, ij_factor(H, n, 0.0), g_U, n)
    base = (w_T - w_rest).norm()
    assert base > 1e-2
    assert "L" in factor  # positive definite: Cholesky
    assert (w_ns - w_rest).norm() < 0.1 * base
    assert (w_ij - w_rest).norm() < 0.4 * base


def test_newton_with_empty_forget_set_changes_nothing():
    torch.manual_seed(3)
    fm = FlatModel(Logistic(5, 3).double())
    X, y = torch.randn(30, 5, dtype=torch.float64), torch.randint(0, 3, (30,))
    w = torch.randn(fm.d, dtype=torch.float64)
    H = hessian_sum(fm, w, X, y, 0.1)
    none = torch.zeros(0, dtype=torch.long)
    w_ns, _ = newton_step(w, H, hessian_sum(fm, w, X[none], y[none], 0.1),
                          gradient_sum(fm, w, X[none], y[none], 0.1), 30, 0, 0.01)
    assert torch.equal(w_ns, w)


def test_factorize_paths():
    torch.manual_seed(4)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    eig = torch.tensor([-0.75, 0.3, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    A = Q @ torch.diag(eig) @ Q.T
    b = torch.randn(6, dtype=torch.float64)
    with pytest.raises(InputError, match=r"not positive definite \(smallest eigenvalue -0\.75\)"):
        factorize(A, "A", "cholesky")
    for solver in ["auto", "lu"]:  # indefinite but invertible: solved by LU
        f = factorize(A, "A", solver)
        assert "LU" in f
        torch.testing.assert_close(A @ solve(f, b), b)
    P = A + torch.eye(6, dtype=torch.float64)  # positive definite: Cholesky and LU agree
    torch.testing.assert_close(solve(factorize(P, "P", "auto"), b), solve(factorize(P, "P", "lu"), b))
    assert "L" in factorize(P, "P", "auto")


def test_cached_precompute_reused_and_reproducible(dirs):
    exp = Experiment(parse_args(WINE + dirs + ["--epochs", "3"]))
    w_T, _ = exp.original()
    w1, c1 = unlearn_ij(exp, w_T)
    w2, c2 = unlearn_ij(exp, w_T)
    assert not c1["precompute_cached"] and c2["precompute_cached"]
    assert torch.equal(w1, w2) and c1["precompute_s"] == c2["precompute_s"]
    v1, d1 = unlearn_nu(exp, w_T)  # reuses the full-data Hessian the IJ precompute cached
    assert d1["precompute_cached"] and torch.isfinite(v1).all() and not torch.equal(v1, w_T)
    assert c1["storage_bytes"] >= exp.fm.d ** 2 * 4


@pytest.mark.slow  # the eigendecomposition for the message; the message itself is tested above
def test_script_not_positive_definite_error(dirs):
    proc = run_script("main_NU.py", *WINE, *dirs, "--epochs", "3", "--hessian_solver", "cholesky", check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert re.match(r"error: .*not positive definite \(smallest eigenvalue -[0-9.e-]+\); increase --damping_factor", last)


def reference_damping(H_sum, n, grid=DAMPING_GRID):
    """The first grid kappa with lambda_min(H_sum / n) + kappa > 0, by eigenvalues."""
    low = float(torch.linalg.eigvalsh(H_sum.double() / n)[0])
    return next((k for k in grid if low + k > 0), None)


@pytest.mark.parametrize("seed", range(6))
def test_smallest_pd_damping_matches_the_eigenvalues(seed):
    g = torch.Generator().manual_seed(seed)
    d, n = 12, 5
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    low = [-3e-3, -2e-5, 0.2, -0.5, -50.0, -4e-2][seed]       # PD already, mid-grid, beyond the grid
    eig = torch.cat([torch.tensor([low]), torch.rand(d - 1, generator=g, dtype=torch.float64) + 0.1])
    H_sum = n * (Q * eig) @ Q.T
    kappa, checked = smallest_pd_damping(H_sum, n)
    assert kappa == reference_damping(H_sum, n)
    assert len(checked) <= 4                                   # bisection over 9 points
    if kappa is not None:
        assert checked[kappa] and all(not ok for k, ok in checked.items() if k < kappa)


def test_damping_tool_on_a_nonconvex_model(dirs):
    flags = WINE + dirs + ["--epochs", "3", "--json"]
    proc = subprocess.run([sys.executable, "-m", "tools.damping", *flags], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, HFU_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    exp = Experiment(parse_args(WINE + dirs + ["--epochs", "3"]))
    H, _, cached = full_hessian(exp, exp.original()[0])
    assert cached and out["hessian_cached"] is False           # the tool computed it, NU/IJ reuse it
    assert out["smallest_pd_damping"] == reference_damping(H, exp.n)
    (written,) = [os.path.join(dirs[3], f) for f in os.listdir(dirs[3]) if f.startswith("damping-wine-mlp-")]
    stored = json.loads(open(written).read())
    assert stored["smallest_pd_damping"] == out["smallest_pd_damping"] and stored["checked"] == out["checked"]
