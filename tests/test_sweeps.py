"""Quick modes of the sweeps run the full pipeline, produce tables and figures, and a
re-run reuses every cached step."""
import os
import subprocess

import pytest

from helpers import ROOT


def sweep(name, tmp_path):
    env = dict(os.environ, QUICK="1", LOG_DIR=str(tmp_path / "log"), RESULTS_DIR=str(tmp_path / "results"),
               HFU_OFFLINE="1")
    return subprocess.run(["bash", os.path.join(ROOT, name)], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("name, extra", [("MNIST.sh", "fig_mnist_logistic_num_forget.png"),
                                          ("MIAU.sh", "MIAU_summary.md")])
def test_quick_sweep_then_cached_rerun(name, extra, tmp_path):
    first = sweep(name, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    results = tmp_path / "results"
    for f in ["eva_summary.md", "eva_summary.csv", extra]:
        assert (results / f).stat().st_size > 0
    summary = (results / "eva_summary.md").read_text()
    assert "Proposed" in summary and "Retrain" in summary
    again = sweep(name, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "+ python3" not in again.stderr and "cached: python3" in again.stderr


def test_sweep_stops_at_first_failure(tmp_path):
    env = dict(os.environ, QUICK="1", LOG_DIR=str(tmp_path / "log"), RESULTS_DIR=str(tmp_path / "r"),
               EXTRA="--num_dataset 0")
    proc = subprocess.run(["bash", os.path.join(ROOT, "MNIST.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "stopped: this command failed: python3 main_retrain.py" in proc.stderr
    assert proc.stderr.count("+ python3") == 1
