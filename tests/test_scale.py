"""Scaling the Hessian-free precompute: torchrun shards, replay mode, storage dtype,
memory budget, and the GPU smoke script's CPU path."""
import glob
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import ROOT, WINE
from models import build_model
from utils.proposed.bank import ShardedBank
from utils.proposed.distributed import shard_bounds
from utils.common.experiment import Experiment
from utils.training.functional import FlatModel
from utils.proposed.hf import precompute_bank
from utils.curvature.hvp import MB, Step, step_jacobian
from utils.common.errors import InputError
from utils.common.options import parse_args
from utils.proposed.replay import Replay

# One thread per process: two ranks on a 2-core machine, and no oversubscription when loaded.
ENV = dict(os.environ, HFU_OFFLINE="1", OMP_NUM_THREADS="1")
SHORT_WINE = [f if f != "40" else "12" for f in WINE]          # 12 epochs: 36 steps


def run(cmd, check=True):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def proposed(*flags, torchrun=0, check=True):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={torchrun}"] if torchrun else [sys.executable]
    return run(launcher + [os.path.join(ROOT, "main_proposed.py"), *flags], check)


def bank_of(log_dir):
    (directory,) = glob.glob(os.path.join(log_dir, "*", "cache", "hfbank-*"))
    return ShardedBank(directory, torch.device("cpu"))


def proposed_model(log_dir, hf_mode="bank"):
    for js in glob.glob(os.path.join(log_dir, "*", "forget-*", "Proposed-*.json")):
        with open(js) as f:
            record = json.load(f)
        if record["method_config"]["hf_mode"] == hf_mode and "epsilon" not in record["method_config"]:
            pt = os.path.join(os.path.dirname(js), record["model_file"])
            return torch.load(pt, weights_only=True)["w"], record
    raise AssertionError(f"no Proposed ({hf_mode}) in {log_dir}")


def test_shard_bounds_partition():
    for k in (0, 1, 5, 142):
        for world in (1, 2, 3, 8):
            bounds = [shard_bounds(k, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == k
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_torchrun_equals_single_process_and_replay(tmp_path):
    """Two gloo ranks give the same bank and unlearned model as one process; replay mode
    (no bank) gives the same model; only rank 0 prints the summary."""
    single, multi = str(tmp_path / "one"), str(tmp_path / "two")
    common = SHORT_WINE + ["--json", "--results_dir", str(tmp_path / "res")]
    one = json.loads(proposed(*common, "--log_dir", single).stdout)
    out = proposed(*common, "--log_dir", multi, torchrun=2).stdout
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, out
    two = json.loads(lines[0])

    b1, b2 = bank_of(single), bank_of(multi)
    assert [s["file"] for s in b1.manifest["shards"]] == ["shard-0-142.pt"]
    assert [(s["start"], s["stop"]) for s in b2.manifest["shards"]] == [(0, 71), (71, 142)]
    assert b2.manifest["world_size"] == 2 and b2.manifest["bank_rows"] == 142
    everyone = list(range(142))
    A1, _ = b1.gather(everyone)
    A2, _ = b2.gather(everyone)
    assert A1.norm() > 0
    torch.testing.assert_close(A2, A1, rtol=1e-5, atol=1e-7)
    w1, _ = proposed_model(single)
    w2, _ = proposed_model(multi)
    torch.testing.assert_close(w2, w1, rtol=1e-5, atol=1e-7)
    assert two["Proposed"]["distance"] == pytest.approx(one["Proposed"]["distance"], rel=1e-4)
    for summary in (one, two):
        p = summary["Proposed"]
        assert p["bank_rows"] == 142 and p["bank_dtype"] == "float32" and p["candidates"] == "all"
        assert p["storage_bytes"] == 142 * b1.manifest["d"] * 4
    assert two["Proposed"]["precompute_world_size"] == 2

    # deletion reads only the shards holding U
    b2.gather([3, 70])
    assert b2.shards_read == ["shard-0-71.pt"]
    b2.gather([3, 71])
    assert b2.shards_read == ["shard-0-71.pt", "shard-71-142.pt"]

    rep = json.loads(proposed(*common, "--log_dir", single, "--hf_mode", "replay", "--batch_unlearn").stdout)
    w3, record = proposed_model(single, "replay")
    torch.testing.assert_close(w3, w1, rtol=1e-5, atol=1e-7)
    assert rep["Proposed"]["bank_rows"] == 0 and rep["Proposed"]["precompute_s"] == 0
    assert rep["Proposed"]["storage_bytes"] < A1.numel() * 4


def test_replay_online_equals_bank_and_reduced_precision(tmp_path):
    """Replay per request == bank rows (candidates = forget set); float16 storage halves the
    bytes and stays within float16 rounding of the float32 bank."""
    torch.set_num_threads(1)
    try:
        args = parse_args(SHORT_WINE + ["--hf_candidates", "forget", "--log_dir", str(tmp_path)])
        exp = Experiment(args)
        w_T, _ = exp.original()
        bank, seconds = precompute_bank(exp, w_T)
        assert seconds > 0 and bank.manifest["candidates"] == "declared"
        assert bank.manifest["bank_rows"] == len(exp.U) == 7
        assert precompute_bank(exp, w_T)[1] == 0.0                   # cached
        replay = Replay(exp, w_T)
        U = exp.U.flip(0)
        w_bank, _ = bank.unlearn_online(w_T, U)
        w_rep, times = replay.unlearn_online(w_T, U)
        assert len(times) == 7 and replay.replays == 7
        torch.testing.assert_close(w_rep, w_bank, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(replay.vectors(U), bank.gather(U)[0], rtol=1e-5, atol=1e-7)
        w_sum, _ = replay.unlearn_batch(w_T, U)                      # one summed vector
        assert replay.replays == 9
        torch.testing.assert_close(w_sum, w_bank, rtol=1e-5, atol=1e-7)
        with pytest.raises(InputError, match="no approximator"):
            bank.gather([int(i) for i in range(exp.n) if i not in set(exp.U.tolist())][:1])

        exp = exp.with_flags(bank_dtype="float16")
        half, _ = precompute_bank(exp, w_T)
        assert half.manifest["bank_dtype"] == "float16"
        assert half.storage_bytes * 2 == bank.storage_bytes
        A16, A32 = half.gather(U)[0], bank.gather(U)[0]
        assert A16.dtype == torch.float16
        torch.testing.assert_close(A16.float(), A32, rtol=2e-3, atol=1e-3 * float(A32.abs().max()))
    finally:
        torch.set_num_threads(2)


def test_memory_budget_error_is_one_line_before_training(tmp_path):
    proc = proposed(*SHORT_WINE, "--log_dir", str(tmp_path), "--mem_budget_mb", "1e-6", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: --mem_budget_mb: one Hessian-vector product needs about")
    assert not glob.glob(os.path.join(str(tmp_path), "*", "original.pt"))


@pytest.mark.parametrize("engine", ["closed", "vjp"])
def test_chunk_size_follows_budget(engine):
    torch.manual_seed(0)
    fm = FlatModel(build_model("logistic", "wine").double())
    w = fm.initial_vector()
    X, y = torch.randn(5, 13, dtype=torch.float64), torch.randint(0, 3, (5,))
    g = torch.randn(fm.d, dtype=torch.float64)
    A = torch.randn(9, fm.d, dtype=torch.float64)
    big = step_jacobian(Step(fm, w, X, y, 0.01, g, 0.5, mem_budget_mb=1024), engine)
    per_vector = 8 * 3 * 5 * 3 if engine == "closed" else None
    budget = 2.5 * per_vector / MB if per_vector else 2.5 * 1024 / big.chunk
    small = step_jacobian(Step(fm, w, X, y, 0.01, g, 0.5, mem_budget_mb=budget), engine)
    assert 1 <= small.chunk < 9 <= big.chunk
    if per_vector:
        assert small.chunk == 2
    ref, out = big.to_internal(A).contiguous(), small.to_internal(A).contiguous()
    big.contract_(ref, 0.3)
    small.contract_(out, 0.3)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="^--mem_budget_mb: one Hessian-vector product needs about"):
        step_jacobian(Step(fm, w, X, y, 0.01, g, 0.5, mem_budget_mb=budget / 100), engine)


def test_gpu_smoke_cpu_quick(tmp_path):
    proc = run([sys.executable, os.path.join(ROOT, "bench", "gpu_smoke.py"), "--device", "cpu", "--quick",
                "--json", "--log_dir", str(tmp_path)])
    out = json.loads(proc.stdout)
    assert out["device"] == "cpu" and out["distance_unlearned"] < out["distance_original"]
    for key in ("train_s", "precompute_s", "unlearn_s", "retrain_s"):
        assert out[key] >= 0
