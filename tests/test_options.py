"""Every bad-input path stops with one line naming the problem and a non-zero exit."""
import os

import pytest
import torch

from helpers import WINE, run_script
from utils.errors import InputError
from utils.options import parse_args, validate, build_parser


def flags_with(**over):
    flags = list(WINE)
    for k, v in over.items():
        if f"--{k}" in flags:
            flags[flags.index(f"--{k}") + 1] = str(v)
        else:
            flags += [f"--{k}", str(v)]
    return flags


@pytest.mark.parametrize("over, needle", [
    (dict(model="transformer"), "--model: unknown model"),
    (dict(dataset="imagenet"), "--dataset: unknown dataset"),
    (dict(num_forget=142), "--num_forget"),
    (dict(num_dataset=100000), "--num_dataset"),
    (dict(lr=0), "--lr"),
    (dict(lr=-1), "--lr"),
    (dict(epsilon=0), "--epsilon"),
    (dict(delta=1.5), "--delta"),
    (dict(delta=0), "--delta"),
    (dict(model="lenet"), "does not fit dataset wine"),
    (dict(model="cnn"), "does not fit dataset wine"),
    (dict(batch_size=0), "--batch_size"),
    (dict(forget_indices="1,x"), "--forget_indices"),
    (dict(forget_indices="3,3"), "distinct"),
    (dict(forget_indices="5,500"), "outside range"),
])
def test_bad_flag_is_one_clear_line(over, needle):
    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        validate(build_parser().parse_args(flags_with(**over)))


def test_script_exits_nonzero_with_one_line(dirs):
    proc = run_script("main_retrain.py", *flags_with(num_forget=500), *dirs, check=False)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --num_forget")
    assert proc.stdout == ""


def test_explicit_forget_indices_set_m():
    args = parse_args(flags_with(forget_indices="9,2,4"))
    assert args.forget_list == [2, 4, 9] and args.num_forget == 3


def test_missing_dataset_names_files_and_place(tmp_path, dirs):
    proc = run_script("main_retrain.py", "--dataset", "cifar", "--model", "logistic", "--num_dataset", "100",
                      "--gpu", "-1", "--data_dir", str(tmp_path / "nodata"), *dirs, check=False)
    assert proc.returncode == 2
    msg = proc.stderr.strip().splitlines()[-1]
    assert "cifar-10-batches-py" in msg and str(tmp_path / "nodata") in msg


def test_gpu_request_falls_back_or_lists_devices(monkeypatch):
    from utils.experiment import select_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device(1).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "FakeGPU")
    with pytest.raises(InputError, match="no CUDA device 3; present: 0: FakeGPU"):
        select_device(3)


def test_corrupt_artefact_is_reported(dirs):
    run_script("main_retrain.py", *WINE, *dirs)
    log_dir = dirs[1]
    (train_dir,) = [os.path.join(log_dir, d) for d in os.listdir(log_dir)]
    with open(os.path.join(train_dir, "original.pt"), "wb") as f:
        f.write(b"not a tensor file")
    proc = run_script("main_retrain.py", *WINE, *dirs, check=False)
    assert proc.returncode == 2
    assert "corrupt artefact" in proc.stderr and "original.pt" in proc.stderr
