"""The helpers and the types of `context`, importable: `from action_runtime import Context`.

A script has them as globals already; this module is for authors who prefer explicit imports,
and it is what the editor stubs (stubs/action_runtime.pyi, `action-worker stubs`) describe.
At run time the types are plain TypedDicts: a `context` is a dict.
"""

import ast
import os

from helpers import GLOBALS as _HELPERS

# The types are defined once, in the editor stubs, and made here from them at build time.
STUB = os.path.join(os.path.dirname(__file__), "stubs", "action_runtime.pyi")


def _types_from_stub(path):
    """The stub's classes (its TypedDicts), executed as code; its functions are the helpers'
    signatures and are skipped."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    kept = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.ClassDef))]
    namespace = {"__name__": __name__}
    exec(compile(ast.Module(body=kept, type_ignores=[]), path, "exec"), namespace)
    return {n.name: namespace[n.name] for n in tree.body if isinstance(n, ast.ClassDef)}


TYPES = _types_from_stub(STUB)
globals().update(TYPES)
globals().update(_HELPERS)
__all__ = sorted([*TYPES, *_HELPERS])
