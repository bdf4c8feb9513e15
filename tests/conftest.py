"""Shared test helpers: repository root on sys.path, offline mode, tiny configs."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("HFU_OFFLINE", "1")
torch.set_num_threads(2)

WINE = ["--model", "mlp", "--dataset", "wine", "--epochs", "40", "--num_dataset", "142",
        "--batch_size", "64", "--num_forget", "7", "--lr", "0.01", "--regularization", "0.005",
        "--lr_decay", "0.9995", "--clip", "10", "--gpu", "-1", "--quiet"]


@pytest.fixture
def dirs(tmp_path):
    """--log_dir / --results_dir flags pointing into a fresh temporary directory."""
    return ["--log_dir", str(tmp_path / "log"), "--results_dir", str(tmp_path / "results")]


def run_script(script, *flags, check=True):
    """Run a main_*.py as a user would; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *flags], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, HFU_OFFLINE="1"))
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc
