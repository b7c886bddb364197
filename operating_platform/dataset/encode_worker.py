"""The encoder process: turns episode journals into staged videos, away from the capture clock.

Encoding runs in its own process at a lower CPU priority, so it can neither hold the capture
thread's GIL nor take its core when the capture tick is due. It only reads journals and writes
into staging; publishing stays with the recorder. If the process dies, `EncodeWorker` reports
the job as failed and starts a new one, and the journal it was reading is untouched.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operating_platform import faults
from operating_platform.dataset.diskspace import is_disk_full
from operating_platform.dataset.encode import encode_episode
from operating_platform.dataset.lock import ENCODER_LOCK, FileLock
from operating_platform.dataset.video import VideoSettings

DEFAULT_NICENESS = 10


@dataclass(frozen=True)
class EncodeJob:
    """Encode one journal into `staging` (following it while it is still recorded)."""

    job_id: int
    journal: Path
    staging: Path
    video: VideoSettings
    episode: int  # the index the episode is expected to get, for messages and fault rules
    attempt: int


def _run(jobs: Any, results: Any, parent_pid: int, niceness: int, dataset_root: Path | None) -> None:
    # Ctrl-C reaches the whole process group; the recorder decides what happens to its saves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(niceness)
    if dataset_root is not None:
        # Held until this process ends: recovery waits for it rather than race an orphan.
        encoder_lock = FileLock(dataset_root, ENCODER_LOCK)
        encoder_lock.acquire(exclusive=False, wait_s=10.0)

    def parent_alive() -> bool:
        return os.getppid() == parent_pid

    while parent_alive():
        try:
            job = jobs.get(timeout=0.5)
        except queue.Empty:
            continue
        if job is None:
            return
        results.put(("started", job.job_id))
        try:
            faults.check("crash", job.episode, job.attempt)
        except faults.InjectedFault:
            os.kill(os.getpid(), signal.SIGKILL)  # an encoder crash, as a segfault would look
        try:
            faults.check("encode", job.episode, job.attempt)
            encoded = encode_episode(
                job.journal,
                job.staging,
                job.video,
                follow=True,
                on_progress=lambda n, job=job: _progress(results, job, n),
                still_wanted=parent_alive,
            )
        except Exception as exc:  # every failure is reported; the recorder retries from the journal
            results.put(("failed", job.job_id, f"{type(exc).__name__}: {exc}", is_disk_full(exc)))
        else:
            results.put(("done", job.job_id, encoded))


def _progress(results: Any, job: EncodeJob, frames: int) -> None:
    if faults.crash_after(job.episode, job.attempt, frames):
        os.kill(os.getpid(), signal.SIGKILL)
    results.put(("progress", job.job_id, frames))


class EncodeWorker:
    """Owns the encoder process: submit jobs, poll for messages, restart it if it died.

    Messages are tuples: `("started", job_id)`, `("progress", job_id, frames)`,
    `("done", job_id, EncodedEpisode)` and `("failed", job_id, reason, disk_full)`.
    """

    def __init__(self, dataset_root: Path | None = None, niceness: int = DEFAULT_NICENESS) -> None:
        self.dataset_root = dataset_root
        self.niceness = niceness
        self._ctx = mp.get_context("spawn")
        self._process: Any = None
        self._jobs: Any = None
        self._results: Any = None
        self._current: int | None = None

    def start(self) -> None:
        self._jobs = self._ctx.Queue()
        self._results = self._ctx.Queue()
        self._process = self._ctx.Process(
            target=_run,
            args=(self._jobs, self._results, os.getpid(), self.niceness, self.dataset_root),
            name="dorobot-encoder",
            daemon=True,
        )
        self._process.start()

    def submit(self, job: EncodeJob) -> None:
        if self._process is None:
            self.start()
        self._current = job.job_id
        self._jobs.put(job)

    def poll(self, timeout: float) -> tuple | None:
        """The next message, or None. A dead process fails its job and is replaced."""
        try:
            message = self._results.get(timeout=timeout)
        except queue.Empty:
            if self._process is not None and not self._process.is_alive():
                return self._replace_dead_process()
            return None
        if message[0] in ("done", "failed"):
            self._current = None
        return message

    def _replace_dead_process(self) -> tuple | None:
        code = self._process.exitcode
        job_id, self._current = self._current, None
        self.start()
        if job_id is None:
            return None
        cause = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return ("failed", job_id, f"the encoder process died ({cause})", False)

    def stop(self, timeout: float = 5.0) -> None:
        if self._process is None:
            return
        with contextlib.suppress(Exception):
            self._jobs.put(None)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._process = None
