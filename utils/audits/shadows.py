"""The LiRA pool and its shadow models (SPEC section 12).

Pool = the n training samples (pool index i = training index i, so U indexes the pool
directly) followed by non-members: a seeded draw from the train split's samples outside
the training set, topped up from the test split when the train split has too few (Wine:
all 142 train-split samples are used for training, so its non-members are the 36 of the
test split). Inputs and labels of every pool sample are fetched together by the sample's
position in its split, so a score is always computed with that sample's own label.

Shadow k trains, with the target's training flags (epochs, batch size, lr, decay, clip,
lambda), from its own initial weights and batch schedule, on the pool samples with
keep[k] = True; its scores phi on the whole pool are cached under the training
configuration, keyed by K and the pool, not by the forget set - so they are reused across
targets and deletion sets.
"""
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from models import build_model
from utils.common import artifacts, keys, resources
from utils.training.functional import FlatModel
from utils.audits.lira import KEEP_MASK_BYTES, keep_masks, model_scores, shadow_seed
from utils.common.errors import InputError
from utils.common.provenance import provenance
from utils.training.train import make_schedule, sgd

POOL_SEED_OFFSET = 31337
TRAIN_SPLIT, TEST_SPLIT = 0, 1


@dataclass
class Pool:
    """Pool samples: inputs, labels, membership in the target's training set, provenance."""
    X: torch.Tensor
    y: torch.Tensor
    member: np.ndarray      # bool (P,): one of the n training samples
    split: np.ndarray       # TRAIN_SPLIT / TEST_SPLIT: which split the sample comes from
    pos: np.ndarray         # position of the sample in that split

    def __len__(self):
        return len(self.y)

    def permuted(self, perm):
        """The same samples in another order (every field reordered together)."""
        perm = np.asarray(perm)
        t = torch.as_tensor(perm, device=self.y.device)
        return Pool(self.X[t], self.y[t], self.member[perm], self.split[perm], self.pos[perm])

    def identity(self):
        """JSON-able description that keys the shadow cache."""
        return {"P": len(self), "n_members": int(self.member.sum()),
                "samples": artifacts.config_key({"split": self.split.tolist(), "pos": self.pos.tolist()}),
                "inputs": keys.digest(self.X, self.y)}


def available_nonmembers(data):
    """Train-split positions outside the training set, then all test-split positions."""
    outside = np.setdiff1d(np.arange(len(data.train_split)), data.train_idx.numpy())
    return outside, np.arange(len(data.test_split))


def build_pool(data, n_nonmembers, seed, min_nonmembers, device):
    """Pool of SPEC 12; n_nonmembers = 0 means n (or all available when fewer exist).

    Raises InputError when fewer than ``min_nonmembers`` non-members can be had or more
    are requested than exist.
    """
    n = len(data.y_train)
    outside, test = available_nonmembers(data)
    available = len(outside) + len(test)
    want = n_nonmembers or min(n, available)
    where = (f"{len(outside)} unused train-split samples + {len(test)} test-split samples "
             f"of {data.source}")
    if want > available:
        raise InputError(f"--n_nonmembers: {want} non-members requested but only {available} exist "
                         f"({where}); lower --n_nonmembers or --num_dataset")
    if want < min_nonmembers:
        raise InputError(f"LiRA pool too small: {want} non-members ({where}) but at least "
                         f"{min_nonmembers} are needed (>= the forget set); lower --num_dataset")
    rng = np.random.default_rng(seed + POOL_SEED_OFFSET)
    order = np.r_[rng.permutation(outside), rng.permutation(test) + len(data.train_split)][:want]
    from_train = order < len(data.train_split)
    pos_train, pos_test = order[from_train], order[~from_train] - len(data.train_split)
    X_parts, y_parts = [data.X_train], [data.y_train]
    for split, pos in ((data.train_split, pos_train), (data.test_split, pos_test)):
        if len(pos):
            X_parts.append(split.fetch(torch.as_tensor(pos)))
            y_parts.append(split.labels[torch.as_tensor(pos)])
    return Pool(X=torch.cat(X_parts).to(device), y=torch.cat(y_parts).to(device),
                member=np.r_[np.ones(n, bool), np.zeros(want, bool)],
                split=np.r_[np.full(n + len(pos_train), TRAIN_SPLIT), np.full(len(pos_test), TEST_SPLIT)],
                pos=np.r_[data.train_idx.numpy(), pos_train, pos_test])


def train_shadow(exp, pool, in_mask, seed):
    """One shadow: the target's SGD on the pool samples in ``in_mask``, own init and schedule."""
    a = exp.args
    torch.manual_seed(seed)
    w0 = FlatModel(build_model(a.model, a.dataset, a.pretrained)).initial_vector().to(exp.device)
    idx = torch.as_tensor(np.flatnonzero(in_mask), device=exp.device)
    schedule = [b.to(exp.device) for b in make_schedule(len(idx), a.batch_size, a.epochs, seed, a.reshuffle)]
    return sgd(exp.fm, w0, pool.X[idx], pool.y[idx], schedule, exp.sgd_config)


def cache_bytes(K, P):
    """Estimated size of the shadow cache: scores (K, P) float64, keep (K, P) bool, pos, y, split (P,)."""
    return K * P * 9 + 3 * P * 8 + 4096


def check_resources(exp, K, P, path):
    """Before any shadow is trained: the (K, P) keep masks as they are built, the scores and
    the Gaussian fits' (K, P) float64 temporaries fit in memory, and the cache (when it is still
    to be written) fits the file-size limit and the free space, in a writable directory."""
    resources.check_memory(f"--n_shadows {K}: the LiRA shadows ({K:,} x {P:,} pool samples: keep masks, "
                           f"scores and the Gaussian fits)", K * P * (KEEP_MASK_BYTES + 4 * 8),
                           "lower --n_shadows (or --n_nonmembers)")
    if not os.path.exists(path):
        exp.check_writable([os.path.dirname(path)], {path: cache_bytes(K, P)})


def shadow_scores(exp, pool, K, progress=True):
    """(scores (K, P), keep (K, P), seconds spent training or 0 when cached). Trained under
    a lock on the cache file: a second process on the same configuration waits and reuses."""
    path = exp.cache_path("lira-shadows", flags=keys.FAMILIES["lira-shadows"], extra={"pool": pool.identity()})
    check_resources(exp, K, len(pool), path)
    with artifacts.lock(path, "the LiRA shadow models"):
        return _cached_or_trained(exp, pool, K, progress, path)


def _cached_or_trained(exp, pool, K, progress, path):
    """``shadow_scores`` with its lock held: the cached scores, or train and cache them."""
    a = exp.args
    if os.path.exists(path):
        P = len(pool)
        t = artifacts.load_tensors(path, expect={"scores": (K, P), "keep": (K, P), "pos": (P,), "y": (P,),
                                                 "split": (P,)}, finite=("scores",))
        if not np.array_equal(t["pos"].numpy(), pool.pos) or not np.array_equal(t["y"].numpy(), pool.y.cpu().numpy()):
            raise InputError(f"shadow cache {path} does not match the pool; delete it and rerun")
        return t["scores"].numpy(), t["keep"].numpy(), 0.0
    keep = keep_masks(K, len(pool), a.seed + POOL_SEED_OFFSET).numpy()
    scores = np.empty((K, len(pool)))
    start = time.perf_counter()
    for k in tqdm(range(K), desc="shadow models", disable=not progress or a.quiet):
        w = train_shadow(exp, pool, keep[k], shadow_seed(a.seed, k))
        scores[k] = model_scores(exp.fm, w, pool.X, pool.y, a.bs)
    seconds = time.perf_counter() - start
    artifacts.save_tensors(path, {"scores": torch.from_numpy(scores), "keep": torch.from_numpy(keep),
                                  "pos": torch.from_numpy(pool.pos), "y": pool.y.cpu(),
                                  "split": torch.from_numpy(pool.split)})
    artifacts.write_json(path[:-3] + ".json", {"config": exp.train_config(), "n_shadows": K,
                                               "pool": pool.identity(), "train_seconds": seconds,
                                               "data_source": exp.data.source, "provenance": provenance(exp)})
    return scores, keep, seconds
