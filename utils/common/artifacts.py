"""Atomic, verified, configuration-keyed artefacts under log/ (tensors + JSON manifests).

Writing. Every file is written to ``<path>.<pid>.tmp`` and renamed onto ``<path>``, so a
reader sees the old file or the new one, never half of one. A temporary file left by a
killed writer is never read (readers open exact names only) and is removed by the next
write into its directory once it is stale (``stale_tmp``), or at once by the next write of
the same file (``superseded_tmp``). A write that fails (a full disk, ``ulimit -f``, a
read-only directory) or is interrupted (Ctrl-C) removes its temporary file; a failure is
one InputError naming the file and the cause (``utils.common.resources.write_failure``). A tensor
file and its integrity record are renamed into place together, with SIGINT deferred.

Content integrity. ``save_tensors`` records the SHA-256 of every tensor file in the
sidecar ``<path>.sha256`` (JSON: {"format_version", "sha256", "bytes"}), written after
the tensor file. ``load_tensors`` recomputes the hash before ``torch.load`` (which uses
``weights_only=True``; nothing is unpickled). A missing sidecar (a file from an older
layout, or a write killed between the two renames), a different hash or size, or an
unreadable file raises InputError naming the file and the remedy: delete exactly that
artefact and rerun the command.

Format version. Every JSON object written by ``write_json`` carries
``"format_version": FORMAT_VERSION``; ``read_json`` and ``load_tensors`` refuse a file
with another (or no) version with one line, so a cache written by an incompatible older
layout is never reused.

Strict JSON. JSON is written with ``allow_nan=False``. ``strict_json`` turns a
non-finite float into ``null`` and records why beside it, in the top-level object::

    {"metrics": {"distance": null}, "null_reasons": {"metrics.distance": "inf"}}

The key is the dotted path of the value (list positions as numbers: ``"rows.3.loss"``);
the reason is ``"nan"``, ``"inf"`` or ``"-inf"``, or the text of a ``Null(reason)``
placed in the object for a value that could not be determined (e.g. no git checkout).

Locks. ``lock(path)`` holds ``fcntl.flock`` on ``.<name>.lock`` beside ``path`` (hidden,
so globs of artefacts such as ``hfbank-*`` never match it) around an expensive
precompute: a second process on the same configuration waits, then re-checks for the
first one's result and reuses it.
"""
import contextlib
import fcntl
import hashlib
import json
import math
import numbers
import os
import re
import shlex
import sys
import time

from utils.common.errors import InputError
from utils.common.resources import write_failure

FORMAT_VERSION = 2
HASH_SUFFIX = ".sha256"       # JSON content; not named *.json, so globs of records miss it
TMP_GRACE_S = 60.0        # a temporary file modified this recently is never removed
TMP_STALE_S = 3600.0      # ... and one untouched this long is removed even if its pid lives
_TMP = re.compile(r"^(?P<target>.+)\.(?P<pid>\d+)\.tmp$")


class Null:
    """A value that could not be determined: written as JSON null, with ``reason`` recorded
    under the top-level ``null_reasons``."""

    def __init__(self, reason):
        self.reason = reason

    def __repr__(self):
        return f"Null({self.reason!r})"


def config_key(config):
    """Short stable hash of a JSON-serialisable configuration dict."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def rerun_command():
    """The command line of this process, for remedies ("rerun: python3 main_x.py ...")."""
    return shlex.join(["python3"] + sys.argv)


def _remedy(path, remedy):
    return remedy or f"delete {path} and rerun: {rerun_command()}"


# ---------------------------------------------------------------------- temporary files
def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_tmp(directory, now=None):
    """Temporary files in ``directory`` left by killed writes: ``<name>.<pid>.tmp`` not
    modified for TMP_GRACE_S seconds whose pid is not alive (or untouched for TMP_STALE_S
    seconds, in case the pid was reused). This process's own files are never stale."""
    now = time.time() if now is None else now
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    out = []
    for name in names:
        m = _TMP.match(name)
        if not m or int(m["pid"]) == os.getpid():
            continue
        path = os.path.join(directory, name)
        try:
            age = now - os.path.getmtime(path)
        except OSError:
            continue
        if age > TMP_STALE_S or (age > TMP_GRACE_S and not _pid_alive(int(m["pid"]))):
            out.append(path)
    return out


def remove_stale_tmp(directory):
    """Delete ``stale_tmp(directory)``; returns the paths removed."""
    removed = []
    for path in stale_tmp(directory):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
            removed.append(path)
    return removed


def superseded_tmp(path):
    """Temporary files of ``path`` itself (``<path>.<pid>.tmp``) whose writer is dead on this
    host, whatever their age: this process is about to replace ``path``, so they are of no use."""
    directory = os.path.dirname(path) or "."
    prefix = os.path.basename(path) + "."
    out = []
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            m = _TMP.match(name)
            if (m and name.startswith(prefix) and m["target"] == os.path.basename(path)
                    and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"]))):
                out.append(os.path.join(directory, name))
    return out


def _prepare(path):
    """Create the directory of ``path``, clear its stale temporaries (and those of ``path``
    left by a killed writer, whatever their age); the temporary name."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot write {path}: cannot create {directory} ({e.strerror}); make it "
                         f"writable or choose another directory")
    remove_stale_tmp(directory)
    for old in superseded_tmp(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(old)
    return f"{path}.{os.getpid()}.tmp"


def _written(path):
    """Append ``path`` to the list named by $HFU_WRITTEN (a sweep's outputs of one step)."""
    if os.environ.get("HFU_WRITTEN"):
        with open(os.environ["HFU_WRITTEN"], "a") as f:
            f.write(os.path.abspath(path) + "\n")


# ---------------------------------------------------------------------- tensors
def file_sha256(path):
    """(hex SHA-256, size in bytes) of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


@contextlib.contextmanager
def _writing(path, tmp):
    """Around the write of ``tmp`` (to become ``path``): on any failure or interruption the
    temporary file is removed; a failed write (a full disk, ``ulimit -f``, a read-only
    directory: an OSError, or the RuntimeError torch raises for one) becomes one InputError
    naming ``path`` and the cause."""
    try:
        yield
    except BaseException as e:
        cause = write_failure(tmp, e) if isinstance(e, (OSError, RuntimeError)) else None
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if cause is None:
            raise
        raise InputError(f"cannot write {path}: {cause}; nothing was written (free space or "
                         f"raise the limit, then rerun: {rerun_command()})") from None


@contextlib.contextmanager
def _no_interrupt():
    """Defer SIGINT (Ctrl-C) for the few system calls that commit a file and its record, so an
    interrupt never leaves one without the other."""
    import signal
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def save_tensors(path, tensors):
    """Atomically write a dict of tensors (moved to CPU) and its integrity record."""
    import torch
    tmp = _prepare(path)
    with _writing(path, tmp):
        torch.save({k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in tensors.items()}, tmp)
        digest, size = file_sha256(tmp)
        record = dumps({"format_version": FORMAT_VERSION, "sha256": digest, "bytes": size}, indent=2) + "\n"
        record_tmp = _prepare(path + HASH_SUFFIX)
        with _writing(path + HASH_SUFFIX, record_tmp):
            with open(record_tmp, "w") as f:
                f.write(record)
            with _no_interrupt():
                os.replace(tmp, path)
                os.replace(record_tmp, path + HASH_SUFFIX)
    _written(path)
    _written(path + HASH_SUFFIX)


def verify(path, remedy=None):
    """InputError unless ``path`` matches its integrity record (format, size, SHA-256)."""
    remedy = _remedy(path, remedy)
    record_path = path + HASH_SUFFIX
    if not os.path.exists(record_path):
        raise InputError(f"artefact {path} has no integrity record ({os.path.basename(record_path)}; "
                         f"written by an older layout or by a killed run); {remedy}")
    try:
        with open(record_path) as f:
            record = json.load(f)
        version, expected, size = record.get("format_version"), record["sha256"], record["bytes"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"artefact {path}: unreadable integrity record ({type(e).__name__}); {remedy}")
    if version != FORMAT_VERSION:
        raise InputError(f"artefact {path} was written by an incompatible layout (format_version "
                         f"{version}, this code reads {FORMAT_VERSION}); {remedy}")
    try:
        digest, actual = file_sha256(path)
    except OSError as e:
        raise InputError(f"unreadable artefact {path} ({type(e).__name__}); {remedy}")
    if (digest, actual) != (expected, size):
        raise InputError(f"corrupt artefact {path} (its SHA-256 or size differs from its integrity "
                         f"record {os.path.basename(record_path)}); {remedy}")


def load_tensors(path, remedy=None, map_location="cpu", expect=None, finite=()):
    """The dict of tensors at ``path``, verified against its integrity record first.

    ``expect``: {name: shape} the file must hold, a shape a tuple of ints or None (any size
    along that axis), or None for a tensor of any shape; a missing entry or another shape
    (a file written for another model, or edited with its record) is refused too, and so
    is a NaN or infinity in an entry named in ``finite``.
    ``remedy`` (default: delete ``path`` and rerun this command) ends the one-line
    InputError raised for a missing, corrupt, foreign-version, unreadable or misshapen file."""
    import torch
    verify(path, remedy)
    try:
        got = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise InputError(f"corrupt artefact {path} ({type(e).__name__}); {_remedy(path, remedy)}")
    if expect is not None:
        check_tensors(path, got, expect, remedy, finite)
    return got


def _shape_text(shape):
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_tensors(path, got, expect, remedy=None, finite=()):
    """InputError unless ``got`` is a dict holding a tensor of the expected shape for every
    entry of ``expect``, finite for every entry of ``finite`` (see ``load_tensors``)."""
    import torch
    if not isinstance(got, dict):
        raise InputError(f"artefact {path} holds a {type(got).__name__}, not a dict of tensors; "
                         f"{_remedy(path, remedy)}")
    for name, shape in expect.items():
        t = got.get(name)
        if not torch.is_tensor(t):
            what = "lacks" if t is None else "has a non-tensor"
            raise InputError(f"artefact {path} {what} entry {name!r}; {_remedy(path, remedy)}")
        if shape is not None and (t.dim() != len(shape) or
                                  any(s is not None and s != a for s, a in zip(shape, t.shape))):
            raise InputError(f"artefact {path}: {name!r} has shape {tuple(t.shape)}, expected "
                             f"{_shape_text(shape)} for this configuration; {_remedy(path, remedy)}")
        if name in finite and not bool(torch.isfinite(t).all()):
            raise InputError(f"artefact {path}: {name!r} holds non-finite values; {_remedy(path, remedy)}")


# ---------------------------------------------------------------------- JSON and text
def _plain(v):
    """A JSON scalar for numpy / torch scalars and other number types."""
    if isinstance(v, numbers.Integral):
        return int(v)
    if hasattr(v, "tolist"):
        return v.tolist()
    return float(v)


def strict_json(obj):
    """A copy of ``obj`` valid under ``allow_nan=False``: non-finite floats and ``Null``
    become None, their reasons collected in a top-level ``"null_reasons"`` (see module doc)."""
    reasons = {}

    def walk(v, where):
        if isinstance(v, Null):
            reasons[where] = v.reason
            return None
        if isinstance(v, dict):
            return {str(k): walk(x, f"{where}.{k}" if where else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, f"{where}.{i}" if where else str(i)) for i, x in enumerate(v)]
        if v is None or isinstance(v, (bool, str, int)):
            return v
        if not isinstance(v, float):
            return walk(_plain(v), where)
        if not math.isfinite(v):
            reasons[where] = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
            return None
        return v

    out = walk(obj, "")
    if reasons and isinstance(out, dict):
        out["null_reasons"] = dict(out.get("null_reasons") or {}, **reasons)
    return out


def dumps(obj, **kwargs):
    """``json.dumps`` of ``strict_json(obj)`` with allow_nan=False, keys sorted."""
    return json.dumps(strict_json(obj), allow_nan=False, sort_keys=True, **kwargs)


def _write_json_file(path, obj):
    text = dumps(obj, indent=2) + "\n"
    tmp = _prepare(path)
    with _writing(path, tmp):
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)


def write_json(path, obj):
    """Atomically write ``obj`` (a dict) as strict JSON, marked with FORMAT_VERSION."""
    _write_json_file(path, dict(obj, format_version=FORMAT_VERSION))
    _written(path)


def read_json(path, remedy=None, fields=()):
    """The dict written by ``write_json``; InputError when unreadable, of another format, or
    lacking one of ``fields`` (top-level keys; 'a.b' for a key of the object under 'a')."""
    remedy = _remedy(path, remedy)
    try:
        with open(path) as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"corrupt artefact {path} ({type(e).__name__}); {remedy}")
    version = obj.get("format_version") if isinstance(obj, dict) else None
    if version != FORMAT_VERSION:
        raise InputError(f"artefact {path} was written by an incompatible layout (format_version "
                         f"{version}, this code reads {FORMAT_VERSION}); {remedy}")
    missing = [f for f in fields if not _has_field(obj, f)]
    if missing:
        raise InputError(f"artefact {path} lacks the field{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)}; {remedy}")
    return obj


def _has_field(obj, dotted):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj or obj[part] is None:
            return False
        obj = obj[part]
    return True


def write_text(path, text):
    tmp = _prepare(path)
    with _writing(path, tmp):
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    _written(path)


# ---------------------------------------------------------------------- locks
@contextlib.contextmanager
def lock(path, what=None):
    """Exclusive ``fcntl.flock`` on ``<dir>/.<name>.lock`` (``path`` = ``<dir>/<name>``) for
    the duration of the block.

    Used around each expensive precompute: the caller re-checks for a cached result inside
    the block, so a second process waits for the first and then reuses its output. When
    the lock is held elsewhere, one line on stderr says what is being waited for. In a
    directory this process cannot write (a read-only cache) nothing is locked: nothing can
    be written there either."""
    lock_path = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lock")
    try:
        os.makedirs(os.path.dirname(lock_path) or ".", exist_ok=True)
        f = open(lock_path, "a")
    except OSError:
        yield
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process computing {what or path} (lock {lock_path})",
                  file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
