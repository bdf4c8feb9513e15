"""Replay mode (--hf_mode replay): answer deletion requests without a per-sample bank.

Only the training record is kept (``original.pt``: w_0, w_T and the batch schedule
B_0..B_{T-1}; SGD is deterministic, so every w_t is recomputed exactly from w_0). A
request for the set R runs the recursion of ``utils.proposed.hf`` for the rows of R only,

    a_u <- (I - eta_t J_t) a_u + [u in B_t] eta_t C_t (1/|B_t|) grad CE_u(w_t),   u in R,

fused with one replay of training: T block Hessian-vector products over |R| vectors
instead of T over n (or the candidate set) up front. The result is the bank's a_u exactly
(same operations on the same rows). Online mode answers each request with its own
replay (the latency of one request); batch mode replays once for the whole set and, as
only sum_{u in U} a_u is needed, carries that sum as one vector (``recursion(summed=True)``:
T products with one vector, whatever |U|).
"""
import os
import time

import torch

from utils.proposed.hf import check_replay, recursion
from utils.training.train import unpack_schedule


class Replay:
    """Deletion by recomputation from the training record of ``exp``."""

    def __init__(self, exp, w_T, measure_rho=False):
        self.exp, self.w_T = exp, w_T
        self.path = os.path.join(exp.train_dir, "original.pt")
        record = exp.original_record(self.path)
        self.w0 = record["w0"].to(exp.device)
        self.schedule = [b.to(exp.device) for b in unpack_schedule(record["schedule"], record["batch_sizes"])]
        self.rho_t = None if measure_rho else torch.empty(0)
        self.replays = 0

    @property
    def storage_bytes(self):
        """Bytes of the training record (everything replay mode keeps)."""
        return os.path.getsize(self.path)

    @property
    def rho(self):
        return float(self.rho_t.max()) if self.rho_t is not None and len(self.rho_t) else float("nan")

    def vectors(self, U, summed=False):
        """a_u for u in U, in order, by one replay of training: (|U|, d) block; with
        summed=True the (1, d) block sum_{u in U} a_u. Under --hf_order 2 each row also
        carries its second-order term: a_u + q_u, or with summed=True a_U + q_U, the set's
        full second-order term (cross terms included)."""
        rows = torch.as_tensor([int(u) for u in U], dtype=torch.long)
        w_replay, A, rho_t, *Q = recursion(self.exp.fm, self.w0, self.exp.X, self.exp.y, self.schedule,
                                       self.exp.sgd_config, rows, self.exp.unlearn,
                                       rho_iters=2 if self.rho_t is None else 0,
                                       progress=self.exp.progress, summed=summed)
        check_replay(w_replay, self.w_T, self.exp)
        if self.rho_t is None:
            self.rho_t = rho_t
        self.replays += 1
        return A + Q[0] if Q else A

    def unlearn_online(self, w, U):
        """One replay per request: w <- w + a_u. Returns (w, seconds per request)."""
        w = w.clone()
        times = []
        for u in U:
            start = time.perf_counter()
            w.add_(self.vectors([u])[0])
            times.append(time.perf_counter() - start)
        return w, times

    def unlearn_batch(self, w, U):
        """One replay for the whole set: w + sum_{u in U} a_u. Returns (w, seconds)."""
        start = time.perf_counter()
        out = w + self.vectors(U, summed=True)[0] if len(U) else w.clone()
        return out, time.perf_counter() - start
