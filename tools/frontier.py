"""The privacy-utility frontier of the certified release: one table and one figure per setting.

Reads the ``--json`` outputs that Certify.sh captured in ``--release_dir``, one release per
tag: ``<tag>-proposed.json`` (main_proposed.py --application --noise_seeds K) and, for each
draw k, ``<tag>-lira-<k>.json`` (main_MIAL.py --noise_seed k) and ``<tag>-miau-<k>.json``
(main_MIAU.py --noise_seed k). Each row is one release (one sigma): the epsilon it certifies
at delta (empty with the reason when nothing is certified), Delta, the realised distance of
the noise-free unlearned model to Retrain and their ratio, and over the K draws the mean,
std, min and max of the test accuracy, the distance of the noised model to Retrain, LiRA on
the forget set (AUC, TPR at 1% and 0.1% FPR) and the MIA-U held-out AUC.

    python3 -m tools.frontier --release_dir results/Certify/mnist_logistic --title mnist_logistic

writes frontier.md, frontier.csv, frontier.json and frontier.png in ``--release_dir``.
"""
import argparse
import csv
import glob
import io
import json
import math
import os
import re

from utils.common import artifacts
from utils.common.errors import InputError, fail
from utils.audits.plots import plt, save_figure

ATTACKS = {"lira": ("auc_forget", "tpr_at_1fpr_forget", "tpr_at_0.1fpr_forget"), "miau": ("auc_heldout",)}
COLUMNS = ["release", "sigma", "certified_epsilon", "certified_epsilon_note", "delta", "Delta",
           "realised_distance", "looseness_ratio", "k",
           "test_acc", "test_acc_std", "test_acc_min", "test_acc_max", "distance", "distance_std",
           "lira_auc_forget", "lira_auc_forget_std", "lira_auc_forget_min", "lira_auc_forget_max",
           "lira_tpr_at_1fpr_forget", "lira_tpr_at_0.1fpr_forget",
           "miau_auc_heldout", "miau_auc_heldout_std", "miau_auc_heldout_min", "miau_auc_heldout_max"]


def stats(values):
    mean = sum(values) / len(values)
    return {"mean": mean, "std": math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)),
            "min": min(values), "max": max(values)}


def read(path):
    """A script's ``--json`` summary as Certify.sh captured it (strict JSON; a summary on
    stdout, not a stored artefact, so it carries no format mark)."""
    if not os.path.exists(path):
        raise InputError(f"{path} is missing; rerun Certify.sh")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"corrupt capture {path} ({type(e).__name__}); delete it and rerun Certify.sh")


def release_row(release_dir, tag):
    """One row of the frontier for the release ``tag`` (see the module docstring)."""
    out = read(os.path.join(release_dir, f"{tag}-proposed.json"))
    noisy = out["Proposed_noise"]
    k = noisy["noise_seeds"]
    draws = noisy["noise_draws"]
    row = {"release": tag, "sigma": noisy["sigma"], "certified_epsilon": noisy["certified_epsilon"],
           "certified_epsilon_note": noisy["certified_epsilon_note"], "delta": noisy["delta"],
           "Delta": noisy["sensitivity"], "realised_distance": noisy["realised_distance"],
           "looseness_ratio": noisy["looseness_ratio"], "k": k,
           "proposed_test_acc": out["Proposed"]["test_acc"]}
    for key in ("test_acc", "distance"):
        if key in draws:
            row.update({key: draws[key]["mean"], f"{key}_std": draws[key]["std"],
                        f"{key}_min": draws[key]["min"], f"{key}_max": draws[key]["max"]})
    for attack, metrics in ATTACKS.items():
        per_draw = []
        for i in range(k):
            path = os.path.join(release_dir, f"{tag}-{attack}-{i}.json")
            got = read(path)
            if "Proposed_noise" not in got:
                raise InputError(f"{path} has no Proposed_noise target (draw {i} was not found); rerun Certify.sh")
            per_draw.append(got["Proposed_noise"])
            row[f"{attack}_reference"] = {t: got[t][metrics[0]] for t in ("Retrain", "Proposed") if t in got}
        for metric in metrics:
            s = stats([d[metric] for d in per_draw])
            row.update({f"{attack}_{metric}": s["mean"], f"{attack}_{metric}_std": s["std"],
                        f"{attack}_{metric}_min": s["min"], f"{attack}_{metric}_max": s["max"]})
    return row


def load_rows(release_dir):
    """Rows of every release in ``release_dir``, sorted by sigma."""
    tags = sorted({re.sub(r"-proposed\.json$", "", os.path.basename(p))
                   for p in glob.glob(os.path.join(release_dir, "*-proposed.json"))})
    if not tags:
        raise InputError(f"--release_dir: no *-proposed.json in {release_dir}; run Certify.sh first")
    return sorted((release_row(release_dir, t) for t in tags), key=lambda r: r["sigma"])


def cell(row, column):
    v = row.get(column)
    if column == "certified_epsilon" and v is None:
        return "inf"
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(rows, title):
    """Markdown table; an infinite certified epsilon is written out with its reason."""
    shown = ["release", "sigma", "certified_epsilon", "Delta", "realised_distance", "looseness_ratio", "k",
             "test_acc", "distance", "lira_auc_forget", "lira_tpr_at_1fpr_forget",
             "lira_tpr_at_0.1fpr_forget", "miau_auc_heldout"]
    spread = {"test_acc", "distance", "lira_auc_forget", "miau_auc_heldout"}
    lines = [f"### Certified release frontier: {title}", "",
             "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for r in rows:
        cells = []
        for c in shown:
            if c == "certified_epsilon" and r[c] is None:
                cells.append(f"infinite ({r['certified_epsilon_note']})")
            elif c in spread and c in r:
                cells.append(f"{r[c]:.4f} ± {r[c + '_std']:.4f} [{r[c + '_min']:.4f}, {r[c + '_max']:.4f}]")
            else:
                cells.append(cell(r, c))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean ± std [min, max] over the k noise draws; delta = "
              f"{rows[0]['delta']}; Delta = the authors' bound; realised_distance = ||w_unlearned - w_retrain|| "
              "without noise; looseness_ratio = Delta / realised_distance."]
    return "\n".join(lines) + "\n"


def to_csv(rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([cell(r, c) for c in COLUMNS])
    return buf.getvalue()


def figure(rows, path, title):
    """Test accuracy and attack AUCs (mean, min-max bars) against sigma on a log axis, the
    certified epsilon on a second (log) axis; dashed lines: the noise-free unlearned model."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sig = [r["sigma"] for r in rows]
    for key, label, color in [("test_acc", "test accuracy", "C0"), ("lira_auc_forget", "LiRA AUC (forget set)", "C1"),
                              ("miau_auc_heldout", "MIA-U held-out AUC", "C2")]:
        mean = [r[key] for r in rows]
        err = [[r[key] - r[key + "_min"] for r in rows], [r[key + "_max"] - r[key] for r in rows]]
        ax.errorbar(sig, mean, yerr=err, marker="o", capsize=3, label=label, color=color)
    ax.axhline(rows[0]["proposed_test_acc"], color="C0", ls="--", lw=1, label="test accuracy without noise")
    retrain_auc = rows[0].get("lira_reference", {}).get("Retrain")
    if retrain_auc is not None:
        ax.axhline(retrain_auc, color="C1", ls="--", lw=1, label="LiRA AUC of Retrain")
    ax.set_xscale("log")
    ax.set_xlabel("noise sigma per coordinate")
    ax.set_ylabel("accuracy / AUC")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    right = ax.twinx()
    finite = [(r["sigma"], r["certified_epsilon"]) for r in rows
              if r["certified_epsilon"] is not None and r["certified_epsilon"] > 0]
    if finite:
        right.plot(*zip(*finite), color="k", marker="s", ls=":", label="certified epsilon (right)")
        right.set_yscale("log")
    right.set_ylabel(f"certified epsilon at delta = {rows[0]['delta']}")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    ax.legend(handles, labels, fontsize=8, loc="center left")
    ax.set_title(f"{title}: Delta = {rows[0]['Delta']:.3g}, realised distance = "
                 f"{rows[0]['realised_distance'] or float('nan'):.3g}, k = {rows[0]['k']} draws", fontsize=10)
    save_figure(fig, path)
    return path


def write_frontier(release_dir, title):
    """frontier.{md,csv,json,png} in ``release_dir``; returns the rows."""
    rows = load_rows(release_dir)
    base = os.path.join(release_dir, "frontier")
    artifacts.write_text(base + ".md", markdown(rows, title))
    artifacts.write_text(base + ".csv", to_csv(rows))
    artifacts.write_json(base + ".json", {"title": title, "rows": rows})
    figure(rows, base + ".png", title)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--release_dir", required=True, help="a setting's directory written by Certify.sh")
    p.add_argument("--title", default="", help="figure and table title")
    args = p.parse_args(argv)
    try:
        write_frontier(args.release_dir, args.title or os.path.basename(os.path.normpath(args.release_dir)))
    except InputError as e:
        fail(str(e))
    print(f"frontier: {os.path.join(args.release_dir, 'frontier')}.{{md,csv,json,png}}", flush=True)


if __name__ == "__main__":
    main()
