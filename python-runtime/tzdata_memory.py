"""IANA time zones for `zoneinfo` without a filesystem.

At build time the zone files of the pinned `tzdata` package are read into a dictionary that
lives in the snapshot; `zoneinfo` is pointed at it instead of at the (absent) disk.
"""

import io
import os

import zoneinfo
from zoneinfo import _common, _tzpath

_ZONES = {}


def _read_zones():
    import tzdata

    root = os.path.join(os.path.dirname(tzdata.__file__), "zoneinfo")
    for directory, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith("__") or name.endswith((".py", ".pyc", ".tab", ".zi")):
                continue
            path = os.path.join(directory, name)
            key = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as handle:
                data = handle.read()
            if data.startswith(b"TZif"):
                _ZONES[key] = data


def _load_tzdata(key):
    data = _ZONES.get(key)
    if data is None:
        raise zoneinfo.ZoneInfoNotFoundError(f"No time zone found with key {key}")
    return io.BytesIO(data)


def _available_timezones():
    return set(_ZONES)


def install():
    _read_zones()
    _tzpath.reset_tzpath([])
    _common.load_tzdata = _load_tzdata
    zoneinfo.available_timezones = _available_timezones
    _tzpath.available_timezones = _available_timezones
    # Warm the cache of the zones most actions use, so the common case touches no parser.
    for key in ("UTC", "Europe/London", "Europe/Athens", "America/New_York"):
        if key in _ZONES:
            zoneinfo.ZoneInfo(key)
