"""LiRA membership inference (Carlini et al., S&P 2022) against unlearning, SPEC section 12.

    python3 main_MIAL.py <training flags> --num_forget 200 --n_shadows 16 [--fix_variance] [--log_scale]

Needs the original model and Retrain (main_retrain.py); also attacks Proposed, NU, IJ and
the other unlearned models saved for the same flags. Trains (once per training config and
pool, cached) K shadow models on halves of a pool of the n training samples plus
non-members, then scores every target with online and offline LiRA. Reports AUC and TPR
at 1% / 0.1% FPR (a) with all n training samples IN (the authors' labels) and (b) for the
forget set U versus non-members; writes <results>/MIAL-*.{txt,json,png}.
"""
from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

import dataclasses

import numpy as np

from utils.common import methods
from utils.common.experiment import Experiment, run_main
from utils.audits.lira import check_shadow_count, model_scores, offline_lira, online_lira
from utils.common.errors import InputError
from utils.audits.plots import roc_figure
from utils.common.report import finish, info, table
from utils.audits.roc import roc_summary
from utils.audits.shadows import build_pool, shadow_scores
from utils.common.data import unit_rows
from utils.audits.targets import present_targets, results_base, write_report

TARGETS = methods.audited()
ALPHAS = (0.01, 0.001)
COLUMNS = ["target", "auc_forget", "tpr_at_1fpr_forget", "tpr_at_0.1fpr_forget", "auc_all", "tpr_at_1fpr_all",
           "tpr_at_0.1fpr_all", "offline_auc_forget", "offline_auc_all"]


def summarise(scores, pool, forget):
    """AUC / TPR@1% / TPR@0.1% for all training samples IN and for U vs non-members."""
    nonmembers = np.flatnonzero(~pool.member)
    out = {}
    for tag, idx, labels in [("all", np.arange(len(pool)), pool.member),
                             ("forget", np.r_[forget, nonmembers], np.r_[np.ones(len(forget)), np.zeros(len(nonmembers))])]:
        r = roc_summary(labels, scores[idx], ALPHAS)
        out.update({f"auc_{tag}": r["auc"], f"tpr_at_1fpr_{tag}": r["tpr_at_0.01"],
                    f"tpr_at_0.1fpr_{tag}": r["tpr_at_0.001"], f"curve_{tag}": (r["fpr"], r["tpr"])})
    return out


def main(args):
    check_shadow_count(args.n_shadows)
    exp = Experiment(args)
    m = len(exp.U)
    if m < 1:
        raise InputError("--num_forget: LiRA on the forget set needs m >= 1")
    w_T = exp.require_original()
    targets = {"Original": w_T, **present_targets(exp, TARGETS)}
    pool = build_pool(exp.data, args.n_nonmembers, args.seed, max(m, 2), exp.device)
    if args.unit_norm:                  # the pool's inputs as the models see them
        pool = dataclasses.replace(pool, X=unit_rows(pool.X))
    n_out = int((~pool.member).sum())
    info(f"LiRA pool: {exp.n} members + {n_out} non-members; {args.n_shadows} shadows, each on "
         f"~{len(pool) // 2} samples (target: {exp.n}); data: {exp.data.source}")
    S, keep, shadow_s = shadow_scores(exp, pool, args.n_shadows)
    U = exp.U.numpy()
    results, curves = {}, {}
    for name, w in targets.items():
        phi = model_scores(exp.fm, w, pool.X, pool.y, args.bs)
        online = summarise(online_lira(phi, S, keep, args.fix_variance), pool, U)
        offline = summarise(offline_lira(phi, S, keep, args.fix_variance), pool, U)
        curves[name] = (online.pop("curve_all"), online.pop("curve_forget"))
        results[name] = dict(online, **{f"offline_{k}": v for k, v in offline.items() if not k.startswith("curve")})

    config = {"n_shadows": args.n_shadows, "fix_variance": args.fix_variance, "pool": pool.identity(),
              "targets": sorted(targets)}
    base = results_base(exp, "MIAL", config)
    title = (f"LiRA (online{', fixed variance' if args.fix_variance else ''}), {args.dataset} {args.model} "
             f"n={exp.n} m={m}, K={args.n_shadows}, {n_out} non-members")
    png = roc_figure([("(a) all n training samples IN vs non-members (authors' labels)",
                       {f"{k} (AUC {results[k]['auc_all']:.3f})": c[0] for k, c in curves.items()}),
                      ("(b) forget set U vs non-members",
                       {f"{k} (AUC {results[k]['auc_forget']:.3f})": c[1] for k, c in curves.items()})],
                     base + ".png", title, args.log_scale)
    text = "\n".join([
        title, f"data: {exp.data.source}",
        f"shadows: {'cached' if shadow_s == 0 else f'trained in {shadow_s:.1f}s'}; columns without 'offline' are "
        f"online LiRA; FPR resolution: 1/{n_out} (TPR at FPR below it is the TPR at FPR 0)",
        table([dict(target=k, **r) for k, r in results.items()], COLUMNS), f"figure: {png}"])
    write_report(exp, base, config, results, png, text)
    finish(results, args.json, text + f"\nwritten: {base}.txt, .json")


if __name__ == "__main__":
    run_main(main, ARGS)
