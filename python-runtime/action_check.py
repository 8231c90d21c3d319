"""`action-worker check` for Python actions, run inside the runtime itself: syntax, the
entry point, imports the runtime cannot satisfy, and helper calls with the wrong arguments.

The worker runs `check(filename, source)` as a job (crates/worker/src/cli/check.rs), so the
answer to "can this import work?" comes from the very interpreter that runs actions. The
source is parsed, never executed. Each finding is a dict: severity (error|warning), code,
line, col (1-based; 0 when the finding has no place), message.
"""

import ast
import importlib.util
import inspect
import sys

import helpers
import teach

# Modules that import but whose use is refused (teach.py): worth a warning at the import.
REFUSED_USE = {
    "socket": teach.SOCKETS,
    "subprocess": teach.PROCESSES,
    "threading": teach.THREADS,
    "_thread": teach.THREADS,
    "urllib.request": teach.URLOPEN,
    "http.client": f"connections of one's own are not available in actions: {teach.NETWORK}",
}


def _finding(severity, code, node, message):
    line = getattr(node, "lineno", 0) or 0
    col = (getattr(node, "col_offset", -1) or 0) + 1 if line else 0
    return {"severity": severity, "code": code, "line": line, "col": col, "message": message}


def _available(name):
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class _Checker(ast.NodeVisitor):
    def __init__(self):
        self.findings = []
        self.guarded = 0  # depth inside `try: ... except ImportError`
        self.bound = set()  # module-level names the script binds itself

    def visit_Try(self, node):
        catches = any(_catches_import_error(h.type) for h in node.handlers)
        self.guarded += catches
        for child in node.body:
            self.visit(child)
        self.guarded -= catches
        for child in node.handlers + node.orelse + node.finalbody:
            self.visit(child)

    visit_TryStar = visit_Try

    def visit_Import(self, node):
        for alias in node.names:
            self._module(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        if not node.level and node.module:
            self._module(node, node.module)
        self.generic_visit(node)

    def _module(self, node, name):
        top = name.partition(".")[0]
        if not _available(top) or ("." in name and not _available(name)):
            severity = "warning" if self.guarded else "error"
            self.findings.append(_finding(severity, "import", node, teach.missing_module_message(name)))
            return
        why = REFUSED_USE.get(name) or REFUSED_USE.get(top)
        if why:
            self.findings.append(_finding("warning", "capability", node, f"{name} imports, but {why}"))

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Name) and func.id in helpers.GLOBALS and func.id not in self.bound:
            self._helper_call(node, func.id)
        self.generic_visit(node)

    def _helper_call(self, node, name):
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            return  # *args or **kwargs: not known before the run
        signature = inspect.signature(helpers.GLOBALS[name])
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as exc:
            self.findings.append(
                _finding("error", "helper-arguments", node, f"{name}{signature}: {exc}")
            )


def _catches_import_error(handler_type):
    names = []
    if handler_type is None:
        return True
    for node in handler_type.elts if isinstance(handler_type, ast.Tuple) else [handler_type]:
        if isinstance(node, ast.Name):
            names.append(node.id)
    return any(n in ("ImportError", "ModuleNotFoundError", "Exception", "BaseException") for n in names)


def _bindings(tree):
    """Every name the script binds anywhere (functions, classes, assignments, parameters,
    imports): a call of such a name may not be the helper's, so it is not checked."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound


def _module_level(body):
    """The statements run at the module's level: its body, and the bodies of its `if`,
    `try`, `with` and loops (not of functions or classes)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield from _module_level(inner)


def _entry_point(tree):
    entries = [
        n for n in _module_level(tree.body)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "execute_action"
    ]
    if not entries:
        if "execute_action" in _bindings(tree):
            return []  # bound some other way (an assignment, an import): known at run time
        return [_finding("error", "entry-point", None, "the script defines no function execute_action(context)")]
    entry = entries[-1]
    if isinstance(entry, ast.AsyncFunctionDef):
        return [_finding("error", "entry-point", entry, "execute_action is async: define it with def (the runtime calls it and uses what it returns)")]
    args = entry.args
    positional = args.posonlyargs + args.args
    required = len(positional) - len(args.defaults)
    kwonly_required = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    if required > 1 or (not positional and args.vararg is None) or kwonly_required:
        return [
            _finding(
                "error", "entry-point", entry,
                f"execute_action takes {_describe(entry)}; the runtime calls it with one argument: execute_action(context)",
            )
        ]
    return []


def _describe(entry):
    names = [a.arg for a in entry.args.posonlyargs + entry.args.args]
    if entry.args.vararg:
        names.append("*" + entry.args.vararg.arg)
    names += [a.arg for a in entry.args.kwonlyargs]
    return f"({', '.join(names)})" if names else "no arguments"


def check(filename, source):
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        line, col = exc.lineno or 0, exc.offset or 0
        return [{"severity": "error", "code": "syntax", "line": line, "col": col, "message": exc.msg}]
    except ValueError as exc:  # NUL bytes
        return [{"severity": "error", "code": "syntax", "line": 0, "col": 0, "message": str(exc)}]
    except (RecursionError, MemoryError):
        return [{"severity": "error", "code": "syntax", "line": 0, "col": 0,
                 "message": "the script is nested too deeply to parse"}]
    checker = _Checker()
    checker.bound = _bindings(tree)
    try:
        checker.visit(tree)
    except RecursionError:
        checker.findings.append(_finding("error", "syntax", None, "the script is nested too deeply to check"))
    findings = _entry_point(tree) + checker.findings
    findings.sort(key=lambda f: (f["line"], f["col"]))
    return findings
