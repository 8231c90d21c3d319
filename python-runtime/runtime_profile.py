"""The runtime profile this component was built as, with its packages imported (at build time).

scripts/build-runtime generates `action_profile` (in build/profiles/NAME/gen) for a profile's
component: its name, its distributions, and every module of its packages. Each is imported
here, before the snapshot, so a job's `import phonenumbers` is a dictionary lookup; a job has no
file system, so a module that is not imported here cannot be imported by a job. The default
runtime has no `action_profile`: it is the profile "default", with no packages of its own.
A profile's warm-up file (`action_profile_warm_up`) runs after the imports, also at build time.
"""

import importlib
import sys

try:
    import action_profile as _spec
except ModuleNotFoundError:
    _spec = None

NAME = getattr(_spec, "NAME", "default")
DISTRIBUTIONS = tuple(getattr(_spec, "DISTRIBUTIONS", ()))
PACKAGES = tuple(getattr(_spec, "PACKAGES", ()))
MODULES = tuple(getattr(_spec, "MODULES", ()))
# Modules (with their submodules) the operator left out of the profile.
EXCLUDE = tuple(getattr(_spec, "EXCLUDE", ()))

# Modules of the profile that did not import at build time, and why (teach.py says so to a
# job that imports one).
not_imported = {}


def _load():
    for name in MODULES:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - reported, and a package's own failure stops the build
            if name in PACKAGES:
                raise
            not_imported[name] = f"{type(exc).__name__}: {exc}"
    if getattr(_spec, "WARM_UP", False):
        import action_profile_warm_up  # noqa: F401 - run for its side effects, at build time
    if not_imported:
        print(f"runtime profile {NAME}: {len(not_imported)} module(s) not importable, left out: "
              + ", ".join(sorted(not_imported)[:20]), file=sys.stderr)


def why_not(name):
    """Why a module of one of the profile's packages cannot be imported."""
    if name in not_imported:
        return f"it failed to import when the profile was built: {not_imported[name]}"
    if any(name == e or name.startswith(e + ".") for e in EXCLUDE):
        return f"the profile leaves it out (runtime.profiles.{NAME}.exclude)"
    return "the package has no such module, or it is a test module"


_load()
