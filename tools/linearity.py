"""Linearity diagnostic: where the first-order model w_T + s sum_u a_u of training with U's
weight (1 - s) holds (SPEC section 10; ``utils.evaluation.linearization``).

    python3 -m tools.linearity <training flags> --num_forget m [--floor perturb|float64|threads]

Trains w_T(s) for s in 0.01, 0.03, 0.1, 0.3, 1 (s = 1 is Retrain), takes sum_u a_u from
the cached bank when there is one (else one replay for the rows U), and writes a table
(text), JSON and a log-log PNG to --results_dir. --json prints the JSON.
"""
import os

from utils.common import artifacts
from utils.common.experiment import Experiment, run_main
from utils.evaluation.linearization import diagnose, plot
from utils.common.options import parse_args
from utils.common.report import finish, info, table


def main(args):
    exp = Experiment(args)
    info(f"linearity: {args.dataset}/{args.model} n={exp.n} m={len(exp.U)} seed={args.seed} lr={args.lr}")
    result = diagnose(exp)
    key = artifacts.config_key(dict(exp.train_config(), U=exp.U.tolist(), floor=args.floor))
    base = os.path.join(args.results_dir, f"linearity-{args.dataset}-{args.model}-n{args.num_dataset}-"
                                          f"m{len(exp.U)}-s{args.seed}-{key}")
    title = (f"{args.dataset}/{args.model} n={exp.n} m={len(exp.U)} seed={args.seed} lr={args.lr} "
             f"epochs={args.epochs}")
    result.update(setting=exp.train_config(), num_forget=len(exp.U), figure=base + ".png")
    artifacts.write_json(base + ".json", result)
    plot(result["rows"], result["floor"], title, base + ".png")
    text = (f"{title}\n" + table(result["rows"], ["s", "distance", "predicted", "residual", "relative_residual"])
            + f"\nnoise floor ({args.floor}): {result['floor']:.4g}; ||sum_u a_u|| = {result['sum_a_norm']:.4g} "
              f"(from the {result['approximators']}); w_T(1) vs Retrain max |diff|: {result['retrain_max_abs_diff']}")
    artifacts.write_text(base + ".txt", text + "\n")
    finish(result, args.json, text + f"\nwritten: {base}.json, .txt, .png")


if __name__ == "__main__":
    run_main(main, parse_args())
