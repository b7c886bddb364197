"""The upload process: `python -m operating_platform.upload.worker ROOT DEST [NICENESS]`.

It runs at the lowest CPU priority (nice 19) and, where the kernel has it, in the idle I/O
class, so it only ever uses what capture, encoding and saving leave over. It is a fresh
interpreter in a session of its own (see `dataset/encode_worker.py` for why): Ctrl-C at the
recorder never reaches it, the recorder decides.

Its standard input comes from the recorder: a line `finish` asks it to upload what is
committed and exit; end of file means the recorder is gone, and it exits at once (the ledger
makes the next upload resume where this one stopped). On standard output it writes one JSON
object per line, the latest state:

    {"state": "uploading", "episodes": 3, "bytes": 43000000, "error": null, "permanent": false}

with state one of `starting`, `uploading`, `idle`, `retrying`, `done`. Its own log (what
failed, with details) goes to standard error, which the recorder points at a log file.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from operating_platform.dataset.lock import FileLock
from operating_platform.upload.destination import DestinationError, parse_destination
from operating_platform.upload.ledger import UPLOAD_DIR
from operating_platform.upload.sync import Backoff, Left, Uploader, describe_failure

MODULE = "operating_platform.upload.worker"
LOWEST_NICENESS = 19
POLL_S = 1.0
REPORT_EVERY_S = 0.25
# ioprio_set(2): its number per architecture, the idle class, and "this process".
IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "armv7l": 314, "i686": 289}
IOPRIO_CLASS_IDLE, IOPRIO_CLASS_SHIFT, IOPRIO_WHO_PROCESS = 3, 13, 1


def lower_priority(pid: int = 0, niceness: int = LOWEST_NICENESS) -> None:
    """Give process `pid` (0: this one) the CPU priority `niceness` and, where the kernel has
    it, the idle I/O class."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    number = IOPRIO_SET.get(platform.machine())
    if number is None or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(number, IOPRIO_WHO_PROCESS, pid, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT)


def upload_lock(root: Path, key: str) -> FileLock:
    return FileLock(root, f"{UPLOAD_DIR}/{key}.lock")


class _Channel:
    """Reports to the recorder, no more often than needed, and listens for `finish`."""

    def __init__(self) -> None:
        self.finishing = threading.Event()
        self.wake = threading.Event()
        self._last: dict[str, Any] = {}
        self._sent_at = 0.0
        self._lock = threading.Lock()

    def listen(self) -> None:
        for line in sys.stdin:
            if line.strip() == "finish":
                self.finishing.set()
                self.wake.set()
        # The recorder closed the pipe or died: nobody is left to report to. Whatever is
        # complete is in the ledger; the next upload resumes from there.
        os._exit(0)

    def report(self, state: str, left: Left, error: str | None = None, permanent: bool = False) -> None:
        message = {"state": state, "episodes": left.episodes, "bytes": left.bytes}
        message.update(error=error, permanent=permanent)
        with self._lock:
            now = time.monotonic()
            same_state = self._last.get("state") == state and self._last.get("error") == error
            if same_state and now - self._sent_at < REPORT_EVERY_S and state == "uploading":
                return
            if message == self._last:
                return
            self._last, self._sent_at = message, now
            try:
                sys.stdout.write(json.dumps(message) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)

    def progress(self, left: Callable[[], Left]) -> None:
        """Report the upload's progress, working out what is left only when it is reported."""
        if time.monotonic() - self._sent_at >= REPORT_EVERY_S or self._last.get("state") != "uploading":
            self.report("uploading", left())

    def wait(self, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()


def _info_signature(root: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(root / "meta" / "info.json")
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino


def serve(root: Path, uploader: Uploader, channel: _Channel) -> int:
    """Upload round after round until asked to finish and nothing is left."""
    backoff = Backoff()
    empty = Left(0, 0)
    lock = upload_lock(root, uploader.dest.key)
    while not lock.acquire():
        channel.report(
            "retrying", empty, f"another upload to {uploader.dest.url} is running (pid {lock.holder()})"
        )
        channel.wait(5.0)
    channel.report("starting", empty)
    while True:
        seen = _info_signature(root)
        try:
            plan = uploader.run_round(progress=lambda _n: channel.progress(uploader.left))
        except Exception as exc:
            failure = describe_failure(exc, uploader.dest)
            print(
                f"{time.strftime('%H:%M:%S')} upload round failed: {type(exc).__name__}: {failure.message}",
                file=sys.stderr,
                flush=True,
            )
            left = _left_or(uploader, empty)
            channel.report("retrying", left, failure.message, failure.permanent)
            channel.wait(backoff.next(failure.permanent))
            continue
        backoff.reset()
        if plan is not None:
            continue  # more may have been committed meanwhile
        channel.report("idle", Left(0, 0))
        if channel.finishing.is_set():
            channel.report("done", Left(0, 0))
            return 0
        while _info_signature(root) == seen and not channel.finishing.is_set():
            channel.wait(POLL_S)


def _left_or(uploader: Uploader, default: Left) -> Left:
    try:
        return uploader.left()
    except Exception:  # the dataset itself cannot be read: the failure says why
        return default


def main(argv: Sequence[str]) -> int:
    root, url = Path(argv[0]), argv[1]
    niceness = int(argv[2]) if len(argv) > 2 else LOWEST_NICENESS
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lower_priority(0, niceness)
    channel = _Channel()
    threading.Thread(target=channel.listen, name="upload-stdin", daemon=True).start()
    try:
        dest = parse_destination(url, root)
    except DestinationError as exc:
        channel.report("retrying", Left(0, 0), str(exc), True)
        channel.finishing.wait()
        return 2
    return serve(root, Uploader(root, dest), channel)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
