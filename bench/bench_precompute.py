"""Benchmark of the Hessian-free precompute against a naive per-sample autograd loop.

    python3 bench/bench_precompute.py [--json] [--naive_steps 3] [--cnn_steps 8] [--device cuda]

For each setting (MNIST logistic paper setting: n=1000, batch 32, 15 epochs, d=7,850; MNIST
cnn: n=1000, batch 64, 20 epochs, d=21,840) the training trajectory is replayed once and,
on the same recorded steps:

* ours: ``utils.curvature.hvp`` block update of all n approximators per step (the project's engine);
* naive: the authors' kind — per step, one autograd Hessian-vector product per sample
  (double backward through the batch gradient, a Python loop over the n samples);
* order 2 (``--hf_order 2``): the same block update plus the second-order rows q_u
  (``utils.proposed.hf.second_order_step``: one more Hessian-vector product and one
  third-derivative product per row), timed on its own prefix of steps; its rows give the
  ratio to order 1 and to the naive (order-1) loop.

Both run on a prefix of steps and are extrapolated to all T steps (ours runs in full for
the logistic model). FLOPs of ours are counted with ``torch.utils.flop_counter``; the floor
is FLOPs / the large-matmul rate measured in the same run. Also times 50 online deletions
(one vector addition each) for d=7,850.
"""
import argparse
import os
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HFU_OFFLINE", "1")

from utils.common.experiment import Experiment  # noqa: E402
from utils.training.functional import data_loss  # noqa: E402
from utils.proposed.bank import Bank  # noqa: E402
from utils.proposed.hf import injection, second_order_step  # noqa: E402
from utils.curvature.hvp import Step, choose_engine, clip_factors, step_jacobian  # noqa: E402
from utils.curvature.third import second_order_products  # noqa: E402
from utils.common.errors import fail  # noqa: E402
from utils.common.options import parse_args  # noqa: E402
from utils.common.report import finish, table  # noqa: E402
from utils.training.train import sgd  # noqa: E402

COMMON = ["--dataset", "mnist", "--lr", "0.05", "--lr_decay", "0.995", "--num_dataset", "1000", "--quiet"]
SETTINGS = {
    "logistic": ["--model", "logistic", "--epochs", "15", "--batch_size", "32", "--clip", "5",
                 "--regularization", "0.5"],
    "cnn": ["--model", "cnn", "--epochs", "20", "--batch_size", "64", "--clip", "10",
            "--regularization", "1e-6"],
}


def clock(device):
    """time.perf_counter() once the device's queued work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def matmul_rate(device, size=2048, reps=5):
    """FLOP/s of a large float32 matrix product (best of ``reps``)."""
    size = size if device.type == "cpu" else 4 * size
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    best = float("inf")
    for _ in range(reps):
        start = clock(device)
        a @ b
        best = min(best, clock(device) - start)
    return 2 * size ** 3 / best


def _inplace_addmm_flops(self_shape, a_shape, b_shape, out_shape=None, **kwargs):
    """FlopCounterMode has no formula for the in-place ``addmm_``: 2 m k n."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def count_flops(fn):
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: _inplace_addmm_flops}) as c:
        fn()
    return c.get_total_flops()


def record(exp, steps):
    """The first ``steps`` steps of the training trajectory: (w_t, batch, eta_t, g_t)."""
    out = []

    def keep(t, w, batch, eta, g):
        if t < steps:
            out.append((w.clone(), batch, eta, g.clone()))

    sgd(exp.fm, exp.w0, exp.X, exp.y, exp.schedule[:steps], exp.sgd_config, on_step=keep)
    return out


def ours_step(exp, A, w, batch, eta, g):
    """One step of the project's recursion on all rows of A (internal layout)."""
    cfg = exp.sgd_config
    op = step_jacobian(Step(exp.fm, w, exp.X[batch], exp.y[batch], cfg.lam, g, cfg.clip, exp.unlearn.mem_budget_mb))
    op.contract_(A, eta)
    A.index_add_(0, batch, op.clip_apply(injection(op.per_sample_grads(), "batch")), alpha=eta)
    return op


def ours2_step(exp, A, Q, w, batch, eta, g):
    """One step of the order-2 recursion on all rows of A and Q (internal layout)."""
    cfg = exp.sgd_config
    step = Step(exp.fm, w, exp.X[batch], exp.y[batch], cfg.lam, g, cfg.clip, exp.unlearn.mem_budget_mb)
    op = step_jacobian(step)
    # every row is a sample's own: batch sample i owns row batch[i]
    second_order_step(op, second_order_products(step, op, choose_engine(exp.fm)), A, Q, batch, eta, "batch", cfg)
    return op


def naive_step(exp, vectors, w, batch, eta, g):
    """The authors' kind: a Python loop of autograd HVPs, one per sample."""
    a = exp.args
    wg = w.detach().requires_grad_(True)
    Xb, yb = exp.X[batch], exp.y[batch]
    (gb,) = torch.autograd.grad(data_loss(exp.fm, wg, Xb, yb, len(batch)), wg, create_graph=True)
    s, g_hat = clip_factors(g, a.clip)
    members = {int(u): i for i, u in enumerate(batch.tolist())}
    for u in range(len(vectors)):
        v = vectors[u]
        (hv,) = torch.autograd.grad(gb @ v, wg, retain_graph=True)
        jv = hv + a.regularization * v
        if g_hat is not None:
            jv = s * (jv - g_hat * (g_hat @ jv))
        v = v - eta * jv
        if u in members:
            wu = wg.detach().requires_grad_(True)
            i = members[u]
            (gu,) = torch.autograd.grad(data_loss(exp.fm, wu, Xb[i:i + 1], yb[i:i + 1], len(batch)), wu)
            v = v + eta * (gu if g_hat is None else s * (gu - g_hat * (g_hat @ gu)))
        vectors[u] = v.detach()


def bench_setting(name, naive_steps, ours_steps, rate, log_dir, gpu, order2_steps):
    exp = Experiment(parse_args(SETTINGS[name] + COMMON + ["--log_dir", log_dir, "--gpu", gpu]))
    T, n, d, dev = len(exp.schedule), exp.n, exp.fm.d, exp.device
    ours_steps = min(ours_steps or T, T)
    order2_steps = min(order2_steps or T, T)
    traj = record(exp, max(naive_steps, ours_steps, order2_steps))
    A = torch.zeros(n, d, device=dev)
    ours_step(exp, A.clone(), *traj[0])                      # warm-up (allocator, kernels)
    start = clock(dev)
    for w, batch, eta, g in traj[:ours_steps]:
        op = ours_step(exp, A, w, batch, eta, g)
    ours_per_step = (clock(dev) - start) / ours_steps
    flops_per_step = count_flops(lambda: ours_step(exp, A.clone(), *traj[0]))
    vectors = [torch.zeros(d, device=dev) for _ in range(n)]
    start = clock(dev)
    for w, batch, eta, g in traj[:naive_steps]:
        naive_step(exp, vectors, w, batch, eta, g)
    naive_per_step = (clock(dev) - start) / naive_steps
    # the two agree on the common prefix (naive state is after naive_steps, ours after ours_steps)
    check = torch.zeros(n, d, device=dev)
    for step in traj[:naive_steps]:
        op = ours_step(exp, check, *step)
    agree = float((op.from_internal(check) - torch.stack(vectors)).norm() / check.norm())
    floor = flops_per_step * T / rate
    A2, Q2 = torch.zeros(n, d, device=dev), torch.zeros(n, d, device=dev)
    ours2_step(exp, A2.clone(), Q2.clone(), *traj[0])          # warm-up
    start = clock(dev)
    for w, batch, eta, g in traj[:order2_steps]:
        ours2_step(exp, A2, Q2, w, batch, eta, g)
    order2_per_step = (clock(dev) - start) / order2_steps
    return {"T": T, "n": n, "d": d, "engine": type(op).__name__,
            "ours_s_per_step": ours_per_step, "naive_s_per_step": naive_per_step,
            "ours_s": ours_per_step * T, "naive_s": naive_per_step * T,
            "ratio": naive_per_step / ours_per_step, "flops": flops_per_step * T,
            "flop_floor_s": floor, "ours_over_floor": ours_per_step * T / floor,
            "ours_steps_measured": ours_steps, "naive_steps_measured": naive_steps,
            "order2_s_per_step": order2_per_step, "order2_s": order2_per_step * T,
            "order2_over_order1": order2_per_step / ours_per_step, "naive_over_order2": naive_per_step / order2_per_step,
            "order2_steps_measured": order2_steps,
            "relative_difference_ours_vs_naive": agree}


def online_deletions(d=7850, n=1000, m=50):
    bank = Bank(torch.randn(n, d), torch.arange(n), torch.ones(1), {})
    U = torch.randperm(n)[:m]
    bank.unlearn_online(torch.zeros(d), U)                   # warm-up
    _, times = bank.unlearn_online(torch.zeros(d), U)
    return sum(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--naive_steps", type=int, default=3, help="steps of the naive loop (extrapolated)")
    p.add_argument("--logistic_steps", type=int, default=0, help="steps of ours for logistic (0 = all)")
    p.add_argument("--cnn_steps", type=int, default=4, help="steps of ours for cnn (extrapolated)")
    p.add_argument("--order2_logistic_steps", type=int, default=0, help="steps of order 2 for logistic (0 = all)")
    p.add_argument("--order2_cnn_steps", type=int, default=2, help="steps of order 2 for cnn (extrapolated)")
    p.add_argument("--settings", default="logistic,cnn", help="comma-separated subset of logistic,cnn")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = p.parse_args()
    unknown = set(args.settings.split(",")) - set(SETTINGS)
    if unknown:
        fail(f"--settings: unknown setting(s) {', '.join(sorted(unknown))}; choose from {', '.join(SETTINGS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: CUDA is not available here; use --device cpu")
    torch.manual_seed(0)
    device = torch.device(args.device if args.device == "cpu" else "cuda:0")
    rate = matmul_rate(device)
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "matmul_flops_per_s": rate, "threads": torch.get_num_threads(),
           "load_average_1min": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as log_dir:
        for name in args.settings.split(","):
            steps = args.logistic_steps if name == "logistic" else args.cnn_steps
            order2 = args.order2_logistic_steps if name == "logistic" else args.order2_cnn_steps
            out[name] = bench_setting(name, args.naive_steps, steps, rate, log_dir,
                                      "0" if device.type == "cuda" else "-1", order2)
    out["online_50_deletions_s"] = online_deletions()
    rows = [dict(setting=k, steps=v["T"], d=v["d"], ours_step_ms=1e3 * v["ours_s_per_step"],
                 naive_step_ms=1e3 * v["naive_s_per_step"], ours_s=v["ours_s"], naive_s=v["naive_s"],
                 ratio=v["ratio"], floor_s=v["flop_floor_s"], ours_over_floor=v["ours_over_floor"])
            for k, v in out.items() if isinstance(v, dict)]
    rows2 = [dict(setting=f"{k}, order 2", steps=v["T"], d=v["d"], order2_step_ms=1e3 * v["order2_s_per_step"],
                  order2_s=v["order2_s"], order2_over_order1=v["order2_over_order1"],
                  naive_over_order2=v["naive_over_order2"], measured_steps=v["order2_steps_measured"])
             for k, v in out.items() if isinstance(v, dict)]
    text = table(rows, list(rows[0])) + "\n" + table(rows2, list(rows2[0])) + (
        f"\n{out['device']}: matmul rate {rate / 1e9:.1f} GFLOP/s on {out['threads']} threads (load average "
        f"{out['load_average_1min']:.2f}); naive measured on {args.naive_steps} steps, "
        + ", ".join(f"{k} ours on {v['ours_steps_measured']} of {v['T']} steps" for k, v in out.items()
                    if isinstance(v, dict))
        + f", the rest extrapolated\n50 online deletions (d=7,850): {out['online_50_deletions_s'] * 1e3:.3f} ms")
    finish(out, args.json, text)


if __name__ == "__main__":
    main()
