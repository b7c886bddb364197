"""The encoder process: turns episode journals into staged videos, away from the capture clock.

Encoding runs in its own process at a lower CPU priority, so it can neither hold the capture
thread's GIL nor take its core when the capture tick is due. It only reads journals and writes
into staging; publishing stays with the recorder. If the process dies, `EncodeWorker` reports
the job as failed and starts a new one, and the journal it was reading is untouched.

The process is a fresh interpreter running this module (`python -m`), not a multiprocessing
child: `spawn` and `forkserver` both re-run the parent's main script in the child, which runs a
library user's unguarded script (or a notebook's code) a second time, and `fork` is unsafe next
to the capture and saver threads. It talks to the recorder over two pipes. It runs in a session
of its own, so a signal sent to the recorder's process group (Ctrl-C, `kill -- -PGID`, a service
manager's SIGTERM, a terminal's SIGHUP) never reaches it: the recorder decides what happens to
its saves, and the encoder exits on its own once the recorder is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import operating_platform
from operating_platform import faults
from operating_platform.dataset.diskspace import is_disk_full
from operating_platform.dataset.encode import encode_episode
from operating_platform.dataset.lock import ENCODER_LOCK, FileLock
from operating_platform.dataset.realtime import forgo_realtime
from operating_platform.dataset.video import VideoSettings

DEFAULT_NICENESS = 10
MODULE = "operating_platform.dataset.encode_worker"
# The folder holding the `operating_platform` package: the encoder imports this very copy.
PACKAGE_PARENT = Path(operating_platform.__file__).resolve().parents[1]


@dataclass(frozen=True)
class EncodeJob:
    """Encode one journal into `staging` (following it while it is still recorded)."""

    job_id: int
    journal: Path
    staging: Path
    video: VideoSettings
    episode: int  # the index the episode is expected to get, for messages and fault rules
    attempt: int


class _ParentGone(Exception):
    """The recorder closed its end of a pipe: nobody is left to report to."""


def _serve(jobs: Connection, results: Connection, parent_pid: int) -> None:
    def parent_alive() -> bool:
        return os.getppid() == parent_pid

    def report(*message: object) -> None:
        try:
            results.send(message)
        except OSError as exc:  # a broken pipe: the recorder is gone
            raise _ParentGone from exc

    while parent_alive():
        try:
            if not jobs.poll(0.5):
                continue
            job = jobs.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        report("started", job.job_id)
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
                on_progress=lambda n, job=job: _progress(report, job, n),
                still_wanted=parent_alive,
            )
        except _ParentGone:
            return
        except Exception as exc:  # every failure is reported; the recorder retries from the journal
            report("failed", job.job_id, f"{type(exc).__name__}: {exc}", is_disk_full(exc))
        else:
            report("done", job.job_id, encoded)


def _progress(report: Callable[..., None], job: EncodeJob, frames: int) -> None:
    if faults.crash_after(job.episode, job.attempt, frames):
        os.kill(os.getpid(), signal.SIGKILL)
    report("progress", job.job_id, frames)


def main(argv: Sequence[str]) -> int:
    """The encoder process: `python -m operating_platform.dataset.encode_worker JOBS_FD RESULTS_FD
    PARENT_PID NICENESS CWD [DATASET_ROOT]`."""
    jobs_fd, results_fd, parent_pid, niceness = (int(a) for a in argv[:4])
    os.chdir(argv[4])  # journal paths are given as the recorder sees them, maybe relative
    # Started in its own session, so group-wide signals miss it; a stray Ctrl-C still must not
    # cut an encode short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(niceness)
    forgo_realtime()  # niceness means nothing to a real-time thread
    if len(argv) > 5:
        # Held until this process ends: recovery waits for it rather than race an orphan.
        encoder_lock = FileLock(Path(argv[5]), ENCODER_LOCK)
        encoder_lock.acquire(exclusive=False, wait_s=10.0)
    jobs = Connection(jobs_fd, writable=False)
    results = Connection(results_fd, readable=False)
    with contextlib.suppress(_ParentGone):
        _serve(jobs, results, parent_pid)
    return 0


class EncodeWorker:
    """Owns the encoder process: submit jobs, poll for messages, restart it if it died.

    Messages are tuples: `("started", job_id)`, `("progress", job_id, frames)`,
    `("done", job_id, EncodedEpisode)` and `("failed", job_id, reason, disk_full)`.
    """

    def __init__(self, dataset_root: Path | None = None, niceness: int = DEFAULT_NICENESS) -> None:
        self.dataset_root = dataset_root
        self.niceness = niceness
        self._process: subprocess.Popen | None = None
        self._jobs: Connection | None = None
        self._results: Connection | None = None
        self._current: int | None = None

    def start(self) -> None:
        jobs_read, jobs_write = os.pipe()
        results_read, results_write = os.pipe()
        args = [str(jobs_read), str(results_write), str(os.getpid()), str(self.niceness), os.getcwd()]
        if self.dataset_root is not None:
            args.append(str(self.dataset_root))
        try:
            # Run from the package's own folder: `-m` puts the working directory first on the
            # child's path, and the operator's folder may hold modules named like ours.
            self._process = subprocess.Popen(
                [sys.executable, "-m", MODULE, *args],
                pass_fds=(jobs_read, results_write),
                cwd=PACKAGE_PARENT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            for fd in (jobs_write, results_read):
                os.close(fd)
            raise
        finally:
            os.close(jobs_read)
            os.close(results_write)
        self._jobs = Connection(jobs_write, readable=False)
        self._results = Connection(results_read, writable=False)

    def submit(self, job: EncodeJob) -> None:
        if self._process is None:
            self.start()
        self._current = job.job_id
        # If the process just died, the send fails and the next poll() reports the job as failed.
        with contextlib.suppress(OSError):
            self._jobs.send(job)

    def poll(self, timeout: float) -> tuple | None:
        """The next message, or None. A dead process fails its job and is replaced."""
        if self._process is None:
            return None
        try:
            if not self._results.poll(timeout):
                return self._replace_dead_process() if self._process.poll() is not None else None
            message = self._results.recv()
        except (EOFError, OSError):  # every message it sent has been read: it is gone
            return self._replace_dead_process()
        if message[0] in ("done", "failed"):
            self._current = None
        return message

    def _replace_dead_process(self) -> tuple | None:
        code = self._process.wait()
        job_id, self._current = self._current, None
        self._close_pipes()
        self.start()
        if job_id is None:
            return None
        cause = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return ("failed", job_id, f"the encoder process died ({cause})", False)

    def _close_pipes(self) -> None:
        for connection in (self._jobs, self._results):
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.close()
        self._jobs = self._results = None

    def stop(self, timeout: float = 5.0) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._jobs.send(None)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._close_pipes()
        self._process = None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
