"""Start-up benchmark: what a user waits for before any real work, in fresh processes.

    python3 bench/bench_startup.py [--json] [--repeats 3]

Every case is a separate ``python3`` process timed from launch to exit (median of
--repeats, the cases taken in turn), with HFU_OFFLINE=1 and a temporary --data_dir / --log_dir:

* python: ``python3 -c pass``, the interpreter alone;
* import torch: ``python3 -c "import torch"``, the floor every script pays once it runs;
* bad flag: ``main_proposed.py --lr nan`` (exit status 2, one ``error:`` line);
* MNIST subset cold / cached: ``utils.common.data.load_splits("mnist", data_dir)`` on the offline
  subset, first with an empty --data_dir (decode and write the cache), then with the
  cache in place;
* main_eva cached: ``main_eva.py`` on a tiny MNIST logistic configuration whose original
  model, Retrain and Proposed the benchmark has made beforehand (nothing to compute).

The table gives each case's seconds and its ratio to the torch-import floor.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from utils.common.report import table  # noqa: E402

TINY = ["--dataset", "mnist", "--model", "logistic", "--num_dataset", "200", "--epochs", "2",
        "--batch_size", "50", "--num_forget", "5", "--gpu", "-1", "--quiet"]
LOAD_MNIST = "import sys; from utils.common.data import load_splits; load_splits('mnist', sys.argv[1])"


def run(cmd, expect=0):
    """Wall seconds of one process; stops the benchmark when its exit status is unexpected."""
    env = dict(os.environ, HFU_OFFLINE="1")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != expect:
        sys.exit(f"error: {' '.join(cmd)} exited {proc.returncode} (expected {expect}):\n{proc.stderr[-2000:]}")
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--repeats", type=int, default=3, help="processes per case (the median is reported)")
    a = p.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        dirs = ["--data_dir", os.path.join(tmp, "data"), "--log_dir", os.path.join(tmp, "log"),
                "--results_dir", os.path.join(tmp, "results")]
        for script in ("main_retrain.py", "main_proposed.py"):
            run([py, script, *TINY, *dirs])
        cases = {   # name: (command of repetition k, expected exit status)
            "python (no imports)": (lambda k: [py, "-c", "pass"], 0),
            "import torch": (lambda k: [py, "-c", "import torch"], 0),
            "bad flag (main_proposed.py --lr nan)": (lambda k: [py, "main_proposed.py", "--lr", "nan"], 2),
            "MNIST subset, cold": (lambda k: [py, "-c", LOAD_MNIST, os.path.join(tmp, f"cold{k}")], 0),
            "MNIST subset, cached": (lambda k: [py, "-c", LOAD_MNIST, os.path.join(tmp, "data")], 0),
            "main_eva.py, fully cached": (lambda k: [py, "main_eva.py", *TINY, *dirs], 0),
        }
        times = {name: [] for name in cases}
        for k in range(a.repeats):          # round robin: every case sees the same machine load
            for name, (make_cmd, expect) in cases.items():
                times[name].append(run(make_cmd(k), expect))
    cases = {name: statistics.median(t) for name, t in times.items()}
    floor = cases["import torch"]
    rows = [dict(case=k, seconds=v, ratio_to_import_torch=v / floor) for k, v in cases.items()]
    if a.json:
        print(json.dumps({"repeats": a.repeats, "cases": rows}))
    else:
        print(table(rows, ["case", "seconds", "ratio_to_import_torch"]) +
              f"\nmedian of {a.repeats} processes each; tiny config: {' '.join(TINY)}", file=sys.stderr)


if __name__ == "__main__":
    main()
