"""The one error type for bad user input or a missing prerequisite, and how it is reported."""
import sys


class InputError(Exception):
    """Bad user input or a missing prerequisite: reported as one line, exit code 2."""


def fail(message):
    """Print ``error: message`` on one line to stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
