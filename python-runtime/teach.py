"""Errors that teach: what a script tries that the sandbox does not offer (a module it lacks,
files, sockets, threads, subprocesses, environment variables) raises the exception Python
would, with a message that names the capability and says how the same goal is reached here.

Installed at build time, so it is in the snapshot every job starts from. The exception classes
are the ones Python raises (ModuleNotFoundError, an OSError subclass, RuntimeError, KeyError),
so a script's `except` clauses catch what they expect.
"""

import builtins
import importlib._bootstrap
import io
import os
import sys

import runtime_profile

# The packages bundled beside the standard library (python-runtime/bundle-requirements.txt).
BUNDLED = ("requests", "holidays", "dateutil", "six", "tzdata")
DOCS = "docs/actions.md, \"What the runtime has\""
PROFILES = "docs/actions.md, \"Runtime profiles\""

NETWORK = "use requests for HTTP (every call goes through the worker's egress policy)"
SOCKETS = f"sockets are not available in actions: {NETWORK}"
URLOPEN = f"urllib.request.urlopen is not available in actions: {NETWORK}"
FILES = (
    "files are not available in actions: there is no file system; keep data in variables, "
    "fetch it with requests, or append rows with add_google_sheets_row"
)
THREADS = (
    "threads are not available in actions: a job runs on one thread; make the calls one after "
    "another (the job's time limit covers them all)"
)
PROCESSES = "subprocesses are not available in actions: do the work in Python, or call a service with requests"
ENVIRONMENT = (
    "environment variables are not available in actions: pass values as the action's arguments "
    "(context['args']), or write {{secrets.NAME}} in a request's URL, headers or body and the "
    "worker fills it in"
)

# Modules that exist elsewhere but not here, and why.
WHY_NOT = {
    "socket": SOCKETS,
    "ssl": f"TLS is the worker's: {NETWORK} with https:// URLs",
    "ctypes": "native code is not available in actions: the runtime runs Python (the standard library and pure-Python packages)",
    "multiprocessing": PROCESSES,
    "concurrent": THREADS,
    "subprocess": PROCESSES,
    "sqlite3": "there are no database files in actions: keep data in variables, or call a service with requests",
    "dbm": "there are no database files in actions: keep data in variables, or call a service with requests",
    "urllib3": "use requests: the runtime's requests is served by the worker, without urllib3",
    "httpx": "use requests: it is the HTTP client of actions",
    "aiohttp": "use requests: it is the HTTP client of actions",
}


def missing_module_message(name):
    top = name.partition(".")[0]
    why = WHY_NOT.get(top)
    if why:
        return f"No module named {name!r}: {why}"
    profile = runtime_profile.NAME
    if top in runtime_profile.PACKAGES:
        return (
            f"No module named {name!r}: runtime profile {profile!r} has {top}, but not this "
            f"module: {runtime_profile.why_not(name)} ({PROFILES})"
        )
    packages = ", ".join(BUNDLED + runtime_profile.PACKAGES)
    return (
        f"No module named {name!r}: the action runtime (profile {profile!r}) has Python's "
        f"standard library and the packages {packages}; the list is in {DOCS}, and other "
        f"pure-Python packages come in runtime profiles ({PROFILES})"
    )


_find_and_load = importlib._bootstrap._find_and_load


def _teaching_find_and_load(name, import_):
    """importlib's step for a module not in `sys.modules` (CPython's import calls it only
    then): a module no finder has raises ModuleNotFoundError with a message that teaches. An
    import of a module that is there (every module of the runtime) never comes here, so it
    stays CPython's C path: about 2,100 fuel, against 4,200 through a Python `__import__`."""
    try:
        return _find_and_load(name, import_)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.msg != f"No module named {exc.name!r}":
            raise
        raise ModuleNotFoundError(missing_module_message(exc.name), name=exc.name) from None


_handle_fromlist = importlib._bootstrap._handle_fromlist


def _fast_handle_fromlist(module, fromlist, import_, *, recursive=False):
    """importlib's `from package import name` step (CPython calls it for a package): when
    every name is already an attribute, as every module of the runtime is (all were imported
    at build time), the package as is; else importlib's own, which imports and raises."""
    names = module.__dict__
    for name in fromlist:
        if name not in names:
            return _handle_fromlist(module, fromlist, import_, recursive=recursive)
    return module


_open = io.open


def _teaching_open(file, *args, **kwargs):
    try:
        return _open(file, *args, **kwargs)
    except OSError as exc:
        if exc.errno is None or isinstance(file, int):
            raise
        raise type(exc)(exc.errno, f"{exc.strerror} ({FILES})", exc.filename) from None


def _refuse(exception, message):
    def refused(*args, **kwargs):
        raise exception(message)

    return refused


class _Environ(dict):
    """os.environ: empty; reading a variable that is not there says why."""

    def __missing__(self, key):
        raise KeyError(f"{key}: {ENVIRONMENT}")


def _patch(module_name, **attributes):
    module = sys.modules.get(module_name)
    if module is None:
        return
    for attribute, value in attributes.items():
        if hasattr(module, attribute):
            setattr(module, attribute, value)


def install():
    """Puts the teaching versions in place (at build time)."""
    builtins.open = io.open = _teaching_open
    importlib._bootstrap._find_and_load = _teaching_find_and_load
    importlib._bootstrap._handle_fromlist = _fast_handle_fromlist
    os.environ = _Environ(os.environ)
    net = _refuse(PermissionError, SOCKETS)
    _patch("socket", socket=_refusing(PermissionError, SOCKETS), create_connection=net, getaddrinfo=net,
           gethostbyname=net, socketpair=net, fromfd=net, create_server=net)
    _patch("urllib.request", urlopen=_refuse(PermissionError, URLOPEN))
    proc = _refuse(PermissionError, PROCESSES)
    # WASI's os has neither; a script calling them learns why rather than of a missing name.
    # (fork, exec and spawn stay absent where they are: code tests for them with hasattr.)
    os.system = os.popen = proc
    _patch("os", fork=proc, forkpty=proc, execv=proc, execve=proc,
           execvp=proc, execl=proc, execlp=proc, spawnv=proc, spawnl=proc, posix_spawn=proc,
           kill=proc)
    _patch("subprocess", Popen=_refusing(PermissionError, PROCESSES), run=proc, call=proc, check_call=proc,
           check_output=proc, getoutput=proc, getstatusoutput=proc)
    threads = _refuse(RuntimeError, THREADS)
    threading = sys.modules.get("threading")
    if threading is not None:
        threading.Thread.start = lambda self: threads()
    _patch("_thread", start_new_thread=threads, start_joinable_thread=threads)
    _patch("concurrent.futures", ThreadPoolExecutor=_refusing(RuntimeError, THREADS),
           ProcessPoolExecutor=_refusing(PermissionError, PROCESSES))


def script_builtins(extra):
    """The builtins a script sees: Python's (with the teaching `open`) and `extra` (the
    helpers and types). Made once, at build time: a job passes it as its globals'
    `__builtins__`, so a job copies nothing. (Imports teach in `_find_and_load`, which only a
    module that is not there reaches.)"""
    names = dict(builtins.__dict__)
    names.update(extra)
    return names


def _refusing(exception, message):
    class Refused:
        def __init__(self, *args, **kwargs):
            raise exception(message)

    return Refused
