"""One Markdown table per setting with the methods as rows, from a sweep's aggregate.

    python3 -m tools.method_table --results_dir results/Wine-variants

Reads ``<results_dir>/eva_summary.csv`` (written by ``main_eva.py --aggregate`` at the end of
every sweep) and prints, for each (dataset, model, n, m), every method's distance to Retrain
(mean ± std over seeds, and mean distance / mean floor), the fraction of Original's distance
it removes, its alignment with Retrain's direction and its test accuracy: the form in which
docs/results.md compares the variants of Proposed (``VARIANTS=...``) with Original, Retrain
and the floor.
"""
import argparse
import csv
import os
import sys

COLUMNS = [("distance", "distance (x floor)"), ("removed", "removed"), ("alignment", "alignment"),
           ("test_acc", "test acc")]


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results_dir", required=True, help="a sweep's results folder")
    args = p.parse_args(argv)
    path = os.path.join(args.results_dir, "eva_summary.csv")
    if not os.path.isfile(path):
        sys.exit(f"error: no {path}; run the sweep (or main_eva.py --aggregate --results_dir "
                 f"{args.results_dir}) first")
    with open(path) as f:
        print(markdown(list(csv.DictReader(f))))


if __name__ == "__main__":
    main()
