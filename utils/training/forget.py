"""The forget set U, one function for every script (SPEC section 6)."""
import torch

FORGET_SEED_OFFSET = 7919  # decorrelates U from the subset and schedule drawn from the same seed


def forget_set(n, m, seed, explicit=None):
    """Sorted LongTensor of m distinct indices of range(n), seeded; or the explicit list."""
    if explicit is not None:
        return torch.tensor(sorted(explicit), dtype=torch.long)
    gen = torch.Generator().manual_seed(seed + FORGET_SEED_OFFSET)
    return torch.randperm(n, generator=gen)[:m].sort().values
