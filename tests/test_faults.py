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
                   "cannot fit", "wrong shapes", "labels outside", "--noise_seeds 100000000", "--n_shadows 100000000",
                   "shadow cache", "two identical sweeps", "`--seed` outside", "`--hf_damping`", "rho not measured",
                   "shell-quoted", "forged files"]:
        assert needle in text, needle


# ---------------------------------------------------------------------- 10. sizes, seeds, hints, forged files
# a tiny convex setting: 12 steps, every script in a few seconds
TINY = ["--model", "logistic", "--dataset", "wine", "--num_dataset", "100", "--batch_size", "32", "--epochs", "3",
        "--num_forget", "5", "--gpu", "-1", "--quiet"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A log dir with the original model, Retrain, Proposed (full bank), 6 U-LiRA shadows and 4 LiRA
    shadows for TINY."""
    tmp = tmp_path_factory.mktemp("tiny")
    run_script("main_retrain.py", *TINY, *dirs_of(tmp))
    run_script("main_proposed.py", *TINY, *dirs_of(tmp))
    run_script("main_ULIRA.py", *TINY, "--n_shadows", "6", *dirs_of(tmp))
    run_script("main_MIAL.py", *TINY, "--n_shadows", "4", *dirs_of(tmp))
    return tmp


def only(pattern):
    (path,) = glob.glob(pattern)
    return path


def test_noise_draws_that_cannot_fit_are_refused_before_work(tmp_path):
    line = one_error_line(run_script("main_proposed.py", *TINY, "--application", "--noise_seeds", "100000000",
                                     *dirs_of(tmp_path), check=False))
    assert line.startswith("error: --noise_seeds 100000000: the 100,000,000 noised releases (d=42)")
    assert "of memory" in line and line.endswith("lower --noise_seeds")
    assert not glob.glob(str(tmp_path / "log" / "*" / "original.pt"))


@pytest.mark.parametrize("script", ["main_ULIRA.py", "main_MIAL.py"])
def test_shadows_that_cannot_fit_are_refused_before_work(script, tiny, tmp_path):
    copy_of(tiny, tmp_path)
    caches = str(tmp_path / "log" / "*" / "cache" / "*shadows*")
    before = sorted(glob.glob(caches))
    line = one_error_line(run_script(script, *TINY, "--n_shadows", "100000000", *dirs_of(tmp_path), check=False))
    assert line.startswith("error: --n_shadows 100000000: the ") and "of memory" in line
    assert "lower --n_shadows" in line
    assert sorted(glob.glob(caches)) == before


@pytest.mark.parametrize("script, cache", [("main_ULIRA.py", "ulira-shadows"), ("main_MIAL.py", "lira-shadows")])
def test_shadow_cache_beyond_the_file_size_limit_is_refused_before_work(script, cache, tiny, tmp_path):
    """``ulimit -f 20`` (20 kB): 60 shadows' cache cannot be written; refused before the first shadow."""
    copy_of(tiny, tmp_path)
    caches = str(tmp_path / "log" / "*" / "cache" / f"{cache}-*")
    before = sorted(glob.glob(caches))
    cmd = " ".join([sys.executable, os.path.join(ROOT, script), *TINY, "--n_shadows", "60", *dirs_of(tmp_path)])
    proc = subprocess.run(["bash", "-c", f"ulimit -f 20 && exec {cmd}"], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, HFU_OFFLINE="1"))
    line = one_error_line(proc)
    assert f"/cache/{cache}-" in line and "file-size limit" in line and "ulimit -f" in line
    assert sorted(glob.glob(caches)) == before
    assert no_tmp_left(tmp_path)


RACE_STEP = """import os, sys, time
out = os.path.join(os.environ["RACE_OUT"], "out.txt")
with open(out, "w") as f:
    f.write("x")
with open(os.environ["HFU_WRITTEN"], "a") as f:
    f.write(out + "\\n")
time.sleep(1.5)                 # both sweeps have listed their output before either finishes
"""


def test_identical_sweeps_started_together_both_finish(tmp_path):
    """Two identical sweeps at once: both steps succeed, both sweeps finish (no shared list of
    written files), the stamp lists the outputs and a third run skips the step."""
    (tmp_path / "step.py").write_text(RACE_STEP)
    (tmp_path / "race.sh").write_text(f'SWEEP=race\nsource "{ROOT}/sweeps/common.sh"\nrun "{tmp_path}/step.py"\n')
    env = dict(os.environ, LOG_DIR=str(tmp_path / "log"), RESULTS_DIR=str(tmp_path / "results"),
               RACE_OUT=str(tmp_path))

    def start():
        return subprocess.Popen(["bash", str(tmp_path / "race.sh")], env=env, stderr=subprocess.PIPE, text=True)
    procs = [start(), start()]
    errs = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    stamps = tmp_path / "log" / ".sweep-stamps"
    assert not glob.glob(str(stamps / "*.partial"))
    (stamp,) = glob.glob(str(stamps / "*"))
    assert open(stamp).read().split() == [str(tmp_path / "out.txt")]
    third = subprocess.run(["bash", str(tmp_path / "race.sh")], env=env, capture_output=True, text=True)
    assert third.returncode == 0 and third.stderr.startswith("cached: "), third.stderr


def test_epsilon_beyond_the_reliable_range_is_one_line(tmp_path):
    line = one_error_line(run_script("main_proposed.py", *TINY, "--application", "--epsilon", "1e300",
                                     *dirs_of(tmp_path), check=False))
    assert line.startswith("error: --epsilon: must be at most 1e+12")
    assert not os.path.exists(tmp_path / "log" / "wine-logistic-n100-s42-31f0921f01")


@pytest.mark.parametrize("delta", [1e-12, 1e-5, 0.1, 0.9])
def test_largest_epsilon_is_solved_reliably(delta):
    """At the largest accepted epsilon the analytic Gaussian mechanism's sigma still certifies it."""
    from utils.common.options import MAX_EPSILON
    from utils.proposed.certify import analytic_gaussian_sigma, certified_epsilon
    for eps in (MAX_EPSILON, MAX_EPSILON / 7.3):
        sigma = analytic_gaussian_sigma(eps, delta)
        got, _ = certified_epsilon(sigma, delta, 1.0)
        assert got == pytest.approx(eps, rel=1e-3)


@pytest.mark.parametrize("seed", ["99999999999999999999", "-1", "4294967296"])
def test_seed_outside_the_generators_range_is_one_line(seed, tmp_path):
    line = one_error_line(run_script("main_proposed.py", *TINY, "--seed", seed, *dirs_of(tmp_path), check=False))
    assert line.startswith("error: --seed: must be an integer in 0..4294967295")


def test_largest_seed_is_accepted_by_every_generator():
    """Every seed derived from --seed (forget set, schedule, pool, shadows, noise) stays in range."""
    from utils.audits.lira import shadow_seed
    from utils.audits.shadows import POOL_SEED_OFFSET
    from utils.audits.ulira import INDEPENDENT_OFFSET, KEEP_SEED_OFFSET
    from utils.common.options import MAX_SEED
    from utils.training.forget import FORGET_SEED_OFFSET
    for seed in (MAX_SEED, shadow_seed(MAX_SEED, 10 ** 6 + INDEPENDENT_OFFSET), MAX_SEED + FORGET_SEED_OFFSET,
                 MAX_SEED + KEEP_SEED_OFFSET, MAX_SEED + 2):
        torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
    np.random.default_rng(MAX_SEED + POOL_SEED_OFFSET)


@pytest.mark.parametrize("kappa", ["1000", "1e30"])
def test_divergence_from_the_damping_names_the_damping(kappa, tmp_path):
    line = one_error_line(run_script("main_proposed.py", *TINY, "--hf_damping", kappa, *dirs_of(tmp_path),
                                     check=False))
    assert "diverged" in line and "nan" not in line
    assert line.endswith("lower --hf_damping below 2 / lr = 40") and "lower --lr" not in line


def test_divergence_remedy_names_the_flag_that_expands():
    from utils.proposed.hf import divergence_remedy
    from utils.proposed.hfconfig import HFConfig
    from utils.training.train import SGDConfig
    cfg = SGDConfig(0.05, 0.995, 5.0, 0.5)
    assert divergence_remedy(cfg, HFConfig()) == "lower --lr"
    assert divergence_remedy(cfg, HFConfig(damping=39.0)) == "lower --lr or --hf_damping"
    assert divergence_remedy(cfg, HFConfig(damping=41.0)).startswith("--hf_damping 41 makes the recursion expand")


def test_replay_summary_says_rho_is_not_measured(tiny, tmp_path):
    copy_of(tiny, tmp_path)
    proc = run_script("main_proposed.py", *TINY, "--hf_mode", "replay", "--batch_unlearn", *dirs_of(tmp_path))
    assert "rho not measured" in proc.stderr and "rho nan" not in proc.stderr


def test_suggested_commands_are_shell_quoted(tmp_path):
    """A suggested command pastes back into a shell as the same words, whatever the paths hold."""
    import shlex
    log, results = str(tmp_path / "my log's ü"), str(tmp_path / "res $x")
    proc = run_script("main_MIAL.py", *TINY, "--log_dir", log, "--results_dir", results, check=False)
    line = one_error_line(proc)
    command = line.split("; run: ", 1)[1]
    assert shlex.split(command) == ["python3", "main_retrain.py", *TINY, "--log_dir", log, "--results_dir", results]


def forged_cache(tiny, tmp_path, pattern, forge):
    """A copy of the tiny run whose cache ``pattern`` is forged by ``forge`` and saved under a
    valid integrity record; the cache's path."""
    copy_of(tiny, tmp_path)
    cache = only(str(tmp_path / "log" / "*" / "cache" / pattern))
    t = torch.load(cache, weights_only=True)
    forge(t)
    artifacts.save_tensors(cache, t)
    return cache


@pytest.mark.parametrize("forge, needle", [
    (lambda t: t.update(Original=t["Original"][:, :-1]), "'Original' has shape (6, 41), expected (6, 42)"),
    (lambda t: t.pop("Retrain"), "lacks entry 'Retrain'"),
    (lambda t: t["Retrain_independent"].__setitem__((2, 3), float("nan")), "'Retrain_independent' holds non-finite"),
])
def test_forged_ulira_cache_is_one_line(forge, needle, tiny, tmp_path):
    cache = forged_cache(tiny, tmp_path, "ulira-shadows-*.pt", forge)
    line = one_error_line(run_script("main_ULIRA.py", *TINY, "--n_shadows", "6", *dirs_of(tmp_path), check=False))
    assert f"artefact {cache}: " in line or f"artefact {cache} " in line
    assert needle in line


@pytest.mark.parametrize("forge, needle", [
    (lambda t: t.update(scores=t["scores"][:, :-1]), "'scores' has shape (4, 177), expected (4, 178)"),
    (lambda t: t["scores"].__setitem__((1, 5), float("inf")), "'scores' holds non-finite"),
])
def test_forged_lira_cache_is_one_line(forge, needle, tiny, tmp_path):
    cache = forged_cache(tiny, tmp_path, "lira-shadows-*.pt", forge)
    line = one_error_line(run_script("main_MIAL.py", *TINY, "--n_shadows", "4", *dirs_of(tmp_path), check=False))
    assert f"artefact {cache}: {needle}" in line


def test_forged_schedule_out_of_range_is_one_line_in_replay_mode(tiny, tmp_path):
    copy_of(tiny, tmp_path)
    original = only(str(tmp_path / "log" / "*" / "original.pt"))
    t = torch.load(original, weights_only=True)
    t["schedule"][7] = 100
    artifacts.save_tensors(original, t)
    line = one_error_line(run_script("main_proposed.py", *TINY, "--hf_mode", "replay", *dirs_of(tmp_path),
                                     check=False))
    assert f"artefact {original}: its schedule holds sample indices outside 0..99" in line


def test_forged_bank_row_beyond_the_reach_bound_is_refused(tiny, tmp_path):
    """A shard whose row of a deleted sample exceeds 2 c sum eta_t: one line, and the saved
    Proposed model stays as it was."""
    copy_of(tiny, tmp_path)
    shard = only(str(tmp_path / "log" / "*" / "cache" / "hfbank-*" / "shard-*.pt"))
    proposed = only(str(tmp_path / "log" / "*" / "forget-*" / "Proposed-*.pt"))
    before = artifacts.file_sha256(proposed)
    t = torch.load(shard, weights_only=True)
    from utils.training.forget import forget_set
    u = int(forget_set(100, 5, 42)[0])
    row = int((t["rows"] == u).nonzero()[0])
    t["A"][row] *= 1e6
    artifacts.save_tensors(shard, t)
    line = one_error_line(run_script("main_proposed.py", *TINY, *dirs_of(tmp_path), check=False))
    assert f"the row of sample {u} has norm" in line and "beyond 2 c sum eta_t" in line
    assert "delete the bank directory" in line
    assert artifacts.file_sha256(proposed) == before
