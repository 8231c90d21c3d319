"""`requests.utils`: the helpers scripts reach for."""

from urllib.parse import quote, unquote, urlparse, urlsplit, urlunparse  # noqa: F401 - re-exported

from ._wire import _requote as requote_uri  # noqa: F401
from .cookies import cookiejar_from_dict  # noqa: F401
from .models import parse_header_links  # noqa: F401
from .structures import CaseInsensitiveDict  # noqa: F401


def dict_from_cookiejar(cj):
    return {cookie.name: cookie.value for cookie in cj}


def add_dict_to_cookiejar(cj, cookie_dict):
    return cookiejar_from_dict(cookie_dict, cj)


def default_user_agent(name="python-requests"):
    from . import __version__

    return f"{name}/{__version__}"


def default_headers():
    from . import _default_headers

    return _default_headers()
