"""At most 3 functions take more than 8 parameters (self / cls not counted; *args and
**kwargs count one each): settings travel as frozen objects (``SGDConfig``, ``UnlearnConfig``,
``ReleaseConfig``, ``utils.curvature.hvp.Step``, ``utils.training.train.DataTerm``), not as long lists."""
import ast
import glob
import os

from helpers import ROOT

MOST_PARAMETERS = 8
ALLOWED_LONGER = 3


def parameter_count(node):
    a = node.args
    names = [p.arg for p in a.posonlyargs + a.args]
    count = len(names) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    return count - (names[:1] in (["self"], ["cls"]))


def long_signatures():
    files = [p for pattern in ("utils/**/*.py", "models/**/*.py", "tools/**/*.py", "main_*.py")
             for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)]
    found = []
    for path in sorted(files):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and parameter_count(node) > MOST_PARAMETERS:
                found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.name} ({parameter_count(node)})")
    return found


def test_at_most_three_functions_take_more_than_eight_parameters():
    found = long_signatures()
    assert len(found) <= ALLOWED_LONGER, "\n".join(found)
