"""The one error type for bad user input or a missing prerequisite, and how it is reported;
and how an interrupted script (Ctrl-C) stops: one line, exit status 130."""
import os
import sys

INTERRUPTED_STATUS = 130     # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


class InputError(Exception):
    """Bad user input or a missing prerequisite: reported as one line, exit code 2."""


def fail(message):
    """Print ``error: message`` on one line to stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def interrupted():
    """Print ``interrupted`` on one line to stderr and exit with status 130. Files being
    written when the interrupt came are removed by the writers (``utils.common.artifacts``)."""
    print("interrupted (Ctrl-C); nothing half-written was kept", file=sys.stderr)
    sys.exit(INTERRUPTED_STATUS)


def _excepthook(kind, value, tb, _previous=sys.excepthook):
    """Ctrl-C outside ``run_main`` (while the script imports its libraries): the same line."""
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted (Ctrl-C); nothing half-written was kept", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(INTERRUPTED_STATUS)
    _previous(kind, value, tb)


def install_interrupt_hook():
    """Report an uncaught KeyboardInterrupt as one line with exit status 130 (no traceback)."""
    sys.excepthook = _excepthook
