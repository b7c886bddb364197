"""The encoder process: turns episode journals into staged videos, away from the capture clock.

Encoding runs in its own process under the idle scheduling class (SCHED_IDLE; niceness where
the kernel lacks it), so it can neither hold the capture thread's GIL nor keep its core when a
capture tick falls due: it encodes on the CPU time capture leaves. An encoder slower than
capture never holds capture back; it falls behind, the journal holds the frames it has yet to
encode, and it catches up during resets and after the session. Its progress reports say how
far behind it is, so the recorder can tell the operator. It only reads journals and writes
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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import operating_platform
from operating_platform import faults
from operating_platform.dataset.diskspace import is_disk_full
from operating_platform.dataset.encode import encode_episode
from operating_platform.dataset.journal import JournalError, JournalReader
from operating_platform.dataset.lock import ENCODER_LOCK, FileLock
from operating_platform.dataset.realtime import forgo_realtime, run_only_when_idle
from operating_platform.dataset.video import VideoSettings

DEFAULT_NICENESS = 10
# Raw segments more than this many ahead of the encoder leave memory for the disk (`_Spill`),
# looked at this often.
SPILL_AHEAD = 2
SPILL_EVERY_S = 0.5
# Every frame the encoder process converts and encodes takes megabytes of fresh memory, which
# glibc hands back to the kernel when freed and faults in again for the next frame: with x264
# at 3 x 1280x720, a hundred thousand page faults a second and a third of the encoder's CPU,
# spent in the kernel, where a kernel built without preemption lets no capture tick in. Kept
# in the process instead (glibc's cap, 32 MB an allocation, holds a 4K frame), the memory is
# reused. SVT-AV1, with buffers of its own, gains no speed from it and holds 100 MB more.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}
OWN_BUFFERS = ("libsvtav1",)
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
            journal = JournalReader(job.journal)
            with _Spill(journal) as spill:
                encoded = encode_episode(
                    job.journal,
                    job.staging,
                    _lean(job.video, len(journal.video_keys)),
                    follow=True,
                    on_progress=lambda n, job=job, spill=spill: _progress(report, job, spill, n),
                    still_wanted=parent_alive,
                )
        except _ParentGone:
            return
        except Exception as exc:  # every failure is reported; the recorder retries from the journal
            report("failed", job.job_id, f"{type(exc).__name__}: {exc}", is_disk_full(exc))
        else:
            report("done", job.job_id, encoded)


@dataclass(frozen=True)
class _LeanSvtSettings(VideoSettings):
    """SVT-AV1 at its lowest level of parallelism: about 20 threads per camera instead of 50.

    With several cameras, their encoders already keep every core busy side by side: measured
    with 3 cameras (640x480 and 1280x720) on 2 cores, the same speed for 100 to 190 MB less
    memory. A single camera keeps SVT-AV1's own parallelism (lp=1 costs it about 15% speed).
    """

    def codec_options(self) -> dict[str, str]:
        return {**super().codec_options(), "svtav1-params": "lp=1"}


def _lean(video: VideoSettings, cameras: int) -> VideoSettings:
    if video.vcodec != "libsvtav1" or cameras < 2:
        return video
    return _LeanSvtSettings(video.vcodec, video.crf, video.g, video.preset)


class _Spill(threading.Thread):
    """Keeps the raw frames this encoder has yet to reach on disk rather than in memory.

    An encoder slower than capture leaves the journal growing by the second. Kept in the page
    cache, it makes each journal write of the capture thread dearer (fresh memory for every
    page: on a virtual machine that hands free memory back to its host, several times dearer,
    enough to make ticks late) and ends in memory reclaim that capture may have to do itself.
    So complete segments more than `SPILL_AHEAD` segments ahead of the encoder are written to
    disk and dropped from memory (`posix_fadvise(DONTNEED)`: a first call starts the writing,
    later ones, further and further apart, drop what was written by then); the encoder reads
    them back when it gets there. An encoder keeping up is never that far behind, and this costs
    it nothing.
    """

    def __init__(self, journal: JournalReader) -> None:
        super().__init__(name="journal-spill", daemon=True)
        self.journal = journal
        self.encoded = 0  # frames the encoder has reached
        self._done = threading.Event()
        self._looked: dict[int, int] = {}  # segment -> times looked at since it was far ahead

    def __enter__(self) -> _Spill:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(SPILL_EVERY_S):
            try:
                complete = self.journal.written_rows() // self.journal.segment_frames
            except (JournalError, OSError):  # discarded: the encode is about to stop
                return
            for segment in range(self.encoded // self.journal.segment_frames + SPILL_AHEAD, complete):
                looked = self._looked[segment] = self._looked.get(segment, 0) + 1
                if looked & (looked - 1) == 0:  # the 1st, 2nd, 4th, 8th... time
                    for key in self.journal.video_keys:
                        _drop_from_memory(self.journal.path / key / f"seg_{segment:06d}.raw")


def _drop_from_memory(path: Path) -> None:
    with contextlib.suppress(OSError):  # released meanwhile, or a file system without the advice
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _progress(report: Callable[..., None], job: EncodeJob, spill: _Spill, frames: int) -> None:
    if faults.crash_after(job.episode, job.attempt, frames):
        os.kill(os.getpid(), signal.SIGKILL)
    spill.encoded = frames
    # Stamped here, not where it is read: the recorder measures the encoder's pace from these
    # instants, and reading them late (the saver committing an episode) must not skew it.
    at = time.monotonic()
    try:
        captured = spill.journal.written_rows()
    except JournalError:  # discarded meanwhile: the encode is about to stop anyway
        captured = frames
    report("progress", job.job_id, frames, at, captured)


def main(argv: Sequence[str]) -> int:
    """The encoder process: `python -m operating_platform.dataset.encode_worker JOBS_FD RESULTS_FD
    PARENT_PID NICENESS CWD [DATASET_ROOT]`."""
    jobs_fd, results_fd, parent_pid, niceness = (int(a) for a in argv[:4])
    os.chdir(argv[4])  # journal paths are given as the recorder sees them, maybe relative
    # Started in its own session, so group-wide signals miss it; a stray Ctrl-C still must not
    # cut an encode short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(niceness)  # what is left where SCHED_IDLE is not
    forgo_realtime()  # no scheduling class below real-time means anything to a real-time thread
    # Before any encoder exists: every thread it starts inherits the idle class.
    run_only_when_idle()
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

    Messages are tuples: `("started", job_id)`, `("progress", job_id, frames, at, captured)`
    (`frames` encoded by `at`, a `time.monotonic()` instant, while the journal held `captured`),
    `("done", job_id, EncodedEpisode)` and `("failed", job_id, reason, disk_full)`.
    """

    def __init__(
        self, dataset_root: Path | None = None, niceness: int = DEFAULT_NICENESS, vcodec: str | None = None
    ) -> None:
        self.dataset_root = dataset_root
        self.niceness = niceness
        self._keep_freed_memory = vcodec not in OWN_BUFFERS
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
                env={**os.environ, **KEEP_FREED_MEMORY} if self._keep_freed_memory else None,
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
