"""Figures of a sweep from its aggregated results (mean ± std over seeds).

For every (dataset, model) in ``--results_dir``: the L2 distance to the retrained model
(log scale) and the test accuracy of each method against the swept quantity ``--x``
(number of deletions by default; step size or epochs for the ablations). The distance
panel also shows the noise floor (black, dashed, ± std band) and WITHIN x floor (dotted):
a method below the dotted line is indistinguishable from exact retraining.

    python3 -m tools.sweep_figures --results_dir results/MNIST --title MNIST [--x num_forget|lr|epochs]
"""
import argparse
import os
import sys

from utils.evaluation.compare import aggregate
from utils.common.errors import InputError
from utils.evaluation.floor import WITHIN
from utils.audits.plots import plt, save_figure

LABELS = {"num_forget": "number of deletions m", "lr": "step size lr", "epochs": "epochs"}


def curves(agg, x, metric):
    """{(dataset, model): {method: [(x, mean, std), ...] sorted by x}}."""
    out = {}
    for group in agg.values():
        s = group["setting"]
        per_method = out.setdefault((s["dataset"], s["model"]), {})
        for method, stats in group["methods"].items():
            if metric in stats:
                per_method.setdefault(method, []).append((s[x], stats[metric]["mean"], stats[metric]["std"]))
    return {k: {m: sorted(v) for m, v in d.items()} for k, d in out.items()}


def floor_curve(agg, x):
    """{(dataset, model): [(x, mean, std), ...]}: the floor of each setting (equal in every
    method's rows; read from the first method that has it)."""
    out = {}
    for group in agg.values():
        s = group["setting"]
        stats = next((st["floor"] for st in group["methods"].values() if "floor" in st), None)
        if stats is not None:
            out.setdefault((s["dataset"], s["model"]), []).append((s[x], stats["mean"], stats["std"]))
    return {k: sorted(v) for k, v in out.items()}


def plot(agg, x, results_dir, title):
    """Write one PNG per (dataset, model); returns the paths."""
    distance, accuracy = curves(agg, x, "distance"), curves(agg, x, "test_acc")
    floors = floor_curve(agg, x)
    methods = sorted({m for g in agg.values() for m in g["methods"]})
    color = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    paths = []
    for (dataset, model), per_method in sorted(distance.items()):
        fig, (ax_d, ax_a) = plt.subplots(1, 2, figsize=(11, 4))
        for method, pts in per_method.items():
            if method == "Retrain":
                continue
            xs, mean, std = zip(*pts)
            ax_d.errorbar(xs, mean, yerr=std, marker="o", capsize=3, label=method, color=color[method])
        if (dataset, model) in floors:
            xs, mean, std = zip(*floors[(dataset, model)])
            lo = [max(m - s, m * 1e-3) for m, s in zip(mean, std)]
            ax_d.plot(xs, mean, "k--", label="floor")
            ax_d.fill_between(xs, lo, [m + s for m, s in zip(mean, std)], color="k", alpha=0.1)
            ax_d.plot(xs, [WITHIN * m for m in mean], "k:", label=f"{WITHIN} x floor")
        for method, pts in accuracy[(dataset, model)].items():
            xs, mean, std = zip(*pts)
            ax_a.errorbar(xs, mean, yerr=std, marker="o", capsize=3, label=method, color=color[method])
        ax_d.set_yscale("log")
        ax_d.set_ylabel("||w - w_retrain||_2")
        ax_a.set_ylabel("test accuracy")
        for ax in (ax_d, ax_a):
            ax.set_xlabel(LABELS.get(x, x))
            if x == "lr":
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"{title}: {dataset} / {model} (mean ± std over seeds)")
        fig.tight_layout()
        paths.append(save_figure(fig, os.path.join(results_dir, f"fig_{dataset}_{model}_{x}.png")))
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results_dir", required=True)
    p.add_argument("--title", default="sweep")
    p.add_argument("--x", choices=sorted(LABELS), default="num_forget")
    a = p.parse_args(argv)
    try:
        paths = plot(aggregate(a.results_dir), a.x, a.results_dir, a.title)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for path in paths:
        print(f"figure: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
