"""One Markdown table per setting with the methods as rows, from a sweep's aggregate.

    python3 -m tools.method_table --results_dir results/Wine-variants [--figure fig.png] [--per_seed]

Reads ``<results_dir>/eva_summary.csv`` (written by ``main_eva.py --aggregate`` at the end of
every sweep) and prints, for each setting (``setting_key``: every flag but the seed), every
method's distance to Retrain (mean ± std over seeds, and mean distance / that setting's mean
floor), the fraction of Original's distance it removes, its alignment with Retrain's direction,
its test accuracy and its unlearning time (Proposed in replay mode: one replay of training): the
form in which docs/results.md compares the variants of Proposed (``VARIANTS=...``) with
Original, Retrain and the floor. Settings that share dataset, model, n and m get their own
tables, titled with the setting key and the flags that tell them apart (read from the runs'
``eva-*.json``). ``--figure`` also draws, per setting, each method's removed against its
alignment (mean over seeds, one marker per method; dashed: half of Original's distance removed).
``--per_seed`` also prints, from the per-run ``eva-*.json`` files, one row per seed with each
unlearning method's removed / alignment beside that run's floor (columns: every method with a
``removed`` value in any run of the setting).

A missing, empty, truncated or corrupt file, and a figure that cannot be written, stop with
one line and exit status 2, before any output.
"""
import argparse
import csv
import glob
import math
import os
import sys

from utils.common import artifacts
from utils.common.errors import InputError, fail
from utils.common.options import check_directory

COLUMNS = [("distance", "distance (x floor)"), ("removed", "removed"), ("alignment", "alignment"),
           ("test_acc", "test acc"), ("unlearn_s", "unlearning time (s)")]
QUAD = ("dataset", "model", "num_dataset", "num_forget")
REQUIRED = ("setting_key",) + QUAD + ("method", "seeds")
INTEGERS = ("num_dataset", "num_forget", "seeds")


def _stat(row, metric, digits=4):
    mean, std = row.get(f"{metric}_mean", ""), row.get(f"{metric}_std", "")
    if mean == "":
        return "-"
    return f"{float(mean):.{digits}g} ± {float(std or 0):.2g}"


def _number(text):
    """A finite float from a CSV cell (ValueError otherwise)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def read_summary(path):
    """The rows of an eva_summary.csv as dicts, every cell checked: InputError naming the file
    when it is missing, unreadable, empty, lacks a column, or has a short row or a cell that is
    not the number its column holds."""
    remedy = f"rerun main_eva.py --aggregate --results_dir {os.path.dirname(path) or '.'}"
    if not os.path.isfile(path):
        raise InputError(f"no {path}; run the sweep (or main_eva.py --aggregate --results_dir "
                         f"{os.path.dirname(path) or '.'}) first")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"cannot read {path} ({type(e).__name__}); {remedy}")
    if not header:
        raise InputError(f"{path} is empty; {remedy}")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"(not an eva_summary.csv, or truncated); {remedy}")
    if not rows:
        raise InputError(f"{path} holds no method rows; {remedy}")
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise InputError(f"{path} line {line}: {len(header)} columns expected (a truncated or "
                             f"corrupt file); {remedy}")
        for column, text in row.items():
            try:
                if column in INTEGERS:
                    int(text)
                elif column.endswith(("_mean", "_std")) and text != "":
                    _number(text)
            except ValueError:
                raise InputError(f"{path} line {line}: {column} = {text!r} is not a "
                                 f"{'whole number' if column in INTEGERS else 'finite number'}; {remedy}")
    return rows


def run_settings(results_dir):
    """{setting_key: setting} of the readable eva-*.json files (for table titles only: a file
    that cannot be read is left to ``--per_seed``, which checks every file)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "eva-*.json"))):
        try:
            rec = artifacts.read_json(path, fields=("setting_key", "setting"))
        except InputError:
            continue
        if isinstance(rec["setting"], dict):
            found.setdefault(str(rec["setting_key"]), rec["setting"])
    return found


def titles(keys, settings):
    """{setting_key: title} for ``keys`` ({setting_key: (dataset, model, n, m)}): 'dataset /
    model, n = N, m = M', and for settings that share those four, the setting key and the flags
    whose values differ among them (from ``settings``, {setting_key: setting})."""
    out = {}
    for key, (dataset, model, n, m) in keys.items():
        title = f"{dataset} / {model}, n = {n}, m = {m}"
        twins = [k for k, quad in keys.items() if quad == keys[key]]
        if len(twins) > 1:
            known = [settings[k] for k in twins if k in settings]
            differ = sorted({f for s in known for f in s if len({repr(t.get(f)) for t in known}) > 1})
            own = settings.get(key, {})
            told = ", ".join(f"{f}={own.get(f)}" for f in differ if f in own)
            title += f", setting {key}" + (f" ({told})" if told else "")
        out[key] = title
    return out


def _groups(rows):
    """{setting_key: [rows]} in file order, and {setting_key: (dataset, model, n, m)}."""
    groups, quads = {}, {}
    for r in rows:
        quad = (r["dataset"], r["model"], int(r["num_dataset"]), int(r["num_forget"]))
        key = r.get("setting_key") or "/".join(map(str, quad))
        groups.setdefault(key, []).append(r)
        quads[key] = quad
    return groups, quads


def markdown(rows, settings=None):
    """The tables of ``rows`` (dicts of eva_summary.csv), one per setting (``setting_key``),
    methods in file order; ``settings`` ({setting_key: setting}) names what tells apart
    settings with the same dataset, model, n and m."""
    groups, quads = _groups(rows)
    named = titles(quads, settings or {})
    out = []
    for key in sorted(groups, key=lambda k: (quads[k], k)):
        group = groups[key]
        floor = next((float(r["floor_mean"]) for r in group if r.get("floor_mean")), None)
        floor_text = "-" if floor is None else f"{floor:.3g}"
        out += [f"{named[key]} (floor {floor_text})", "",
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


def _fixed(value, spec):
    return "-" if value is None else format(value, spec)


def per_seed(results_dir):
    """One table per setting (``setting_key``) of the runs' ``eva-*.json`` (each checked by
    ``utils.evaluation.compare.read_result``: InputError naming a bad one): a row per seed, its
    floor and, for every method with a ``removed`` value in any run of the setting,
    ``removed / alignment`` ('-' where a run lacks the method or the value is null)."""
    from utils.evaluation.compare import methods_in_order, read_result   # loads torch: only for this option
    paths = sorted(glob.glob(os.path.join(results_dir, "eva-*.json")))
    if not paths:
        raise InputError(f"--per_seed: no eva-*.json in {results_dir}; run main_eva.py for each seed first")
    runs, settings = {}, {}
    for path in paths:
        run = read_result(path)
        key = str(run["setting_key"])
        runs.setdefault(key, []).append(run)
        settings.setdefault(key, run["setting"])
    quads = {k: tuple(settings[k][f] for f in QUAD) for k in runs}
    named = titles(quads, settings)
    out = []
    for key in sorted(runs, key=lambda k: (quads[k], k)):
        names = []
        for run in runs[key]:
            names += [n for n, r in run["methods"].items() if r.get("removed") is not None and n not in names]
        names = methods_in_order(names)
        out += [f"{named[key]}: removed / alignment per seed", "",
                "| seed | floor | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for run in sorted(runs[key], key=lambda r: r["seed"]):
            methods = run["methods"]
            floor = next((r["floor"] for r in methods.values() if r.get("floor") is not None), None)
            cells = [f"{_fixed(methods[n].get('removed'), '.3f')} / {_fixed(methods[n].get('alignment'), '.2f')}"
                     if methods.get(n, {}).get("removed") is not None else "-" for n in names]
            out.append(f"| {run['seed']} | {_fixed(floor, '.2g')} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def figure(rows, path, settings=None):
    """Removed against alignment, one marker per method, one panel per setting (PNG)."""
    from utils.audits.plots import plt, save_figure
    groups, quads = _groups([r for r in rows if r.get("removed_mean") and r.get("alignment_mean")])
    named = titles(quads, settings or {})
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.2 * max(1, len(groups)), 3.8), squeeze=False)
    for ax, key in zip(axes[0], sorted(groups, key=lambda k: (quads[k], k))):
        for i, r in enumerate(groups[key]):
            ax.scatter(float(r["alignment_mean"]), float(r["removed_mean"]), label=r["method"], s=45,
                       marker="osD^vP*X"[i % 8], alpha=0.8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set(title=named[key], xlabel="alignment cos(w - w_T, w_Retrain - w_T)", ylabel="removed",
               xlim=(min(0.0, ax.get_xlim()[0]), 1.0), ylim=(min(0.0, ax.get_ylim()[0]), max(1.0, ax.get_ylim()[1])))
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        return save_figure(fig, path)
    except OSError as e:
        raise InputError(f"--figure: cannot write {path} ({e.strerror or type(e).__name__})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results_dir", required=True, help="a sweep's results folder")
    p.add_argument("--figure", default=None, help="also write removed against alignment to this PNG")
    p.add_argument("--per_seed", action="store_true", help="also print removed / alignment seed by seed")
    args = p.parse_args(argv)
    try:
        if args.figure:
            check_directory("figure", os.path.dirname(args.figure) or ".")
        rows = read_summary(os.path.join(args.results_dir, "eva_summary.csv"))
        settings = run_settings(args.results_dir)
        text = markdown(rows, settings)
        if args.per_seed:
            text += "\n" + per_seed(args.results_dir)
        drawn = figure(rows, args.figure, settings) if args.figure else None
    except InputError as e:
        fail(str(e))
    print(text)
    if drawn:
        print(f"figure: {drawn}", file=sys.stderr)


if __name__ == "__main__":
    main()
