"""The loopback HTTP server of the `requests` differential suite (tests/requests_parity).

One real HTTP/1.1 server (the standard library's) that both sides talk to: real `requests`
in native CPython and the sandbox's `requests` through the worker's egress. It prints
`listening on PORT` and serves until its stdin closes. Every answer is a function of the
request only, so the two sides' observations compare.
"""

import base64
import email.parser
import gzip
import json
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


def _parts(content_type, body):
    """A multipart/form-data body as [{name, filename, content_type, content}]."""
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    parts = []
    for part in message.get_payload():
        parts.append(
            {
                "name": part.get_param("name", header="content-disposition"),
                "filename": part.get_param("filename", header="content-disposition"),
                "content_type": part.get("content-type"),
                "content": part.get_payload(decode=True).decode("utf-8", "replace"),
            }
        )
    return parts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    return body
                body += chunk
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body=b"", headers=(), reason=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status, reason)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value, status=200, headers=()):
        self._send(status, json.dumps(value, sort_keys=True), [("Content-Type", "application/json"), *headers])

    def _echo(self, url, body):
        content_type = self.headers.get("Content-Type") or ""
        cookies = {}
        for pair in (self.headers.get("Cookie") or "").split(";"):
            if "=" in pair:
                key, _, value = pair.strip().partition("=")
                cookies[key] = value
        echo = {
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "args": parse_qsl(url.query, keep_blank_values=True),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "cookies": cookies,
            "body": body.decode("latin-1"),
        }
        if content_type.startswith("multipart/form-data"):
            echo["parts"] = _parts(content_type, body)
            echo["body"] = len(body)
        self._json(echo)

    def _route(self):
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._body()
        path = url.path
        if path == "/echo" or path.startswith("/echo/"):
            return self._echo(url, body)
        if path.startswith("/status/"):
            return self._send(int(path.split("/")[2]), "status body", [("Content-Type", "text/plain")], query.get("reason"))
        if path.startswith("/redirect/"):
            n = int(path.split("/")[2])
            target = f"/redirect/{n - 1}" if n > 1 else "/echo"
            return self._send(302, "", [("Location", target)])
        if path == "/redirect-to":
            return self._send(int(query.get("status", "302")), "", [("Location", query["url"])])
        if path == "/set-cookie":
            headers = [("Set-Cookie", f"{k}={v}; Path=/") for k, v in query.items()]
            return self._json({"set": sorted(query)}, headers=headers)
        if path == "/set-cookie-redirect":
            headers = [("Set-Cookie", f"{k}={v}; Path=/") for k, v in query.items()]
            return self._send(302, "", [("Location", "/echo"), *headers])
        if path == "/delete-cookie":
            headers = [("Set-Cookie", f"{k}=; Max-Age=0; Path=/") for k in query]
            return self._json({}, headers=headers)
        if path == "/logout-redirect":
            return self._send(302, "", [("Location", "/echo"), ("Set-Cookie", "sid=; Max-Age=0; Path=/")])
        if path == "/gzip-members":
            body = gzip.compress(b'{"part": 1, ') + gzip.compress(b'"more": 2}')
            return self._send(200, body, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")])
        if path == "/links":
            host = self.headers.get("Host")
            link = f'<http://{host}/items?page=2>; rel="next", <http://{host}/items?page=9>; rel="last"'
            return self._json([1, 2], headers=[("Link", link)])
        if path == "/text":
            charset = query.get("charset")
            text = query.get("text", "café")
            content_type = "text/plain" + (f"; charset={charset}" if charset else "")
            return self._send(200, text.encode(charset or "latin-1"), [("Content-Type", content_type)])
        if path == "/bytes":
            return self._send(200, bytes(range(256)) * 4, [("Content-Type", "application/octet-stream")])
        if path == "/lines":
            return self._send(200, "first\nsecond\r\nthird\n\nlast", [("Content-Type", "text/plain; charset=utf-8")])
        if path == "/json-bad":
            return self._send(200, "not json {", [("Content-Type", "application/json")])
        if path == "/unicode":
            return self._json({"name": "Zoë", "city": "Zürich", "emoji": "✓"})
        if path == "/gzip":
            return self._send(200, gzip.compress(b'{"compressed": true}'), [("Content-Type", "application/json"), ("Content-Encoding", "gzip")])
        if path == "/deflate":
            return self._send(200, zlib.compress(b"deflated text"), [("Content-Type", "text/plain"), ("Content-Encoding", "deflate")])
        if path == "/multi-header":
            return self._send(200, "", [("X-Multi", "one"), ("X-Multi", "two"), ("Content-Type", "text/plain")])
        if path == "/no-content":
            self.send_response(204)
            self.end_headers()
            return None
        if path == "/slow":
            time.sleep(float(query.get("s", "2")))
            return self._send(200, "late")
        if path.startswith("/basic-auth/"):
            _, _, user, password = path.split("/")
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if self.headers.get("Authorization") == expected:
                return self._json({"authenticated": True, "user": user})
            return self._send(401, "", [("WWW-Authenticate", 'Basic realm="parity"')])
        return self._send(404, "no such route", [("Content-Type", "text/plain")])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _route


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up (the timeout idiom) is not an error of the suite


def main():
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"listening on {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
