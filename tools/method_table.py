"""One Markdown table per setting with the methods as rows, from a sweep's aggregate.

    python3 -m tools.method_table --results_dir results/Wine-variants [--figure fig.png] [--per_seed]

Reads ``<results_dir>/eva_summary.csv`` (written by ``main_eva.py --aggregate`` at the end of
every sweep) and prints, for each (dataset, model, n, m), every method's distance to Retrain
(mean ± std over seeds, and mean distance / mean floor), the fraction of Original's distance
it removes, its alignment with Retrain's direction, its test accuracy and its unlearning time
(Proposed in replay mode: one replay of training): the form in which
docs/results.md compares the variants of Proposed (``VARIANTS=...``) with Original, Retrain
and the floor. ``--figure`` also draws, per setting, each method's removed against its
alignment (mean over seeds, one marker per method; dashed: half of Original's distance removed).
``--per_seed`` also prints, from the per-run ``eva-*.json`` files, one row per seed with each
unlearning method's removed / alignment beside that run's floor.
"""
import argparse
import csv
import glob
import json
import os
import sys

COLUMNS = [("distance", "distance (x floor)"), ("removed", "removed"), ("alignment", "alignment"),
           ("test_acc", "test acc"), ("unlearn_s", "unlearning time (s)")]


def _stat(row, metric, digits=4):
    mean, std = row.get(f"{metric}_mean", ""), row.get(f"{metric}_std", "")
    if mean == "":
        return "-"
    return f"{float(mean):.{digits}g} ± {float(std):.2g}"


def markdown(rows):
    """The tables of ``rows`` (dicts of eva_summary.csv), one per setting, methods in file order."""
    settings = {}
    for r in rows:
        settings.setdefault((r["dataset"], r["model"], int(r["num_dataset"]), int(r["num_forget"])), []).append(r)
    out = []
    for (dataset, model, n, m), group in sorted(settings.items()):
        floor = next((float(r["floor_mean"]) for r in group if r.get("floor_mean")), None)
        floor_text = "-" if floor is None else f"{floor:.3g}"
        out += [f"{dataset} / {model}, n = {n}, m = {m} (floor {floor_text})", "",
                "| method | seeds | " + " | ".join(title for _, title in COLUMNS) + " |",
                "|---|---|" + "---|" * len(COLUMNS)]
        for r in group:
            cells = []
            for metric, _ in COLUMNS:
                cell = _stat(r, metric)
                if metric == "distance" and floor and r.get("distance_mean"):
                    cell += f" ({float(r['distance_mean']) / floor:.3g}x)"
                cells.append(cell)
            out.append(f"| {r['method']} | {r['seeds']} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def per_seed(results_dir):
    """One table per setting of the runs' ``eva-*.json``: a row per seed, its floor and, for every
    method with a ``removed`` value, ``removed / alignment`` (methods in the files' order)."""
    settings = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "eva-*.json"))):
        with open(path) as f:
            run = json.load(f)
        s = run["setting"]
        settings.setdefault((s["dataset"], s["model"], s["num_dataset"], s["num_forget"]), []).append(run)
    out = []
    for (dataset, model, n, m), runs in sorted(settings.items()):
        names = [name for name, r in runs[0]["methods"].items() if r.get("removed") is not None]
        out += [f"{dataset} / {model}, n = {n}, m = {m}: removed / alignment per seed", "",
                "| seed | floor | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for run in sorted(runs, key=lambda r: r["seed"]):
            methods = run["methods"]
            floor = next(iter(methods.values()))["floor"]
            cells = [f"{methods[name]['removed']:.3f} / {methods[name]['alignment']:.2f}" if name in methods
                     else "-" for name in names]
            out.append(f"| {run['seed']} | {floor:.2g} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def figure(rows, path):
    """Removed against alignment, one marker per method, one panel per setting (PNG)."""
    from utils.audits.plots import plt, save_figure
    settings = {}
    for r in rows:
        if r.get("removed_mean") and r.get("alignment_mean"):
            key = f"{r['dataset']}/{r['model']} n={r['num_dataset']} m={r['num_forget']}"
            settings.setdefault(key, []).append(r)
    fig, axes = plt.subplots(1, max(1, len(settings)), figsize=(4.2 * max(1, len(settings)), 3.8), squeeze=False)
    for ax, (title, group) in zip(axes[0], sorted(settings.items())):
        for i, r in enumerate(group):
            ax.scatter(float(r["alignment_mean"]), float(r["removed_mean"]), label=r["method"], s=45,
                       marker="osD^vP*X"[i % 8], alpha=0.8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set(title=title, xlabel="alignment cos(w - w_T, w_Retrain - w_T)", ylabel="removed",
               xlim=(min(0.0, ax.get_xlim()[0]), 1.0), ylim=(min(0.0, ax.get_ylim()[0]), max(1.0, ax.get_ylim()[1])))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results_dir", required=True, help="a sweep's results folder")
    p.add_argument("--figure", default=None, help="also write removed against alignment to this PNG")
    p.add_argument("--per_seed", action="store_true", help="also print removed / alignment seed by seed")
    args = p.parse_args(argv)
    path = os.path.join(args.results_dir, "eva_summary.csv")
    if not os.path.isfile(path):
        sys.exit(f"error: no {path}; run the sweep (or main_eva.py --aggregate --results_dir "
                 f"{args.results_dir}) first")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    print(markdown(rows))
    if args.per_seed:
        print(per_seed(args.results_dir))
    if args.figure:
        print(f"figure: {figure(rows, args.figure)}", file=sys.stderr)


if __name__ == "__main__":
    main()
