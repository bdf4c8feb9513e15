"""Content integrity, format versions, strict JSON, temporary files, locks and provenance.

The faults a user meets through a script (a corrupt bank shard or original model, two
jobs on one configuration) are run as subprocesses of main_proposed.py on a short Wine
setting; the rest calls utils.common.artifacts / utils.common.provenance directly.
"""
import datetime
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import ROOT, WINE, run_script
from utils.common import artifacts
from utils.common.errors import InputError
from utils.common.provenance import git_state, provenance
from utils.common.report import finish

# 4 epochs (12 steps) and a bank of the forget set only: the precomputes take seconds
FAST = [f if f != "40" else "4" for f in WINE] + ["--hf_candidates", "forget", "--json"]


def _strict_loads(text):
    def refuse(token):
        raise AssertionError(f"non-strict JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def _flip_bytes(path, seed):
    """Overwrite 16 bytes in the middle of a file with seeded random bytes (size kept)."""
    data = bytearray(open(path, "rb").read())
    rng = np.random.default_rng(seed)
    mid = len(data) // 2
    new = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    if new == bytes(data[mid:mid + 16]):
        new = bytes(b ^ 0xFF for b in new)
    data[mid:mid + 16] = new
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------- tensors: SHA-256 records
def test_save_load_round_trip_records_sha256(tmp_path):
    path = str(tmp_path / "a" / "t.pt")
    t = torch.randn(50, 7, generator=torch.Generator().manual_seed(3))
    artifacts.save_tensors(path, {"A": t})
    record = json.load(open(path + artifacts.HASH_SUFFIX))
    assert record["format_version"] == artifacts.FORMAT_VERSION
    assert record["bytes"] == os.path.getsize(path)
    import hashlib
    assert record["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert torch.equal(artifacts.load_tensors(path)["A"], t)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_corrupt_bytes_are_refused(tmp_path, seed):
    path = str(tmp_path / "t.pt")
    artifacts.save_tensors(path, {"A": torch.randn(200, generator=torch.Generator().manual_seed(seed))})
    _flip_bytes(path, seed)
    with pytest.raises(InputError, match=r"corrupt artefact .*t\.pt .*delete .*t\.pt and rerun") as e:
        artifacts.load_tensors(path)
    assert "\n" not in str(e.value)


def test_truncated_file_is_refused(tmp_path):
    path = str(tmp_path / "t.pt")
    artifacts.save_tensors(path, {"A": torch.zeros(100)})
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 10)
    with pytest.raises(InputError, match="corrupt artefact"):
        artifacts.load_tensors(path, remedy="delete X and rerun Y")


def test_missing_record_or_older_version_is_refused(tmp_path):
    path = str(tmp_path / "t.pt")
    torch.save({"A": torch.zeros(3)}, path)                        # older layout: no record
    with pytest.raises(InputError, match="no integrity record.*older layout"):
        artifacts.load_tensors(path)
    artifacts.save_tensors(path, {"A": torch.zeros(3)})
    record = json.load(open(path + artifacts.HASH_SUFFIX))
    json.dump(dict(record, format_version=1), open(path + artifacts.HASH_SUFFIX, "w"))
    with pytest.raises(InputError, match="incompatible layout \\(format_version 1, this code reads 2\\)"):
        artifacts.load_tensors(path)


def test_json_carries_format_version_and_older_json_is_refused(tmp_path):
    path = str(tmp_path / "m.json")
    artifacts.write_json(path, {"seconds": 1.5})
    assert artifacts.read_json(path) == {"seconds": 1.5, "format_version": artifacts.FORMAT_VERSION}
    json.dump({"seconds": 1.5}, open(path, "w"))                 # written by the older layout
    with pytest.raises(InputError, match="m.json was written by an incompatible layout"):
        artifacts.read_json(path)


# ---------------------------------------------------------------------- strict JSON
def test_strict_json_round_trip_with_non_finite_values(tmp_path):
    obj = {"metrics": {"distance": float("inf"), "acc": 0.5, "low": float("-inf")},
           "rows": [1.0, float("nan"), np.float32(2.5), np.float64("nan")],
           "n": np.int64(7), "ok": True, "t": torch.tensor(0.25),
           "commit": artifacts.Null("not a git checkout")}
    path = str(tmp_path / "r.json")
    artifacts.write_json(path, obj)
    back = _strict_loads(open(path).read())
    assert back["metrics"] == {"distance": None, "acc": 0.5, "low": None}
    assert back["rows"] == [1.0, None, 2.5, None]
    assert back["n"] == 7 and back["ok"] is True and back["t"] == 0.25 and back["commit"] is None
    assert back["null_reasons"] == {"metrics.distance": "inf", "metrics.low": "-inf", "rows.1": "nan",
                                    "rows.3": "nan", "commit": "not a git checkout"}
    assert artifacts.strict_json({"a": 1.0}) == {"a": 1.0}          # no reasons when all finite


def test_finish_prints_strict_json(capsys):
    finish({"Proposed": {"rho": float("nan"), "distance": 0.1}}, True, "")
    out = _strict_loads(capsys.readouterr().out)
    assert out["Proposed"] == {"rho": None, "distance": 0.1}
    assert out["null_reasons"] == {"Proposed.rho": "nan"}


# ---------------------------------------------------------------------- temporary files
def _killed_writer(target):
    """A real process that starts writing ``<target>.<its pid>.tmp`` and is killed (SIGKILL)."""
    code = ("import os, sys, time; p = f'{sys.argv[1]}.{os.getpid()}.tmp'; "
            "open(p, 'w').write('partial'); print(p, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, target], stdout=subprocess.PIPE, text=True)
    tmp = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return tmp


def test_stale_tmp_of_killed_writer_is_removed_by_next_write(tmp_path):
    target = str(tmp_path / "original.pt")
    tmp = _killed_writer(target)
    assert os.path.exists(tmp)
    artifacts.write_json(str(tmp_path / "other.json"), {"x": 1})
    assert os.path.exists(tmp), "a temporary file modified within the grace period is kept"
    old = time.time() - 2 * artifacts.TMP_GRACE_S
    os.utime(tmp, (old, old))
    live = f"{target}.{os.getppid()}.tmp"                       # a live writer's file, same age
    open(live, "w").write("in progress")
    os.utime(live, (old, old))
    artifacts.save_tensors(str(tmp_path / "w.pt"), {"w": torch.zeros(2)})
    assert not os.path.exists(tmp)
    assert os.path.exists(live)
    ancient = time.time() - 2 * artifacts.TMP_STALE_S
    os.utime(live, (ancient, ancient))
    artifacts.write_text(str(tmp_path / "note.txt"), "x")
    assert not os.path.exists(live)
    assert not glob.glob(str(tmp_path / "*.tmp"))


# ---------------------------------------------------------------------- locks
def test_lock_makes_a_second_process_wait(tmp_path, capsys):
    path = str(tmp_path / "cache" / "hessian-x.pt")
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); from utils.common import artifacts\n"
            "with artifacts.lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(2)\n"
            "    open(sys.argv[1], 'w').write('made by the first process')")
    holder = subprocess.Popen([sys.executable, "-c", code, path, ROOT], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    start = time.perf_counter()
    with artifacts.lock(path, "the test precompute"):
        waited = time.perf_counter() - start
        assert open(path).read() == "made by the first process"
    holder.wait()
    assert waited > 0.5
    assert "waiting for another process computing the test precompute" in capsys.readouterr().err


# ---------------------------------------------------------------------- provenance
def test_git_state_of_a_checkout_and_of_a_plain_directory(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run(git + ["add", "a.py"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "one"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert git_state(str(repo)) == {"commit": head, "dirty": False}
    (repo / "a.py").write_text("x = 2\n")
    assert git_state(str(repo)) == {"commit": head, "dirty": True}
    outside = tmp_path / "plain"
    outside.mkdir()
    plain = artifacts.strict_json({"git": git_state(str(outside))})
    assert plain["git"] == {"commit": None, "dirty": None}
    assert plain["null_reasons"]["git.commit"] == "not a git checkout"


def test_provenance_fields():
    exp = SimpleNamespace(device=torch.device("cpu"),
                          data=SimpleNamespace(source="wine (test)", fingerprint="0123456789abcdef"))
    p = artifacts.strict_json(provenance(exp))
    assert set(p["packages"]) == {"torch", "numpy", "scikit-learn", "dp-accounting"}
    assert p["packages"]["torch"] == torch.__version__.split("+")[0]
    assert p["packages"]["numpy"] == np.__version__
    assert p["python"] == ".".join(map(str, sys.version_info[:3]))
    assert p["device"] == "cpu" and p["argv"] == sys.argv
    assert p["data_source"] == "wine (test)" and p["data_fingerprint"] == "0123456789abcdef"
    stamp = datetime.datetime.fromisoformat(p["timestamp_utc"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 60


# ---------------------------------------------------------------------- scripts
def _popen(log_dir):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "main_proposed.py"), *FAST,
                             "--log_dir", log_dir], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, HFU_OFFLINE="1"))


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory):
    """Two main_proposed.py processes started together on one configuration and --log_dir."""
    log = str(tmp_path_factory.mktemp("two") / "log")
    procs = [_popen(log), _popen(log)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return log, [_strict_loads(out) for out, _ in outs]


def _only(log, pattern):
    found = glob.glob(os.path.join(log, pattern))
    assert len(found) == 1, found
    return found[0]


def test_two_processes_share_one_precompute(two_jobs):
    log, results = two_jobs
    assert sorted(r["Proposed"]["precompute_s_now"] == 0 for r in results) == [False, True]
    assert sorted(r["train_s"] == 0 for r in results) == [False, True]
    timing = {"precompute_s", "precompute_s_now", "unlearn_s", "unlearn_median_s", "bank_read_s"}
    a, b = ({k: v for k, v in r["Proposed"].items() if k not in timing} for r in results)
    assert a == b
    assert results[0]["Original"] == results[1]["Original"]
    bank = _only(log, "*/cache/hfbank-*/manifest.json")
    assert len(glob.glob(os.path.join(os.path.dirname(bank), "shard-*.pt"))) == 1


def test_results_and_manifests_carry_provenance(two_jobs):
    log, _ = two_jobs
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True)
    for pattern in ["*/manifest.json", "*/cache/hfbank-*/manifest.json", "*/forget-*/Proposed-*.json"]:
        record = artifacts.read_json(_only(log, pattern))
        p = record["provenance"]
        assert record["format_version"] == artifacts.FORMAT_VERSION
        if head.returncode == 0:
            assert p["git"]["commit"] == head.stdout.strip()
            assert isinstance(p["git"]["dirty"], bool)
        assert os.path.basename(p["argv"][0]) == "main_proposed.py" and "--hf_candidates" in p["argv"]
        assert len(p["data_fingerprint"]) == 16 and p["data_source"].startswith("wine")
        assert p["device"] == "cpu"
    for path in glob.glob(os.path.join(log, "**", "*.pt"), recursive=True):
        artifacts.verify(path)


def test_corrupt_bank_shard_stops_and_keeps_the_saved_model(two_jobs, tmp_path):
    log = str(tmp_path / "log")
    shutil.copytree(two_jobs[0], log)
    saved = _only(log, "*/forget-*/Proposed-*.pt")
    before = open(saved, "rb").read()
    shard = _only(log, "*/cache/hfbank-*/shard-*.pt")
    _flip_bytes(shard, 7)
    proc = run_script("main_proposed.py", *FAST, "--log_dir", log, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "corrupt" in lines[-1] and shard in lines[-1]
    assert f"delete the bank directory {os.path.dirname(shard)} and rerun" in lines[-1]
    assert not any("Traceback" in line for line in lines)
    assert open(saved, "rb").read() == before
    assert proc.stdout == ""


def test_corrupt_original_model_stops_before_work(two_jobs, tmp_path):
    log = str(tmp_path / "log")
    shutil.copytree(two_jobs[0], log)
    original = _only(log, "*/original.pt")
    saved = _only(log, "*/forget-*/Proposed-*.pt")
    before = open(saved, "rb").read()
    _flip_bytes(original, 11)
    proc = run_script("main_proposed.py", *FAST, "--log_dir", log, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: corrupt artefact ") and original in last and f"delete {original} and rerun" in last
    assert "Traceback" not in proc.stderr
    assert open(saved, "rb").read() == before
