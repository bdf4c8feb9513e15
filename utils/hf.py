"""Hessian-free approximators (SPEC section 8): the recursion, the bank, and unlearning.

Every candidate sample u owns a_u in R^d, a_u = 0 at t = 0, and at every step t

    a_u <- (I - eta_t J_t) a_u + [u in B_t] eta_t C_t (1/|B_t|) grad CE_u(w_t)        (norm='batch')

(paper ordering: the gradient is injected after the contraction). For the mean-normalised
retrain (norm='mean') the injected gradient is grad CE_u - mean_{j in B_t, j != u} grad CE_j
(just grad CE_u when |B_t| = 1). a_u is d w_T / d s at s = 0 when sample u's weight in every
batch loss is (1 - s), so w_T + sum_{u in U} a_u approximates the retrained model.

The recursion runs fused with a replay of the training SGD (``utils.train.sgd`` with an
``on_step`` hook), so the trajectory w_0..w_T is never stored; all rows are updated as
one block per step by the engines of ``utils.hvp``.

The bank: rows indexed by sample id through a stored candidate list (``rows``), saved
once per training configuration (+ retrain normaliser, storage dtype, candidate set) with
a JSON manifest, and reused for every deletion set and every m.
"""
import os
import time

import torch
from tqdm import tqdm

from utils import artifacts
from utils.certify import PowerIteration
from utils.hvp import resolve_engine, step_jacobian
from utils.options import InputError, parse_forget_indices
from utils.train import sgd

BANK_FLAGS = ["retrain_norm", "bank_dtype"]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}


def injection(G, norm):
    """(1/|B|) grad CE_u rows (norm='batch'), or (1/|B|)(grad CE_u - mean_{j != u} grad CE_j)."""
    b = len(G)
    if norm == "mean" and b > 1:
        return (b * G - G.sum(0, keepdim=True)) / ((b - 1) * b)
    return G / b


def recursion(fm, w0, X, y, schedule, lr, lr_decay, clip, lam, rows, norm="batch",
              engine="auto", mem_budget_mb=1024.0, rho_iters=2, progress=False):
    """Replay training and run the approximator recursion for the samples ``rows``.

    Returns (w_T, A, rho_t): A[r] = a_{rows[r]} in parameter order, rho_t the per-step
    power-iteration estimates of ||I - eta_t J_t||.
    """
    engine = resolve_engine(fm, engine)
    n = len(y)
    row_of = torch.full((n,), -1, dtype=torch.long, device=X.device)
    row_of[rows.to(X.device)] = torch.arange(len(rows), device=X.device)
    A = torch.zeros(len(rows), fm.d, dtype=w0.dtype, device=w0.device)   # internal layout
    power = PowerIteration(fm.d, w0.dtype, w0.device, iters=rho_iters) if rho_iters > 0 else None
    state = {}

    def on_step(t, w, batch, eta, g):
        op = step_jacobian(fm, w, X[batch], y[batch], lam, g, clip, engine, mem_budget_mb)
        state["op"] = op
        op.contract_(A, eta)
        r = row_of[batch]
        sel = r >= 0
        if bool(sel.any()):
            inj = injection(op.per_sample_grads(), norm)[sel]
            A.index_add_(0, r[sel], op.clip_apply(inj), alpha=eta)
        if power is not None:
            power.step(op, eta)

    w_T = sgd(fm, w0, X, y, schedule, lr, lr_decay, clip, lam, on_step=on_step,
              progress=progress, desc="HF precompute")
    A = state["op"].from_internal(A) if "op" in state else A
    return w_T, A, torch.tensor(power.per_step if power else [], dtype=torch.float64)


def candidate_rows(spec, n, U):
    """Sample ids that get an approximator: all of range(n), the forget set, or a list."""
    if spec in (None, "all"):
        return torch.arange(n), "all"
    if spec == "forget":
        return U.clone(), U.tolist()
    idx = parse_forget_indices(spec)
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise InputError(f"--hf_candidates: {bad[:5]} outside range(num_dataset={n})")
    return torch.tensor(idx, dtype=torch.long), idx


class Bank:
    """Approximators a_u for a candidate set, addressed by sample id."""

    def __init__(self, A, rows, rho_t, manifest):
        self.A, self.rows, self.rho_t, self.manifest = A, rows, rho_t, manifest
        self.row_of = {int(u): r for r, u in enumerate(rows.tolist())}

    @property
    def storage_bytes(self):
        return self.A.numel() * self.A.element_size()

    @property
    def rho(self):
        return float(self.rho_t.max()) if len(self.rho_t) else float("nan")

    def vectors(self, U):
        """Row indices of the samples U; InputError when one has no approximator."""
        missing = [int(u) for u in U if int(u) not in self.row_of]
        if missing:
            raise InputError(f"samples {missing[:5]} have no approximator in this bank "
                             f"(--hf_candidates); rerun with --hf_candidates all or including them")
        return [self.row_of[int(u)] for u in U]

    def unlearn_online(self, w, U):
        """Apply deletion requests one at a time: w <- w + a_u. Returns (w, seconds per request)."""
        w = w.clone()
        rows = self.vectors(U)
        times = []
        for r in rows:
            start = time.perf_counter()
            w.add_(self.A[r])
            times.append(time.perf_counter() - start)
        return w, times

    def unlearn_batch(self, w, U):
        """One summed update: w + sum_{u in U} a_u. Returns (w, seconds)."""
        rows = self.vectors(U)
        start = time.perf_counter()
        out = w + self.A[rows].to(w.dtype).sum(0)
        return out, time.perf_counter() - start


def bank_path(exp, candidates):
    return exp.cache_path("hfbank", BANK_FLAGS, {"candidates": candidates})


def load_bank(path, device):
    t = artifacts.load_tensors(path, remedy="delete it and rerun main_proposed.py")
    manifest = artifacts.read_json(path[:-3] + ".json")
    return Bank(t["A"].to(device), t["rows"], t["rho_t"], manifest)


def precompute_bank(exp, w_T):
    """The bank for exp's flags: loaded when cached, else computed and saved (atomically).

    Returns (bank, seconds spent now; 0 when it was cached).
    """
    a = exp.args
    rows, cand_key = candidate_rows(a.hf_candidates, exp.n, exp.U)
    path = bank_path(exp, cand_key)
    if os.path.exists(path) and os.path.exists(path[:-3] + ".json"):
        return load_bank(path, exp.device), 0.0
    start = time.perf_counter()
    w_replay, A, rho_t = recursion(exp.fm, exp.w0, exp.X, exp.y, exp.schedule, a.lr, a.lr_decay,
                                   a.clip, a.regularization, rows, a.retrain_norm,
                                   mem_budget_mb=a.mem_budget_mb, progress=not a.quiet)
    seconds = time.perf_counter() - start
    gap = float((w_replay - w_T).norm())
    if gap > 1e-4 * max(1.0, float(w_T.norm())):
        raise InputError(f"the replayed training trajectory ends {gap:.3g} away from the cached "
                         f"original model; delete {exp.train_dir} and rerun")
    A = A.to(DTYPES[a.bank_dtype])
    manifest = {"train_config": exp.train_config(), "bank_config": exp.method_config(BANK_FLAGS),
                "candidates": cand_key, "rows": len(rows), "d": exp.fm.d, "steps": len(exp.schedule),
                "engine": resolve_engine(exp.fm), "precompute_s": seconds, "rho": float(rho_t.max()),
                "storage_bytes": A.numel() * A.element_size(), "replay_gap": gap}
    artifacts.save_tensors(path, {"A": A, "rows": rows, "rho_t": rho_t})
    artifacts.write_json(path[:-3] + ".json", manifest)
    return Bank(A.to(exp.device), rows, rho_t, manifest), seconds
