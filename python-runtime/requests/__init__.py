"""A `requests`-compatible client whose every call is served by the host's egress policy.

`requests` 2.32 as scripts use it (docs/actions.md lists what differs, and
tests/requests_parity compares the two): `request get post put patch delete head options`,
`Session` (headers, params, auth, cookies kept between requests), `Request` and
`PreparedRequest`, `Response` (history, cookies, links), `codes`, multipart `files=`,
`requests.exceptions`, `auth`, `utils`, `cookies`, `structures`. Redirects are followed here,
one host call per hop, each checked by the egress policy like any request. Transport options
that only make sense with sockets of one's own (`verify`, `cert`, `proxies`) are accepted and
ignored: the host always verifies TLS and reads the whole (capped) body.
"""

import datetime
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

from componentize_py_types import Err
from wit_world.imports import http as _http

from . import adapters, auth, cookies, exceptions, models, status_codes, structures, utils  # noqa: F401
from ._wire import _requote, _timeout_ms, _wire_headers
from .cookies import RequestsCookieJar, merge_cookies
from .exceptions import (  # noqa: F401 - the names `requests` exports
    ConnectionError,
    ConnectTimeout,
    FileModeWarning,
    HTTPError,
    JSONDecodeError,
    ReadTimeout,
    RequestException,
    Timeout,
    TooManyRedirects,
    URLRequired,
)
from .models import PreparedRequest, Request, Response, decode_content, encoding_from_headers
from .status_codes import codes
from .structures import CaseInsensitiveDict

__all__ = [
    "ConnectionError", "ConnectTimeout", "HTTPError", "JSONDecodeError", "PreparedRequest",
    "ReadTimeout", "Request", "RequestException", "Response", "Session", "Timeout",
    "TooManyRedirects", "URLRequired", "codes", "delete", "exceptions", "get", "head",
    "options", "patch", "post", "put", "request", "session",
]

__version__ = "2.32.5"
__title__ = "requests"
_USER_AGENT = f"python-requests/{__version__}"


_DEFAULT_HEADERS = CaseInsensitiveDict(
    {"User-Agent": _USER_AGENT, "Accept-Encoding": "gzip, deflate", "Accept": "*/*", "Connection": "keep-alive"}
)


def _default_headers():
    return CaseInsensitiveDict(_DEFAULT_HEADERS)


def _merge(request_setting, session_setting, dict_class=dict):
    """`requests`' merge of a request's setting over the session's: mappings merge (a None
    value removes the key), anything else replaces."""
    if session_setting is None or (not session_setting and isinstance(request_setting, dict)):
        return request_setting
    if request_setting is None:
        return session_setting
    if not (isinstance(session_setting, Mapping) and isinstance(request_setting, Mapping)):
        return request_setting
    merged = dict_class(session_setting)
    merged.update(request_setting)
    for key in [k for k, v in merged.items() if v is None]:
        del merged[key]
    return merged


def _raise_for(error, request):
    message = error.value
    if isinstance(error, _http.Error_Timeout):
        raise ReadTimeout(message, request=request)
    if isinstance(error, _http.Error_TooManyRedirects):
        raise TooManyRedirects(message, request=request)
    if isinstance(error, _http.Error_InvalidRequest):
        raise exceptions.InvalidURL(message, request=request)
    raise ConnectionError(message, request=request)


def _strips_auth(old_url, new_url):
    """Whether a redirect from `old_url` to `new_url` drops the Authorization header: another
    host, or another port or scheme than an http to https upgrade."""
    old, new = urlsplit(old_url), urlsplit(new_url)
    if old.hostname != new.hostname:
        return True
    if old.scheme == "http" and old.port in (80, None) and new.scheme == "https" and new.port in (443, None):
        return False
    default = {"http": 80, "https": 443}
    same_port = (old.port or default.get(old.scheme)) == (new.port or default.get(new.scheme))
    return not (old.scheme == new.scheme and same_port)


class Session:
    def __init__(self):
        self.headers = _default_headers()
        self.auth = None
        self.proxies = {}
        self.hooks = {"response": []}
        self.params = {}
        self.stream = False
        self.verify = True
        self.cert = None
        self.max_redirects = 30
        self.trust_env = True
        self.cookies = RequestsCookieJar()
        self.adapters = {}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    def close(self):
        pass

    def mount(self, prefix, adapter):
        self.adapters[prefix] = adapter

    def get_adapter(self, url):
        return next((a for p, a in self.adapters.items() if url.lower().startswith(p.lower())), adapters.HTTPAdapter())

    def prepare_request(self, request):
        jar = request.cookies
        if jar or self.cookies:
            if not isinstance(jar, RequestsCookieJar):
                jar = cookies.cookiejar_from_dict(jar)
            jar = merge_cookies(merge_cookies(RequestsCookieJar(), self.cookies), jar)
        else:
            jar = RequestsCookieJar()
        headers = CaseInsensitiveDict(self.headers)
        if request.headers:
            headers.update(request.headers)
            for key in [k for k, v in headers.items() if v is None]:
                del headers[key]
        p = PreparedRequest()
        p.prepare(
            method=request.method,
            url=request.url,
            files=request.files,
            data=request.data,
            json=request.json,
            headers=headers,
            params=_merge(request.params, self.params),
            auth=_merge(request.auth, self.auth),
            cookies=jar,
            hooks=request.hooks or self.hooks,
        )
        return p

    def request(
        self, method, url, params=None, data=None, headers=None, cookies=None, files=None,
        auth=None, timeout=None, allow_redirects=True, proxies=None, hooks=None, stream=None,
        verify=None, cert=None, json=None,
    ):
        req = Request(
            method=method, url=url, headers=headers, files=files, data=data or {}, json=json,
            params=params or {}, auth=auth, cookies=cookies, hooks=hooks,
        )
        return self.send(self.prepare_request(req), timeout=timeout, allow_redirects=allow_redirects)

    def send(self, request, timeout=None, allow_redirects=True, **_):
        """Sends a prepared request; follows its redirects, one egress call per hop."""
        if isinstance(request, Request):
            raise ValueError("You can only send PreparedRequests.")
        response = self._send_one(request, timeout)
        if allow_redirects and response.is_redirect and response.headers["location"].strip():
            response = self._follow(response, request, timeout)
        for hook in request.hooks.get("response", ()):
            hooked = hook(response)
            if hooked is not None:
                response = hooked
        return response

    def _follow(self, response, request, timeout):
        history = []
        while response.is_redirect and response.headers["location"].strip():
            if len(history) >= self.max_redirects:
                raise TooManyRedirects(f"Exceeded {self.max_redirects} redirects.", response=response)
            history.append(response)
            response = self._send_one(self._next_hop(response, request), timeout)
            request = response.request
            response.history = list(history)
        return response

    def _next_hop(self, response, request):
        """The request a redirect asks for, as a browser (and `requests`) makes it."""
        hop = request.copy()
        location = response.headers["location"].encode("latin-1").decode("utf-8", "replace")
        if location.startswith("//"):
            location = f"{urlsplit(response.url).scheme}:{location}"
        hop.url = _requote(urljoin(response.url, location))
        status = response.status_code
        if (status in (302, 303) and hop.method != "HEAD") or (status == 301 and hop.method == "POST"):
            hop.method = "GET"
        if status not in (307, 308):
            for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
                hop.headers.pop(name, None)
            hop.body = None
        hop.headers.pop("Cookie", None)
        hop.headers.pop("Proxy-Authorization", None)
        jar = hop._cookies if hop._cookies is not None else RequestsCookieJar()
        if response._set_cookies:
            jar.extract(response._set_cookies, response.url)  # deletions included
        merge_cookies(jar, self.cookies)
        hop._cookies = jar
        header = jar.header_for(hop.url)
        if header:
            hop.headers["Cookie"] = header
        if "Authorization" in hop.headers and _strips_auth(response.request.url, hop.url):
            del hop.headers["Authorization"]
        return hop

    def _send_one(self, request, timeout):
        body = request.body.encode("utf-8") if isinstance(request.body, str) else request.body
        wire = _http.Request(
            method=request.method,
            url=request.url,
            headers=_wire_headers(request.headers),
            body=body,
            timeout_ms=_timeout_ms(timeout),
            follow_redirects=False,
        )
        try:
            answer = _http.send(wire)
        except Err as err:
            _raise_for(err.value, request)
        response = Response()
        response.status_code = answer.status
        response.reason = answer.reason
        response.url = answer.url
        store = response.headers._store  # filled directly: a header line costs a lookup
        set_cookies = None
        for key, value in answer.headers:
            lower = key.lower()
            pair = store.get(lower)
            store[lower] = (key, value if pair is None else f"{pair[1]}, {value}")
            if lower == "set-cookie":
                (set_cookies := set_cookies or []).append(value)
        headers = response.headers
        body = answer.body
        response._raw_body = body
        coding = headers.get("content-encoding")
        if coding and body and request.method != "HEAD":
            body = decode_content(body, coding)
        response._content = body
        response.encoding = encoding_from_headers(headers)
        response.elapsed = datetime.timedelta(milliseconds=answer.elapsed_ms)
        response.request = request
        response._set_cookies = set_cookies
        if set_cookies:
            response.cookies.extract(set_cookies, response.url)
            self.cookies.extract(set_cookies, response.url)
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
