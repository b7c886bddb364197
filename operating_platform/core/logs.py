"""Where the recorder's messages go: the console, and a log file kept with the dataset.

Console output goes through a queue written by a listener thread, so a message logged from
`save()` or the saver costs microseconds and never waits on a slow terminal (or a paused SSH
session). The log file is plain buffered appends, which cost about as little.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path

LOGGER = "operating_platform"


@contextmanager
def console_logging() -> Iterator[logging.Logger]:
    """Send `operating_platform` messages to stdout for the duration of the block."""
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    records: queue.SimpleQueue = queue.SimpleQueue()
    handler = QueueHandler(records)
    listener = QueueListener(records, console)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    listener.start()
    try:
        yield logger
    finally:
        listener.stop()
        logger.removeHandler(handler)
        for extra in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(extra)
            extra.close()


def attach_log_file(log_dir: Path) -> Path:
    """Also write every message, timestamped, to a new file in `log_dir` (until the block ends)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"record-{time.strftime('%Y%m%d-%H%M%S')}.log"
    file = logging.FileHandler(path, encoding="utf-8")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger(LOGGER).addHandler(file)
    return path
