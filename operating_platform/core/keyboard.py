"""The operator's keys, read from the terminal itself: no X server, no extra window, works over SSH.

The terminal is switched to cbreak mode (one key at a time, no echo; Ctrl-C still sends
SIGINT) and restored on every way out: leaving the block, an exception, normal exit, and the
immediate exit of a second Ctrl-C (`restore()` is safe to call from there). A terminal that
hangs up (an SSH connection dropping) is noticed even when no SIGHUP reaches the recorder (a
shell around it that survives the hang-up), and restoring a terminal that is gone is a no-op.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import sys
import termios
import tty
from collections.abc import Callable
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


def is_terminal(fd: int) -> bool:
    """Whether `fd` is a terminal; False for one that has hung up (its ioctls fail with EIO)."""
    try:
        return os.isatty(fd)
    except OSError:
        return False


class TerminalKeys:
    """Reads single keys from a terminal while the block is active.

    `on_hang_up` is called once if the terminal stops being one while keys are read.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self.fd = self.stream.fileno()
        self._saved: list | None = None
        self.on_hang_up: Callable[[], None] | None = None

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
        """Put the terminal back as it was (idempotent; nothing to do once it has hung up)."""
        if self._saved is not None:
            # After a hang-up there is no terminal left to restore (EIO, or ENOTTY on /dev/null).
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read_key(self, timeout: float) -> str | None:
        """The next key pressed within `timeout` seconds, or None."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        try:
            data = os.read(self.fd, 16)
        except OSError:  # EIO: the terminal has hung up
            data = b""
        if not data:  # a hung-up terminal reads as end of file at once, every time
            self._hung_up()
            return None
        if data == b"\x1b":
            # An escape sequence arrives in one burst; a lone Esc does not continue.
            more, _, _ = select.select([self.fd], [], [], 0.03)
            if more:
                data += os.read(self.fd, 16)
        return decode_key(data)

    def _hung_up(self) -> None:
        if self.on_hang_up is not None and not is_terminal(self.fd):
            on_hang_up, self.on_hang_up = self.on_hang_up, None
            on_hang_up()

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
