"""Locks that keep two processes from writing one dataset at once.

- `session.lock`, exclusive: held by a recorder or by recovery for as long as it works on the
  dataset. A second one is refused at once with a clear message.
- `encoder.lock`, shared by the encoder processes: recovery takes it exclusively, so it waits
  until an encoder left behind by a killed recorder has noticed and quit, instead of racing it.
  The compressor process holds it shared too.
- `compress.lock`, exclusive: held by the one process compressing the dataset's videos.
- `files.lock`, exclusive: held for the moment a committed file is replaced or renamed (a
  compressed copy swapped in, files packed), by whichever process does it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from operating_platform.dataset.metadata import PRIVATE_DIR, DatasetError

SESSION_LOCK = "session.lock"
ENCODER_LOCK = "encoder.lock"
FILES_LOCK = "files.lock"
COMPRESS_LOCK = "compress.lock"


class FileLock:
    """An flock on a file under `ROOT/.dorobot/`; released on `release()` or process exit."""

    def __init__(self, root: Path, name: str) -> None:
        self.path = Path(root) / PRIVATE_DIR / name
        self._fd: int | None = None

    def acquire(self, exclusive: bool = True, wait_s: float = 0.0) -> bool:
        """Take the lock; False if it is still held elsewhere after `wait_s` seconds."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
        if exclusive:
            # Only to name the holder in messages: a full disk must not stop recovery from starting.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_session(root: Path) -> FileLock:
    """Take the dataset's session lock, or raise `DatasetError` naming the process that has it."""
    lock = FileLock(root, SESSION_LOCK)
    if not lock.acquire():
        raise DatasetError(
            f"{root} is in use by another dorobot process (pid {lock.holder()}); wait for it to finish"
        )
    return lock
