"""Streams: sources that deliver messages on their own clock, sampled by the capture tick.

A camera or an arm driven by another process (a dora dataflow, a reader thread) delivers
messages when it has them, not when the recorder ticks. Its receiving thread puts each message
into a `Latest`; the capture tick takes whatever is newest without waiting, and records how old
it was and whether it was the same message as the tick before (a repeated frame).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Arrival:
    """Which message of a stream a tick used, and when that message arrived.

    `seq` counts the stream's messages (a tick seeing the same `seq` as the tick before got a
    repeated frame); `time` is `time.monotonic()` at arrival.
    """

    seq: int
    time: float


class Latest(Generic[T]):
    """The newest message of one stream and its arrival; written by one thread, read by any.

    `put` and `get` never wait on each other for longer than a pointer swap, so a capture tick
    reading it is never held up by a socket or a camera.
    """

    def __init__(self) -> None:
        self._item: tuple[T, Arrival] | None = None
        self._seq = 0
        self._first = threading.Event()

    def put(self, value: T, arrived: float | None = None) -> None:
        self._item = (value, Arrival(self._seq, time.monotonic() if arrived is None else arrived))
        self._seq += 1
        self._first.set()

    def get(self) -> tuple[T, Arrival] | None:
        """The newest message and its arrival, or None before the first one."""
        return self._item

    def wait_first(self, timeout_s: float) -> bool:
        """Wait until a first message has arrived; False if none did within `timeout_s`."""
        return self._first.wait(timeout_s)


class StreamStale(TimeoutError):
    """A stream sent nothing new for longer than the robot's `stale_timeout_s`."""
