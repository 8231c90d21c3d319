"""stdout and stderr for one job: kept in memory, cut at the job's log limit."""

import io
import sys


class _Stream(io.TextIOBase):
    def __init__(self, capture, name):
        self._capture = capture
        self._parts = []
        self.name = name

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._capture.take(self, text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


class Capture:
    """Both streams share one budget in bytes of UTF-8, as the result reports them."""

    def __init__(self, limit):
        self.remaining = limit
        self.truncated = False
        self.stdout = _Stream(self, "<stdout>")
        self.stderr = _Stream(self, "<stderr>")
        self._saved = None

    def take(self, stream, text):
        if self.truncated or not text:
            if text:
                self.truncated = True
            return
        data = text.encode("utf-8", "replace")
        if len(data) > self.remaining:
            data = data[: self.remaining]
            self.truncated = True
            text = data.decode("utf-8", "ignore")
        self.remaining -= len(data)
        stream._parts.append(text)

    def install(self):
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = self.stdout, self.stderr

    def uninstall(self):
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved

    def collect(self):
        return {
            "stdout": "".join(self.stdout._parts),
            "stderr": "".join(self.stderr._parts),
            "truncated": self.truncated,
        }
