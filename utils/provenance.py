"""Provenance of a result: what code, libraries, machine, command and data produced it.

``provenance(exp)`` is added to every result JSON and every manifest under log/:

    python, packages {torch, numpy, scikit-learn, dp-accounting}   installed versions
    git {commit, dirty}            HEAD of the checkout holding this code, and whether it
                                   had local changes (``git status --porcelain``)
    device, threads, argv, timestamp_utc
                                   where and how it ran (torch's intra-op thread count,
                                   ISO 8601 UTC time)
    data_source, data_fingerprint  ``exp.data.source`` and ``exp.data.fingerprint``

A value that cannot be determined (a package not installed, no git executable, not a
checkout) is ``utils.artifacts.Null(reason)``: JSON null with the reason under
``null_reasons`` (``utils.artifacts.strict_json``). Nothing here is expensive: the
package and git facts are read once per process.
"""
import datetime
import functools
import importlib.metadata
import os
import platform
import subprocess
import sys

from utils.artifacts import Null

PACKAGES = ("torch", "numpy", "scikit-learn", "dp-accounting")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


@functools.lru_cache(maxsize=None)
def code_state():
    return git_state(ROOT)


def provenance(exp):
    """The provenance dict for a result of the experiment ``exp`` (see module doc)."""
    import torch                       # loaded by then; kept out of the flag-parsing imports
    return {"python": platform.python_version(), "packages": package_versions(),
            "git": code_state(), "device": str(exp.device), "threads": torch.get_num_threads(),
            "argv": list(sys.argv),
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "data_source": exp.data.source, "data_fingerprint": exp.data.fingerprint}
