"""Summary tables on stderr and the ``--json`` object on stdout."""
import math
import sys

from utils.common.artifacts import dumps


def fmt(v):
    """One table cell: None (not applicable) as '-', NaN / inf literally, floats to 4 places."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return str(v)


def table(rows, columns):
    """Plain-text table of dict rows restricted to ``columns``."""
    cells = [[str(c) for c in columns]] + [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def info(*parts):
    """Human-readable text: always stderr, so stdout stays machine-readable."""
    print(*parts, file=sys.stderr)


def finish(summary, as_json, text):
    """Print the final summary: one strict JSON object on stdout with --json (non-finite
    values as null, reasons under "null_reasons": ``utils.common.artifacts.strict_json``), else ``text``."""
    if as_json:
        print(dumps(summary))
    else:
        info(text)
