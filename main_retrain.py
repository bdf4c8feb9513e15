"""Exact unlearning reference: retrain from w_0 on the same schedule with U removed.

    python3 main_retrain.py --model logistic --dataset mnist --epochs 15 --batch_size 32 ...

Writes the original model (cached per training configuration) and the retrained model
with its metrics under --log_dir; prints test / forget / remaining accuracy of both.
"""
from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

import time

from utils.common.experiment import Experiment, run_main
from utils.training.finite import distance
from utils.common.report import finish, info, table


def main(args):
    exp = Experiment(args)
    info(f"data: {exp.data.source}; n={exp.n}, test={len(exp.y_test)}, d={exp.fm.d}, "
         f"m={len(exp.U)}, steps={len(exp.schedule)}, device={exp.device}")
    exp.check_writable([exp.forget_dir], {exp.method_paths("Retrain")[0]: 4 * exp.fm.d + 4096})
    w_T, train_s = exp.original()
    start = time.perf_counter()
    w_retrain = exp.retrain()
    retrain_s = time.perf_counter() - start
    metrics = dict(exp.metrics(w_retrain), unlearn_s=retrain_s, precompute_s=0.0, storage_bytes=0,
                   retrain_norm=args.retrain_norm, data_source=exp.data.source)
    path = exp.save_method("Retrain", w_retrain, metrics)
    gap = distance(w_T, w_retrain, "the distance of Original to Retrain", f"delete {exp.train_dir} and rerun")
    rows = [dict(method="Original", distance=gap, **exp.metrics(w_T)),
            dict(method="Retrain", distance=0.0, **metrics)]
    cols = ["method", "distance", "test_acc", "forget_acc", "remain_acc", "test_loss"]
    finish({r["method"]: {k: r[k] for k in cols[1:]} | {"model": path if r["method"] == "Retrain" else None}
            for r in rows} | {"retrain_s": retrain_s, "train_s": train_s},
           args.json,
           table(rows, cols) + f"\nretrain {retrain_s:.2f}s (train {train_s:.2f}s, 0 = cached); model: {path}")


if __name__ == "__main__":
    run_main(main, ARGS)
