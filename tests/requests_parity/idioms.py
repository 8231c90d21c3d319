"""The `requests` differential suite: everyday idioms, each run under real `requests` in
native CPython and under the sandbox's `requests`, against one loopback server
(tests/requests_parity/server.py); the Rust test (crates/worker/tests/requests_parity.rs)
compares the observations.

Run natively: `python idioms.py http://127.0.0.1:PORT` prints the observations as JSON. In
the sandbox this file is the action: `execute_action({"args": {"base": ...}})` returns them.
An idiom is a function `i_<name>(base)` whose return value is what a script would see; an
exception is observed as its class and the `requests` classes it is an instance of.
Observations leave out what differs by nature (times, the server's Date header).
"""

import io
import json

import requests


def _echo(r):
    return r.json()


def _seen(echo, *names):
    """The request headers the server saw, among `names`."""
    return {name: echo["headers"].get(name) for name in names}


# --- methods, params, bodies ---------------------------------------------------------------

def i_get_json(base):
    r = requests.get(base + "/unicode")
    return [r.status_code, r.ok, r.json(), r.headers["content-type"], r.url]


def i_params_dict(base):
    return _echo(requests.get(base + "/echo", params={"q": "a b&c", "page": 2}))["query"]


def i_params_list_values(base):
    return _echo(requests.get(base + "/echo", params={"tag": ["x", "y"], "skip": None}))["query"]


def i_params_tuples(base):
    return _echo(requests.get(base + "/echo", params=[("a", "1"), ("a", "2"), ("b", "3")]))["query"]


def i_params_merge_with_query(base):
    r = requests.get(base + "/echo?fixed=1", params={"more": "2"})
    return [r.url, _echo(r)["query"]]


def i_params_string(base):
    return _echo(requests.get(base + "/echo", params="raw=1&x=y"))["query"]


def i_params_unicode(base):
    r = requests.get(base + "/echo", params={"city": "Zürich", "emoji": "✓"})
    return [r.url, _echo(r)["args"]]


def i_url_with_spaces_and_unicode(base):
    r = requests.get(base + "/echo/a b/é?x=ü y")
    return [r.url, _echo(r)["path"]]


def i_post_json(base):
    e = _echo(requests.post(base + "/echo", json={"qty": 3, "ok": True, "name": "Zoë"}))
    return [e["method"], e["body"], e["headers"]["content-type"]]


def i_post_form(base):
    e = _echo(requests.post(base + "/echo", data={"name": "Zoë", "n": 3, "tags": ["a", "b"]}))
    return [e["body"], e["headers"]["content-type"]]


def i_post_form_tuples(base):
    e = _echo(requests.post(base + "/echo", data=[("k", "1"), ("k", "2")]))
    return e["body"]


def i_post_raw_string(base):
    e = _echo(requests.post(base + "/echo", data="plain text", headers={"Content-Type": "text/plain"}))
    return [e["body"], e["headers"]["content-type"], e["headers"]["content-length"]]


def i_post_bytes(base):
    e = _echo(requests.post(base + "/echo", data=b"\x00\x01binary"))
    return [e["body"], e["headers"].get("content-type"), e["headers"]["content-length"]]


def i_post_generator(base):
    e = _echo(requests.post(base + "/echo", data=(c for c in [b"ab", "cd"])))
    return e["body"]


def i_params_bytes_value(base):
    return _echo(requests.get(base + "/echo", params={"q": b"\xff", "r": "ü"}))["query"]


def i_json_nan(base):
    try:
        requests.post(base + "/echo", json={"x": float("nan")})
    except requests.RequestException as e:
        return [type(e).__name__, isinstance(e, requests.exceptions.InvalidJSONError)]


def i_hook_replaces_response(base):
    seen = []

    def hook(r, *args, **kwargs):
        seen.append(r.status_code)
        return requests.get(base + "/status/404")

    r = requests.get(base + "/echo", hooks={"response": hook})
    return [seen, r.status_code]


def i_post_file_object(base):
    e = _echo(requests.post(base + "/echo", data=io.BytesIO(b"from a file object")))
    return e["body"]


def i_put_patch_delete(base):
    out = []
    for call in (requests.put, requests.patch, requests.delete):
        out.append(_echo(call(base + "/echo", data="x"))["method"])
    return out


def i_head_and_options(base):
    h = requests.head(base + "/echo")
    o = requests.options(base + "/echo")
    return [h.status_code, h.content, o.status_code, o.json()["method"]]


def i_request_function(base):
    return _echo(requests.request("patch", base + "/echo", json=[1, 2]))["method"]


def i_json_and_data_together(base):
    e = _echo(requests.post(base + "/echo", data={"a": "1"}, json={"b": 2}))
    return [e["body"], e["headers"]["content-type"]]


def i_empty_data_dict(base):
    e = _echo(requests.post(base + "/echo", data={}))
    return [e["body"], e["headers"].get("content-type"), e["headers"].get("content-length")]


# --- headers and auth ----------------------------------------------------------------------

def i_custom_headers(base):
    e = _echo(requests.get(base + "/echo", headers={"X-Api-Key": "k1", "Accept": "application/json"}))
    return _seen(e, "x-api-key", "accept")


def i_default_headers(base):
    e = _echo(requests.get(base + "/echo"))
    return _seen(e, "accept", "user-agent", "accept-encoding", "connection")


def i_header_none_removes_default(base):
    e = _echo(requests.get(base + "/echo", headers={"Accept": None}))
    return "accept" in e["headers"]


def i_response_headers_case_insensitive(base):
    r = requests.get(base + "/unicode")
    return [r.headers["Content-Type"], r.headers.get("CONTENT-TYPE"), "content-length" in r.headers]


def i_response_repeated_header(base):
    return requests.get(base + "/multi-header").headers["X-Multi"]


def i_invalid_header_value(base):
    requests.get(base + "/echo", headers={"X-Bad": "a\nb"})


def i_header_value_int(base):
    requests.get(base + "/echo", headers={"X-Count": 3})


def i_basic_auth_tuple(base):
    r = requests.get(base + "/basic-auth/ann/s3cret", auth=("ann", "s3cret"))
    return [r.status_code, r.json()]


def i_basic_auth_class(base):
    r = requests.get(base + "/basic-auth/ann/s3cret", auth=requests.auth.HTTPBasicAuth("ann", "s3cret"))
    return r.status_code


def i_basic_auth_wrong(base):
    r = requests.get(base + "/basic-auth/ann/s3cret", auth=("ann", "wrong"))
    return [r.status_code, r.headers.get("WWW-Authenticate"), r.ok]


def i_bearer_header(base):
    return _seen(_echo(requests.get(base + "/echo", headers={"Authorization": "Bearer t0k"})), "authorization")


# --- status, reason, errors ----------------------------------------------------------------

def i_status_404(base):
    r = requests.get(base + "/status/404")
    return [r.status_code, r.ok, bool(r), r.reason, r.text]


def i_custom_reason(base):
    r = requests.get(base + "/status/418?reason=Short+And+Stout")
    return [r.status_code, r.reason]


def i_raise_for_status(base):
    try:
        requests.get(base + "/status/503").raise_for_status()
    except requests.HTTPError as e:
        return [str(e), e.response.status_code, isinstance(e, requests.RequestException)]


def i_raise_for_status_ok(base):
    return requests.get(base + "/echo").raise_for_status()


def i_codes_attribute(base):
    return [requests.codes.ok, requests.codes.created, requests.codes.not_found, requests.codes.teapot]


def i_codes_item(base):
    return [requests.codes["created"], requests.codes["too_many_requests"], requests.codes.get("nope")]


def i_status_compare_codes(base):
    return requests.get(base + "/echo").status_code == requests.codes.ok


def i_no_content(base):
    r = requests.delete(base + "/no-content")
    return [r.status_code, r.content, r.text]


def i_missing_schema(base):
    try:
        requests.get("example.com/items")
    except requests.exceptions.MissingSchema as e:
        return str(e)


def i_not_a_url(base):
    try:
        requests.get("not a url")
    except requests.RequestException as e:
        return [type(e).__name__, str(e)]


def i_invalid_schema(base):
    try:
        requests.get("ftp://example.com/file")
    except requests.exceptions.InvalidSchema as e:
        return str(e)


def i_no_host(base):
    try:
        requests.get("http://")
    except requests.exceptions.InvalidURL as e:
        return str(e)


def i_connection_refused(base):
    requests.get("http://127.0.0.1:9/unused", timeout=2)


def i_read_timeout(base):
    try:
        requests.get(base + "/slow?s=2", timeout=0.3)
    except requests.exceptions.Timeout as e:
        return [type(e).__name__, isinstance(e, requests.exceptions.ReadTimeout), isinstance(e, requests.ConnectionError)]


def i_timeout_tuple(base):
    return requests.get(base + "/echo", timeout=(1, 3)).status_code


def i_exception_hierarchy(base):
    ex = requests.exceptions
    return [
        issubclass(ex.ConnectTimeout, ex.ConnectionError),
        issubclass(ex.ConnectTimeout, ex.Timeout),
        issubclass(ex.ReadTimeout, ex.Timeout),
        issubclass(ex.HTTPError, ex.RequestException),
        issubclass(ex.RequestException, IOError),
        issubclass(ex.JSONDecodeError, ValueError),
        issubclass(ex.InvalidURL, ValueError),
    ]


# --- bodies read back ----------------------------------------------------------------------

def i_json_decode_error(base):
    try:
        requests.get(base + "/json-bad").json()
    except requests.exceptions.JSONDecodeError as e:
        return [str(e), isinstance(e, ValueError), e.pos]


def i_json_catch_valueerror(base):
    try:
        requests.get(base + "/json-bad").json()
    except ValueError:
        return "caught"


def i_text_utf8(base):
    r = requests.get(base + "/text?charset=utf-8&text=Zoë")
    return [r.encoding, r.text, r.content.decode("utf-8")]


def i_text_no_charset(base):
    r = requests.get(base + "/text?text=café")
    return [r.encoding, r.text]


def i_set_encoding(base):
    r = requests.get(base + "/text?charset=utf-8&text=Zoë")
    r.encoding = "latin-1"
    return r.text


def i_json_content_type_encoding(base):
    r = requests.get(base + "/unicode")
    return [r.encoding, r.json()["emoji"]]


def i_binary_content(base):
    r = requests.get(base + "/bytes")
    return [len(r.content), r.content[:4].hex(), r.content[-2:].hex()]


def i_gzip_decoded(base):
    r = requests.get(base + "/gzip")
    return [r.json(), r.headers.get("Content-Encoding")]


def i_deflate_decoded(base):
    return requests.get(base + "/deflate").text


def i_apparent_encoding(base):
    return requests.get(base + "/text?charset=utf-8&text=plain").apparent_encoding


# --- streaming reads -----------------------------------------------------------------------

def i_stream_iter_content(base):
    r = requests.get(base + "/bytes", stream=True)
    chunks = list(r.iter_content(chunk_size=256))
    return [len(chunks), sum(len(c) for c in chunks)]


def i_iter_lines(base):
    r = requests.get(base + "/lines", stream=True)
    return [line.decode() for line in r.iter_lines()]


def i_iter_lines_decoded(base):
    r = requests.get(base + "/lines")
    return list(r.iter_lines(decode_unicode=True))


def i_stream_context_manager(base):
    with requests.get(base + "/lines", stream=True) as r:
        return r.raw.read().decode()


def i_iter_content_decoded(base):
    r = requests.get(base + "/text?charset=utf-8&text=Zoë!")
    return list(r.iter_content(chunk_size=2, decode_unicode=True))


# --- redirects and history -----------------------------------------------------------------

def i_redirect_history(base):
    r = requests.get(base + "/redirect/3")
    return [r.status_code, r.url, [h.status_code for h in r.history], [h.url for h in r.history]]


def i_redirect_history_headers(base):
    r = requests.get(base + "/redirect/2")
    return [h.headers["Location"] for h in r.history] + [r.history[0].is_redirect]


def i_redirect_not_followed(base):
    r = requests.get(base + "/redirect/1", allow_redirects=False)
    return [r.status_code, r.is_redirect, r.headers["Location"], r.history]


def i_redirect_303_post_becomes_get(base):
    r = requests.post(base + "/redirect-to?status=303&url=/echo", data="x")
    return [r.json()["method"], r.json()["body"], [h.status_code for h in r.history]]


def i_redirect_307_keeps_body(base):
    r = requests.post(base + "/redirect-to?status=307&url=/echo", data="kept")
    return [r.json()["method"], r.json()["body"]]


def i_too_many_redirects(base):
    try:
        s = requests.Session()
        s.max_redirects = 2
        s.get(base + "/redirect/5")
    except requests.exceptions.TooManyRedirects as e:
        return type(e).__name__


def i_head_does_not_follow(base):
    return requests.head(base + "/redirect/1").status_code


def i_redirect_empty_location(base):
    r = requests.get(base + "/redirect-to?url=")
    return [r.status_code, len(r.history)]


def i_gzip_members_decoded(base):
    return requests.get(base + "/gzip-members").json()


# --- cookies and sessions ------------------------------------------------------------------

def i_response_cookies(base):
    r = requests.get(base + "/set-cookie?flavour=oat&size=large")
    return [r.cookies["flavour"], r.cookies.get("size"), sorted(r.cookies.get_dict().items()), len(r.cookies)]


def i_send_cookies(base):
    return _echo(requests.get(base + "/echo", cookies={"a": "1", "b": "2"}))["cookies"]


def i_session_keeps_cookies(base):
    s = requests.Session()
    s.get(base + "/set-cookie?session=abc")
    e = _echo(s.get(base + "/echo"))
    return [e["cookies"], s.cookies.get("session"), "session" in s.cookies]


def i_session_cookie_from_redirect(base):
    s = requests.Session()
    r = s.get(base + "/set-cookie-redirect?via=redirect")
    return [r.json()["cookies"], s.cookies.get_dict(), r.cookies.get_dict()]


def i_session_cookie_deleted(base):
    s = requests.Session()
    s.get(base + "/set-cookie?gone=soon")
    s.get(base + "/delete-cookie?gone")
    return s.cookies.get_dict()


def i_session_cookie_deleted_by_redirect(base):
    s = requests.Session()
    s.get(base + "/set-cookie?sid=old")
    r = s.get(base + "/logout-redirect")
    return [r.json()["cookies"], s.cookies.get_dict()]


def i_session_cookies_set(base):
    s = requests.Session()
    s.cookies.set("manual", "yes")
    s.cookies.update({"other": "1"})
    return _echo(s.get(base + "/echo"))["cookies"]


def i_session_headers_and_params(base):
    s = requests.Session()
    s.headers.update({"X-Team": "support"})
    s.params = {"tenant": "t1"}
    e = _echo(s.get(base + "/echo", params={"q": "1"}, headers={"X-Extra": "2"}))
    return [e["query"], _seen(e, "x-team", "x-extra")]


def i_session_auth(base):
    with requests.Session() as s:
        s.auth = ("ann", "s3cret")
        return s.get(base + "/basic-auth/ann/s3cret").status_code


def i_session_context_manager(base):
    with requests.session() as s:
        return s.get(base + "/echo").json()["method"]


# --- prepared requests ---------------------------------------------------------------------

def i_prepared_request(base):
    req = requests.Request("POST", base + "/echo", json={"a": 1}, params={"p": "1"}, headers={"X-A": "b"})
    p = req.prepare()
    return [p.method, p.url, p.body.decode() if isinstance(p.body, bytes) else p.body, dict(p.headers)]


def i_session_send(base):
    s = requests.Session()
    p = requests.Request("PUT", base + "/echo", data={"k": "v"}).prepare()
    e = s.send(p).json()
    return [e["method"], e["body"], e["headers"]["content-type"]]


def i_prepare_request_merges_session(base):
    s = requests.Session()
    s.headers["X-Session"] = "yes"
    p = s.prepare_request(requests.Request("GET", base + "/echo", headers={"X-Req": "1"}))
    return [p.headers.get("X-Session"), p.headers.get("X-Req"), p.headers.get("User-Agent", "").startswith("python-requests/")]


def i_response_request(base):
    r = requests.post(base + "/echo", json={"a": 1})
    return [r.request.method, r.request.url, r.request.body, r.request.headers["Content-Type"]]


# --- links, multipart, misc ----------------------------------------------------------------

def i_links(base):
    r = requests.get(base + "/links")
    return [r.links["next"]["url"], r.links["last"], sorted(r.links)]


def i_links_absent(base):
    return requests.get(base + "/echo").links


def i_files_upload(base):
    e = _echo(requests.post(base + "/echo", files={"report": ("report.csv", b"a,b\n1,2\n", "text/csv")}))
    return [e["parts"], e["headers"]["content-type"].startswith("multipart/form-data; boundary=")]


def i_files_with_data(base):
    e = _echo(requests.post(base + "/echo", data={"title": "Q3"}, files={"f": ("notes.txt", "hello")}))
    return e["parts"]


def i_files_file_object(base):
    e = _echo(requests.post(base + "/echo", files={"upload": io.BytesIO(b"raw bytes")}))
    return e["parts"]


def i_files_list(base):
    files = [("img", ("a.png", b"\x89PNG", "image/png")), ("img", ("b.png", b"\x89PNG2", "image/png"))]
    return _echo(requests.post(base + "/echo", files=files))["parts"]


def i_response_repr(base):
    r = requests.get(base + "/status/404")
    return [repr(r), repr(requests.Request("GET", base).prepare())]


def i_elapsed_type(base):
    r = requests.get(base + "/echo")
    return [type(r.elapsed).__name__, r.elapsed.total_seconds() >= 0]


def i_version(base):
    return requests.__version__.split(".")[:2]


def i_utils_quote(base):
    return [requests.utils.quote("a b/c"), requests.utils.unquote("a%20b"), requests.utils.urlparse(base + "/x?y=1").path]


IDIOMS = {name[2:]: fn for name, fn in sorted(globals().items()) if name.startswith("i_") and callable(fn)}


def _plain(value):
    """The value as JSON can hold it: bytes as {"bytes": hex}, anything else unknown as its
    type's name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return {"type": type(value).__name__}


def observe(fn, base):
    try:
        return {"value": _plain(fn(base))}
    except Exception as e:  # noqa: BLE001 - the observation is the exception
        bases = [
            c.__name__
            for c in (requests.RequestException, requests.ConnectionError, requests.Timeout, ValueError)
            if isinstance(e, c)
        ]
        return {"raised": type(e).__name__, "is": bases}


def run_all(base):
    return {name: observe(fn, base) for name, fn in IDIOMS.items()}


def execute_action(context):
    return run_all(context["args"]["base"])


if __name__ == "__main__":
    import sys

    print(json.dumps(run_all(sys.argv[1]), sort_keys=True, ensure_ascii=False))
