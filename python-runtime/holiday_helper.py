"""`is_holiday` (SPEC §4), backed by the bundled `holidays` package.

Every country module is imported at build time (the job has no filesystem to import from);
holiday dates are computed in the job, for the year asked.
"""

import datetime

import holidays as _holidays

_SUPPORTED = _holidays.list_supported_countries()


def _preload():
    for code in _SUPPORTED:
        try:
            _holidays.country_holidays(code)
        except Exception:  # noqa: BLE001 - a country that cannot load is simply not offered
            pass


_preload()


def _as_date(check_date):
    if check_date is None:
        return datetime.date.today()
    if isinstance(check_date, datetime.datetime):
        return check_date.date()
    if isinstance(check_date, datetime.date):
        return check_date
    if isinstance(check_date, str):
        try:
            return datetime.date.fromisoformat(check_date)
        except ValueError:
            try:
                return datetime.datetime.fromisoformat(check_date).date()
            except ValueError:
                raise ValueError(f"check_date {check_date!r} is not an ISO date such as 2026-12-25") from None
    raise TypeError(f"check_date must be a date, datetime or ISO string, not {type(check_date).__name__}")


def is_holiday(country, state=None, region=None, check_date=None):
    """Whether `check_date` (default: today) is a public holiday in `country` (ISO 3166-1
    alpha-2), optionally in a subdivision given as `state` or `region` (ISO 3166-2 code)."""
    if not isinstance(country, str):
        raise TypeError(f"country must be a str, not {type(country).__name__}")
    code = country.strip().upper()
    if code not in _SUPPORTED:
        raise ValueError(f"unknown country {country!r}: use an ISO 3166-1 alpha-2 code such as 'GB' or 'US'")
    subdiv = state if state is not None else region
    if subdiv is not None:
        if not isinstance(subdiv, str):
            raise TypeError(f"state/region must be a str, not {type(subdiv).__name__}")
        subdiv = subdiv.strip().upper()
        if subdiv.startswith(code + "-"):
            subdiv = subdiv[len(code) + 1 :]
        if subdiv not in _SUPPORTED[code]:
            raise ValueError(
                f"unknown subdivision {state if state is not None else region!r} of {code}: "
                f"one of {', '.join(_SUPPORTED[code][:12])}{'…' if len(_SUPPORTED[code]) > 12 else ''}"
            )
    day = _as_date(check_date)
    try:
        calendar = _holidays.country_holidays(code, subdiv=subdiv, years=day.year)
    except NotImplementedError as exc:
        raise ValueError(str(exc)) from None
    return day in calendar
