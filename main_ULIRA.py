"""U-LiRA: how well can an attacker tell each method's unlearned models from retrained ones?
(in the spirit of Hayes et al. 2024; the protocol is in utils/audits/ulira.py and docs/method.md)

    python3 main_ULIRA.py <training flags> --num_forget 50 --n_shadows 16 [--fix_variance] [--log_scale]
                          [--hf_variant ... --hf_curvature ... --hf_damping ...]

Trains K shadow models on random halves of the n training samples; in each, the targets
U_k (the forget set U inside the shadow's half) are unlearned by Proposed (replay mode:
one replay of the shadow's training), exactly retrained away, and retrained again from a
fresh seed. For every target a leave-one-shadow-out likelihood-ratio test of "unlearned by
the method" against "retrained" scores the shadow models. Rows: Original (nothing
unlearned: the upper reference), Retrain (an independent exact retrain: the null, AUC ~0.5)
and Proposed[variant]. Needs nothing else to have run (the shadows are cached under the
training folder); writes <results>/ULIRA-*.{txt,json,png}.
"""
from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

from utils.common.errors import InputError
from utils.common.experiment import Experiment, run_main
from utils.audits.plots import roc_figure
from utils.common.report import finish, info, table
from utils.audits.targets import results_base, write_report
from utils.audits.ulira import (bootstrap_auc_sd, check_shadow_count, heldout_scores, pair_targets, paired_gap,
                         shadow_models, summarise, target_scores)

COLUMNS = ["method", "auc", "auc_sd", "tpr_at_1fpr", "tpr_at_0.1fpr", "pairs", "score_gap", "seconds", "s_per_shadow"]


def main(args):
    check_shadow_count(args.n_shadows)
    if args.hf_order != 1:
        raise InputError("--hf_order 2 is not supported by U-LiRA (its shadows unlearn with the first-order "
                         "update); drop --hf_order")
    exp = Experiment(args)
    m, K = len(exp.U), args.n_shadows
    if m < 1:
        raise InputError("--num_forget: U-LiRA needs targets, m >= 1")
    proposed = exp.unlearn.hf.row_name
    info(f"U-LiRA: {K} shadows on halves of the n={exp.n} training samples, m={m} targets (the forget set); "
         f"data: {exp.data.source}")
    models, spent = shadow_models(exp, K, progress=True)
    phi = target_scores(exp, models)
    member = models["keep"].numpy()[:, exp.U.numpy()]
    targets = pair_targets(member)
    rows, curves, results = [], {}, {}
    for name, key in (("Original", "Original"), ("Retrain", "Retrain_independent"), (proposed, "Proposed")):
        pos, neg = heldout_scores(phi[key], phi["Retrain"], member, args.fix_variance)
        r = summarise(pos, neg)
        curves[f"{name} (AUC {r['auc']:.3f})"] = r.pop("curve")
        secs = float(models[f"{key}_s"].sum())
        results[name] = {"auc": r["auc"], "auc_sd": bootstrap_auc_sd(pos, neg, targets),
                         "tpr_at_1fpr": r["tpr_at_0.01"], "tpr_at_0.1fpr": r["tpr_at_0.001"], "pairs": r["pairs"],
                         "score_gap": paired_gap(phi[key], phi["Retrain"], member),
                         "seconds": secs if secs > 0 else None, "s_per_shadow": secs / K if secs > 0 else None}
        rows.append(dict(method=name, **results[name]))

    config = {"test": "ULIRA", "n_shadows": K, "fix_variance": args.fix_variance, "retrain_norm": args.retrain_norm,
              "proposed": proposed}
    base = results_base(exp, "ULIRA", config)
    title = (f"U-LiRA (leave-one-shadow-out{', fixed variance' if args.fix_variance else ''}): each method's "
             f"shadows vs retrained ones, {args.dataset} {args.model} n={exp.n} m={m}, K={K}")
    png = roc_figure([("unlearned (positive) vs retrained (negative), pairs (shadow, target)", curves)],
                     base + ".png", title, args.log_scale)
    pairs = rows[0]["pairs"]
    text = "\n".join([
        title, f"data: {exp.data.source}",
        f"shadows: {'cached' if spent == 0 else f'computed in {spent:.1f}s'}; seconds = time spent making that "
        f"method's K shadow models (Original: inside Proposed's replay, '-'); Proposed: replay mode, one replay "
        f"per shadow; Retrain: an independent exact retrain from a fresh seed (the null: AUC ~0.5 up to noise)",
        f"FPR resolution: 1/{pairs} (TPR at FPR below it is the TPR at FPR 0); auc_sd: bootstrap over the "
        f"targets; score_gap: mean |phi_u(shadow) - phi_u(its exact retrain)| over the pairs (Original: the "
        f"signal to remove; Retrain: the seed-to-seed spread)",
        table(rows, COLUMNS), f"figure: {png}"])
    write_report(exp, base, config, results, png, text)
    finish(results, args.json, text + f"\nwritten: {base}.txt, .json")


if __name__ == "__main__":
    run_main(main, ARGS)
