"""A `requests`-compatible client whose every call is served by the host's egress policy.

The subset offered (SPEC §3): `request get post put patch delete head`, `Session`, `Response`
and `requests.exceptions`. Transport options that only make sense with sockets of one's own
(`verify`, `cert`, `proxies`, `stream`) are accepted and ignored: the host always verifies TLS
and always reads the whole (capped) body. `files=` (multipart uploads) is not offered.
"""

import base64
import datetime
import json as _json
from collections.abc import Mapping, MutableMapping
import re as _re
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from componentize_py_types import Err
from wit_world.imports import http as _http

from . import exceptions
from .exceptions import (
    ConnectionError,
    ConnectTimeout,
    HTTPError,
    InvalidHeader,
    InvalidSchema,
    InvalidURL,
    JSONDecodeError,
    MissingSchema,
    ReadTimeout,
    RequestException,
    Timeout,
    TooManyRedirects,
)

__all__ = [
    "ConnectionError", "ConnectTimeout", "HTTPError", "JSONDecodeError", "ReadTimeout",
    "RequestException", "Response", "Session", "Timeout", "TooManyRedirects", "codes",
    "delete", "exceptions", "get", "head", "options", "patch", "post", "put", "request",
    "session",
]

__version__ = "2.32.3"
_USER_AGENT = f"python-requests/{__version__} (action-worker)"


class CaseInsensitiveDict(MutableMapping):
    """Header names compare without case; the spelling first given is kept."""

    def __init__(self, data=None, **kwargs):
        self._store = {}
        self.update(data or {}, **kwargs)

    def __setitem__(self, key, value):
        self._store[key.lower()] = (key, value)

    def __getitem__(self, key):
        return self._store[key.lower()][1]

    def __delitem__(self, key):
        del self._store[key.lower()]

    def __iter__(self):
        return (original for original, _ in self._store.values())

    def __len__(self):
        return len(self._store)

    def __eq__(self, other):
        if isinstance(other, Mapping):
            other = CaseInsensitiveDict(other)
        else:
            return NotImplemented
        return dict(self.lower_items()) == dict(other.lower_items())

    def lower_items(self):
        return ((lower, pair[1]) for lower, pair in self._store.items())

    def copy(self):
        return CaseInsensitiveDict(self._store.values())

    def __repr__(self):
        return str(dict(self.items()))


class _Codes:
    """`requests.codes.ok` and friends, the common ones."""

    ok = okay = 200
    created = 201
    accepted = 202
    no_content = 204
    moved_permanently = 301
    found = 302
    not_modified = 304
    bad_request = 400
    unauthorized = 401
    forbidden = 403
    not_found = 404
    method_not_allowed = 405
    conflict = 409
    unprocessable_entity = 422
    too_many_requests = 429
    internal_server_error = server_error = 500
    bad_gateway = 502
    service_unavailable = 503
    gateway_timeout = 504


codes = _Codes()


class PreparedRequest:
    def __init__(self, method, url, headers, body):
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body

    def __repr__(self):
        return f"<PreparedRequest [{self.method}]>"


class Response:
    def __init__(self):
        self.status_code = None
        self.reason = ""
        self.url = ""
        self.headers = CaseInsensitiveDict()
        self._content = b""
        self.encoding = None
        self.elapsed = datetime.timedelta(0)
        self.history = []
        self.request = None
        self.cookies = {}

    def __repr__(self):
        return f"<Response [{self.status_code}]>"

    def __bool__(self):
        return self.ok

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    def close(self):
        pass

    @property
    def ok(self):
        try:
            self.raise_for_status()
        except HTTPError:
            return False
        return True

    @property
    def is_redirect(self):
        return "location" in self.headers and self.status_code in (301, 302, 303, 307, 308)

    @property
    def content(self):
        return self._content

    @property
    def apparent_encoding(self):
        return "utf-8"

    @property
    def text(self):
        encoding = self.encoding or "utf-8"
        try:
            return self._content.decode(encoding, errors="replace")
        except LookupError:
            return self._content.decode("utf-8", errors="replace")

    def json(self, **kwargs):
        try:
            return _json.loads(self.text, **kwargs)
        except _json.JSONDecodeError as exc:
            raise JSONDecodeError(exc.msg, exc.doc, exc.pos, response=self) from None

    def iter_content(self, chunk_size=1, decode_unicode=False):
        data = self.text if decode_unicode else self._content
        size = chunk_size or len(data) or 1
        for start in range(0, len(data), size):
            yield data[start : start + size]

    def iter_lines(self, chunk_size=512, decode_unicode=False, delimiter=None):
        data = self.text if decode_unicode else self._content
        yield from (data.split(delimiter) if delimiter else data.splitlines())

    def raise_for_status(self):
        if self.status_code is None:
            return
        if 400 <= self.status_code < 500:
            kind = "Client Error"
        elif 500 <= self.status_code < 600:
            kind = "Server Error"
        else:
            return
        raise HTTPError(f"{self.status_code} {kind}: {self.reason} for url: {self.url}", response=self)


def _encoding_from_headers(headers):
    content_type = headers.get("content-type")
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("'\"") or None
    if content_type.split(";")[0].strip().lower().startswith("text/"):
        return "ISO-8859-1"
    return "utf-8"


def _to_pairs(value):
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return None
    items = value.items() if isinstance(value, Mapping) else value
    pairs = []
    for key, val in items:
        if val is None:
            continue
        if isinstance(val, (list, tuple)):
            pairs.extend((key, v) for v in val if v is not None)
        else:
            pairs.append((key, val))
    return pairs


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# RFC 3986's unreserved characters: a percent-escape of one of them means the character.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _unquote_unreserved(uri):
    """Decodes the escapes of unreserved characters and keeps every other escape; a '%'
    before two letters or digits that are not hex is an error (the caller then encodes the
    '%' itself), as in `requests`."""
    pieces = uri.split("%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        code = piece[:2]
        if len(code) == 2 and code.isalnum():
            try:
                char = chr(int(code, 16))
            except ValueError:
                raise InvalidURL(f"Invalid percent-escape sequence: '{code}'") from None
            out.append(char + piece[2:] if char in _UNRESERVED else "%" + piece)
        else:
            out.append("%" + piece)
    return "".join(out)


# Characters `_requote` would change; a URL without them (and without '%') is its own requoting.
_NEEDS_QUOTING = _re.compile(r"[^A-Za-z0-9\-._~!#$&'()*+,/:;=?@\[\]]")


def _requote(uri):
    """The URL as `requests` sends it: characters outside the URL syntax (a non-ASCII path
    or query included) percent-encoded as UTF-8, escapes already there kept."""
    if "%" not in uri and not _NEEDS_QUOTING.search(uri):
        return uri
    try:
        return quote(_unquote_unreserved(uri), safe="!#$%&'()*+,/:;=?@[]~")
    except InvalidURL:
        # A stray '%' is itself encoded.
        return quote(uri, safe="!#$&'()*+,/:;=?@[]~")


def _idna_netloc(parts):
    """The netloc with a non-ASCII host IDNA-encoded, as `requests` does."""
    host = parts.hostname or ""
    if host.isascii():
        return parts.netloc
    try:
        encoded = host.encode("idna").decode("ascii")
        port = parts.port
    except (UnicodeError, ValueError):
        raise InvalidURL("URL has an invalid label.") from None
    userinfo = parts.netloc.rpartition("@")[0]
    return (f"{userinfo}@" if userinfo else "") + encoded + (f":{port}" if port is not None else "")


def _build_url(url, params):
    if isinstance(url, bytes):
        url = url.decode("utf-8")
    url = str(url).strip()
    if not url:
        raise MissingSchema("Invalid URL '': No scheme supplied. Perhaps you meant https://?")
    parts = urlsplit(url)
    if not parts.scheme:
        raise MissingSchema(f"Invalid URL {url!r}: No scheme supplied. Perhaps you meant https://{url}?")
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidSchema(f"No connection adapters were found for {url!r}")
    if not parts.hostname:
        raise InvalidURL(f"Invalid URL {url!r}: No host supplied")
    query = parts.query
    if params:
        if isinstance(params, (str, bytes)):
            extra = _text(params)
        else:
            extra = urlencode([(_text(k), _text(v)) for k, v in _to_pairs(params)])
        if extra:
            query = f"{query}&{extra}" if query else extra
    netloc = _idna_netloc(parts)
    return _requote(urlunsplit((parts.scheme, netloc, parts.path or "/", query, "")))


# What `requests` accepts in a header (its `check_header_validity`): no leading whitespace,
# no CR or LF, and no ':' in a name.
_VALID_NAME = _re.compile(r"^[^:\s][^:\r\n]*$")
_VALID_VALUE = _re.compile(r"^\S[^\r\n]*$|^$")
# And what `http.client` refuses after them (a trailing newline passes the first check).
_LEGAL_NAME = _re.compile(rb"[^:\s][^:\r\n]*")
_ILLEGAL_VALUE = _re.compile(rb"\n(?![ \t])|\r(?![ \t\n])")
# The everyday header, printable ASCII, which every check above passes: checked once.
_PLAIN_NAME = _re.compile(r"[!-9;-~]+")
_PLAIN_VALUE = _re.compile(r"(?:[!-~][ -~]*)?")


def _wire_headers(headers):
    """Header pairs for the host. As with `requests` over `http.client`: a name must be
    ASCII and a value Latin-1, else the same `UnicodeEncodeError` is raised here."""
    pairs = []
    for key, value in headers.items():
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        elif not isinstance(value, str):
            raise InvalidHeader(
                f"Header part ({value!r}) from ('{key}', {value!r}) must be of type str or bytes, not {type(value)}"
            )
        key = key.decode("latin-1") if isinstance(key, bytes) else str(key)
        if _PLAIN_NAME.fullmatch(key) and _PLAIN_VALUE.fullmatch(value):
            pairs.append((key, value))
            continue
        if not _VALID_NAME.match(key):
            raise InvalidHeader(
                f"Invalid leading whitespace, reserved character(s), or return character(s) in header name: {key!r}"
            )
        if not _VALID_VALUE.match(value):
            raise InvalidHeader(
                f"Invalid leading whitespace, reserved character(s), or return character(s) in header value: {value!r}"
            )
        if not _LEGAL_NAME.fullmatch(key.encode("ascii")):
            raise ValueError(f"Invalid header name {key.encode('ascii')!r}")
        encoded = value.encode("latin-1")
        if _ILLEGAL_VALUE.search(encoded):
            raise ValueError(f"Invalid header value {encoded!r}")
        pairs.append((key, value))
    return pairs


def _timeout_ms(timeout):
    """A number, or requests' `(connect, read)` pair, as one bound in milliseconds."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError(f"Timeout value must be a number or a (connect, read) tuple, got {timeout!r}")
        parts = [t for t in timeout if t is not None]
        if not parts:
            return None
        timeout = sum(parts)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"Timeout value must be a positive number, got {timeout!r}")
    return max(1, min(int(timeout * 1000), 2**32 - 1))


def _body(data, json, headers):
    if data is not None and data != {} and data != []:
        if isinstance(data, bytes):
            return data
        if isinstance(data, str):
            return data.encode("utf-8")
        if hasattr(data, "read"):
            chunk = data.read()
            return chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        pairs = _to_pairs(data)
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urlencode([(_text(k), _text(v)) for k, v in pairs]).encode("ascii")
    if json is not None:
        headers.setdefault("Content-Type", "application/json")
        return _json.dumps(json, allow_nan=False).encode("utf-8")
    return None


def _raise_for(error, request):
    message = error.value
    if isinstance(error, _http.Error_Timeout):
        raise ReadTimeout(message, request=request)
    if isinstance(error, _http.Error_TooManyRedirects):
        raise TooManyRedirects(message, request=request)
    if isinstance(error, _http.Error_InvalidRequest):
        raise InvalidURL(message, request=request)
    raise ConnectionError(message, request=request)


def _default_headers():
    return CaseInsensitiveDict({"User-Agent": _USER_AGENT, "Accept": "*/*"})


class Session:
    def __init__(self):
        self.headers = _default_headers()
        self.params = {}
        self.auth = None
        self.cookies = {}
        self.verify = True
        self.proxies = {}
        self.max_redirects = 5

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    def close(self):
        pass

    def mount(self, prefix, adapter):
        pass

    def request(
        self, method, url, params=None, data=None, headers=None, cookies=None, files=None,
        auth=None, timeout=None, allow_redirects=True, proxies=None, hooks=None, stream=None,
        verify=None, cert=None, json=None,
    ):
        if files:
            raise NotImplementedError("requests: files= (multipart upload) is not available in actions")
        method = str(method).upper()
        merged = {}
        for source in (self.params, params):
            pairs = _to_pairs(source) if not isinstance(source, (str, bytes)) else None
            if pairs is None:
                merged = source
                break
            for key, value in pairs:
                merged.setdefault(key, [])
                merged[key].append(value)
        full_url = _build_url(url, merged)
        all_headers = self.headers.copy()
        for key, value in (headers or {}).items():
            if value is None:
                all_headers.pop(key, None)
            else:
                all_headers[key] = value
        auth = auth if auth is not None else self.auth
        if isinstance(auth, tuple) and len(auth) == 2:
            token = base64.b64encode(f"{_text(auth[0])}:{_text(auth[1])}".encode("latin-1")).decode("ascii")
            all_headers["Authorization"] = f"Basic {token}"
        jar = dict(self.cookies)
        jar.update(cookies or {})
        if jar:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        body = _body(data, json, all_headers)
        prepared = PreparedRequest(method, full_url, all_headers, body)
        wire = _http.Request(
            method=method,
            url=full_url,
            headers=_wire_headers(all_headers),
            body=body,
            timeout_ms=_timeout_ms(timeout),
            follow_redirects=bool(allow_redirects),
        )
        try:
            answer = _http.send(wire)
        except Err as err:
            _raise_for(err.value, prepared)
        response = Response()
        response.status_code = answer.status
        response.reason = answer.reason
        response.url = answer.url
        response.headers = CaseInsensitiveDict()
        for key, value in answer.headers:
            if key in response.headers:
                response.headers[key] = f"{response.headers[key]}, {value}"
            else:
                response.headers[key] = value
        response._content = answer.body
        response.encoding = _encoding_from_headers(response.headers)
        response.elapsed = datetime.timedelta(milliseconds=answer.elapsed_ms)
        response.request = prepared
        return response

    def get(self, url, params=None, **kwargs):
        return self.request("GET", url, params=params, **kwargs)

    def options(self, url, **kwargs):
        return self.request("OPTIONS", url, **kwargs)

    def head(self, url, **kwargs):
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def post(self, url, data=None, json=None, **kwargs):
        return self.request("POST", url, data=data, json=json, **kwargs)

    def put(self, url, data=None, **kwargs):
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url, data=None, **kwargs):
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url, **kwargs):
        return self.request("DELETE", url, **kwargs)


def session():
    return Session()


def request(method, url, **kwargs):
    with Session() as s:
        return s.request(method, url, **kwargs)


def get(url, params=None, **kwargs):
    return request("GET", url, params=params, **kwargs)


def options(url, **kwargs):
    return request("OPTIONS", url, **kwargs)


def head(url, **kwargs):
    kwargs.setdefault("allow_redirects", False)
    return request("HEAD", url, **kwargs)


def post(url, data=None, json=None, **kwargs):
    return request("POST", url, data=data, json=json, **kwargs)


def put(url, data=None, **kwargs):
    return request("PUT", url, data=data, **kwargs)


def patch(url, data=None, **kwargs):
    return request("PATCH", url, data=data, **kwargs)


def delete(url, **kwargs):
    return request("DELETE", url, **kwargs)
