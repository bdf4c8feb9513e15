"""Provenance of a result: what code, libraries, machine, command and data produced it.

``provenance(exp)`` is added to every result JSON and every manifest under log/:

    python, packages {torch, numpy, scikit-learn, dp-accounting}   installed versions
    git {commit, dirty}            HEAD of the checkout holding this code, and whether it
                                   had local changes (``git status --porcelain``)
    device, threads, argv, timestamp_utc
                                   where and how it ran (torch's intra-op thread count,
                                   ISO 8601 UTC time)
    cpu {model, vector_extensions, torch_capability, machine}
                                   the CPU kind: its model name (/proc/cpuinfo), the SIMD
                                   extensions it reports (avx2, fma, avx512f, ...), the
                                   kernels torch dispatches to (e.g. AVX2, AVX512) and the
                                   architecture. Float results are bit-reproducible only on
                                   the same CPU kind and thread count (README)
    data_source, data_fingerprint  ``exp.data.source`` and ``exp.data.fingerprint``

A value that cannot be determined (a package not installed, no git executable, not a
checkout) is ``utils.common.artifacts.Null(reason)``: JSON null with the reason under
``null_reasons`` (``utils.common.artifacts.strict_json``). Nothing here is expensive: the
package and git facts are read once per process.
"""
import datetime
import functools
import importlib.metadata
import os
import platform
import subprocess
import sys

from utils.common.artifacts import Null

PACKAGES = ("torch", "numpy", "scikit-learn", "dp-accounting")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@functools.lru_cache(maxsize=None)
def package_versions():
    """{distribution name: installed version, or Null when not installed}."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = Null("not installed")
    return out


def git_state(directory):
    """{"commit": HEAD sha, "dirty": local changes?} of the checkout holding ``directory``;
    both Null (with the reason) when git is missing or ``directory`` is not in a checkout."""
    def git(*args):
        return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError) as e:
        reason = Null(f"git unavailable ({type(e).__name__})")
        return {"commit": reason, "dirty": reason}
    if head.returncode != 0:
        reason = Null("not a git checkout")
        return {"commit": reason, "dirty": reason}
    status = git("status", "--porcelain")
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else Null("git status failed")
    return {"commit": head.stdout.strip(), "dirty": dirty}


# SIMD extensions that change which float kernels run (and so the rounding of a result)
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "asimd", "sve", "sve2")


def cpu_info(cpuinfo="/proc/cpuinfo"):
    """{"model", "vector_extensions", "machine"} of this CPU from ``cpuinfo`` (Null when unreadable)."""
    model, flags = None, set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and model is None:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError as e:
        return {"model": Null(f"{cpuinfo} unreadable ({type(e).__name__})"),
                "vector_extensions": Null(f"{cpuinfo} unreadable"), "machine": platform.machine()}
    return {"model": model if model else (platform.processor() or Null("no model name in " + cpuinfo)),
            "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
            "machine": platform.machine()}


@functools.lru_cache(maxsize=None)
def cpu_state():
    """``cpu_info()`` plus the kernels torch dispatches to on this CPU (read once per process)."""
    import torch
    out = cpu_info()
    try:
        out["torch_capability"] = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError) as e:
        out["torch_capability"] = Null(f"unknown ({type(e).__name__})")
    return out


@functools.lru_cache(maxsize=None)
def code_state():
    return git_state(ROOT)


def provenance(exp):
    """The provenance dict for a result of the experiment ``exp`` (see module doc)."""
    import torch                       # loaded by then; kept out of the flag-parsing imports
    return {"python": platform.python_version(), "packages": package_versions(),
            "git": code_state(), "device": str(exp.device), "threads": torch.get_num_threads(),
            "cpu": cpu_state(),
            "argv": list(sys.argv),
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "data_source": exp.data.source, "data_fingerprint": exp.data.fingerprint}
