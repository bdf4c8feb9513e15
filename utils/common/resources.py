"""What a run will need from the machine, checked before the work starts (standard library only).

* memory: ``available_memory()`` (MemAvailable of /proc/meminfo) against an estimate of what a
  schedule or an approximator bank holds (``schedule_bytes``, ``check_memory``);
* files: the file-size limit (``ulimit -f``, RLIMIT_FSIZE) and the free space of the file
  system against the sizes of the files the run will write (``check_file_sizes``);
* directories: every directory the run will write to is created and a probe file written
  and removed in it (``probe_directory``), so a read-only folder stops the run with one line
  naming it, not after the expensive part.

Each failed check raises InputError with one line naming what does not fit and what to change.
"""
import os
import resource
import tempfile

from utils.common.errors import InputError

# bytes the batch schedule costs per step beyond its indices (a tensor object and its list slot)
STEP_OVERHEAD = 320
INDEX_BYTES = 8       # int64 sample indices
# copies of the indices alive at once: the list of batches, its packed copy and the saved one
INDEX_COPIES = 3


def human(nbytes):
    """'1.5 GB' style size."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{int(nbytes)} bytes"


def available_memory():
    """Bytes of memory available to a new allocation (MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def steps(n, batch_size, epochs):
    """T = epochs * ceil(n / batch_size)."""
    return epochs * -(-n // batch_size)


def schedule_bytes(n, batch_size, epochs):
    """Estimated memory of the batch schedule (the list of T index batches and its packed copies)."""
    return steps(n, batch_size, epochs) * STEP_OVERHEAD + n * epochs * INDEX_BYTES * INDEX_COPIES


def check_memory(what, nbytes, remedy, available=None):
    """InputError when ``nbytes`` exceeds the memory available now."""
    available = available_memory() if available is None else available
    if available is not None and nbytes > available:
        raise InputError(f"{what} needs about {human(nbytes)} of memory, more than the "
                         f"{human(available)} available; {remedy}")


def file_size_limit():
    """The largest file this process may write (RLIMIT_FSIZE, bytes), or None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def free_space(directory):
    """Bytes free to this user on the file system of ``directory`` (or its nearest existing
    ancestor), or None when unknown."""
    where = os.path.abspath(directory)
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    try:
        st = os.statvfs(where)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def check_file_sizes(sizes, remedy="free space or raise the limit, then rerun"):
    """InputError naming the first file of ``sizes`` ({path: estimated bytes}) that cannot be
    written: beyond the file-size limit (``ulimit -f``), or, all together, beyond the free space."""
    limit = file_size_limit()
    for path, nbytes in sizes.items():
        if limit is not None and nbytes > limit:
            raise InputError(f"cannot write {path}: it takes about {human(nbytes)}, beyond this shell's "
                             f"file-size limit of {human(limit)} (ulimit -f); raise the limit "
                             f"(ulimit -f unlimited) and rerun")
    by_fs = {}
    for path, nbytes in sizes.items():
        free = free_space(os.path.dirname(path) or ".")
        if free is not None:
            key = os.path.dirname(path)
            by_fs.setdefault(free, [key, 0])[1] += nbytes
    for free, (directory, total) in by_fs.items():
        check_free_space(directory, total, "the outputs", remedy, free)


def check_free_space(directory, nbytes, what, remedy, free=None):
    """InputError when ``what`` (``nbytes`` in all, to be written under ``directory``) exceeds
    the free space there."""
    free = free_space(directory) if free is None else free
    if free is not None and nbytes > free:
        raise InputError(f"cannot write under {directory}: {what} take about {human(nbytes)}, "
                         f"more than the {human(free)} free there; {remedy}")


def probe_directory(path, flag=None):
    """Create ``path`` (and its parents) and write and remove a probe file in it: InputError
    naming the directory and the cause when it cannot be written (works for root too)."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        cause = e.strerror or type(e).__name__
        culprit = f" ({e.filename})" if getattr(e, "filename", None) and e.filename != path else ""
        where = f" (under --{flag})" if flag else ""
        raise InputError(f"cannot write to {path}{where}: {cause}{culprit}; make it writable "
                         f"or choose another directory")


def write_failure(path, error):
    """The one-line cause of a failed write of ``path`` (an OSError, or the RuntimeError torch
    raises for one): the file-size limit, a full disk, or the error's own first line."""
    limit = file_size_limit()
    errno_name = getattr(error, "errno", None)
    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    if errno_name == 27 or (limit is not None and size is not None and size >= limit - 4096):
        return f"the file-size limit of {human(limit) if limit else 'this shell'} (ulimit -f) was reached"
    free = free_space(os.path.dirname(path) or ".")
    if errno_name == 28 or (free is not None and free < (1 << 20)):
        return "no space left on the device"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"{type(error).__name__}: {text[:160]}"
