"""Benchmark: the full-data Hessian precompute of NU/IJ against a naive per-sample reference.

    python3 bench/bench_hessian.py --model logistic --dataset mnist --epochs 15 --batch_size 32 \
        --lr 0.05 --lr_decay 0.995 --clip 5 --regularization 0.5 --num_dataset 1000 --gpu -1

Ours: ``utils.curvature.hessian.hessian_sum`` over all n samples at w_T (the closed form for the
logistic model, and the generic vmap'd forward-over-reverse products for every model).
Naive reference, of the kind of the authors' code: for each sample, its own Hessian, row by
row, one backward pass of the gradient per parameter (d backward passes per sample). It
runs in the same process on --naive_samples samples (and --naive_columns rows, 0 = all d),
is checked against ours on those samples, and is extrapolated linearly to n samples and d
rows. Prints a table and the speed-up ratio; --json prints it as one object.
"""
import os
import sys
import time

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils.common.experiment import Experiment, run_main  # noqa: E402
from utils.training.functional import per_sample_ce  # noqa: E402
from utils.curvature.hessian import hessian_sum  # noqa: E402
from utils.curvature.hvp import closed_form_available  # noqa: E402
from utils.common.errors import InputError  # noqa: E402
from utils.common.options import build_parser, parse_args  # noqa: E402
from utils.common.report import finish, info, table  # noqa: E402


def naive_rows(fm, w, X, y, lam, rows, progress):
    """sum over the samples of hess l_i restricted to ``rows``: one backward pass per row per sample."""
    out = torch.zeros(len(rows), fm.d, dtype=w.dtype, device=w.device)
    for i in tqdm(range(len(y)), desc="naive per-sample Hessian", disable=not progress, leave=False):
        v = w.detach().clone().requires_grad_(True)
        loss = per_sample_ce(fm, v, X[i:i + 1], y[i:i + 1]).sum() + lam / 2 * v.dot(v)
        (g,) = torch.autograd.grad(loss, v, create_graph=True)
        for r, j in enumerate(rows):
            out[r] += torch.autograd.grad(g[j], v, retain_graph=True)[0]
    return out


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = build_parser()
    parser.add_argument("--naive_samples", type=int, default=2, help="samples the naive reference runs on")
    parser.add_argument("--naive_columns", type=int, default=0, help="Hessian rows the naive reference computes (0 = all d)")
    args = parse_args(parser=parser)
    if not 1 <= args.naive_samples <= args.num_dataset or args.naive_columns < 0:
        raise InputError("--naive_samples must be in [1, num_dataset] and --naive_columns >= 0")
    exp = Experiment(args)
    w_T, _ = exp.original()
    n, d, lam = exp.n, exp.fm.d, args.regularization
    s, c = args.naive_samples, min(args.naive_columns or d, d)
    info(f"{args.dataset}/{args.model}: n={n}, d={d}; naive reference on {s} samples x {c} rows; device={exp.device}")
    progress = not args.quiet
    methods = ["closed", "jvp"] if closed_form_available(exp.fm) else ["jvp"]
    rows = []
    for method in methods:  # warm-up (one-time tracing and allocation) before timing
        hessian_sum(exp.fm, w_T, exp.X[:1], exp.y[:1], lam, args.mem_budget_mb, engine=method)
    naive_rows(exp.fm, w_T, exp.X[:1], exp.y[:1], lam, [0], False)
    for method in methods:
        _, seconds = timed(lambda: hessian_sum(exp.fm, w_T, exp.X, exp.y, lam, args.mem_budget_mb,
                                               f"Hessian ({method})" if progress else None, method))
        rows.append(dict(method=f"ours ({method})", samples=n, rows=d, measured_s=seconds, full_s=seconds))
    Xs, ys = exp.X[:s], exp.y[:s]
    ref, seconds = timed(lambda: naive_rows(exp.fm, w_T, Xs, ys, lam, list(range(c)), progress))
    ours_small = hessian_sum(exp.fm, w_T, Xs, ys, lam, args.mem_budget_mb)[:c]
    max_diff = float((ref - ours_small).abs().max())
    rows.append(dict(method="naive per-sample", samples=s, rows=c, measured_s=seconds,
                     full_s=seconds * (n / s) * (d / c)))
    best = min(r["full_s"] for r in rows[:-1])
    ratio = rows[-1]["full_s"] / best
    summary = {"dataset": args.dataset, "model": args.model, "n": n, "d": d, "device": str(exp.device),
               "rows": rows, "ratio": ratio, "max_abs_diff_vs_naive": max_diff}
    finish(summary, args.json,
           table(rows, ["method", "samples", "rows", "measured_s", "full_s"]) +
           f"\nfull_s = extrapolated to n={n} samples and d={d} rows; naive / ours (fastest) = {ratio:.0f}x; "
           f"max |difference| on the naive subset = {max_diff:.2e}")


if __name__ == "__main__":
    run_main(main)
