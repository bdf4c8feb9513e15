"""Constants and helpers the tests import (fixtures and session setup live in conftest.py)."""
import copy
import math
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WINE = ["--model", "mlp", "--dataset", "wine", "--epochs", "40", "--num_dataset", "142",
        "--batch_size", "64", "--num_forget", "7", "--lr", "0.01", "--regularization", "0.005",
        "--lr_decay", "0.9995", "--clip", "10", "--gpu", "-1", "--quiet"]


def run_script(script, *flags, check=True):
    """Run a main_*.py as a user would; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *flags], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, HFU_OFFLINE="1"))
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def hand_loop(exp, keep, norm):
    """Clipped SGD written directly on the nn.Module with autograd, an independent reference
    for training (keep all True) and exact retraining (keep False on U). ``norm`` 'batch'
    divides a batch's loss by its full size, 'mean' by the number of kept samples."""
    a = exp.args
    module = copy.deepcopy(exp.fm.module).eval()
    params = list(module.parameters())
    for t, batch in enumerate(exp.schedule):
        eta = a.lr * a.lr_decay ** t
        kept = [int(i) for i in batch if keep[int(i)]]
        denom = len(batch) if norm == "batch" else len(kept)
        if kept:
            loss = F.cross_entropy(module(exp.X[kept]), exp.y[kept], reduction="sum") / denom
            grads = torch.autograd.grad(loss, params)
        else:
            grads = [torch.zeros_like(p) for p in params]
        with torch.no_grad():
            grads = [g + a.regularization * p for g, p in zip(grads, params)]
            total = math.sqrt(sum(float((g * g).sum()) for g in grads))
            scale = min(1.0, a.clip / total)
            for p, g in zip(params, grads):
                p -= eta * scale * g
    return torch.cat([p.detach().reshape(-1) for p in params])
