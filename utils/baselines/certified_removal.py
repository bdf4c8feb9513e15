"""Certified removal (Guo, Goldstein, Hannun, van der Maaten, ICML 2020) for the softmax
logistic model Linear(in, C), with the Newton step or the Hessian-free step inside it.

Objective (sum form, Guo's normalisation; lambda = --regularization, N = the size of the
training set as trained, fixed across deletions, b ~ N(0, sigma_b^2 I_d)):

    L_b(w; S) = sum_{i in S} CE_i(w) + (N lambda / 2) ||w||^2 + b^T w

Dividing by N gives the project's SGD objective, mean CE + (lambda/2)||w||^2, plus b^T w / N:
the training SGD adds b / N to every mini-batch gradient (``SGDConfig.linear``), so the
approximators a_u of that trajectory are the project's bank for this objective, and the
exact optimum of L_b(.; D \\ U) is the limit of the paper's retrain (normaliser |B_t|).

Certificate (Guo et al., Theorem 3): a release w- with gradient residual
beta = ||grad L_b(w-; D \\ U)|| <= B is (epsilon, delta)-indistinguishable from the exact optimum
of L_b(.; D \\ U) when sigma_b = c(delta) B / epsilon, c(delta) = sqrt(2 log(1.5 / delta)).
Sequential requests spend B as the sum of their exact residuals (``remove_sequence``).

Everything here runs in float64 on the flat parameter vector in the model's parameter
order [W (C x in, row-major), bias (C)]; internally the augmented layout W~ = [W | bias]
(C x p, p = in + 1) acts on x~ = [x, 1]. docs/method.md derives every bound line by line.
"""
import math
import time
from dataclasses import dataclass
from typing import Optional

import torch

from utils.common.errors import InputError

# sup over z and unit v of |D^3 logsumexp(z)[v, v, v]|: the third central moment of v under
# softmax(z), at most range^3 / (6 sqrt 3) with range <= sqrt(2) ||v||  (docs/method.md)
GAMMA_LOGITS = 2 * math.sqrt(2) / (6 * math.sqrt(3))
# the same constant for the binary logistic loss log(1 + e^-z): max |sigma (1 - sigma)(1 - 2 sigma)|
GAMMA_BINARY = 1 / (6 * math.sqrt(3))
UNIT = 2.0 ** -52          # float64 unit roundoff (x 2): the rounding margins below use it


def c_delta(delta):
    """c(delta) = sqrt(2 log(1.5 / delta)) of Guo et al., Theorem 3."""
    if not 0 < delta < 1:
        raise InputError(f"--delta: must be in (0, 1), got {delta}")
    return math.sqrt(2 * math.log(1.5 / delta))


def sigma_for(epsilon, delta, budget):
    """sigma_b = c(delta) B / epsilon: the noise that certifies residuals summing to B at epsilon."""
    return c_delta(delta) * budget / epsilon


def epsilon_for(sigma, delta, spent):
    """epsilon = c(delta) spent / sigma_b: what residuals summing to ``spent`` certify."""
    return c_delta(delta) * spent / sigma


def budget_for(sigma, delta, epsilon):
    """B = epsilon sigma_b / c(delta): the residual budget sigma_b buys at epsilon."""
    return epsilon * sigma / c_delta(delta)


class Objective:
    """L_b(w; S) = sum_{i in S} CE_i(w) + (N lambda / 2)||w||^2 + b^T w for the softmax
    logistic model, S given as a bool mask ``keep`` over the training samples."""

    def __init__(self, X, y, classes, lam, b, n_reg=None):
        X = X.reshape(len(X), -1).double()
        self.Xa = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64, device=X.device)], 1)
        self.y = y.to(X.device)
        self.C, self.p = classes, self.Xa.shape[1]
        self.d = self.C * self.p
        self.lam = float(lam)
        self.n_reg = len(y) if n_reg is None else n_reg
        self.b = b.double().to(X.device)
        self.mu = self.n_reg * self.lam          # the regulariser's curvature N lambda
        self.xnorm = torch.linalg.vector_norm(self.Xa, dim=1)
        self._smooth = None
        # parameter index k -> augmented index: W[c, j] -> c p + j, bias[c] -> c p + (p - 1)
        q = self.p - 1
        k = torch.arange(self.d)
        self.perm = torch.where(k < self.C * q, (k // q) * self.p + k % q, (k - self.C * q) * self.p + q)

    def all(self):
        return torch.ones(len(self.y), dtype=torch.bool, device=self.Xa.device)

    def aug(self, w):
        """Flat parameters -> W~ (C x p)."""
        q = self.p - 1
        return torch.cat([w[:self.C * q].view(self.C, q), w[self.C * q:].view(self.C, 1)], 1)

    def flat(self, M):
        """W~ (C x p) -> flat parameters."""
        return torch.cat([M[:, :-1].reshape(-1), M[:, -1]])

    def _probs(self, w, keep):
        Xs = self.Xa[keep]
        return Xs, torch.softmax(Xs @ self.aug(w.double()).T, 1), self.y[keep]

    def value(self, w, keep):
        Xs = self.Xa[keep]
        w = w.double()
        Z = Xs @ self.aug(w).T
        ce = torch.logsumexp(Z, 1) - Z.gather(1, self.y[keep][:, None]).squeeze(1)
        return float(ce.sum() + 0.5 * self.mu * w @ w + self.b @ w)

    def gradient(self, w, keep):
        """grad L_b(w; S) = sum_{i in S} (p_i - e_{y_i}) x~_i^T + N lambda w + b."""
        Xs, P, ys = self._probs(w, keep)
        P[torch.arange(len(ys)), ys] -= 1
        return self.flat(P.T @ Xs) + self.mu * w.double() + self.b

    def residual(self, w, keep):
        """(||grad L_b(w; S)||, its rounding margin): the exact gradient residual, one pass
        over S. The margin (len(S) + p + C + 8) u (sum_i ||p_i - e_yi|| ||x~_i|| + N lambda ||w||
        + ||b||), u = 2^-52, bounds the float64 summation error, so beta + margin >= the
        residual of the stored float64 parameters."""
        Xs, P, ys = self._probs(w, keep)
        P[torch.arange(len(ys)), ys] -= 1
        g = self.flat(P.T @ Xs) + self.mu * w.double() + self.b
        scale = float((torch.linalg.vector_norm(P, dim=1) * self.xnorm[keep]).sum()
                      + self.mu * w.double().norm() + self.b.norm())
        margin = (len(ys) + self.p + self.C + 8) * UNIT * scale
        return float(g.norm()), margin

    def hvp(self, w, keep, v):
        """[hess L_b(w; S)] v = sum_i vec((A_i V x~_i) x~_i^T) + N lambda v,  A_i = diag p_i - p_i p_i^T."""
        Xs, P, _ = self._probs(w, keep)
        dZ = Xs @ self.aug(v.double()).T
        AdZ = P * dZ - P * (P * dZ).sum(1, keepdim=True)
        return self.flat(AdZ.T @ Xs) + self.mu * v.double()

    def hessian(self, w, keep):
        """Dense hess L_b(w; S) (d x d, parameter order): sum_i (diag p_i - p_i p_i^T) (x) x~_i x~_i^T
        + N lambda I, one p x p block per pair of classes."""
        Xs, P, _ = self._probs(w, keep)
        C, p = self.C, self.p
        H = torch.empty(C * p, C * p, dtype=torch.float64, device=Xs.device)
        for c in range(C):
            for e in range(c, C):
                a = (P[:, c] * ((1.0 if c == e else 0.0) - P[:, e]))
                block = Xs.T @ (a[:, None] * Xs)
                H[c * p:(c + 1) * p, e * p:(e + 1) * p] = block
                if e != c:
                    H[e * p:(e + 1) * p, c * p:(c + 1) * p] = block.T
        H.diagonal().add_(self.mu)
        return H[self.perm][:, self.perm]

    def smoothness(self, keep):
        """N lambda + ||X~_D||_2^2 / 2 >= ||hess L_b(w; S)|| for every w and every S within the
        training set D (lambda_max(A_i) <= 1/2; removing rows never raises the spectral norm),
        with the exact spectral norm of D computed once."""
        if self._smooth is None:
            self._smooth = self.mu + 0.5 * spectral_norm(self.Xa) ** 2
        return self._smooth

    def hessian_lipschitz(self, keep):
        """sum_{i in S} gamma ||x~_i||^3 >= the Lipschitz constant of w -> hess L_b(w; S)
        (gamma = GAMMA_LOGITS; docs/method.md)."""
        return GAMMA_LOGITS * float((self.xnorm[keep] ** 3).sum())


def spectral_norm(X):
    """||X||_2 exactly: sqrt of the largest eigenvalue of the p x p Gram matrix X^T X
    (symmetric eigensolver, float64; no power iteration, which approaches it from below)."""
    X = X.double()
    return math.sqrt(max(float(torch.linalg.eigvalsh(X.T @ X)[-1]), 0.0))


# ---------------------------------------------------------------------------- the optimum
def conjugate_gradient(apply, rhs, rtol=1e-12, max_iter=None):
    """x with apply(x) ~ rhs (apply symmetric positive definite), to ||r|| <= rtol ||rhs||
    or 2 d + 50 iterations (d = len(rhs); exact arithmetic needs d)."""
    max_iter = 2 * len(rhs) + 50 if max_iter is None else max_iter
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rr = r @ r
    stop = (rtol * rhs.norm()) ** 2
    for _ in range(max_iter):
        if rr <= stop:
            break
        Ap = apply(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def polish(obj, w, keep, tol, max_newton=50):
    """The exact optimum of L_b(.; S) from the start ``w``: Newton steps, each solved by
    conjugate gradients on exact Hessian-vector products and halved until ||grad|| falls,
    until the exact gradient norm is <= tol. Returns (w, ||grad||, Newton steps).
    InputError, loudly, when tol is not met: the certificate holds only at the optimum."""
    w = w.double().clone()
    g = obj.gradient(w, keep)
    gnorm = float(g.norm())
    steps = 0
    while gnorm > tol and steps < max_newton:
        s = conjugate_gradient(lambda v: obj.hvp(w, keep, v), -g)
        step = 1.0
        while True:
            trial = w + step * s
            g_trial = obj.gradient(trial, keep)
            if float(g_trial.norm()) < gnorm or step < 1e-6:
                break
            step /= 2
        if float(g_trial.norm()) >= gnorm:
            break                                   # rounding floor: no further progress
        w, g, gnorm = trial, g_trial, float(g_trial.norm())
        steps += 1
    if not math.isfinite(gnorm) or gnorm > tol:
        raise InputError(f"the optimum was not reached: ||grad L_b|| = {gnorm:.3g} > --cr_tol {tol:g} after "
                         f"{steps} Newton steps; the certificate holds only at the optimum: raise --cr_tol "
                         f"(or --regularization)")
    return w, gnorm, steps


# ---------------------------------------------------------------------------- removal steps
def newton_step(obj, w, keep):
    """Guo's step with the Hessian of the remaining data at w (dense, Cholesky):
    w- = w - H^{-1} grad L_b(w; S), H = hess L_b(w; S). Returns (w-, s, H, g)."""
    g = obj.gradient(w, keep)
    H = obj.hessian(w, keep)
    L = torch.linalg.cholesky(H)
    s = -torch.cholesky_solve(g[:, None], L).squeeze(1)
    return w + s, s, H, g


def newton_bound(obj, keep, s, H, g):
    """Corollary 1 of Guo et al. for the softmax model, with exact norms:

        ||grad L_b(w + s; S)|| <= ||g + H s|| + (gamma / 2) ||X~_S||_2 sqrt(sum_{i in S} ||dz_i||^4),

    dz_i = S~ x~_i (S~ the step in the augmented layout), gamma = GAMMA_LOGITS, ||X~_S||_2 the
    exact spectral norm (``spectral_norm``). The first term is the linear solve's own residual (zero in
    exact arithmetic). A relative margin of 1e-9 covers the rounding of the computed terms."""
    Xs = obj.Xa[keep]
    dZ = Xs @ obj.aug(s).T
    quartic = float(torch.sqrt((torch.linalg.vector_norm(dZ, dim=1) ** 4).sum()))
    spectral = spectral_norm(Xs)
    solve = float(torch.linalg.vector_norm(g + H @ s))
    return (solve + 0.5 * GAMMA_LOGITS * spectral * quartic) * (1 + 1e-9)


def repair(obj, w, keep, steps):
    """``steps`` gradient steps on L_b(.; S) with step 1 / (N lambda + ||X~_D||^2 / 2) (the
    smoothness bound, ``Objective.smoothness``): each one pass over S, each shrinks the residual by at least
    (1 - N lambda / that bound)."""
    if steps <= 0:
        return w
    eta = 1.0 / obj.smoothness(keep)
    for _ in range(steps):
        w = w - eta * obj.gradient(w, keep)
    return w


# ---------------------------------------------------------------------------- the requests
@dataclass(frozen=True)
class Request:
    """One answered single-sample deletion request."""
    sample: int
    residual: float          # exact ||grad L_b(w-; D \\ U_k)|| of the release (+ rounding margin)
    bound: Optional[float]   # Corollary 1 (newton only)
    spent: float             # budget spent after this request
    retrained: bool          # the request exceeded the budget and was answered by a retrain
    step_s: float            # the removal step (+ repair)
    certify_s: float         # the exact residual pass (+ the bound, for newton)
    retrain_s: float         # the retrain that answered it (0 when none)
    step_residual: float     # the exact residual of the removal step itself (what a retrain replaced)


@dataclass(frozen=True)
class Policy:
    """How requests are answered: the removal step ('newton' or 'hf'), the budget B of summed
    exact residuals, the optimum's gradient tolerance (retrains), repair steps after each step."""
    removal: str
    budget: float
    tol: float
    repair_steps: int = 0


def remove_sequence(obj, w, requests, policy, bank=None, progress=None):
    """Answer single-sample deletion requests one at a time from the optimum ``w``.

    Request k removes u_k: the step (``policy.removal`` 'newton': ``newton_step``; 'hf': w + a_{u_k},
    ``bank`` = {u: a_u}), then ``policy.repair_steps`` gradient steps, then the exact residual beta_k on
    D \\ {u_1..u_k}. The budget starts at w's own residual on D; beta_k is spent when
    spent + beta_k <= budget, else the request is answered by the exact optimum of the
    remaining data (``polish`` from the current w, same b), and spent restarts at that
    optimum's residual. Returns (w, [Request])."""
    removal, budget, tol, repair_steps = policy.removal, policy.budget, policy.tol, policy.repair_steps
    keep = obj.all()
    beta0, margin0 = obj.residual(w, keep)
    spent = beta0 + margin0
    if spent > budget:
        raise InputError(f"the trained model's own residual {spent:.3g} already exceeds the budget "
                         f"{budget:.3g}: lower --cr_tol or raise --cr_budget")
    out = []
    for u in requests:
        keep[u] = False
        start = time.perf_counter()
        bound = None
        if removal == "newton":
            w_new, s, H, g = newton_step(obj, w, keep)
        else:
            w_new = w + bank[int(u)].double()
        w_new = repair(obj, w_new, keep, repair_steps)
        step_s = time.perf_counter() - start
        start = time.perf_counter()
        beta, margin = obj.residual(w_new, keep)
        beta += margin
        if removal == "newton":
            bound = newton_bound(obj, keep, s, H, g) if repair_steps == 0 else None
            del H
        certify_s = time.perf_counter() - start
        retrained = spent + beta > budget
        step_residual = beta
        start = time.perf_counter()
        if retrained:
            w_new, _, _ = polish(obj, w_new, keep, tol)
            beta, margin = obj.residual(w_new, keep)
            beta += margin
            spent = beta
        else:
            spent += beta
        w = w_new
        out.append(Request(int(u), beta, bound, spent, retrained, step_s, certify_s,
                           time.perf_counter() - start if retrained else 0.0, step_residual))
        if progress is not None:
            progress(out[-1])
    return w, out


def summarize(requests, sigma, delta):
    """The record of a sequence: residuals, bounds, budget spent, retrains, certified epsilon."""
    first = next((k for k, r in enumerate(requests) if r.retrained), len(requests))
    last = requests[-1]
    bounds = [r.bound for r in requests if r.bound is not None]
    return {"gradient_residual": last.residual,
            "gradient_residuals": [r.residual for r in requests],
            "step_residuals": [r.step_residual for r in requests],
            "gradient_residual_bound": bounds[-1] if bounds else None,
            "gradient_residual_bounds": bounds or None,
            "budget_spent": last.spent,
            "certified_epsilon": epsilon_for(sigma, delta, last.spent),
            "retrained": sum(r.retrained for r in requests),
            "requests_before_retrain": first,
            "requests": len(requests),
            "unlearn_s": sum(r.step_s for r in requests),
            "remove_s_per_request": sum(r.step_s for r in requests) / len(requests),
            "certify_s": sum(r.certify_s for r in requests),
            "certify_s_per_request": sum(r.certify_s for r in requests) / len(requests),
            "retrain_s": sum(r.retrain_s for r in requests)}
