"""The operator's keys, read from the terminal itself: no X server, no extra window, works over SSH.

The terminal is switched to cbreak mode (one key at a time, no echo; Ctrl-C still sends
SIGINT) and restored on every way out: leaving the block, an exception, normal exit, and the
immediate exit of a second Ctrl-C (`restore()` is safe to call from there).
"""

from __future__ import annotations

import atexit
import os
import select
import sys
import termios
import tty
from typing import TextIO

# Escape sequences of the keys we use, as terminals send them.
SEQUENCES = {
    b"\x1b[C": "right",
    b"\x1bOC": "right",
    b"\x1b[D": "left",
    b"\x1bOD": "left",
    b"\x1b": "esc",
    b"\r": "enter",
    b"\n": "enter",
    b" ": "space",
}


def decode_key(data: bytes) -> str | None:
    """A key name for what one read returned: `right`, `esc`, `space`, or a lower-case letter."""
    if data in SEQUENCES:
        return SEQUENCES[data]
    if len(data) == 1 and data.isalpha():
        return data.decode().lower()
    return None


class TerminalKeys:
    """Reads single keys from a terminal while the block is active."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self.fd = self.stream.fileno()
        self._saved: list | None = None

    @staticmethod
    def available(stream: TextIO | None = None) -> bool:
        stream = stream or sys.stdin
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def __enter__(self) -> TerminalKeys:
        self._saved = termios.tcgetattr(self.fd)
        atexit.register(self.restore)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.restore()
        atexit.unregister(self.restore)

    def restore(self) -> None:
        """Put the terminal back as it was (idempotent)."""
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read_key(self, timeout: float) -> str | None:
        """The next key pressed within `timeout` seconds, or None."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        data = os.read(self.fd, 16)
        if data == b"\x1b":
            # An escape sequence arrives in one burst; a lone Esc does not continue.
            more, _, _ = select.select([self.fd], [], [], 0.03)
            if more:
                data += os.read(self.fd, 16)
        return decode_key(data)

    def read_line(self, prompt: str) -> str:
        """Ask for a line of text (the terminal is in its normal mode meanwhile)."""
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        try:
            sys.stdout.write(prompt)
            sys.stdout.flush()
            return self.stream.readline().strip()
        finally:
            if self._saved is not None:
                tty.setcbreak(self.fd)
