"""Membership inference against unlearning (Chen et al., CCS 2021), SPEC section 11.

    python3 main_MIAU.py <training flags> --num_forget 50 --features sorted_diff --attack_model LR

Needs the original model and Retrain (main_retrain.py), and attacks every unlearned model
saved for the same flags (Proposed, Proposed_noise, NU, IJ, ...). Features of each sample
come from the posteriors of the original and of the unlearned model; forgotten samples
are positives, retained training samples negatives. Reports held-out (stratified k-fold,
balanced) and in-sample ROC AUC and TPR at 1% FPR; writes <results>/MIAU-*.{txt,json,png}.
"""
from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

import numpy as np

from utils.common import methods
from utils.common.experiment import Experiment, run_main
from utils.audits.mia import DEFAULT_FOLDS, DEFAULT_REPEATS, audit, features, posteriors
from utils.common.errors import InputError
from utils.audits.plots import roc_figure
from utils.common.report import finish, info, table
from utils.audits.targets import present_targets, results_base, write_report

TARGETS = methods.audited()
COLUMNS = ["target", "auc_heldout", "auc_heldout_std", "tpr_at_1fpr", "auc_insample", "tpr_at_1fpr_insample"]


def main(args):
    exp = Experiment(args)
    m = len(exp.U)
    if m < 2 or exp.n - m < m:
        raise InputError(f"--num_forget: MIA-U needs 2 <= m <= n/2 (as many retained negatives as "
                         f"forgotten positives); got m={m}, n={exp.n}")
    w_T = exp.require_original()
    targets = present_targets(exp, TARGETS)
    U = exp.U.numpy()
    rest = np.flatnonzero(exp.keep.cpu().numpy())
    P_orig = posteriors(exp.fm, w_T, exp.X, args.bs)
    results = {}
    for name, w in targets.items():
        F = features(P_orig, posteriors(exp.fm, w, exp.X, args.bs), args.method)
        results[name] = audit(F[U], F[rest], args.attack_model, args.seed)
        info(f"{name}: held-out AUC {results[name]['auc_heldout']:.4f}, in-sample {results[name]['auc_insample']:.4f}")

    config = {"attack_model": args.attack_model, "method": args.method, "folds": DEFAULT_FOLDS,
              "repeats": DEFAULT_REPEATS, "targets": sorted(targets)}
    base = results_base(exp, f"MIAU-{args.attack_model}-{args.method}", config)
    curves = {k: r.pop("curves") for k, r in results.items()}
    title = (f"MIA-U {args.attack_model}/{args.method}, {args.dataset} {args.model} n={exp.n} m={m}")
    png = roc_figure([("held-out (stratified CV, balanced; repetition 0)",
                       {f"{k} (AUC {results[k]['auc_heldout']:.3f})": c["heldout"] for k, c in curves.items()}),
                      ("in-sample (authors': fit and score on the same samples)",
                       {f"{k} (AUC {results[k]['auc_insample']:.3f})": c["insample"] for k, c in curves.items()})],
                     base + ".png", title, args.log_scale)
    rows = [dict(target=k, **r) for k, r in results.items()]
    text = "\n".join([
        title, f"data: {exp.data.source}",
        f"positives: the {m} forgotten samples; negatives: {m} retained training samples drawn per repetition; "
        f"held-out = out-of-fold scores of {min(DEFAULT_FOLDS, m)}-fold stratified CV, "
        f"mean over {DEFAULT_REPEATS} repetitions (std of AUC shown); TPR at 1% FPR has FPR resolution 1/{m}",
        table(rows, COLUMNS), f"figure: {png}"])
    write_report(exp, base, config, results, png, text)
    finish(results, args.json, text + f"\nwritten: {base}.txt, .json")


if __name__ == "__main__":
    run_main(main, ARGS)
