"""`requests.cookies`: a cookie jar that reads like a dictionary, with the domain and path
rules of a browser's (RFC 6265, simplified: no public-suffix list; a job's jar lives as long
as its Session, that is at most one job)."""

import email.utils
import time
from collections.abc import MutableMapping
from urllib.parse import urlsplit


class Cookie:
    """One cookie: `name`, `value`, `domain` ('' = any host), `path`, `secure`, `expires`."""

    __slots__ = ("name", "value", "domain", "host_only", "path", "secure", "expires")

    def __init__(self, name, value, domain="", path="/", secure=False, expires=None, host_only=False):
        self.name = name
        self.value = value
        self.domain = domain
        self.host_only = host_only
        self.path = path
        self.secure = secure
        self.expires = expires

    def matches(self, host, path, https):
        """Whether a request to `host` and `path` carries it (the path rule is
        `http.cookiejar`'s, which `requests` uses: a prefix)."""
        if self.secure and not https:
            return False
        if self.domain and host != self.domain and (self.host_only or not host.endswith("." + self.domain)):
            return False
        return path.startswith(self.path)

    def __repr__(self):
        return f"<Cookie {self.name}={self.value} for {self.domain}{self.path}>"


def _bare(domain):
    """A domain as cookies store it: no leading dot, lower case (None stays None)."""
    return domain if domain is None else domain.lstrip(".").lower()


class CookieConflictError(RuntimeError):
    pass


class RequestsCookieJar(MutableMapping):
    """Cookies by name (`jar["session"]`, `jar.get(...)`, `jar.set(...)`, `get_dict()`);
    iterating yields the `Cookie` objects, as `http.cookiejar` does."""

    def __init__(self):
        self._cookies = []

    # -- the dictionary view --------------------------------------------------------------
    def get(self, name, default=None, domain=None, path=None):
        domain = _bare(domain)
        for cookie in self._cookies:
            if cookie.name == name and domain in (None, cookie.domain) and path in (None, cookie.path):
                return cookie.value
        return default

    def __getitem__(self, name):
        found = [c for c in self._cookies if c.name == name]
        if not found:
            raise KeyError(f"name={name!r}, domain=None, path=None")
        if len(found) > 1:
            raise CookieConflictError(f"There are multiple cookies with name, {name!r}")
        return found[0].value

    def __setitem__(self, name, value):
        self.set(name, value)

    def __delitem__(self, name):
        before = len(self._cookies)
        self._cookies = [c for c in self._cookies if c.name != name]
        if len(self._cookies) == before:
            raise KeyError(name)

    def __contains__(self, name):
        return any(c.name == name for c in self._cookies)

    def __iter__(self):
        return iter(list(self._cookies))

    def __len__(self):
        return len(self._cookies)

    def keys(self):
        return [c.name for c in self._cookies]

    def values(self):
        return [c.value for c in self._cookies]

    def items(self):
        return [(c.name, c.value) for c in self._cookies]

    def get_dict(self, domain=None, path=None):
        domain = _bare(domain)
        return {
            c.name: c.value
            for c in self._cookies
            if domain in (None, c.domain) and path in (None, c.path)
        }

    def list_domains(self):
        return sorted({c.domain for c in self._cookies})

    def list_paths(self):
        return sorted({c.path for c in self._cookies})

    def set(self, name, value, domain="", path="/", secure=False, expires=None, **_):
        domain = (domain or "").lstrip(".").lower()
        if value is None:
            self._remove(name, domain, path)
            return None
        cookie = Cookie(name, str(value), domain, path or "/", secure, expires)
        self.set_cookie(cookie)
        return cookie

    def set_cookie(self, cookie):
        self._remove(cookie.name, cookie.domain, cookie.path)
        self._cookies.append(cookie)

    def update(self, other=(), **kwargs):
        if isinstance(other, RequestsCookieJar):
            for cookie in other._cookies:
                self.set_cookie(cookie)
        else:
            for name, value in dict(other, **kwargs).items():
                self.set(name, value)

    def clear(self, domain=None, path=None, name=None):
        self._cookies = [
            c for c in self._cookies
            if not (domain in (None, c.domain) and path in (None, c.path) and name in (None, c.name))
        ]

    def copy(self):
        jar = RequestsCookieJar()
        jar._cookies = list(self._cookies)
        return jar

    def __repr__(self):
        return f"<RequestsCookieJar[{', '.join(map(repr, self._cookies))}]>"

    def _remove(self, name, domain, path):
        self._cookies = [
            c for c in self._cookies if not (c.name == name and c.domain == domain and c.path == path)
        ]

    # -- what a request carries and a response sets ---------------------------------------
    def header_for(self, url):
        """The `Cookie` header for a request to `url`, or None."""
        if not self._cookies:
            return None
        parts = urlsplit(url)
        host, path, https = (parts.hostname or "").lower(), parts.path or "/", parts.scheme == "https"
        now = time.time()
        self._cookies = [c for c in self._cookies if c.expires is None or c.expires > now]
        chosen = [c for c in self._cookies if c.matches(host, path, https)]
        chosen.sort(key=lambda c: len(c.path), reverse=True)
        return "; ".join(f"{c.name}={c.value}" for c in chosen) or None

    def extract(self, set_cookie_values, url):
        """Takes the `Set-Cookie` values of a response to `url`."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        default_path = (parts.path or "/").rsplit("/", 1)[0] or "/"
        for value in set_cookie_values:
            cookie = _parse_set_cookie(value, host, default_path)
            if cookie is None:
                continue
            if cookie.expires is not None and cookie.expires <= time.time():
                self._remove(cookie.name, cookie.domain, cookie.path)
            else:
                self.set_cookie(cookie)


# Second-level labels under a two-letter country code that are registries, not sites
# (`co.uk`): a cookie may not be set for them, as `http.cookiejar` refuses.
_REGISTRY_LABELS = frozenset(
    "co ac com edu org net gov mil int aero biz cat coop info jobs mobi museum name pro travel eu".split()
)


def _may_set(host, domain):
    """Whether a response from `host` may set a cookie for `domain`: the host itself, or a
    domain above it that is a site (an embedded dot; not a registry like `co.uk`); never
    another domain, and for an IP address only the address."""
    if host == domain:
        return True
    if not host.endswith("." + domain) or "." not in domain or host.replace(".", "").isdigit():
        return False
    labels = domain.split(".")
    return not (len(labels) == 2 and len(labels[1]) == 2 and labels[0] in _REGISTRY_LABELS)


def _parse_set_cookie(value, host, default_path):
    pairs = [p.strip() for p in value.split(";")]
    name, sep, val = pairs[0].partition("=")
    if not sep or not name.strip():
        return None
    cookie = Cookie(name.strip(), val.strip().strip('"'), host, default_path, host_only=True)
    for attr in pairs[1:]:
        key, _, arg = attr.partition("=")
        key, arg = key.strip().lower(), arg.strip()
        if key == "domain" and arg:
            domain = arg.lstrip(".").lower()
            if not _may_set(host, domain):
                return None
            cookie.domain, cookie.host_only = domain, False
        elif key == "path" and arg.startswith("/"):
            cookie.path = arg
        elif key == "secure":
            cookie.secure = True
        elif key == "max-age":
            try:
                cookie.expires = time.time() + int(arg)
            except (ValueError, OverflowError):
                pass
        elif key == "expires" and cookie.expires is None:
            try:
                cookie.expires = email.utils.parsedate_to_datetime(arg).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    return cookie


def cookiejar_from_dict(cookie_dict, cookiejar=None, overwrite=True):
    jar = RequestsCookieJar() if cookiejar is None else cookiejar
    for name, value in (cookie_dict or {}).items():
        if overwrite or name not in jar:
            jar.set(name, value)
    return jar


def merge_cookies(cookiejar, cookies):
    if isinstance(cookies, dict):
        return cookiejar_from_dict(cookies, cookiejar, overwrite=False)
    cookiejar.update(cookies)
    return cookiejar
