"""Imports, at build time, every module a job may use.

componentize-py snapshots the interpreter after this module runs, and a job has no filesystem,
so a module that is not imported here cannot be imported by a job. We import the pure-Python
standard library (less what cannot work in a sandbox or exists for development only) and let
`importlib` keep them in `sys.modules`; a job's `import json` is then a dictionary lookup.
"""

import importlib
import pkgutil
import sys

# Top-level modules never offered to a job: GUIs, interactive tools, test suites, installers,
# and modules whose import has side effects (`this` prints, `antigravity` opens a browser).
EXCLUDED = frozenset(
    """
    __hello__ __phello__ _pyrepl antigravity this idlelib tkinter turtle turtledemo test
    ensurepip venv lib2to3 pydoc pydoc_data webbrowser distutils msilib _msi winreg winsound
    _winapi nt msvcrt _overlapped _wmi multiprocessing concurrent sqlite3 _sqlite3 dbm
    curses _curses _curses_panel readline _tkinter xxsubtype xxlimited xxlimited_35
    _testcapi _testinternalcapi _testbuffer _testimportmultiple _testmultiphase _testclinic
    _testsinglephase _xxtestfuzz _ctypes_test _testlimitedcapi _testclinic_limited
    _testexternalinspection _testconsole _remote_debugging
    """.split()
)

# Subpackages skipped while walking a package: tests and platform-only parts.
EXCLUDED_PARTS = ("test", "tests", "idle_test", "_pyrepl")

imported = []
failed = {}


def _try_import(name):
    try:
        importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - any failure means "not offered"
        failed[name] = f"{type(exc).__name__}: {exc}"
        return False
    imported.append(name)
    return True


def preload():
    for name in sorted(sys.stdlib_module_names):
        if name in EXCLUDED:
            continue
        if not _try_import(name):
            continue
        module = sys.modules[name]
        path = getattr(module, "__path__", None)
        if not path:
            continue
        for info in pkgutil.walk_packages(path, prefix=name + "."):
            parts = info.name.split(".")
            if any(part in EXCLUDED_PARTS for part in parts) or parts[0] in EXCLUDED:
                continue
            if any(part.startswith("__main__") for part in parts):
                continue
            _try_import(info.name)


preload()
