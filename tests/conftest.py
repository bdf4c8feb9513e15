"""Session setup and fixtures: repository root on sys.path, offline mode, two threads.
Constants and helpers the tests import are in tests/helpers.py."""
import os
import sys

import pytest
import torch

from helpers import ROOT

sys.path.insert(0, ROOT)
os.environ.setdefault("HFU_OFFLINE", "1")
torch.set_num_threads(2)


@pytest.fixture
def dirs(tmp_path):
    """--log_dir / --results_dir flags pointing into a fresh temporary directory."""
    return ["--log_dir", str(tmp_path / "log"), "--results_dir", str(tmp_path / "results")]
