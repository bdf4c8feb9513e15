"""The approximator bank: rows a_u addressed by sample id, stored as row-range shards.

On disk a bank is a directory keyed by its configuration::

    hfbank-<key>/
        shard-<start>-<stop>.pt   rows start..stop-1 of the candidate list: {"A", "rows"}, and
                                  "Q" (the second-order rows q_u) in an --hf_order 2 bank
        index.pt                  {"rows": candidate sample ids, "rho_t": per-step rho}
        manifest.json             configuration, coverage (rows, dtype, candidates), shards,
                                  format_version, provenance
        *.pt.sha256               integrity record of each tensor file (``utils.common.artifacts``)

Each shard is written atomically by the rank that computed it; rank 0 writes the index
and, last, the manifest, so a bank is complete exactly when its manifest exists. A
deletion request reads only the shards that hold its rows, each verified against its
SHA-256 record first; a bad file names the bank directory as the artefact to delete.

Unlearning with a bank: w <- w + a_u per request (online) or w + sum_{u in U} a_u (batch);
an order-2 bank (manifest "order": 2) releases a_u + q_u per request.
"""
import math
import os
import time

import torch

from utils.common import artifacts
from utils.common.errors import InputError


def remedy(directory):
    """What to do about a bad file of the bank in ``directory``: the bank is the unit."""
    return f"delete the bank directory {directory} and rerun: {artifacts.rerun_command()}"


# what a bank manifest must hold to be read (a manifest without them is refused, naming it)
MANIFEST_FIELDS = ("d", "shards", "storage_bytes", "bank_rows", "candidates", "bank_dtype",
                   "precompute_s", "world_size")


class Bank:
    """Approximators a_u (rows of ``A``) for a candidate set ``rows`` of sample ids."""

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

    def gather(self, U):
        """(a_u for u in U as a (|U|, d) block, seconds spent reading it)."""
        return self.A[self.vectors(U)], 0.0

    def unlearn_online(self, w, U):
        """Apply deletion requests one at a time: w <- w + a_u. Returns (w, seconds per request)."""
        w = w.clone()
        block, _ = self.gather(U)
        times = []
        for a in block:
            start = time.perf_counter()
            w.add_(a.to(w.dtype))
            times.append(time.perf_counter() - start)
        return w, times

    def unlearn_batch(self, w, U):
        """One summed update: w + sum_{u in U} a_u. Returns (w, seconds)."""
        block, _ = self.gather(U)
        start = time.perf_counter()
        out = w + block.to(w.dtype).sum(0)
        return out, time.perf_counter() - start


# relative slack of the reach check on stored rows: a row is checked against the bound in the
# precision it was computed in, then rounded to --bank_dtype (bfloat16: 2^-8 per entry)
REACH_SLACK = 1e-2


class ShardedBank(Bank):
    """A bank on disk: shards are loaded on demand, only those holding requested rows.

    ``reach`` (2 c sum_t eta_t over the whole training run, ``SGDConfig.reach_bound``): every
    row the recursion stores is finite with ||a_u|| <= reach (``utils.proposed.hf.check_divergence``),
    so a row read back beyond it (up to the storage rounding, REACH_SLACK) or not finite was not
    written by the recursion, and the read is refused naming the bank."""

    def __init__(self, directory, device, reach=None):
        self.directory, self.device, self.reach = directory, device, reach
        manifest = artifacts.read_json(os.path.join(directory, "manifest.json"), remedy=remedy(directory),
                                       fields=MANIFEST_FIELDS)
        index = artifacts.load_tensors(os.path.join(directory, "index.pt"), remedy=remedy(directory),
                                       expect={"rows": (None,), "rho_t": (None,)})
        shards = manifest["shards"]
        if not isinstance(shards, list) or not all(
                isinstance(s, dict) and isinstance(s.get("file"), str) and isinstance(s.get("start"), int)
                and isinstance(s.get("stop"), int) for s in shards):
            raise InputError(f"artefact {os.path.join(directory, 'manifest.json')}: its shards are not a list "
                             f"of {{file, start, stop}}; {remedy(directory)}")
        super().__init__(None, index["rows"], index["rho_t"], manifest)
        self.shards_read = []
        self.read_s = 0.0

    @property
    def storage_bytes(self):
        return self.manifest["storage_bytes"]

    def _shard(self, r):
        for s in self.manifest["shards"]:
            if s["start"] <= r < s["stop"]:
                return s
        raise InputError(f"bank {self.directory}: no shard holds row {r}; {remedy(self.directory)}")

    def gather(self, U):
        start = time.perf_counter()
        rows = self.vectors(U)
        loaded = {}
        second = self.manifest.get("order", 1) == 2
        for r in rows:
            s = self._shard(r)
            if s["file"] not in loaded:
                shape = (s["stop"] - s["start"], self.manifest["d"])
                got = artifacts.load_tensors(os.path.join(self.directory, s["file"]), remedy=remedy(self.directory),
                                             expect=dict(A=shape, **({"Q": shape} if second else {})))
                loaded[s["file"]] = got["A"] + got["Q"] if second else got["A"]
        d = self.manifest["d"]
        block = torch.empty(len(rows), d, dtype=next(iter(loaded.values())).dtype) if rows else \
            torch.empty(0, d)
        for k, r in enumerate(rows):
            s = self._shard(r)
            block[k] = loaded[s["file"]][r - s["start"]]
        self.check_rows(U, block)
        self.shards_read = sorted(loaded)
        seconds = time.perf_counter() - start
        self.read_s += seconds
        return block.to(self.device), seconds


    def check_rows(self, U, block):
        """InputError naming the bank unless every row of ``block`` (a_u for u in U) is finite
        and within ``reach``."""
        if not len(block):
            return
        norms = torch.linalg.vector_norm(block.double(), dim=1)
        bad = ~torch.isfinite(norms)
        if self.reach is not None:
            bad |= norms > self.reach * (1 + REACH_SLACK)
        if bool(bad.any()):
            k = int(bad.nonzero()[0])
            norm = float(norms[k])
            why = (f"beyond 2 c sum eta_t = {self.reach:.4g}, the farthest a deletion can move w"
                   if math.isfinite(norm) else "not finite")
            raise InputError(f"bank {self.directory}: the row of sample {int(U[k])} has norm {norm:.4g}, {why} "
                             f"(the recursion stores no such row); {remedy(self.directory)}")


def shard_name(start, stop):
    return f"shard-{start}-{stop}.pt"


def write_shard(directory, start, stop, A, rows, Q=None):
    """Atomically save rows start..stop-1 (their vectors, the second-order rows Q when given,
    and sample ids)."""
    path = os.path.join(directory, shard_name(start, stop))
    artifacts.save_tensors(path, {"A": A, "rows": rows, **({"Q": Q} if Q is not None else {})})
    return path


def write_index(directory, rows, rho_t, manifest, bounds, dtype):
    """Index and manifest (written last: the bank is complete once it exists)."""
    elt = torch.empty(0, dtype=dtype).element_size() * manifest.get("order", 1)
    shards = [{"file": shard_name(a, b), "start": a, "stop": b, "bytes": (b - a) * manifest["d"] * elt}
              for a, b in bounds if b > a]
    artifacts.save_tensors(os.path.join(directory, "index.pt"), {"rows": rows, "rho_t": rho_t})
    manifest = dict(manifest, shards=shards, storage_bytes=sum(s["bytes"] for s in shards))
    artifacts.write_json(os.path.join(directory, "manifest.json"), manifest)
    return manifest


def complete(directory):
    return os.path.exists(os.path.join(directory, "manifest.json"))
