"""Atomic, configuration-keyed artefacts under log/ (tensors + JSON manifests).

Tensors are written with ``torch.save`` to a temporary name and renamed, and read back
with ``torch.load(weights_only=True)``; metadata is JSON. A corrupt file is reported as
one line naming the file and the command that recreates it.
"""
import hashlib
import json
import os

import torch

from utils.errors import InputError


def config_key(config):
    """Short stable hash of a JSON-serialisable configuration dict."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _tmp(path):
    return f"{path}.{os.getpid()}.tmp"


def _written(path):
    """Append ``path`` to the list named by $HFU_WRITTEN (a sweep's outputs of one step)."""
    if os.environ.get("HFU_WRITTEN"):
        with open(os.environ["HFU_WRITTEN"], "a") as f:
            f.write(os.path.abspath(path) + "\n")


def save_tensors(path, tensors):
    """Atomically write a dict of tensors (moved to CPU)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = _tmp(path)
    torch.save({k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)
    _written(path)


def load_tensors(path, remedy="delete it and rerun the command that made it", map_location="cpu"):
    """Read a dict of tensors safely; InputError naming the file when corrupt."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise InputError(f"corrupt artefact {path} ({type(e).__name__}); {remedy}")


def write_json(path, obj):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = _tmp(path)
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=float)
        f.write("\n")
    os.replace(tmp, path)
    _written(path)


def read_json(path, remedy="delete it and rerun the command that made it"):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"corrupt artefact {path} ({type(e).__name__}); {remedy}")


def write_text(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = _tmp(path)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    _written(path)
