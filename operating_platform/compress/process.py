"""`CompressProcess`: the recorder's handle on the background compression of its dataset.

    compress = CompressProcess.for_session(root, may_run=lambda: not recording and not encoding)
    compress.status().describe()           # "compress: 4 episodes (1.3 min) waiting"
    compress.finish_session()              # goes on alone until nothing waits

The compression runs in `operating_platform.compress.worker`, a separate process on CPU time
nothing else wants; this side writes one-word commands to it and reads its reports on a thread
that sleeps in a blocking read, so nothing here ever holds up a capture tick or a save.

Told to pause, the compressor stops between frames, but its encoder's threads finish what they
have queued first, and even idle-class threads take a core from capture on a busy machine: so
while it must wait it is also stopped outright (SIGSTOP), unless it holds the files lock (the
recorder's own packing would wait for it); the next poll tries again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import operating_platform
from operating_platform.compress.worker import MODULE
from operating_platform.dataset.fsutil import PRIVATE_DIR
from operating_platform.dataset.lock import FILES_LOCK, FileLock
from operating_platform.upload.worker import lower_priority

PACKAGE_PARENT = Path(operating_platform.__file__).resolve().parents[1]
MB = 1e6
FOLLOW_EVERY_S = 0.1
log = logging.getLogger("operating_platform.compress")


@dataclass(frozen=True)
class CompressStatus:
    """The compression's state as last reported: starting, compressing, paused, idle (nothing
    waits), done, stopped; and the backlog."""

    state: str
    waiting_episodes: int = 0
    waiting_s: float = 0.0
    error: str | None = None

    def describe(self) -> str:
        """The status line's part."""
        if self.state in ("starting", "stopped"):
            return f"compress: {self.state}" + (f" ({self.error})" if self.error else "")
        if not self.waiting_episodes:
            return "compress: up to date"
        paused = ", paused" if self.state == "paused" else ""
        return f"compress: {self.waiting_episodes} episodes ({self.waiting_s / 60:.1f} min) waiting{paused}"


def describe_swap(message: dict[str, Any]) -> str:
    """One log line for a file swapped in."""
    episodes = message["episodes"]
    which = f"episode {episodes[0]}" if len(episodes) == 1 else f"episodes {episodes[0]}-{episodes[-1]}"
    return (
        f"Compressed {message['camera']} {which} to {message['codec']}: "
        f"{message['bytes_before'] / MB:.1f} MB -> {message['bytes_after'] / MB:.1f} MB, "
        f"{message['frames']} frames, PSNR >= {message['min_psnr']:.1f} dB"
    )


class CompressProcess:
    """Compresses the dataset at `root` in the background while it is recorded.

    It promises: the recorder is never slowed (a separate process on idle CPU time, paused
    while an episode is recorded); each swap is said in the log; a failure never reaches the
    recording; at the end of the session it goes on alone until nothing waits (the operator
    does not wait for it), and a later session or `dorobot compress` takes over from it.
    """

    def __init__(self, root: Path, may_run: Callable[[], bool] = lambda: True) -> None:
        self.root = Path(root).absolute()
        self.may_run = may_run
        self._status = CompressStatus("starting")
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._started = threading.Event()  # it said so: it will be continued if we die
        self._held = False  # told to pause
        self._frozen = False  # stopped outright

    @classmethod
    def for_session(cls, root: Path, may_run: Callable[[], bool] = lambda: True) -> CompressProcess | None:
        """Started, paused whenever `may_run()` is false (polled on a thread of its own); None
        (said in the log) if it cannot start: the recording goes on either way."""
        try:
            return cls(root, may_run).start()
        except OSError as exc:
            log.warning(
                f"Background compression cannot start ({exc}); recording goes on, "
                f"`dorobot compress {root}` compresses it later"
            )
            return None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> CompressProcess:
        logs = self.root / PRIVATE_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"compress-{time.strftime('%Y%m%d-%H%M%S')}.log", "ab") as errors:
            # From the package's folder: `-m` puts the working directory first on the path.
            self._process = subprocess.Popen(
                [sys.executable, "-m", MODULE, str(self.root)],
                cwd=PACKAGE_PARENT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                start_new_session=True,
            )
        lower_priority(self._process.pid)  # at once; the process lowers itself further
        self._thread = threading.Thread(target=self._read, name="compress-status", daemon=True)
        self._thread.start()
        threading.Thread(target=self._follow, name="compress-pause", daemon=True).start()
        return self

    def _follow(self) -> None:
        """Hold the compressor while `may_run()` is false: a recorded episode, or the encoder
        still catching up on one (the journal it empties matters more than a smaller file)."""
        while not self._ended.wait(FOLLOW_EVERY_S):
            if self.may_run():
                self._release()
            else:
                self.hold()

    def status(self) -> CompressStatus:
        return self._status

    def hold(self) -> None:
        """Pause it and stop it outright now (before the capture clock starts, rather than at
        the next poll); if it holds the files lock, it is only told to pause, and the next poll
        stops it."""
        with self._lock:
            if not self._held:
                self._send_locked("pause")
                self._held = True
            if not self._frozen and self._started.is_set():
                self._frozen = self._stop_outright()

    def _stop_outright(self) -> bool:
        process = self._process
        files = FileLock(self.root, FILES_LOCK)
        if process is None or not files.acquire():
            return False
        try:  # it cannot take the lock while we hold it, nor once stopped
            process.send_signal(signal.SIGSTOP)
            return process.returncode is None
        finally:
            files.release()

    def _release(self) -> None:
        with self._lock:
            if self._frozen and self._process is not None:
                self._process.send_signal(signal.SIGCONT)
            if self._held:
                self._send_locked("resume")
            self._frozen = self._held = False

    def finish_session(self) -> CompressStatus:
        """Let it finish what waits on its own, after the recorder is gone; returns the status."""
        self._ended.set()
        self._release()
        self._send("final")
        with self._lock, contextlib.suppress(OSError):
            if self._process is not None and self._process.stdin is not None:
                self._process.stdin.close()
        return self._status

    def stop(self) -> None:
        """End it now (files stay whole); a later session or `dorobot compress` goes on."""
        self._ended.set()
        self._release()
        with self._lock, contextlib.suppress(OSError):
            if self._process is not None and self._process.stdin is not None:
                self._process.stdin.close()  # without `final`: stop
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)

    def _send(self, command: str) -> None:
        with self._lock:
            self._send_locked(command)

    def _send_locked(self, command: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # gone or closed: nothing to tell
            stdin = self._process.stdin if self._process is not None else None
            if stdin is not None:
                stdin.write(f"{command}\n".encode())
                stdin.flush()

    def _read(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        self._read_lines(process.stdout)
        code = process.wait()
        if self._status.state not in ("done", "stopped"):
            cause = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            self._status = CompressStatus("stopped", error=f"the compressor process ended ({cause})")
            log.warning(f"Background compression stopped ({cause}); `dorobot compress {self.root}` goes on")

    def _read_lines(self, stream: IO[bytes]) -> None:
        for raw in stream:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            event = message.get("event")
            if event == "started":
                self._started.set()
            elif event == "swapped":
                log.info(describe_swap(message))
            elif event == "refused":
                log.warning(f"Not compressed: {message['file']} ({message['reason']}); the original stays")
            elif event == "error":
                log.warning(f"Background compression: {message['error']}")
            elif "state" in message:
                self._status = CompressStatus(
                    str(message["state"]),
                    int(message.get("waiting_episodes", self._status.waiting_episodes)),
                    float(message.get("waiting_s", self._status.waiting_s)),
                )
