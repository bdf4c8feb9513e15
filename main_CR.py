"""Certified removal (Guo, Goldstein, Hannun, van der Maaten, ICML 2020) with the Newton or the
Hessian-free removal step, for the softmax logistic model.

    python3 main_CR.py --model logistic --dataset mnist --num_dataset 1000 --batch_size 32 \\
        --epochs 15 --lr 0.05 --lr_decay 0.995 --clip 5 --regularization 0.5 --gpu -1 \\
        --epsilon 1 --delta 1e-5 --cr_budget 0.5 --removal hf [--repair K] [--unit_norm] [--json]

Trains on L_b(w; D) = sum_i CE_i(w) + (n lambda / 2)||w||^2 + b^T w, b ~ N(0, sigma_b^2 I) with
sigma_b = c(delta) B / epsilon (or --std), by SGD of the usual flags polished to the exact
optimum (--cr_tol), then answers the m requests of U one at a time: the removal step
(--removal newton|hf), the exact gradient residual on the remaining data, spent from the
budget B; a request that would exceed it is answered by the exact optimum of the remaining
data. Saves "CR" (the release) and "CR_Retrain" (the exact optimum without U, same b: what
the release is certified against) for main_eva.py and the audits.
"""
from utils.common.options import check_cr, parse_args
from utils.common.errors import InputError, fail

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch
    try:
        check_cr(ARGS)
    except InputError as e:
        fail(str(e))

from utils.baselines.cr_method import CRConfig, run
from utils.common.experiment import Experiment, run_main
from utils.common.report import finish, info, table


def main(args):
    cfg = CRConfig.from_args(args)
    exp = Experiment(args)
    info(f"data: {exp.data.source}; n={exp.n}, d={exp.fm.d}, m={len(exp.U)}; sigma_b={cfg.sigma:.4g}, "
         f"budget {cfg.budget:.4g} at epsilon {cfg.epsilon:g}, delta {cfg.delta:g}; removal {cfg.removal}")
    exp.check_writable([exp.forget_dir, f"{exp.train_dir}/cache"], {exp.method_paths("CR")[0]: 8 * exp.fm.d + 4096})
    rows, record, path = run(exp, cfg)
    cols = ["method", "distance", "test_acc", "forget_acc", "gradient_residual", "gradient_residual_bound",
            "budget_spent", "certified_epsilon", "retrained", "requests_before_retrain", "remove_s_per_request"]
    note = (f"\ndistance = L2 to CR_Retrain (the exact optimum without U, same b); certified epsilon "
            f"{record['certified_epsilon']:.4g} at delta {cfg.delta:g} (c(delta) x spent / sigma_b); "
            f"{record['retrained']} of {record['requests']} requests answered by a retrain; "
            f"removal {record['remove_s_per_request'] * 1e3:.3f} ms + residual pass "
            f"{record['certify_s_per_request'] * 1e3:.3f} ms per request; model: {path}")
    finish(dict(record, method="CR", model=path), args.json, table(rows, cols) + note)


if __name__ == "__main__":
    run_main(main, ARGS)
