"""`requests.auth`: authentication attached to a request."""

import base64


def _basic_auth_str(username, password):
    if isinstance(username, str):
        username = username.encode("latin-1")
    if isinstance(password, str):
        password = password.encode("latin-1")
    return "Basic " + base64.b64encode(username + b":" + password).decode("ascii")


class AuthBase:
    """Subclass and define `__call__(self, request)`: it may change the prepared request."""

    def __call__(self, r):
        raise NotImplementedError("Auth hooks must be callable.")


class HTTPBasicAuth(AuthBase):
    def __init__(self, username, password):
        self.username = username
        self.password = password

    def __eq__(self, other):
        return (self.username, self.password) == (getattr(other, "username", None), getattr(other, "password", None))

    def __call__(self, r):
        r.headers["Authorization"] = _basic_auth_str(self.username, self.password)
        return r


class HTTPProxyAuth(HTTPBasicAuth):
    def __call__(self, r):
        r.headers["Proxy-Authorization"] = _basic_auth_str(self.username, self.password)
        return r


class HTTPDigestAuth(AuthBase):
    """Not offered: digest authentication needs the server's challenge first (docs/actions.md)."""

    def __init__(self, username, password):
        raise NotImplementedError(
            "requests.auth.HTTPDigestAuth is not available in actions: send the Authorization "
            "header yourself, or use basic or bearer authentication"
        )
