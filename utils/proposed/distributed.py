"""torch.distributed context for the sharded Hessian-free precompute (SPEC section 8).

Under ``torchrun`` (WORLD_SIZE > 1) every rank replays the same deterministic training
and owns the contiguous shard

    rows[start_r : stop_r],   start_r = floor(r K / W),  stop_r = floor((r + 1) K / W)

of the K candidate rows (W ranks, r = 0..W-1), so the shards partition the rows and
differ in size by at most one. Without torchrun the context is a single rank owning
everything; nothing is initialised.

Every wait for the other ranks (initialisation, barriers, reductions) gives up after
``--dist_timeout`` seconds: the context's own collectives run on a gloo (CPU) group, on
CUDA too, so a stalled or dead rank ends the run with one line naming the flag instead
of a 30-minute hang.
"""
import datetime
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from utils.common.errors import InputError


def shard_bounds(k, rank, world):
    """[start, stop) of rank ``rank``'s contiguous share of ``k`` rows."""
    return rank * k // world, (rank + 1) * k // world


def stalled(rank, what, timeout_s, error):
    """The one-line InputError for a wait on the other ranks that failed or timed out."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    cause = re.sub(r"^\[[^]]*\]\s*", "", lines[0])[:200]       # drop gloo's "[file.cc:line]" prefix
    return InputError(f"rank {rank}: {what} did not complete within --dist_timeout {timeout_s:g} s "
                      f"(a rank stalled or died: see its output; raise --dist_timeout for slow ranks): {cause}")


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    timeout_s: float = 300.0
    group: object = None          # the gloo group of barrier() and max(); None = the default group

    @property
    def distributed(self):
        return self.world > 1

    @property
    def is_main(self):
        return self.rank == 0

    def _wait(self, what, collective):
        try:
            return collective()
        except RuntimeError as e:        # torch.distributed's errors (DistBackendError, ...) derive from it
            raise stalled(self.rank, what, self.timeout_s, e)

    def barrier(self):
        if self.distributed:
            self._wait("a barrier", lambda: dist.barrier(group=self.group))

    def max(self, value):
        """The maximum of a float over ranks (the wall time of a parallel phase)."""
        if not self.distributed:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        self._wait("a reduction", lambda: dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group))
        return float(t.item())

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def from_environment(use_cuda, timeout_s=300.0):
    """Initialise the process group when launched by torchrun (gloo on CPU, nccl on CUDA),
    with ``timeout_s`` (--dist_timeout) for every collective.

    With CUDA each rank uses the device LOCAL_RANK, and the context's own barriers and
    reductions use a gloo group with the same timeout.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(timeout_s=timeout_s)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local)
    timeout = datetime.timedelta(seconds=timeout_s)
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend, timeout=timeout)
        except RuntimeError as e:
            raise stalled(rank, "joining the process group", timeout_s, e)
    group = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
    return Context(rank=rank, world=world, local_rank=local, timeout_s=timeout_s, group=group)
