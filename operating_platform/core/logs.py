"""Where the recorder's messages go: the console, and a log file kept with the dataset.

Console output goes through a queue written by a listener thread, so a message logged from
`save()` or the saver costs microseconds and never waits on a slow terminal (or a paused SSH
session). The log file is plain buffered appends, which cost about as little.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from typing import ClassVar

LOGGER = "operating_platform"


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is now, so the status line can route messages above it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


class _ConsoleFormatter(logging.Formatter):
    """Failures in red and warnings in yellow, on a terminal."""

    COLORS: ClassVar[dict[int, str]] = {logging.ERROR: "\x1b[31m", logging.WARNING: "\x1b[33m"}

    def __init__(self, color: bool) -> None:
        super().__init__("%(message)s")
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        start = self.COLORS.get(record.levelno) if self.color else None
        return f"{start}{text}\x1b[0m" if start else text


class _Admit(logging.Filter):
    """Ours from `ours` up; a library's (LeRobot's warnings, say) only from `others` up, since
    a driver warning on every tick would bury the console."""

    def __init__(self, ours: int, others: int) -> None:
        super().__init__()
        self.ours, self.others = ours, others

    def filter(self, record: logging.LogRecord) -> bool:
        mine = record.name == LOGGER or record.name.startswith(LOGGER + ".")
        return record.levelno >= (self.ours if mine else self.others)


@contextmanager
def console_logging() -> Iterator[logging.Logger]:
    """Send `operating_platform` messages (and libraries' errors) to stdout for the block."""
    console = _ConsoleHandler(sys.stdout)
    console.setFormatter(_ConsoleFormatter(color=sys.stdout.isatty()))
    records: queue.SimpleQueue = queue.SimpleQueue()
    handler = QueueHandler(records)
    handler.addFilter(_Admit(logging.INFO, logging.ERROR))
    listener = QueueListener(records, console)
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    # On the root logger, so that a library's messages go the same way as ours instead of onto
    # stderr, across the status line.
    root = logging.getLogger()
    root.addHandler(handler)
    listener.start()
    try:
        yield logger
    except (Exception, KeyboardInterrupt):
        # With the terminal gone (a hang-up), the traceback Python prints would reach no one: the
        # session's log file is what is left to read afterwards.
        error_to_log_file("The session ended with this error:", exc_info=True)
        raise
    finally:
        listener.stop()
        root.removeHandler(handler)
        for extra in [h for h in root.handlers if isinstance(h, _LogFile)]:
            root.removeHandler(extra)
            extra.close()


class _LogFile(logging.FileHandler):
    """The session's log file: ours from INFO, libraries' from WARNING. A line it cannot write
    (a full disk) is left out of the file, in silence: the console has it, and logging's own
    report would be a traceback on the operator's screen."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handleError(record)

    def close(self) -> None:
        # Closing flushes what the full disk refused once more; those lines are left out as well.
        with contextlib.suppress(OSError):
            super().close()


def error_to_log_file(message: str, exc_info: bool = False) -> None:
    """Write an error the operator was shown elsewhere (stderr) to the session's log file, if
    one is open, and nowhere else; with `exc_info`, the exception being handled and its traceback."""
    record = logging.getLogger(LOGGER).makeRecord(
        LOGGER, logging.ERROR, __file__, 0, message, None, sys.exc_info() if exc_info else None
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _LogFile):
            handler.handle(record)


def attach_log_file(log_dir: Path) -> Path:
    """Also write every message, timestamped, to a new file in `log_dir` (until the block ends)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"record-{time.strftime('%Y%m%d-%H%M%S')}.log"
    file = _LogFile(path, encoding="utf-8")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file.addFilter(_Admit(logging.INFO, logging.WARNING))
    logging.getLogger().addHandler(file)
    return path
