"""stdout and stderr for one job, sent to the host as they are written.

The host keeps the job's logs (so a job stopped by a limit still reports what it printed) and
enforces the log limit; this side only stops sending once the budget is spent, so that a print
flood costs no host calls after the first overflowing write.
"""

import io
import sys

from wit_world.imports import logs as _logs


class _Stream(io.TextIOBase):
    def __init__(self, capture, channel, name):
        self._capture = capture
        self._channel = channel
        self.name = name

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._capture.send(self._channel, text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


class Capture:
    """Both streams share one budget, in bytes of UTF-8 as the result reports them."""

    def __init__(self, limit):
        self.remaining = limit
        self.stdout = _Stream(self, _logs.Channel.STDOUT, "<stdout>")
        self.stderr = _Stream(self, _logs.Channel.STDERR, "<stderr>")
        self._saved = None

    def send(self, channel, text):
        if self.remaining < 0 or not text:
            return
        # len(text) <= UTF-8 bytes <= 4 * len(text): count exactly only near the limit.
        size = len(text) if len(text) * 4 <= self.remaining else len(text.encode("utf-8", "replace"))
        # Past the budget the host keeps what fits and flags the rest; nothing more is sent.
        self.remaining -= size
        _logs.write(channel, text)

    def arm(self, limit):
        """Gives the job's budget (the streams are made once, at build time)."""
        self.remaining = limit
        return self

    def install(self):
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = self.stdout, self.stderr

    def uninstall(self):
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
