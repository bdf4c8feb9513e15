"""The noise floor of the distance to Retrain (SPEC section 10).

A distance ||w_method - w_retrain|| means something only against the metric's own
resolution. The floor is the distance between Retrain and a second, equally exact retrain
that differs only in something that should not matter (``--floor``):

    perturb   w_0 scaled elementwise by (1 + 1e-7 xi), xi ~ N(0, I) drawn from the
              generator seeded with ``--seed + PERTURB_SEED_OFFSET``; same schedule;
    float64   the same retrain run in double precision (model, data and w_0 cast);
    threads   the same retrain with a different torch thread count (1 <-> 2).

The floor's model is cached like any method (``Floor-<key>.pt`` under the forget folder,
keyed by ``--floor`` and ``--retrain_norm``). Every table reports each method's distance,
the floor and their ratio; a method with distance <= WITHIN x floor is indistinguishable
from exact retraining.
"""
import copy
import time

import torch

from utils.training.functional import FlatModel
from utils.common.report import info
from utils.training.train import sgd

KINDS = ("perturb", "float64", "threads")
RELATIVE = 1e-7
PERTURB_SEED_OFFSET = 3
WITHIN = 1.5
RULE = (f"floor = distance between Retrain and a retrain that differs only by --floor; "
        f"ratio = distance / floor; '~' marks distance <= {WITHIN} x floor: "
        f"indistinguishable from exact retraining")


def perturbed_w0(w0, seed, relative=RELATIVE):
    """w_0 * (1 + relative * xi), xi standard normal from a generator seeded with ``seed``;
    computed in float64 and rounded once to w_0's dtype."""
    gen = torch.Generator().manual_seed(seed)
    xi = torch.randn(w0.numel(), generator=gen, dtype=torch.float64).to(w0.device)
    return (w0.double() * (1 + relative * xi)).to(w0.dtype)


def other_thread_count(threads):
    """The thread count of the 'threads' floor: 1 when more are in use, else 2."""
    return 1 if threads > 1 else 2


def floor_model(exp, kind):
    """(w, details): the retrain that defines the floor of ``kind`` for exp's config and U."""
    a = exp.args
    common = dict(keep=exp.keep, norm=exp.unlearn.retrain_norm, progress=exp.progress, desc=f"floor ({kind})")
    if kind == "perturb":
        seed = a.seed + PERTURB_SEED_OFFSET
        w = sgd(exp.fm, perturbed_w0(exp.w0, seed), exp.X, exp.y, exp.schedule, exp.sgd_config, **common)
        return w, {"perturb_seed": seed, "relative": RELATIVE}
    if kind == "float64":
        fm64 = FlatModel(copy.deepcopy(exp.fm.module).double())
        X64 = exp.X.double() if exp.X.is_floating_point() else exp.X
        w = sgd(fm64, exp.w0.double(), X64, exp.y, exp.schedule, exp.sgd_config, **common)
        return w, {"dtype": "float64"}
    if kind == "threads":
        before = torch.get_num_threads()
        torch.set_num_threads(other_thread_count(before))
        try:
            w = sgd(exp.fm, exp.w0, exp.X, exp.y, exp.schedule, exp.sgd_config, **common)
        finally:
            torch.set_num_threads(before)
        return w, {"threads": other_thread_count(before), "reference_threads": before}
    raise ValueError(f"unknown floor kind {kind!r}")


def cached_floor(exp):
    """The floor's model for exp's flags: loaded when cached, else computed (one retrain)
    and saved as method 'Floor'. Returns (w, record metrics)."""
    got = exp.load_method("Floor")
    if got is not None:
        return got[0], got[1].get("metrics", {})
    kind = exp.args.floor
    exp.check_writable([exp.forget_dir])
    info(f"computing the noise floor ({kind}): one retrain")
    start = time.perf_counter()
    w, details = floor_model(exp, kind)
    metrics = dict(exp.metrics(w), floor=kind, floor_s=time.perf_counter() - start,
                   unlearn_s=None, precompute_s=None, storage_bytes=None, **details)
    exp.save_method("Floor", w, metrics)
    return w, metrics


def ensure_floor(exp):
    """Cache the floor for exp (needs the original and Retrain first, for their messages)."""
    exp.require_original()
    exp.require_method("Retrain")
    cached_floor(exp)


def ratio(distance, floor):
    """distance / floor; None when the floor is 0 (the metric resolves everything)."""
    return distance / floor if floor > 0 else None


def within(distance, floor):
    """The table's rule: distance <= WITHIN * floor."""
    return bool(distance <= WITHIN * floor)


def annotate(rows):
    """Move the 'Floor' row of ``compare``'s {method: row} into every other row as
    floor, floor_ratio and within_floor; returns the new dict (rows without Floor unchanged)."""
    if "Floor" not in rows:
        return rows
    floor = rows["Floor"]["distance"]
    out = {}
    for name, row in rows.items():
        if name == "Floor":
            continue
        out[name] = dict(row, floor=floor, floor_ratio=ratio(row["distance"], floor),
                         within_floor=within(row["distance"], floor))
    return out
