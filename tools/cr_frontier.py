"""Certified removal's frontier: one table and one figure over the settings Certify.sh ran.

Reads, in ``--release_dir`` (results/Certify/cr), one folder per setting holding the ``--json``
outputs Certify.sh captured: ``eva.json`` (main_eva.py: the non-private Original's test
accuracy), ``eps<E>-<removal>.json`` (main_CR.py) and, when present,
``eps<E>-<removal>-miau.json`` / ``-lira.json`` (the audits of that release). One row per
(setting, removal, epsilon): sigma_b, test accuracy, distance to its own retrain (CR_Retrain),
the requests answered before the first retrain and the retrains over the m requests, the
median exact residual of the removal step (before any retrain replaced it), the budget spent,
the median ratio of Corollary 1's bound to the exact residual (newton), the certified epsilon, the removal and residual-pass times per request,
and the audits' AUCs.

    python3 -m tools.cr_frontier --release_dir results/Certify/cr

writes cr_frontier.md, cr_frontier.csv and cr_frontier.png (test accuracy against epsilon, one
line per setting and removal step, the non-private accuracy as a dashed line).
"""
import argparse
import csv
import glob
import io
import json
import os
import re
import statistics

from utils.audits.plots import plt, save_figure
from utils.common import artifacts
from utils.common.errors import InputError, fail

COLUMNS = ["setting", "removal", "epsilon", "sigma_b", "test_acc", "nonprivate_test_acc", "distance",
           "requests_before_retrain", "retrained", "requests", "step_residual_median", "budget_spent", "budget",
           "certified_epsilon", "bound_over_residual_median", "remove_ms", "residual_pass_ms",
           "miau_auc_heldout", "lira_auc_forget"]


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable ({e}); rerun Certify.sh")


def rows(release_dir):
    out = []
    for setting_dir in sorted(glob.glob(os.path.join(release_dir, "*", ""))):
        setting = os.path.basename(os.path.normpath(setting_dir))
        eva = os.path.join(setting_dir, "eva.json")
        nonprivate = _read(eva)["Original"]["test_acc"] if os.path.exists(eva) else None
        for path in sorted(glob.glob(os.path.join(setting_dir, "eps*-*.json"))):
            m = re.fullmatch(r"eps([0-9.e+-]+)-(newton|hf)(-repair[0-9]+)?\.json", os.path.basename(path))
            if not m:
                continue
            r = _read(path)
            bounds = r.get("gradient_residual_bounds") or []
            steps = r.get("step_residuals") or []
            ratios = [b / s for b, s in zip(bounds, steps) if s > 0]
            removal = m.group(2) + (m.group(3).replace("-repair", "+repair") if m.group(3) else "")
            row = {"setting": setting, "removal": removal, "epsilon": float(m.group(1)),
                   "sigma_b": r["sigma_b"], "test_acc": r["test_acc"], "nonprivate_test_acc": nonprivate,
                   "distance": r["distance"], "requests_before_retrain": r["requests_before_retrain"],
                   "retrained": r["retrained"], "requests": r["requests"], "budget_spent": r["budget_spent"],
                   "budget": r["budget"], "certified_epsilon": r["certified_epsilon"],
                   "step_residual_median": statistics.median(steps) if steps else None,
                   "bound_over_residual_median": statistics.median(ratios) if ratios else None,
                   "remove_ms": 1e3 * r["remove_s_per_request"], "residual_pass_ms": 1e3 * r["certify_s_per_request"]}
            miau = path[:-5] + "-miau.json"
            if os.path.exists(miau):
                row["miau_auc_heldout"] = _read(miau).get("CR", {}).get("auc_heldout")
            lira = path[:-5] + "-lira.json"
            if os.path.exists(lira):
                row["lira_auc_forget"] = _read(lira).get("CR", {}).get("auc_forget")
            out.append(row)
    if not out:
        raise InputError(f"no main_CR.py results under {release_dir}; run: PARTS=cr bash Certify.sh")
    return sorted(out, key=lambda r: (r["setting"], r["removal"], r["epsilon"]))


def _cell(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(table):
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join("| " + " | ".join(_cell(r.get(c)) for c in COLUMNS) + " |\n" for r in table)


def figure(table, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    settings = sorted({r["setting"] for r in table})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, setting in enumerate(settings):
        colour = colours[i % len(colours)]
        for removal in sorted({r["removal"] for r in table if r["setting"] == setting}):
            style = "o-" if removal == "newton" else ("s--" if removal == "hf" else "^:")
            line = [r for r in table if r["setting"] == setting and r["removal"] == removal]
            if line:
                ax.plot([r["epsilon"] for r in line], [r["test_acc"] for r in line], style, color=colour,
                        label=f"{setting}, CR {removal}")
        nonprivate = next((r["nonprivate_test_acc"] for r in table if r["setting"] == setting
                           and r["nonprivate_test_acc"] is not None), None)
        if nonprivate is not None:
            ax.axhline(nonprivate, color=colour, linestyle=":", linewidth=1, label=f"{setting}, non-private")
    ax.set_xscale("log")
    ax.set_xlabel("epsilon (delta = 1e-5)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Certified removal: test accuracy against epsilon")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--release_dir", required=True, help="results/Certify/cr (one folder per setting)")
    a = p.parse_args(argv)
    try:
        table = rows(a.release_dir)
        base = os.path.join(a.release_dir, "cr_frontier")
        artifacts.write_text(base + ".md", markdown(table))
        buf = io.StringIO()
        w = csv.DictWriter(buf, COLUMNS)
        w.writeheader()
        w.writerows(table)
        artifacts.write_text(base + ".csv", buf.getvalue())
        figure(table, base + ".png")
    except InputError as e:
        fail(str(e))
    print(markdown(table) + f"\nwritten: {base}.md, .csv, .png")


if __name__ == "__main__":
    main()
