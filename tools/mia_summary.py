"""Collect the MIA-U and LiRA result files of a results folder into Markdown tables.

    python3 -m tools.mia_summary --results_dir results/MIAU

MIAU_summary.md: one row per (setting, feature construction, attack), one column per
target: held-out AUC ± std over folds and repeats, then the authors' in-sample AUC.
MIAL_summary.md: one row per (setting, target): forget-set AUC and TPR at 1% / 0.1% FPR
(U versus non-members) and the authors' all-training-samples AUC.
"""
import argparse
import glob
import os
import sys

from utils.common import methods
from utils.common.artifacts import read_json, write_text

TARGET_ORDER = ["Original"] + methods.audited()


def _setting(record):
    t = record["config"]["train"]
    return f"{t['dataset']}/{t['model']} n={t['num_dataset']} m={len(record['config']['forget'])} s={t['seed']}"


def _records(results_dir, prefix):
    return [read_json(p) for p in sorted(glob.glob(os.path.join(results_dir, f"{prefix}-*.json")))]


def miau_markdown(records):
    targets = [t for t in TARGET_ORDER if any(t in r["targets"] for r in records)]
    lines = ["| setting | features | attack | " + " | ".join(targets) + " |",
             "|---|---|---|" + "---|" * len(targets)]
    for r in sorted(records, key=lambda r: (_setting(r), r["config"]["method"], r["config"]["attack_model"])):
        cells = []
        for t in targets:
            v = r["targets"].get(t)
            cells.append("-" if v is None else
                         f"{v['auc_heldout']:.3f} ± {v['auc_heldout_std']:.3f} ({v['auc_insample']:.3f})")
        lines.append(f"| {_setting(r)} | {r['config']['method']} | {r['config']['attack_model']} | "
                     + " | ".join(cells) + " |")
    return ("MIA-U ROC AUC: held-out (stratified k-fold, balanced) mean ± std, then in brackets the "
            "authors' in-sample figure. 0.5 = the attack cannot tell forgotten from retained samples.\n\n"
            + "\n".join(lines) + "\n")


def mial_markdown(records):
    lines = ["| setting | shadows | target | AUC (U vs non-members) | TPR@1% FPR | TPR@0.1% FPR | AUC (all IN, authors) |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=_setting):
        for t in [t for t in TARGET_ORDER if t in r["targets"]]:
            v = r["targets"][t]
            lines.append(f"| {_setting(r)} | {r['config']['n_shadows']} | {t} | {v['auc_forget']:.3f} | "
                         f"{v['tpr_at_1fpr_forget']:.3f} | {v['tpr_at_0.1fpr_forget']:.3f} | {v['auc_all']:.3f} |")
    return "Online LiRA.\n\n" + "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results_dir", required=True)
    a = p.parse_args(argv)
    written = []
    for prefix, render in [("MIAU", miau_markdown), ("MIAL", mial_markdown)]:
        records = _records(a.results_dir, prefix)
        if records:
            path = os.path.join(a.results_dir, f"{prefix}_summary.md")
            write_text(path, render(records))
            written.append(path)
    if not written:
        print(f"error: no MIAU-*.json or MIAL-*.json in {a.results_dir}; run main_MIAU.py / main_MIAL.py first",
              file=sys.stderr)
        sys.exit(2)
    for path in written:
        print(open(path).read(), file=sys.stderr)


if __name__ == "__main__":
    main()
