"""The faults of issue 20, each met the way a user meets it: refused in one line before any
work (exit 2), a Ctrl-C in one line (exit 130), nothing half-written, honest aggregate counts.

Most cases run a script as a subprocess on a short Wine setting; the shared ``trained``
fixture (original model, Retrain, Proposed with its bank) is copied before a case damages it.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import ROOT, WINE, run_script
from utils.common import artifacts

# Wine.sh's flags at 4 epochs (12 steps): every precompute takes seconds
FAST = [f if f != "40" else "4" for f in WINE]


def one_error_line(proc, status=2):
    """The single ``error:`` line of a refused run (no traceback, nothing on stdout)."""
    assert proc.returncode == status, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("error: "), proc.stderr[-2000:]
    assert sum(line.startswith("error: ") for line in lines) == 1
    assert proc.stdout == ""
    return lines[-1]


def dirs_of(tmp):
    return ["--log_dir", str(tmp / "log"), "--results_dir", str(tmp / "results")]


def no_tmp_left(root):
    return not glob.glob(os.path.join(str(root), "**", "*.tmp"), recursive=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A log dir with the original model, Retrain and Proposed (full bank) for FAST."""
    tmp = tmp_path_factory.mktemp("trained")
    run_script("main_retrain.py", *FAST, *dirs_of(tmp))
    run_script("main_proposed.py", *FAST, *dirs_of(tmp))
    return tmp


def copy_of(trained, tmp_path):
    shutil.copytree(trained / "log", tmp_path / "log")
    return tmp_path


# ---------------------------------------------------------------------- 1. aggregate
SETTING = {"dataset": "wine", "model": "mlp", "num_dataset": 142, "num_forget": 7, "lr": 0.01, "epochs": 40}


def write_result(results, name, seed, methods, raw=None):
    """An eva-*.json as main_eva.py writes it (``raw``: the text instead, for hand edits)."""
    os.makedirs(results, exist_ok=True)
    path = os.path.join(results, f"eva-{name}.json")
    record = {"setting": SETTING, "setting_key": "k1", "seed": seed, "methods": methods,
              "format_version": artifacts.FORMAT_VERSION}
    with open(path, "w") as f:
        f.write(raw if raw is not None else json.dumps(record))
    return path


def row(distance, **extra):
    return dict({"distance": distance, "floor": 1e-3, "test_acc": 0.9, "forget_acc": 0.8,
                 "unlearn_s": 0.01, "precompute_s": 1.0}, **extra)


def test_aggregate_counts_seeds_per_method(tmp_path):
    results = tmp_path / "results"
    write_result(results, "a", 42, {"Original": row(0.5), "Retrain": row(0.0), "NU": row(0.7861)})
    write_result(results, "b", 124, {"Original": row(0.7), "Retrain": row(0.0)})
    proc = run_script("main_eva.py", "--aggregate", "--json", "--results_dir", str(results))
    (group,) = json.loads(proc.stdout).values()
    assert group["seeds"] == [42, 124] and group["method_seeds"]["NU"] == [42]
    assert group["methods"]["NU"]["distance"]["runs"] == 1
    md = open(results / "eva_summary.md").read()
    assert "0.7861 ± 0" not in md and "0.7861 (1 of 2 seeds)" in md
    assert "0.6 ± 0.1 " in md                                 # Original: both seeds, no count
    import csv
    with open(results / "eva_summary.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert (rows["NU"]["seeds"], rows["NU"]["setting_seeds"]) == ("1", "2")
    assert rows["Original"]["seeds"] == "2"


@pytest.mark.parametrize("value, needle", [
    ("NaN", "distance = nan cannot be a distance"),
    ("1e999", "distance = inf cannot be a distance"),
    ('"nan"', "distance = 'nan' cannot be a distance"),
    ("-0.25", "distance = -0.25 cannot be a distance"),
    ("true", "distance = True cannot be a distance"),
])
def test_aggregate_refuses_impossible_values(tmp_path, value, needle):
    results = tmp_path / "results"
    good = write_result(results, "a", 42, {"Original": row(0.5), "NU": row(0.1)})
    text = json.dumps({"setting": SETTING, "setting_key": "k1", "seed": 124, "format_version": 2,
                       "methods": {"Original": row(0.5), "NU": row(12345.0)}}).replace("12345.0", value)
    bad = write_result(results, "b", 124, None, raw=text)
    line = one_error_line(run_script("main_eva.py", "--aggregate", "--results_dir", str(results), check=False))
    assert bad in line and needle in line and good not in line
    assert not os.path.exists(results / "eva_summary.md")


def test_aggregate_refuses_accuracy_time_and_missing_fields(tmp_path):
    from utils.common.errors import InputError
    from utils.evaluation.compare import aggregate
    results = tmp_path / "results"
    for i, (methods, needle) in enumerate([
            ({"NU": row(0.1, test_acc=1.5)}, "test_acc = 1.5 cannot be an accuracy"),
            ({"NU": row(0.1, unlearn_s=-1)}, "unlearn_s = -1 cannot be a time"),
            ({"NU": "0.1"}, "'methods' is not an object")]):
        shutil.rmtree(results, ignore_errors=True)
        path = write_result(results, f"x{i}", 42, methods)
        with pytest.raises(InputError, match=needle) as e:
            aggregate(str(results))
        assert path in str(e.value)
    shutil.rmtree(results)
    path = write_result(results, "y", 42, None, raw=json.dumps({"format_version": 2, "seed": 1, "methods": {}}))
    with pytest.raises(InputError, match="lacks the fields setting_key, setting, setting.dataset"):
        aggregate(str(results))


# ---------------------------------------------------------------------- 2. write failures
def test_file_size_limit_refused_before_work(tmp_path):
    """``ulimit -f 200``: the bank shard (about 620 kB) cannot be written: refused before the
    original model is trained, one line naming the file and the limit, no .tmp."""
    cmd = " ".join([sys.executable, os.path.join(ROOT, "main_proposed.py"), *FAST, *dirs_of(tmp_path)])
    proc = subprocess.run(["bash", "-c", f"ulimit -f 200 && exec {cmd}"], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, HFU_OFFLINE="1"))
    line = one_error_line(proc)
    assert "shard-0-142.pt" in line and "file-size limit" in line and "ulimit -f" in line
    assert not glob.glob(str(tmp_path / "log" / "*" / "original.pt"))
    assert no_tmp_left(tmp_path)


def test_a_failed_write_is_one_line_and_leaves_no_tmp(tmp_path):
    """A write that fails anyway (the limit reached mid-file) is one InputError naming the
    file and the cause, and its temporary file is removed."""
    code = ("import resource, sys, torch; sys.path.insert(0, sys.argv[2]); from utils.common import artifacts\n"
            "from utils.common.errors import InputError\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100000, resource.RLIM_INFINITY))\n"
            "try:\n    artifacts.save_tensors(sys.argv[1], {'A': torch.zeros(100000)})\n"
            "except InputError as e:\n    print(e)")
    target = str(tmp_path / "big.pt")
    proc = subprocess.run([sys.executable, "-c", code, target, ROOT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"cannot write {target}: the file-size limit") and "Traceback" not in proc.stdout
    assert os.listdir(tmp_path) == []


def test_unwritable_cache_refused_before_work(trained, tmp_path):
    """A cache/ inside a writable log dir that cannot be written: one line naming it, before the
    bank precompute (the bank of another candidate set is never started)."""
    copy_of(trained, tmp_path)
    (train_dir,) = glob.glob(str(tmp_path / "log" / "*" / "original.pt"))
    cache = os.path.join(os.path.dirname(train_dir), "cache")
    shutil.rmtree(cache)
    if os.geteuid() == 0:                 # root writes through permissions: make it a file
        open(cache, "w").close()
    else:
        os.mkdir(cache, 0o555)
    line = one_error_line(run_script("main_proposed.py", *FAST, *dirs_of(tmp_path), check=False))
    assert f"cannot write to {cache}" in line
    assert no_tmp_left(tmp_path)


def test_zero_byte_tmp_of_a_killed_write_is_removed_by_the_next_write(tmp_path):
    """A kill during the write of a shard leaves ``shard-....pt.<pid>.tmp`` (0 bytes, fresh): the
    next run that writes the shard removes it, however recent."""
    target = str(tmp_path / "bank" / "shard-0-142.pt")
    os.makedirs(os.path.dirname(target))
    child = subprocess.Popen([sys.executable, "-c", "import sys, os; open(f'{sys.argv[1]}.{os.getpid()}.tmp', 'w')",
                              target])
    child.wait()
    (left,) = glob.glob(target + ".*.tmp")
    assert os.path.getsize(left) == 0
    artifacts.save_tensors(target, {"A": torch.zeros(3, 2)})
    assert not glob.glob(str(tmp_path / "bank" / "*.tmp"))
    artifacts.verify(target)


# ---------------------------------------------------------------------- 3. schedules and banks that cannot fit
def test_schedule_that_cannot_fit_is_refused_at_once(tmp_path):
    line = one_error_line(run_script("main_proposed.py", *FAST, "--epochs", "100000000", *dirs_of(tmp_path),
                                     check=False))
    assert line.startswith("error: --epochs 100000000: the batch schedule of 300,000,000 steps")
    assert "of memory" in line and line.endswith("lower --epochs (or raise --batch_size)")
    assert not os.path.exists(tmp_path / "log")


def test_bank_that_cannot_fit_is_refused_before_work(tmp_path, monkeypatch):
    import main_proposed
    from utils.common import resources
    from utils.common.errors import InputError
    from utils.common.experiment import Experiment
    from utils.common.options import parse_args
    exp = Experiment(parse_args(FAST + dirs_of(tmp_path)))
    need = 142 * exp.fm.d * 12
    monkeypatch.setattr(resources, "available_memory", lambda: need - 1)
    with pytest.raises(InputError, match=r"the approximator bank \(142 rows x d=1,091 per process\) needs "
                                         r"about .* of memory.*--hf_candidates.*--hf_mode replay"):
        main_proposed.check_outputs(exp, 1)
    monkeypatch.setattr(resources, "available_memory", lambda: need + 1)
    main_proposed.check_outputs(exp, 1)
    assert not os.path.exists(tmp_path / "log" / os.path.basename(exp.train_dir) / "original.pt")


# ---------------------------------------------------------------------- 4. noise seeds and noised releases
@pytest.mark.parametrize("script", ["main_proposed.py", "main_eva.py", "main_MIAU.py", "main_MIAL.py"])
def test_noise_seed_outside_the_draws_refused_by_every_script(script, tmp_path):
    line = one_error_line(run_script(script, *FAST, "--noise_seed", "3", "--noise_seeds", "2", *dirs_of(tmp_path),
                                     check=False))
    assert line == "error: --noise_seed: draw 3 is not among the --noise_seeds 2 draws 0..1; raise --noise_seeds"


def test_absent_noised_release_names_the_command(trained, tmp_path):
    copy_of(trained, tmp_path)
    line = one_error_line(run_script("main_eva.py", *FAST, "--application", "--noise_seeds", "3", "--noise_seed", "2",
                                     *dirs_of(tmp_path), check=False))
    assert "no Proposed_noise model" in line and "main_proposed.py" in line and "--application" in line
    assert "--noise_seeds 3" in line
    assert not glob.glob(str(tmp_path / "log" / "**" / "Floor-*"), recursive=True)   # refused before the floor


# ---------------------------------------------------------------------- 5. --pretrained
def test_pretrained_file_where_the_model_cannot_use_it(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a model")
    line = one_error_line(run_script("main_retrain.py", *FAST, "--pretrained", str(garbage), *dirs_of(tmp_path),
                                     check=False))
    assert "only resnet18 loads pretrained weights" in line and str(garbage) in line
    assert not os.path.exists(tmp_path / "log")


def test_pretrained_garbage_for_resnet_refused_before_torch(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a model")
    line = one_error_line(run_script("main_retrain.py", "--model", "resnet18", "--dataset", "cifar", "--gpu", "-1",
                                     "--pretrained", str(garbage), *dirs_of(tmp_path), check=False))
    assert line == f"error: --pretrained: {garbage} is not a torch.save file; save one with " \
                   f"torch.save(model.state_dict(), path)"


# ---------------------------------------------------------------------- 6. nothing to forget
@pytest.mark.parametrize("flags, needle", [(["--num_forget", "0"], "--num_forget: need 1 <= m < n = 142, got 0"),
                                           (["--forget_indices", ""], "--forget_indices: the list is empty")])
def test_empty_forget_set_refused(flags, needle, tmp_path):
    line = one_error_line(run_script("main_proposed.py", *FAST, *flags, *dirs_of(tmp_path), check=False))
    assert needle in line and "nan" not in line
    assert not os.path.exists(tmp_path / "log")


# ---------------------------------------------------------------------- 7. Ctrl-C
def test_ctrl_c_stops_a_script_in_one_line(tmp_path):
    """SIGINT while the original model trains: exit 130, one line, no traceback, nothing written."""
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "main_retrain.py"), *FAST, "--epochs", "20000",
                             *dirs_of(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, HFU_OFFLINE="1"),
                            # as from a terminal: SIGINT at its default even when the runner was
                            # started in the background (which passes SIGINT ignored)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stderr.readline()            # printed once the data is loaded, before training
    assert first.startswith("data: "), first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == ["interrupted (Ctrl-C); nothing half-written was kept"]
    assert out == ""
    assert not glob.glob(str(tmp_path / "log" / "**" / "*.pt"), recursive=True)
    assert no_tmp_left(tmp_path)


def test_ctrl_c_before_the_script_body_is_one_line_too():
    """An interrupt while a script still imports its libraries (outside run_main)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.argv = ['main_x.py', '--dataset', 'wine', '--model', "
            "'mlp', '--num_dataset', '100']; from utils.common.options import parse_args; parse_args(); "
            "raise KeyboardInterrupt")
    proc = subprocess.run([sys.executable, "-c", code, ROOT], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 130
    assert proc.stderr.strip() == "interrupted (Ctrl-C); nothing half-written was kept"


# ---------------------------------------------------------------------- 8. malformed inputs
def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape))
        f.write(array.tobytes())


def test_idx_labels_outside_the_classes(tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 40)
    labels[5] = 12
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (40, 28, 28)))
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 20))
    line = one_error_line(run_script("main_retrain.py", "--model", "logistic", "--dataset", "mnist", "--num_dataset",
                                     "20", "--epochs", "1", "--num_forget", "2", "--gpu", "-1", "--quiet",
                                     "--data_dir", str(tmp_path / "data"), *dirs_of(tmp_path), check=False))
    assert str(raw / "train-labels-idx1-ubyte") in line
    assert "1 label(s) outside the 10 classes 0..9 (e.g. 12)" in line


def test_bank_manifest_without_its_fields(trained, tmp_path):
    copy_of(trained, tmp_path)
    (manifest,) = glob.glob(str(tmp_path / "log" / "*" / "cache" / "hfbank-*" / "manifest.json"))
    record = json.load(open(manifest))
    del record["shards"]
    json.dump(record, open(manifest, "w"))
    line = one_error_line(run_script("main_proposed.py", *FAST, *dirs_of(tmp_path), check=False))
    assert f"artefact {manifest} lacks the field shards" in line and "delete the bank directory" in line


def test_original_with_wrong_shapes_and_a_valid_record(trained, tmp_path):
    copy_of(trained, tmp_path)
    (original,) = glob.glob(str(tmp_path / "log" / "*" / "original.pt"))
    t = torch.load(original, weights_only=True)
    t["w"] = t["w"][:-5]
    artifacts.save_tensors(original, t)           # a valid integrity record for the wrong tensors
    line = one_error_line(run_script("main_eva.py", *FAST, *dirs_of(tmp_path), check=False))
    assert f"artefact {original}: 'w' has shape (1086,), expected (1091,)" in line


# ---------------------------------------------------------------------- 9. what is reproducible
def test_provenance_records_the_cpu_kind(tmp_path):
    from types import SimpleNamespace
    from utils.common.provenance import cpu_info, provenance
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n"
                    "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu\n")
    got = cpu_info(str(fake))
    assert got["model"] == "Test CPU 9000" and got["vector_extensions"] == ["sse4_2", "avx", "avx2", "fma", "avx512f"]
    exp = SimpleNamespace(device=torch.device("cpu"), data=SimpleNamespace(source="s", fingerprint="f"))
    cpu = artifacts.strict_json(provenance(exp))["cpu"]
    assert set(cpu) == {"model", "vector_extensions", "torch_capability", "machine"}
    assert cpu["torch_capability"] == torch.backends.cpu.get_cpu_capability()


def test_docs_claim_only_what_is_reproducible():
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "bit-reproducible on CPU" not in readme
    assert "same CPU kind" in readme and "thread count" in readme
    text = open(os.path.join(ROOT, "docs", "results.md")).read()
    sections = [s for s in text.split("\n#") if "\n|" in s and not s.startswith("# Sweeps")]
    assert sections and all("Machine:" in s for s in sections), \
        [s.splitlines()[0] for s in sections if "Machine:" not in s]


def test_reliability_lists_the_fault_classes():
    text = open(os.path.join(ROOT, "docs", "reliability.md")).read()
    for needle in ["aggregate", "ulimit -f", "Ctrl-C", "--noise_seed", "--pretrained", "--num_forget",
                   "cannot fit", "wrong shapes", "labels outside"]:
        assert needle in text, needle
