"""`UploadProcess`: the recorder's handle on the background upload of its dataset.

    upload = UploadProcess(root, "s3://bucket/prefix").start()
    upload.status().describe()        # "upload: 3 episodes, 41.0 MB left"
    upload.finish_session(timeout_s=120, interrupted=lambda: False)

The upload runs in `operating_platform.upload.worker`, a separate process at the lowest
priority; this side only reads the short status lines it writes, on a thread of its own that
sleeps in a blocking read, so nothing here ever holds up a capture tick or a save. It notices
committed episodes by itself (info.json changes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import operating_platform
from operating_platform.dataset.metadata import PRIVATE_DIR
from operating_platform.upload.destination import Destination, parse_destination
from operating_platform.upload.sync import Left, Uploader
from operating_platform.upload.worker import LOWEST_NICENESS, MODULE, lower_priority

# The folder holding the `operating_platform` package: the worker imports this very copy.
PACKAGE_PARENT = Path(operating_platform.__file__).resolve().parents[1]
MAX_RESTARTS = 5
RESTART_AFTER_S = 5.0
WAIT_REPORT_EVERY_S = 5.0
log = logging.getLogger("operating_platform.upload")


@dataclass(frozen=True)
class UploadStatus:
    """The upload's state as last reported: `state` is starting, uploading, idle (up to date),
    retrying (after a failure: `error` says what, `permanent` if it needs someone to act),
    done (finished at the end of a session) or stopped (the process is gone)."""

    state: str
    episodes: int = 0
    bytes: int = 0
    error: str | None = None
    permanent: bool = False

    @property
    def left(self) -> Left:
        return Left(self.episodes, self.bytes)

    def describe(self) -> str:
        """The status line's part: `upload: 3 episodes, 41.0 MB left` and the like."""
        if self.state in ("idle", "done") or (self.state == "uploading" and self.left.nothing):
            return "upload: up to date"
        if self.state == "starting":
            return "upload: starting"
        if self.state == "retrying":
            what = self.left.describe() + ", " if not self.left.nothing else ""
            return f"upload: {what}retrying ({self.error})"
        if self.state == "stopped":
            return f"upload: stopped ({self.error})"
        return f"upload: {self.left.describe()}"


class UploadProcess:
    """Uploads the dataset at `root` to `destination` in the background while it is recorded.

    It promises: the recorder is never slowed (a separate process, nice 19, idle I/O class);
    each episode goes up once committed, and the remote copy is a valid dataset after every
    completed round; a failure never reaches the recording: it is retried with backoff and
    said once in the log; a dead upload process is started again; `finish_session` waits a
    bounded time and says in one line what is left and how to finish it.
    """

    def __init__(self, root: Path, destination: str, niceness: int = LOWEST_NICENESS) -> None:
        self.root = Path(root).absolute()
        self.dest: Destination = parse_destination(destination, self.root)
        self.niceness = niceness
        self._status = UploadStatus("starting")
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._said: UploadStatus | None = None  # the failure said, until the upload goes again

    @classmethod
    def for_session(cls, root: Path, destination: str) -> UploadProcess | None:
        """The upload of a recording session, started; None (said in the log) if it cannot
        start: the recording goes on either way."""
        try:
            return cls(root, destination).start()
        except (OSError, ValueError) as exc:
            log.warning(
                f"The upload to {destination} cannot start ({exc}); recording locally only, "
                f"`dorobot push {shlex.quote(str(root))} DEST` uploads it later"
            )
            return None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def start(self) -> UploadProcess:
        self._process = self._spawn()
        # At once, from here: the worker lowers itself too, but only once Python has started.
        lower_priority(self._process.pid, self.niceness)
        self._thread = threading.Thread(target=self._supervise, name="upload-status", daemon=True)
        self._thread.start()
        return self

    def status(self) -> UploadStatus:
        return self._status

    def _spawn(self) -> subprocess.Popen:
        logs = self.root / PRIVATE_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"upload-{time.strftime('%Y%m%d-%H%M%S')}.log", "ab") as errors:
            # Run from the package's own folder: `-m` puts the working directory first on the
            # child's path, and the operator's folder may hold modules named like ours.
            return subprocess.Popen(
                [sys.executable, "-m", MODULE, str(self.root), self.dest.url, str(self.niceness)],
                cwd=PACKAGE_PARENT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                start_new_session=True,
            )

    def _supervise(self) -> None:
        restarts = 0
        while True:
            process = self._process
            assert process is not None and process.stdout is not None
            self._read(process.stdout)
            code = process.wait()
            if self._stopping:
                return
            cause = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            self._update(UploadStatus("stopped", error=f"the upload process ended ({cause})"))
            if restarts >= MAX_RESTARTS:
                return
            restarts += 1
            time.sleep(RESTART_AFTER_S)
            with self._lock:  # stop() must find the process it is to end, not the one before
                if self._stopping:
                    return
                try:
                    self._process = self._spawn()
                    lower_priority(self._process.pid, self.niceness)
                except OSError as exc:
                    self._update(UploadStatus("stopped", error=f"cannot start the upload process ({exc})"))
                    return

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            try:
                message = json.loads(raw)
                status = UploadStatus(
                    state=str(message["state"]),
                    episodes=int(message.get("episodes", 0)),
                    bytes=int(message.get("bytes", 0)),
                    error=message.get("error"),
                    permanent=bool(message.get("permanent")),
                )
            except (ValueError, KeyError, TypeError):
                continue
            self._update(status)

    def _update(self, status: UploadStatus) -> None:
        self._status = status
        # A failure is said once, and its end once; the status line shows what happens between.
        # Only a failure turning into one that needs someone to act is said again.
        said = self._said
        if status.error:
            if said is None or (status.permanent and not said.permanent):
                self._said = status
                later = "every minute" if status.permanent else "with backoff"
                log.warning(
                    f"Upload to {self.dest.url}: {status.error}; retrying {later}, the recording goes on"
                )
        elif said is not None and status.state in ("uploading", "idle", "done"):
            self._said = None
            log.info(f"Upload to {self.dest.url}: going again")

    def stop(
        self,
        timeout_s: float,
        interrupted: Callable[[], bool] = lambda: False,
        on_wait: Callable[[UploadStatus], None] | None = None,
    ) -> UploadStatus:
        """Ask for everything committed to be uploaded, wait up to `timeout_s` (less on a failure
        that needs someone to act, or once `interrupted()`), then end the process."""
        with self._lock:
            self._stopping = True
            process = self._process
        if process is None:
            return self._status
        with contextlib.suppress(OSError, ValueError):
            assert process.stdin is not None
            process.stdin.write(b"finish\n")
            process.stdin.flush()
        deadline = time.monotonic() + max(0.0, timeout_s)
        while time.monotonic() < deadline and process.poll() is None:
            status = self._status
            if status.state == "done" or (status.state == "retrying" and status.permanent) or interrupted():
                break
            if on_wait is not None:
                on_wait(status)
            time.sleep(0.1)
        with contextlib.suppress(OSError, ValueError):
            assert process.stdin is not None
            process.stdin.close()  # the worker exits at end of input, wherever it is
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._thread is not None:
            self._thread.join(5.0)
        return self._status

    def left(self) -> Left:
        """What the destination still lacks, from the dataset and the ledger (no network)."""
        return Uploader(self.root, self.dest).left()

    def finish_session(self, timeout_s: float, interrupted: Callable[[], bool]) -> bool:
        """At the end of a recording session: wait for the upload up to `timeout_s`, then say
        in one line that it is complete, or what is left and the command that finishes it.
        True if the destination holds everything committed."""
        url = self.dest.url
        if timeout_s > 0 and not interrupted():
            left = self._left_or_none()
            if left is not None and not left.nothing:
                log.info(f"Uploading to {url}: {left.describe()} (waiting up to {timeout_s:g} s)")
        last = [time.monotonic()]

        def waiting(status: UploadStatus) -> None:
            if time.monotonic() - last[0] >= WAIT_REPORT_EVERY_S:
                last[0] = time.monotonic()
                log.info(f"Uploading to {url}: {status.describe().removeprefix('upload: ')}")

        status = self.stop(timeout_s if not interrupted() else 0.0, interrupted, waiting)
        left = self._left_or_none()
        if status.state == "done" or (left is not None and left.nothing):
            log.info(f"✓ Upload to {url} complete")
            return True
        what = left.describe() if left is not None else "some episodes left"
        why = f" ({status.error})" if status.error else ""
        command = f"dorobot push {shlex.quote(str(self.root))} {shlex.quote(url)}"
        log.warning(f"Upload to {url} not finished: {what}{why}; `{command}` finishes it")
        return False

    def _left_or_none(self) -> Left | None:
        try:
            return self.left()
        except Exception:  # the dataset cannot be read (it was moved away): say so without numbers
            return None
