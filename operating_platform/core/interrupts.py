"""Ctrl-C, SIGTERM and SIGHUP: the first asks the session to stop cleanly, a second exits at once.

The handler only sets a flag that the operator's loop polls, so an interrupt can never land
in the middle of ending an episode or publishing one. Exiting at once loses nothing either:
every captured frame is already in a journal, and the next start (or `dorobot recover`)
finishes what was left.

SIGHUP means the terminal is gone (an SSH connection dropped): every later write to it would
fail with EIO, so the terminal's descriptors are pointed at /dev/null and the session finishes
its saves with the log file in `.dorobot/logs/` as its only record. A SIGHUP sent while the
terminal is still there (`kill -HUP`) leaves it restored first, in its normal mode. A hang-up
is never taken as the "second" signal: nobody is at that terminal to ask for a hurried exit.
A SIGHUP already ignored when the session starts (`nohup`) stays ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from operating_platform.core.keyboard import is_terminal

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupts:
    """Turns SIGINT/SIGTERM/SIGHUP into a stop request while installed (as a context manager)."""

    def __init__(self, second_message: str, restore_terminal: Callable[[], None] | None = None) -> None:
        self.requested = threading.Event()
        self.signum: int | None = None
        self._second_message = second_message
        # Called before an immediate exit (os._exit skips every finally) and before the
        # terminal is let go of on a hang-up; harmless on a terminal that is gone.
        self._restore_terminal = restore_terminal
        self._previous: dict[int, object] = {}
        self._terminal_fds: list[int] = []

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._detach_terminal()
            if self.requested.is_set():
                return
        if self.requested.is_set():
            if self._restore_terminal is not None:
                self._restore_terminal()
            with contextlib.suppress(OSError):
                sys.stderr.write(f"\n{signal.Signals(signum).name} again: {self._second_message}\n")
                sys.stderr.flush()
            os._exit(128 + signum)
        self.signum = signum
        self.requested.set()

    def hang_up(self) -> None:
        """The terminal is gone, whether or not a SIGHUP said so: stop as on the first signal."""
        self._handle(signal.SIGHUP, None)

    def _detach_terminal(self) -> None:
        """Point the descriptors that were the terminal at /dev/null, so writes keep succeeding."""
        # Taken before anything else: the kernel's SIGHUP can run this again, in the middle of
        # the call a read of the hung-up terminal made, and the second call must find it done.
        fds, self._terminal_fds = self._terminal_fds, []
        if not fds:
            return
        if self._restore_terminal is not None:
            self._restore_terminal()
        with contextlib.suppress(OSError):  # below the status line, which stays as it was
            os.write(fds[-1], b"\n")
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            for fd in fds:
                os.dup2(devnull, fd)
        finally:
            os.close(devnull)

    def __enter__(self) -> Interrupts:
        self._terminal_fds = [fd for fd in (0, 1, 2) if is_terminal(fd)]
        for signum in HANDLED:
            if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                continue  # started under `nohup`: asked to outlive its terminal
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if a stop was requested meanwhile."""
        return self.requested.wait(seconds)
