"""Second-order baselines (SPEC section 9): Newton step (NU) and infinitesimal jackknife (IJ).

With l_i(w) = CE_i(w) + (lambda/2)||w||^2 at w_T, H = (1/n) sum_i hess l_i,
H_U = (1/m) sum_{u in U} hess l_u, g_U = sum_{u in U} grad l_u and damping kappa:

    NU:  H_rest = (n H - m H_U) / (n - m) + kappa I;   w = w_T + (1/(n-m)) H_rest^{-1} g_U
    IJ:  w = w_T + (1/n) (H + kappa I)^{-1} g_U

The systems are solved from a factorisation in float64, never an explicit inverse:
Cholesky when the damped Hessian is positive definite; otherwise (a non-convex model away
from a minimum) --hessian_solver decides: 'cholesky' stops with the smallest eigenvalue,
'lu' and 'auto' solve the indefinite system by LU (as the formula, and the authors'
matrix inverse, do). The precompute is the summed full-data Hessian n H (NU) and the
factorisation of H + kappa I (IJ), cached per training configuration under
``<train dir>/cache`` and reused by every deletion set.
"""
import os
import time

import torch

from utils.common import artifacts, keys
from utils.curvature.hessian import gradient_sum, hessian_sum
from utils.common.methods import SECOND_ORDER_FLAGS
from utils.common.errors import InputError
from utils.training.finite import require_finite
from utils.common.provenance import provenance
from utils.common.report import info


def factorize(A, what, solver="cholesky"):
    """Factorisation of the symmetric matrix A in float64, as a dict of tensors.

    {"L"} (Cholesky) when A is positive definite. Otherwise: solver='cholesky' raises
    InputError naming A's smallest eigenvalue; 'lu' / 'auto' return {"LU", "pivots"}
    ('auto' with a notice; no eigendecomposition, which would cost more than the solve).
    """
    A = A.double()
    if solver != "lu":
        L, status = torch.linalg.cholesky_ex(A)
        if int(status) == 0:
            return {"L": L}
        if solver == "cholesky":
            low = float(torch.linalg.eigvalsh(A)[0])
            raise InputError(f"{what} is not positive definite (smallest eigenvalue {low:.4g}); increase "
                             f"--damping_factor by more than {-low:.4g}, or pass --hessian_solver lu")
        info(f"notice: {what} is not positive definite (Cholesky fails at leading minor {int(status)} "
             f"of {len(A)}); solving the indefinite system by LU (--hessian_solver cholesky stops instead)")
    LU, pivots, status = torch.linalg.lu_factor_ex(A)
    if int(status) != 0:
        raise InputError(f"{what} is singular; change --damping_factor")
    return {"LU": LU, "pivots": pivots}


def solve(factor, b):
    """A^{-1} b from ``factorize``'s output, computed in float64, returned in b's dtype."""
    rhs = b.double().unsqueeze(1)
    if "L" in factor:
        x = torch.cholesky_solve(rhs, factor["L"].double())
    else:
        x = torch.linalg.lu_solve(factor["LU"].double(), factor["pivots"], rhs)
    return x.squeeze(1).to(b.dtype)


def newton_step(w_T, H_sum, H_sum_U, g_U, n, m, kappa, solver="cholesky"):
    """NU: w_T + (1/(n-m)) [ (H_sum - H_sum_U)/(n-m) + kappa I ]^{-1} g_U; returns (w, factor).

    ``H_sum`` = n H (all n samples), ``H_sum_U`` = m H_U (the m deleted samples).
    """
    A = (H_sum.double() - H_sum_U.double()) / (n - m)
    A.diagonal().add_(kappa)
    factor = factorize(A, "the damped Hessian of the remaining data H_rest + kappa I", solver)
    return w_T + solve(factor, g_U) / (n - m), factor


def ij_factor(H_sum, n, kappa, solver="cholesky"):
    """Factorisation of H + kappa I = H_sum / n + kappa I."""
    A = H_sum.double() / n
    A.diagonal().add_(kappa)
    return factorize(A, "the damped full-data Hessian H + kappa I", solver)


DAMPING_GRID = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def smallest_pd_damping(H_sum, n, grid=DAMPING_GRID):
    """The smallest kappa of the ascending ``grid`` with H + kappa I = H_sum / n + kappa I
    positive definite (a float64 Cholesky succeeds), or None when none is. PD-ness is
    monotone in kappa, so a bisection over the grid factorises about log2(len(grid)) times.
    Returns (kappa or None, {kappa: positive definite?} for the points factorised)."""
    A = H_sum.double() / n
    checked = {}

    def positive_definite(kappa):
        B = A.clone()
        B.diagonal().add_(kappa)
        checked[kappa] = int(torch.linalg.cholesky_ex(B)[1]) == 0
        return checked[kappa]

    lo, hi = 0, len(grid)                  # the answer's index lies in [lo, hi]; hi = none
    while lo < hi:
        mid = (lo + hi) // 2
        if positive_definite(grid[mid]):
            hi = mid
        else:
            lo = mid + 1
    return (grid[lo] if lo < len(grid) else None), checked


def ij_step(w_T, factor, g_U, n):
    """IJ: w_T + (1/n) (H + kappa I)^{-1} g_U, with ``factor`` that of H + kappa I."""
    return w_T + solve(factor, g_U) / n


def factor_report(factor):
    """What the metrics record about a factorisation: the solver used."""
    return {"solver": "cholesky" if "L" in factor else "lu"}


# ---------------------------------------------------------------------- cached precomputes
def _load(path):
    """(tensors, seconds it took to compute them) from the cache, or None when absent.
    The tensors are verified against their SHA-256 record and the manifest's format."""
    meta = path[:-3] + ".json"
    if not (os.path.exists(path) and os.path.exists(meta)):
        return None
    return artifacts.load_tensors(path), float(artifacts.read_json(meta)["seconds"])


def _store(exp, path, tensors, seconds):
    artifacts.save_tensors(path, tensors)
    artifacts.write_json(path[:-3] + ".json", {"seconds": seconds, "provenance": provenance(exp),
                                               "tensors": {k: list(v.shape) for k, v in tensors.items()}})


def storage_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors.values())


def full_hessian(exp, w_T):
    """(n H at w_T, seconds it took, cached?) for the experiment's training config.
    Computed under a lock on the cache file: a second process waits and reuses it."""
    path = exp.cache_path("hessian")
    with artifacts.lock(path, "the full-data Hessian"):
        got = _load(path)
        if got is not None:
            return got[0]["H"].to(exp.device), got[1], True
        start = time.perf_counter()
        H = hessian_sum(exp.fm, w_T, exp.X, exp.y, exp.sgd_config.lam, exp.unlearn.mem_budget_mb,
                        progress=bar_label(exp, "full-data Hessian"))
        require_finite(H, "the full-data Hessian at w_T", f"delete {exp.train_dir} and retrain with a lower --lr")
        seconds = time.perf_counter() - start
        _store(exp, path, {"H": H}, seconds)
    return H, seconds, False


def ij_precompute(exp, w_T):
    """(factorisation of H + kappa I, seconds it took including the Hessian, cached?),
    computed under a lock on the cache file like ``full_hessian``."""
    s = exp.method_config(SECOND_ORDER_FLAGS)         # the method table's flags of NU and IJ
    path = exp.cache_path("ij-factor", flags=keys.FAMILIES["ij-factor"])
    with artifacts.lock(path, "the IJ factorisation"):
        got = _load(path)
        if got is not None and (s["hessian_solver"] != "cholesky" or "L" in got[0]):
            return {k: v.to(exp.device) for k, v in got[0].items()}, got[1], True
        H, seconds_H, _ = full_hessian(exp, w_T)
        start = time.perf_counter()
        factor = ij_factor(H, exp.n, s["damping_factor"], s["hessian_solver"])
        # stored (and used, so a cached rerun gives the same numbers) in the Hessian's precision
        factor = {k: v.to(H.dtype) if v.is_floating_point() else v for k, v in factor.items()}
        seconds = seconds_H + time.perf_counter() - start
        _store(exp, path, factor, seconds)
    return factor, seconds, False


def forget_gradient(exp, w_T):
    """g_U = sum_{u in U} grad l_u(w_T)."""
    U = exp.U.to(exp.device)
    return gradient_sum(exp.fm, w_T, exp.X[U], exp.y[U], exp.sgd_config.lam)


def forget_hessian(exp, w_T):
    """m H_U = sum_{u in U} hess l_u(w_T)."""
    U = exp.U.to(exp.device)
    return hessian_sum(exp.fm, w_T, exp.X[U], exp.y[U], exp.sgd_config.lam, exp.unlearn.mem_budget_mb,
                       progress=bar_label(exp, "Hessian of U"))


def bar_label(exp, label):
    """``label`` when exp shows progress bars, else None (``hessian_sum``'s ``progress``)."""
    return label if exp.progress else None


def unlearn_nu(exp, w_T):
    """NU unlearned model and its costs (precompute_s, unlearn_s, storage_bytes, ...)."""
    H, precompute_s, cached = full_hessian(exp, w_T)
    s = exp.method_config(SECOND_ORDER_FLAGS)
    start = time.perf_counter()
    w, factor = newton_step(w_T, H, forget_hessian(exp, w_T), forget_gradient(exp, w_T), exp.n,
                            len(exp.U), s["damping_factor"], s["hessian_solver"])
    require_finite(w, "the Newton step's result", "raise --damping_factor")
    unlearn_s = time.perf_counter() - start
    return w, dict(precompute_s=precompute_s, unlearn_s=unlearn_s, precompute_cached=cached,
                   storage_bytes=storage_bytes({"H": H}), **factor_report(factor))


def unlearn_ij(exp, w_T):
    """IJ unlearned model and its costs (precompute_s, unlearn_s, storage_bytes, ...)."""
    factor, precompute_s, cached = ij_precompute(exp, w_T)
    start = time.perf_counter()
    w = ij_step(w_T, factor, forget_gradient(exp, w_T), exp.n)
    require_finite(w, "the infinitesimal-jackknife step's result", "raise --damping_factor")
    unlearn_s = time.perf_counter() - start
    return w, dict(precompute_s=precompute_s, unlearn_s=unlearn_s, precompute_cached=cached,
                   storage_bytes=storage_bytes(factor), **factor_report(factor))
