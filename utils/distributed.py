"""torch.distributed context for the sharded Hessian-free precompute (SPEC section 8).

Under ``torchrun`` (WORLD_SIZE > 1) every rank replays the same deterministic training
and owns the contiguous shard

    rows[start_r : stop_r],   start_r = floor(r K / W),  stop_r = floor((r + 1) K / W)

of the K candidate rows (W ranks, r = 0..W-1), so the shards partition the rows and
differ in size by at most one. Without torchrun the context is a single rank owning
everything; nothing is initialised.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


def shard_bounds(k, rank, world):
    """[start, stop) of rank ``rank``'s contiguous share of ``k`` rows."""
    return rank * k // world, (rank + 1) * k // world


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self):
        return self.world > 1

    @property
    def is_main(self):
        return self.rank == 0

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def max(self, value):
        """The maximum of a float over ranks (the wall time of a parallel phase)."""
        if not self.distributed:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def from_environment(use_cuda):
    """Initialise the process group when launched by torchrun (gloo on CPU, nccl on CUDA).

    With CUDA each rank uses the device LOCAL_RANK.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Context(rank=rank, world=world, local_rank=local)
