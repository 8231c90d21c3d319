"""`requests.models`: `Request`, `PreparedRequest` and `Response`, as `requests` shapes them."""

import codecs
import datetime
import io
import json as _json
import os
import re as _re
import zlib
from collections.abc import Mapping
from urllib.parse import urlencode

from . import _wire
from .auth import HTTPBasicAuth
from .cookies import RequestsCookieJar, cookiejar_from_dict
from .exceptions import ContentDecodingError, HTTPError, InvalidJSONError, JSONDecodeError
from .structures import CaseInsensitiveDict

# A compressed body is decoded in the job up to this size (the memory limit holds anyway).
MAX_DECODED_BYTES = 64 << 20
REDIRECT_STATI = (301, 302, 303, 307, 308)


class Request:
    """A request not yet prepared: `Request("POST", url, json=...).prepare()`."""

    def __init__(self, method=None, url=None, headers=None, files=None, data=None, params=None,
                 auth=None, cookies=None, hooks=None, json=None):
        self.method = method
        self.url = url
        self.headers = headers or {}
        self.files = files or []
        self.data = data or []
        self.json = json
        self.params = params or {}
        self.auth = auth
        self.cookies = cookies
        self.hooks = hooks or {}

    def __repr__(self):
        return f"<Request [{self.method}]>"

    def prepare(self):
        p = PreparedRequest()
        p.prepare(method=self.method, url=self.url, headers=self.headers, files=self.files,
                  data=self.data, params=self.params, auth=self.auth, cookies=self.cookies,
                  hooks=self.hooks, json=self.json)
        return p


class PreparedRequest:
    """Exactly what is sent: `method`, `url`, `headers`, `body`."""

    def __init__(self):
        self.method = None
        self.url = None
        self.headers = None
        self.body = None
        self.hooks = {"response": []}
        self._cookies = None

    def prepare(self, method=None, url=None, headers=None, files=None, data=None, params=None,
                auth=None, cookies=None, hooks=None, json=None):
        self.method = str(method).upper() if method is not None else None
        self.url = _wire._build_url(url, params)
        self.headers = CaseInsensitiveDict(headers or {})
        self.prepare_body(data, files, json)
        self.prepare_cookies(cookies)
        self.prepare_auth(auth)
        self.prepare_hooks(hooks)

    def prepare_body(self, data, files, json=None):
        body = None
        if files:
            body, content_type = encode_multipart(files, data)
            self.headers["Content-Type"] = content_type
        elif data is not None and data != {} and data != [] and data != ():
            body = _body_of(data)
            if isinstance(body, str) and not isinstance(data, str):
                self.headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json is not None:
            self.headers.setdefault("Content-Type", "application/json")
            try:
                body = _json.dumps(json, allow_nan=False).encode("utf-8")
            except ValueError as exc:
                raise InvalidJSONError(exc, request=self) from None
        self.body = body
        if body is not None:
            self.headers["Content-Length"] = str(len(body.encode("utf-8") if isinstance(body, str) else body))
        elif self.method not in ("GET", "HEAD") and self.headers.get("Content-Length") is None:
            self.headers["Content-Length"] = "0"

    def prepare_cookies(self, cookies):
        if isinstance(cookies, RequestsCookieJar):
            self._cookies = cookies
        else:
            self._cookies = cookiejar_from_dict(cookies)
        header = self._cookies.header_for(self.url)
        if header is not None and "Cookie" not in self.headers:
            self.headers["Cookie"] = header

    def prepare_auth(self, auth):
        if auth:
            if isinstance(auth, tuple) and len(auth) == 2:
                auth = HTTPBasicAuth(*auth)
            result = auth(self)
            self.__dict__.update(result.__dict__)

    def prepare_hooks(self, hooks):
        for event, hook in (hooks or {}).items():
            self.hooks.setdefault(event, [])
            self.hooks[event].extend(hook if isinstance(hook, (list, tuple)) else [hook])

    def copy(self):
        p = PreparedRequest()
        p.method, p.url, p.body = self.method, self.url, self.body
        p.headers = self.headers.copy() if self.headers is not None else None
        p._cookies = self._cookies.copy() if self._cookies is not None else None
        p.hooks = self.hooks
        return p

    def __repr__(self):
        return f"<PreparedRequest [{self.method}]>"


def _body_of(data):
    """A request body as `requests` makes it: bytes and str as given, a file's content, and
    anything else form-encoded (a str)."""
    if isinstance(data, (bytes, str)):
        return data
    if hasattr(data, "read"):
        chunk = data.read()
        return chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
    if hasattr(data, "__iter__") and not isinstance(data, (list, tuple, Mapping)):
        # A generator or iterator of chunks: a streamed body, sent whole here.
        return b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in data)
    pairs = _wire._to_pairs(data)
    return urlencode([(_wire._form(k), _wire._form(v)) for k, v in pairs])


def _guess_filename(obj):
    name = getattr(obj, "name", None)
    if name and isinstance(name, str) and name[0] != "<" and name[-1] != ">":
        return os.path.basename(name)
    return None


def _field_bytes(value):
    if hasattr(value, "read"):
        value = value.read()
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8")


def _header_param(name, value):
    for char, escape in (("\\", "\\\\"), ('"', "%22"), ("\r", "%0D"), ("\n", "%0A")):
        value = value.replace(char, escape)
    return f'{name}="{value}"'


def encode_multipart(files, data):
    """A multipart/form-data body of `data`'s fields, then `files` (as `requests` orders
    them), and its Content-Type. A file is `fileobj`, `(name, content)`,
    `(name, content, type)` or `(name, content, type, headers)`; a name of None makes a plain field."""
    fields = []
    if data and not isinstance(data, (str, bytes)):
        for key, value in _wire._to_pairs(data):
            fields.append((_wire._text(key), None, _field_bytes(value), None, None))
    for key, value in (files.items() if isinstance(files, Mapping) else files):
        filetype = extra = None
        if isinstance(value, (tuple, list)):
            filename, content = value[0], value[1]
            if len(value) > 2:
                filetype = value[2]
            if len(value) > 3:
                extra = value[3]
        else:
            filename, content = _guess_filename(value) or key, value
        if content is None:
            continue
        fields.append((_wire._text(key), filename, _field_bytes(content), filetype, extra))
    boundary = os.urandom(16).hex()
    out = io.BytesIO()
    for name, filename, content, filetype, extra in fields:
        disposition = "form-data; " + _header_param("name", name)
        if filename is not None:
            disposition += "; " + _header_param("filename", filename)
        lines = [f"Content-Disposition: {disposition}"]
        if filetype:
            lines.append(f"Content-Type: {filetype}")
        lines.extend(f"{k}: {v}" for k, v in (extra or {}).items())
        out.write(f"--{boundary}\r\n".encode("latin-1"))
        out.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        out.write(content)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode("latin-1"))
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def encoding_from_headers(headers):
    content_type = headers.get("content-type")
    if not content_type:
        return None
    main, *params = content_type.split(";")
    for param in params:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("'\"") or None
    if "text" in main:
        return "ISO-8859-1"
    if "application/json" in main:
        return "utf-8"
    return None


def decode_content(body, encoding):
    """A gzip or deflate body decoded, as urllib3 does under `requests`."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        decoders = [zlib.decompressobj(16 + zlib.MAX_WBITS)]
    elif encoding == "deflate":
        decoders = [zlib.decompressobj(), zlib.decompressobj(-zlib.MAX_WBITS)]
    else:
        return body
    for decoder in decoders:
        try:
            out = decoder.decompress(body, MAX_DECODED_BYTES)
            # Concatenated gzip members (one after another in the body): each decoded.
            while decoder.unused_data and encoding != "deflate" and not decoder.unconsumed_tail:
                rest = decoder.unused_data
                decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out += decoder.decompress(rest, MAX_DECODED_BYTES - len(out) or 1)
        except zlib.error:
            continue
        if decoder.unconsumed_tail or len(out) > MAX_DECODED_BYTES:
            raise ContentDecodingError(
                f"the decoded body is over the limit of {MAX_DECODED_BYTES} bytes"
            )
        return out
    raise ContentDecodingError(f"Received response with content-encoding: {encoding}, but failed to decode it.")


def parse_header_links(value):
    """A `Link` header as a list of {url, rel, ...} (`requests.utils.parse_header_links`)."""
    links = []
    value = value.strip(" '\"")
    if not value:
        return links
    for entry in _re.split(", *<", value):
        target, _, params = entry.partition(";")
        link = {"url": target.strip("<> '\"")}
        for param in params.split(";") if params else ():
            key, sep, val = param.partition("=")
            if not sep or "=" in val:
                break
            link[key.strip(" '\"")] = val.strip(" '\"")
        links.append(link)
    return links


class _Raw(io.BytesIO):
    """`response.raw`: the body as received (still compressed if it was), readable once."""

    def read(self, amt=None, decode_content=None, **_):
        return super().read(amt)

    def stream(self, amt=65536, decode_content=None):
        while chunk := self.read(amt):
            yield chunk


class Response:
    def __init__(self):
        self.status_code = None
        self.reason = ""
        self.url = ""
        self.headers = CaseInsensitiveDict()
        self._content = b""
        self._raw_body = b""
        self.encoding = None
        self.elapsed = datetime.timedelta(0)
        self.history = []
        self.request = None
        self.cookies = RequestsCookieJar()
        self.connection = None
        self._set_cookies = None

    def __repr__(self):
        return f"<Response [{self.status_code}]>"

    def __bool__(self):
        return self.ok

    def __iter__(self):
        return self.iter_content(128)

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
        return "location" in self.headers and self.status_code in REDIRECT_STATI

    @property
    def is_permanent_redirect(self):
        return "location" in self.headers and self.status_code in (301, 308)

    @property
    def raw(self):
        raw = self.__dict__.get("_raw")
        if raw is None:
            raw = self.__dict__["_raw"] = _Raw(self._raw_body)
        return raw

    @property
    def content(self):
        return self._content

    @property
    def apparent_encoding(self):
        """A guess from the bytes: ascii, utf-8, else Windows-1252 (`requests` asks
        charset_normalizer, which knows more encodings)."""
        for candidate in ("ascii", "utf-8"):
            try:
                self._content.decode(candidate)
                return candidate
            except UnicodeDecodeError:
                pass
        return "Windows-1252"

    @property
    def text(self):
        encoding = self.encoding or self.apparent_encoding
        try:
            return self._content.decode(encoding, errors="replace")
        except LookupError:
            return self._content.decode("utf-8", errors="replace")

    @property
    def links(self):
        header = self.headers.get("link")
        resolved = {}
        if header:
            for link in parse_header_links(header):
                resolved[link.get("rel") or link.get("url")] = link
        return resolved

    def json(self, **kwargs):
        try:
            return _json.loads(self.text, **kwargs)
        except _json.JSONDecodeError as exc:
            raise JSONDecodeError(exc.msg, exc.doc, exc.pos, response=self) from None

    def iter_content(self, chunk_size=1, decode_unicode=False):
        data = self._content
        size = chunk_size or len(data) or 1
        chunks = (data[start : start + size] for start in range(0, len(data), size))
        if not decode_unicode:
            return chunks
        return self._decoded(chunks)

    def _decoded(self, chunks):
        decoder = codecs.getincrementaldecoder(self.encoding or self.apparent_encoding)(errors="replace")
        for chunk in chunks:
            text = decoder.decode(chunk)
            if text:
                yield text
        text = decoder.decode(b"", final=True)
        if text:
            yield text

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
