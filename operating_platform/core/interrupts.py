"""Ctrl-C and SIGTERM: the first asks the session to stop cleanly, the second exits at once.

The handler only sets a flag that the operator's loop polls, so an interrupt can never land
in the middle of ending an episode or publishing one. Exiting at once loses nothing either:
every captured frame is already in a journal, and the next start (or `dorobot recover`)
finishes what was left.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Turns SIGINT/SIGTERM into a stop request while installed (as a context manager)."""

    def __init__(self, second_message: str, on_exit_now: Callable[[], None] | None = None) -> None:
        self.requested = threading.Event()
        self.signum: int | None = None
        self._second_message = second_message
        self._on_exit_now = on_exit_now  # e.g. restore the terminal: os._exit skips every finally
        self._previous: dict[int, object] = {}

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested.is_set():
            if self._on_exit_now is not None:
                self._on_exit_now()
            sys.stderr.write(f"\n{signal.Signals(signum).name} again: {self._second_message}\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signum = signum
        self.requested.set()

    def __enter__(self) -> Interrupts:
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if a stop was requested meanwhile."""
        return self.requested.wait(seconds)
