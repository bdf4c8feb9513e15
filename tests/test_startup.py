"""Flags are checked before torch is imported: a bad flag costs no torch import.

Timings are measured by bench/bench_startup.py, not here; these tests check the structure
that makes start-up fast (which modules a bad flag loads) and the exit status a user sees.
"""
import glob
import json
import os
import subprocess
import sys

from helpers import ROOT, run_script

SCRIPTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "main_*.py")))

# Runs every script's __main__ in one interpreter with the given flags; reports, per script,
# the exit status, the stderr text and whether torch or numpy had been imported.
PROBE = """
import contextlib, io, json, runpy, sys
sys.path.insert(0, {root!r})
report = {{}}
for script in {scripts!r}:
    sys.argv = [script] + {flags!r}
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code
    report[script] = dict(code=code, stderr=err.getvalue(), torch="torch" in sys.modules,
                          numpy="numpy" in sys.modules)
print(json.dumps(report))
"""


def probe(*flags):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(root=ROOT, scripts=SCRIPTS, flags=list(flags))],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_options_module_imports_no_torch():
    code = ("import sys; import utils.common.options, utils.common.catalog, utils.common.errors; "
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_script_checks_flags_before_importing_torch():
    assert len(SCRIPTS) >= 9
    report = probe("--lr", "nan")
    for script, r in report.items():
        assert r["code"] == 2, script
        assert r["stderr"] == "error: --lr: must be a finite number, got nan\n", script
        assert not r["torch"] and not r["numpy"], script


def test_help_needs_no_torch():
    report = probe("--help")
    assert all(r["code"] == 0 and not r["torch"] for r in report.values())


def test_bad_flag_subprocess_exits_2():
    proc = run_script("main_eva.py", "--epochs", "0", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "error: --epochs: must be a positive integer, got 0\n"
