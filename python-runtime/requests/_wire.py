"""What goes on the wire: URLs as `requests` builds them, headers as it checks them, and
timeouts as the host takes them. Shared by `models` and the `Session`."""

import re as _re
import unicodedata
from collections.abc import Mapping
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from .exceptions import InvalidHeader, InvalidSchema, InvalidURL, MissingSchema


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


def _form(value):
    """A key or value for urlencode: bytes as they are (`b"\\xff"` is `%FF`), else its str."""
    return value if isinstance(value, bytes) else str(value)


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


# Where IDNA 2003 (Python's codec) and IDNA 2008 (`requests`, through the idna package)
# part: the deviation characters map to other letters in 2003 (ß to ss: another domain);
# symbols pass in 2003 and are refused in 2008. Refused here, never sent elsewhere.
_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")


def _idna2008_plain(host):
    return all(
        c.isascii() or (c not in _DEVIATIONS and unicodedata.category(c)[0] in "LMN")
        for c in host
    )


def _idna_netloc(parts):
    """The netloc with a non-ASCII host IDNA-encoded, as `requests` does."""
    host = parts.hostname or ""
    if host.isascii():
        return parts.netloc
    if not _idna2008_plain(host):
        raise InvalidURL("URL has an invalid label.")
    try:
        encoded = host.encode("idna").decode("ascii")
        port = parts.port
    except (UnicodeError, ValueError):
        raise InvalidURL("URL has an invalid label.") from None
    userinfo = parts.netloc.rpartition("@")[0]
    return (f"{userinfo}@" if userinfo else "") + encoded + (f":{port}" if port is not None else "")


# How urllib3 (under `requests`) finds a URL's host, and what it refuses in one.
_HAS_SCHEME = _re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+-]*:|/)")
_AUTHORITY = _re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?(?://([^\\/?#]*))?")
_INVALID_HOST_CHAR = _re.compile(r"[\x00-\x20\x7f]")


def _check_host(url):
    """A host with a space or a control character fails to parse, before any scheme check."""
    authority = _AUTHORITY.match(url if _HAS_SCHEME.match(url) else "//" + url).group(1) or ""
    host = authority.rpartition("@")[2]
    if not host.startswith("["):
        host = host.partition(":")[0]
    bad = _INVALID_HOST_CHAR.search(host)
    if bad:
        raise InvalidURL(f"Failed to parse: Host {host!r} contains invalid character {bad.group()!r}")


def _build_url(url, params):
    if isinstance(url, bytes):
        url = url.decode("utf-8")
    url = str(url).strip()
    if _INVALID_HOST_CHAR.search(url):
        _check_host(url)
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
            extra = urlencode([(_form(k), _form(v)) for k, v in _to_pairs(params)])
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


# Header pairs already found plain (the defaults, a script's fixed headers): not checked again.
_CHECKED = set()


def _wire_headers(headers):
    """Header pairs for the host. As with `requests` over `http.client`: a name must be
    ASCII and a value Latin-1, else the same `UnicodeEncodeError` is raised here."""
    pairs = []
    for pair in headers.items():
        if type(pair[1]) is str and pair in _CHECKED:
            pairs.append(pair)
            continue
        key, value = pair
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        elif not isinstance(value, str):
            raise InvalidHeader(
                f"Header part ({value!r}) from ('{key}', {value!r}) must be of type str or bytes, not {type(value)}"
            )
        key = key.decode("latin-1") if isinstance(key, bytes) else str(key)
        if _PLAIN_NAME.fullmatch(key) and _PLAIN_VALUE.fullmatch(value):
            pairs.append((key, value))
            if len(_CHECKED) < 64 and type(pair[0]) is str and type(pair[1]) is str:
                _CHECKED.add(pair)
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
