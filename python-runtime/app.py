"""The guest: runs one action job inside a fresh CPython instance.

Built into a WebAssembly component by componentize-py, which runs this module's top level at
build time and snapshots the interpreter; every job starts from that snapshot in a fresh
instance, so nothing a job does survives it. The host enforces every limit (fuel, memory,
time, output and log size); this side only keeps its own promises cheap to check: it never lets
an exception escape an export (that would trap), it trims logs at the limit it is given, and it
refuses an oversized output before sending it.
"""

import gc
import json
import marshal
import sys
import traceback
import types

import preload  # noqa: F401 - imported for its side effect: the standard library in the snapshot
import runtime_profile  # noqa: F401 - likewise: the profile's packages (before teach replaces open)
import helpers
import lazy_random
import sandbox_io
import tzdata_memory
import requests  # pre-imported so that `import requests` in a job is a lookup
import teach
import action_check  # noqa: F401 - `action-worker check` runs it as a job
import action_runtime

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports.types import ErrorKind, JobOutput, ScriptError

tzdata_memory.install()
lazy_random.install()

# Made once, at build time: a job only re-arms them.
_CAPTURE = sandbox_io.Capture(0)
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _script_error(kind, message, tb=None):
    return ScriptError(kind=kind, message=message, traceback=tb)


def _exception_line(exc):
    """`KeyError: 'orderId'`, robust against an exception whose __str__ misbehaves."""
    try:
        return "".join(traceback.format_exception_only(type(exc), exc)).strip()
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not escape
        return type(exc).__name__


def _script_traceback(exc, filename, source):
    """Python's traceback text with only the frames of the script itself."""
    try:
        lines = source.splitlines()
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        if isinstance(exc, SyntaxError) and exc.filename == filename and exc.lineno:
            frames = []
        out = ["Traceback (most recent call last):\n"]
        for frame in frames:
            out.append(f'  File "{filename}", line {frame.lineno}, in {frame.name}\n')
            if frame.lineno and 0 < frame.lineno <= len(lines):
                out.append(f"    {lines[frame.lineno - 1].strip()}\n")
        out.extend(traceback.format_exception_only(type(exc), exc))
        return "".join(out)
    except BaseException:  # noqa: BLE001
        return None


def _compile(filename, source):
    return compile(source, filename, "exec", dont_inherit=True)


class WitWorld(wit_world.WitWorld):
    def compile(self, filename, source):
        try:
            code = _compile(filename, source)
        except SyntaxError as exc:
            raise Err(_syntax_error(exc, filename, source))
        except BaseException as exc:  # noqa: BLE001 - e.g. ValueError for NUL bytes
            raise Err(_script_error(ErrorKind.SYNTAX, _exception_line(exc)))
        return marshal.dumps(code)

    def run(self, job):
        # `random` seeds itself from the host's entropy on first use in a job (lazy_random).
        io = _CAPTURE.arm(job.log_limit)
        io.install()
        try:
            outcome = _run(job)
        except BaseException as exc:  # noqa: BLE001 - nothing may escape an export
            outcome = Err(_script_error(ErrorKind.EXCEPTION, _exception_line(exc)))
        finally:
            io.uninstall()
        return JobOutput(outcome=outcome)


def _syntax_error(exc, filename, source):
    return _script_error(ErrorKind.SYNTAX, _exception_line(exc), _script_traceback(exc, filename, source))


def _run(job):
    filename, source = job.filename, job.source
    try:
        code = marshal.loads(job.code) if job.code is not None else _compile(filename, source)
    except SyntaxError as exc:
        return Err(_syntax_error(exc, filename, source))
    except BaseException as exc:  # noqa: BLE001
        return Err(_script_error(ErrorKind.SYNTAX, _exception_line(exc)))

    scope = {"__name__": "__action__", "__file__": filename, "__builtins__": _SCRIPT_BUILTINS}
    try:
        exec(code, scope)
        entry = scope.get("execute_action")
        if not callable(entry):
            return Err(
                _script_error(
                    ErrorKind.MISSING_ENTRYPOINT,
                    "the script defines no function execute_action(context)",
                )
            )
        context = json.loads(job.context_json)
        value = entry(context)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
        return Err(
            _script_error(ErrorKind.EXCEPTION, _exception_line(exc), _script_traceback(exc, filename, source))
        )

    try:
        text = _ENCODE(value)
    except BaseException as exc:  # noqa: BLE001 - TypeError, ValueError, RecursionError
        return Err(
            _script_error(
                ErrorKind.INVALID_OUTPUT,
                f"execute_action returned a value that is not JSON: {_exception_line(exc)}",
            )
        )
    if len(text) > job.output_limit:  # characters <= bytes; the host checks bytes again
        return Err(
            _script_error(
                ErrorKind.OUTPUT_TOO_LARGE,
                f"the output is {len(text)} characters, over the limit of {job.output_limit} bytes",
            )
        )
    return Ok(text)


def _warm_up(rounds=8):
    """Runs a trivial job through `run` at build time, so that the snapshot holds the job path
    warm: CPython's specialised instructions and its type and attribute caches are state in
    linear memory, and without this every job would pay for them again (docs/benchmarks.md).
    The job prints nothing and draws no random numbers, so it calls no import."""
    filename = "warm_up.py"
    source = "def execute_action(context):\n    return {'ok': True, 'args': context['args']}\n"
    world = WitWorld()
    job = types.SimpleNamespace(
        filename=filename,
        source=source,
        code=world.compile(filename, source),
        context_json='{"args": {"id": "x"}, "conversation": null}',
        log_limit=65536,
        output_limit=1 << 20,
    )
    for _ in range(rounds):
        outcome = world.run(job).outcome
        if not isinstance(outcome, Ok) or outcome.value != '{"ok":true,"args":{"id":"x"}}':
            raise RuntimeError(f"the build-time warm-up job failed: {outcome!r}")


def _warm_up_requests(rounds=4):
    """The same for the `requests` shim, whose first call in an instance cost ~0.6 M fuel more
    than the next: it runs against a canned answer in place of the `http.send` import (no
    import may be called at build time), which is put back before the snapshot."""
    real = requests._http

    class Canned:
        Request = real.Request

        @staticmethod
        def send(wire):
            return types.SimpleNamespace(
                status=200,
                reason="OK",
                url=wire.url,
                headers=[("Content-Type", "application/json"), ("Content-Length", "11")],
                body=b'{"ok": true}',
                elapsed_ms=1,
            )

    requests._http = Canned
    try:
        for _ in range(rounds):
            r = requests.get("https://warm-up.invalid/item/1", params={"q": "x"}, timeout=5)
            r.raise_for_status()
            r.json()
            requests.post("https://warm-up.invalid/items", json={"id": 1}, headers={"X-A": "b"}).json()
    finally:
        # Were it left behind, jobs would get canned answers: runtime.rs's
        # requests_reaches_the_host_and_raises_its_errors would fail.
        requests._http = real


# What a script may not do raises with a message that teaches (teach.py), and a script's
# builtins hold the helpers and the types of `context` (SPEC §4: globals, no import). Before
# the warm-up, so that it runs the path jobs take.
teach.install()
_SCRIPT_BUILTINS = teach.script_builtins({**helpers.GLOBALS, **action_runtime.TYPES})

_warm_up()
_warm_up_requests()

# Everything above is in the snapshot. Move it to the permanent generation so that the
# collector never walks (and so never writes to) the start-up objects in a job: fewer
# copy-on-write page faults per instance.
gc.collect()
gc.freeze()
