"""Bank vs replay trade-off, and the effect of reduced-precision bank storage.

    python3 bench/bench_scale.py [--json] [--prefix_steps 3] [--threads 1] [--skip_precision]

Trade-off (MNIST cnn paper setting: n=1000, batch 64, 20 epochs, d=21,840, T=320 steps):

* bank: precompute of all n approximators, measured on the first ``--prefix_steps`` steps
  and extrapolated linearly to T (every step costs the same block product over n rows);
  storage n x d x bytes(dtype); latency per request = one vector addition (plus reading
  the shard that holds the row, measured on a saved shard);
* replay: no precompute; storage = the training record (original.pt); latency per request
  = one full replay of T steps with the recursion for the requested vectors, measured in
  full for one request and for a set of m = 10.

Precision (Wine mlp, MNIST logistic): a_u for u in U in float32, stored as float16 or
bfloat16 and read back; distance ||w_T + sum_u a_u - w_retrain|| for each storage dtype.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HFU_OFFLINE", "1")

from utils.common import artifacts  # noqa: E402
from utils.common.experiment import Experiment  # noqa: E402
from utils.proposed.hf import recursion  # noqa: E402
from utils.common.options import parse_args  # noqa: E402
from utils.common.report import info, table  # noqa: E402

CNN = ["--model", "cnn", "--dataset", "mnist", "--num_dataset", "1000", "--batch_size", "64",
       "--epochs", "20", "--lr", "0.05", "--lr_decay", "0.995", "--clip", "10",
       "--regularization", "1e-6", "--gpu", "-1", "--quiet"]
PRECISION = {
    "wine mlp": ["--model", "mlp", "--dataset", "wine", "--epochs", "40", "--num_dataset", "142",
                 "--batch_size", "64", "--num_forget", "7", "--lr", "0.01", "--regularization", "0.005",
                 "--lr_decay", "0.9995", "--clip", "10", "--gpu", "-1", "--quiet"],
    "mnist logistic": ["--model", "logistic", "--dataset", "mnist", "--epochs", "15", "--batch_size", "32",
                       "--lr", "0.05", "--lr_decay", "0.995", "--clip", "5", "--regularization", "0.5",
                       "--num_dataset", "1000", "--num_forget", "10", "--gpu", "-1", "--quiet"],
}


def run_recursion(exp, rows, steps=None):
    schedule = exp.schedule if steps is None else exp.schedule[:steps]
    start = time.perf_counter()
    _, A, _ = recursion(exp.fm, exp.w0, exp.X, exp.y, schedule, exp.sgd_config, rows, exp.unlearn, rho_iters=0)
    return A, time.perf_counter() - start


def tradeoff(log_dir, prefix_steps):
    exp = Experiment(parse_args(CNN + ["--num_forget", "10", "--log_dir", log_dir]))
    w_T, train_s = exp.original()
    T, n, d = len(exp.schedule), exp.n, exp.fm.d
    A, prefix_s = run_recursion(exp, torch.arange(n), prefix_steps)
    bank_s = prefix_s / prefix_steps * T
    shard = os.path.join(log_dir, "shard.pt")
    artifacts.save_tensors(shard, {"A": A})
    start = time.perf_counter()
    row = artifacts.load_tensors(shard)["A"][int(exp.U[0])]
    read_s = time.perf_counter() - start
    w = w_T.clone()
    start = time.perf_counter()
    w.add_(row)
    add_s = time.perf_counter() - start
    _, one_s = run_recursion(exp, exp.U[:1])
    _, set_s = run_recursion(exp, exp.U)
    record = os.path.getsize(os.path.join(exp.train_dir, "original.pt"))
    return {"n": n, "d": d, "T": T, "m": len(exp.U), "train_s": train_s,
            "bank_prefix_steps": prefix_steps, "bank_prefix_s": prefix_s, "bank_precompute_s_extrapolated": bank_s,
            "bank_bytes_float32": n * d * 4, "bank_bytes_float16": n * d * 2,
            "bank_request_add_s": add_s, "bank_shard_read_s": read_s, "bank_shard_rows": n,
            "replay_record_bytes": record, "replay_request_s": one_s, "replay_set_s": set_s,
            "forget_only_bank_s": set_s}


def precision(name, flags, log_dir):
    exp = Experiment(parse_args(flags + ["--log_dir", log_dir]))
    w_T, _ = exp.original()
    A, _ = run_recursion(exp, exp.U)
    w_re = exp.retrain(progress=False)
    out = {"setting": name, "original": float((w_T - w_re).norm())}
    for dtype in ("float32", "float16", "bfloat16"):
        stored = A.to(getattr(torch, dtype)).to(A.dtype)
        out[dtype] = float((w_T + stored.sum(0) - w_re).norm())
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prefix_steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip_precision", action="store_true")
    p.add_argument("--skip_tradeoff", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = {"threads": args.threads, "load_avg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_precision:
            out["precision"] = [precision(k, v, tmp) for k, v in PRECISION.items()]
            info(table(out["precision"], ["setting", "original", "float32", "float16", "bfloat16"]))
        if not args.skip_tradeoff:
            out["tradeoff"] = tradeoff(tmp, args.prefix_steps)
            info(table([out["tradeoff"]], list(out["tradeoff"])))
    out["load_avg_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
