"""Where the recorder's messages go: the console, and a log file kept with the dataset.

Records are handed to a queue and written by a listener thread, so a message logged from
`save()` or the saver costs microseconds and never waits on a slow terminal or disk.
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


@contextmanager
def session_logging(log_dir: Path) -> Iterator[Path]:
    """Send `operating_platform` messages to stdout and to a new file in `log_dir` meanwhile."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"record-{time.strftime('%Y%m%d-%H%M%S')}.log"
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    file = logging.FileHandler(path, encoding="utf-8")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    records: queue.SimpleQueue = queue.SimpleQueue()
    handler = QueueHandler(records)
    listener = QueueListener(records, console, file, respect_handler_level=False)
    logger = logging.getLogger("operating_platform")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    listener.start()
    try:
        yield path
    finally:
        listener.stop()
        logger.removeHandler(handler)
        file.close()
