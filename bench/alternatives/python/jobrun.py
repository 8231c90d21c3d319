"""Runs one action job (SPEC §5) without a sandbox and returns its result as a dict.

Shared by the two alternative runners of bench/alternatives: `per_process.py` (a fresh
python3 process per job) and `in_process.py` (one long-lived process, a thread per job).
Each job gets a fresh globals dict that its script is compiled and executed into; nothing
else is isolated (sys.modules, the process, the filesystem and the network are shared).
"""

import json
import sys
import threading
import time

# Imported when first needed, so that a fresh process (runner B) pays only for what its job
# uses: traceback on an exception, re and urllib for an API action.

WORKER = "alt-" + sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py")


class _ThreadLocalStream:
    """sys.stdout / sys.stderr: writes go to the running job's buffer of this thread."""

    def __init__(self, fallback):
        self._local = threading.local()
        self._fallback = fallback

    def begin(self):
        self._local.parts = []

    def end(self):
        parts = getattr(self._local, "parts", None)
        self._local.parts = None
        return "".join(parts or [])

    def write(self, text):
        parts = getattr(self._local, "parts", None)
        if parts is None:
            return self._fallback.write(text)
        parts.append(text)
        return len(text)

    def flush(self):
        pass


OUT = _ThreadLocalStream(sys.__stderr__)
ERR = _ThreadLocalStream(sys.__stderr__)
sys.stdout = OUT
sys.stderr = ERR


def _context(job, action):
    context = {
        "args": job.get("args") or {},
        "conversation": job.get("conversation"),
        "action": {"name": action.get("name", "")},
        "job": {"id": job.get("id", ""), "attempt": 1, "test": bool(job.get("test", False))},
    }
    for key in ("business", "customer"):
        if job.get(key) is not None:
            context[key] = job[key]
    return context


def _run_python(job, action):
    code = (action.get("python") or {}).get("code", "")
    filename = action.get("name", "action") + ".py"
    scope = {"__name__": "__action__", "__builtins__": __builtins__}
    try:
        exec(compile(code, filename, "exec"), scope)
        output = scope["execute_action"](_context(job, action))
        json.dumps(output)  # the output must be JSON
        return "ok", output, None
    except Exception as e:  # an action error, as the worker reports it
        import linecache
        import traceback

        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tb = traceback.TracebackException(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None)
        return "action_error", None, {
            "kind": "exception",
            "message": f"{type(e).__name__}: {e}",
            "traceback": "".join(tb.format()),
        }


_VAR = None


def _var():
    global _VAR
    if _VAR is None:
        import re

        _VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
    return _VAR


class _Missing(Exception):
    pass


def _render(template, args, encode, missing):
    def one(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        if name not in args:
            missing.add(name)
            return ""
        value = args[name]
        return encode(value if isinstance(value, str) else json.dumps(value))

    return _var().sub(one, template)


def _segment(value):
    if value in ("", ".", ".."):
        raise ValueError(f"bad path value {value!r}")
    from urllib.parse import quote

    return quote(value, safe="")


def _header(value):
    if any(c in value for c in "\r\n\0"):
        raise ValueError("header value with CR, LF or NUL")
    return value


def _render_body(body, args, missing):
    if isinstance(body, str):
        m = _var().fullmatch(body)
        if m and m.group(0) != "$$":
            name = m.group(1) or m.group(2)
            if name not in args:
                missing.add(name)
                return None
            return args[name]
        return _render(body, args, lambda v: v, missing)
    if isinstance(body, list):
        return [_render_body(v, args, missing) for v in body]
    if isinstance(body, dict):
        return {k: _render_body(v, args, missing) for k, v in body.items()}
    return body


def _run_api(job, action):
    import urllib.error
    import urllib.parse
    import urllib.request

    api = action.get("api") or {}
    args = job.get("args") or {}
    missing = set()
    try:
        url = api.get("base_url", "").rstrip("/") + _render(api.get("path", ""), args, _segment, missing)
        query = {k: _render(v, args, lambda s: s, missing) for k, v in (api.get("query") or {}).items()}
        headers = {k: _render(v, args, _header, missing) for k, v in (api.get("headers") or {}).items()}
        body = _render_body(api["body"], args, missing) if "body" in api else None
    except ValueError as e:
        return "rejected", None, {"kind": "bad_argument", "message": str(e)}
    if missing:
        return "rejected", None, {"kind": "missing_arguments",
                                  "message": "missing arguments: " + ", ".join(sorted(missing))}
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, headers=headers, method=api.get("method", "GET"))
    timeout = (api.get("timeout_ms") or 30000) / 1000
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except Exception as e:
        return "action_error", None, {"kind": "http", "message": str(e)}
    text = raw.decode("utf-8", "replace")
    try:
        output = json.loads(text)
    except ValueError:
        output = text
    if 200 <= status < 300:
        return "ok", output, None
    return "action_error", {"error": f"HTTP {status}", "status": status, "body": output}, {
        "kind": "http_status", "message": f"HTTP {status}"}


def run_job(raw):
    """The result (a dict) of the job encoded in `raw` (JSON bytes or str)."""
    start = time.perf_counter()
    try:
        job = json.loads(raw)
        action = job["action"]
        kind = action["type"]
    except Exception as e:
        return {"job_id": "", "action": "", "status": "rejected", "output": None,
                "error": {"kind": "bad_job", "message": f"cannot decode the job: {e}"}, "worker": WORKER}
    OUT.begin()
    ERR.begin()
    try:
        if kind == "python":
            status, output, error = _run_python(job, action)
        elif kind == "api":
            status, output, error = _run_api(job, action)
        else:
            status, output, error = "rejected", None, {"kind": "bad_job", "message": f"unknown type {kind!r}"}
    finally:
        stdout, stderr = OUT.end(), ERR.end()
    result = {
        "job_id": job.get("id", ""),
        "action": action.get("name", ""),
        "status": status,
        "output": output,
        "effects": [],
        "logs": {"stdout": stdout, "stderr": stderr, "truncated": False},
        "trace": [],
        "stats": {"wall_ms": round((time.perf_counter() - start) * 1000)},
        "test": bool(job.get("test", False)),
        "attempt": 1,
        "worker": WORKER,
    }
    if error is not None:
        result["error"] = error
    return result
