"""`AsyncEpisodeSaver`: episodes are saved in the background while the operator goes on.

Ending an episode hands its closed journal to the saver and returns at once. An encoder process
(encode_worker.py) turns journals into videos, following the episode being recorded so that
little is left when it ends; this module's thread commits the results in recording order, so
indices never have gaps. A failed encode is retried from the untouched journal with backoff;
an episode that keeps failing is set aside whole under `.dorobot/failed/` and the episodes
after it take its place in the order. A full queue makes `queue()` wait; it never drops.

The encoder may be slower than capture (a slow preset, big cameras, a busy machine): capture
never waits for it, the journals hold what it has yet to encode, and it catches up during
resets and after the session. `EncoderPace` measures its speed from its progress reports, and
the saver tells the operator, once, as soon as it is clearly too slow.
"""

from __future__ import annotations

import enum
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from operating_platform.dataset.diskspace import is_disk_full, raw_bytes_per_second
from operating_platform.dataset.encode import EncodedEpisode
from operating_platform.dataset.encode_worker import EncodeJob, EncodeWorker
from operating_platform.dataset.journal_store import FAILED, retire_journal, set_aside_journal, staging_dir
from operating_platform.dataset.metadata import DoRobotDatasetMetadata
from operating_platform.dataset.publish import commit_episode
from operating_platform.dataset.video import FAST_PRESETS, VideoSettings

log = logging.getLogger("operating_platform.saver")
PREFIX = "[AsyncEpisodeSaver]"
RECENT_KEPT = 16
JOIN_TIMEOUT_S = 30.0


class EpisodeState(str, enum.Enum):
    RECORDING = "recording"
    PENDING = "pending"
    ENCODING = "encoding"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class EpisodeMetadata:
    """What `save()` returns at once: where the episode stands in the saving queue."""

    episode_index: int  # the index it will get (lower if an earlier episode is set aside)
    queue_position: int  # 1 = next to be committed
    frames: int
    queued: bool
    elapsed_ms: float = 0.0
    # Known once the save is over (`save_sync()`): True committed, False set aside or kept in its
    # journal (`error` says why); None while it is still on its way.
    saved: bool | None = None
    error: str | None = None


@dataclass
class EpisodeSaveTask:
    """One episode on its way from journal to dataset."""

    journal: Path
    expected_index: int
    frames: int = 0
    state: EpisodeState = EpisodeState.RECORDING
    attempts: int = 0
    encoded_frames: int = 0
    retry_at: float = 0.0
    queued_at: float | None = None
    episode_index: int | None = None
    error: str | None = None
    encoded: EncodedEpisode | None = field(default=None, repr=False)
    job_id: int | None = None
    announced: bool = False


@dataclass(frozen=True)
class EpisodeProgress:
    expected_index: int
    state: EpisodeState
    frames: int
    encoded_frames: int
    episode_index: int | None
    error: str | None


@dataclass(frozen=True)
class SaverStatus:
    """A snapshot of the saver, cheap enough to take on every status-line refresh."""

    pending: int
    encoding: int
    completed: int
    failed: int
    episodes: list[EpisodeProgress]
    # Frames captured but not yet encoded (the journals hold them), the episode being recorded
    # included; and the encoder's speed in frames/s when last measured with frames waiting.
    behind_frames: int = 0
    encode_fps: float | None = None


@dataclass(frozen=True)
class SaveStats:
    queued: int
    completed: int
    failed: int
    kept: int = 0  # left in their journals (disk full, or the wait at exit timed out)

    def __str__(self) -> str:
        kept = f" kept_in_journal={self.kept}" if self.kept else ""
        return f"Save stats: queued={self.queued} completed={self.completed} failed={self.failed}{kept}"


# The encoder reports progress every 15 frames (`encode_episode`): with that many waiting when it
# reports, it cannot have waited for capture before the next report.
REPORT_FRAMES = 15
# The encoder's speed is measured over about its last few seconds, never over less than two
# seconds nor fewer than two reports' worth of frames: an encoder that buffers frames ahead
# (SVT-AV1 takes dozens before it blocks) seems fast while its buffer fills.
PACE_WINDOW_S = 3.0
PACE_MIN_SPAN_S = 2.0
PACE_MIN_FRAMES = 2 * REPORT_FRAMES
SLOW_RATIO = 0.9  # slower than this fraction of the capture rate: it cannot keep up
LAG_WARNING_S = 10.0  # this many seconds of frames waiting: it cannot keep up, measured or not


class EncoderPace:
    """How fast the encoder goes when frames are waiting for it: what it can do on this machine.

    Measured from its progress reports, between reports that each found at least a report's
    worth of frames waiting in the journal: in between, the encoder never waited for capture, so
    the figure is its own speed, not the capture rate it was following. An encoder that keeps
    up is rarely measured at all (nothing waits for it), and `fps` stays None until it is.
    """

    def __init__(self) -> None:
        self.fps: float | None = None
        self._job: int | None = None
        self._stretch: deque[tuple[float, int]] = deque()  # (instant, frames) since frames waited

    def report(self, job_id: int, frames: int, at: float, captured: int) -> float | None:
        """One progress report: `frames` encoded by `at` while the journal held `captured`.

        Returns a new measurement (frames/s) when the stretch of busy reports is long enough.
        """
        if job_id != self._job:  # a new encode starts by opening its encoders: not comparable
            self._job = job_id
            self._stretch.clear()
        measured = None
        if self._stretch:
            while len(self._stretch) > 1 and at - self._stretch[1][0] >= PACE_WINDOW_S:
                self._stretch.popleft()
            since, first = self._stretch[0]
            if at - since >= PACE_MIN_SPAN_S and frames - first >= PACE_MIN_FRAMES:
                measured = self.fps = (frames - first) / (at - since)
        if captured - frames >= REPORT_FRAMES:
            self._stretch.append((at, frames))
        else:  # it may wait for capture before its next report: the stretch ends here
            self._stretch.clear()
        return measured


class AsyncEpisodeSaver:
    """Saves closed episode journals into the dataset in the background, in order.

    Promises: `queue()` returns without encoding anything (it waits only when
    `queue_size` episodes are already waiting); every queued episode ends up either committed
    with the next index or set aside whole in `.dorobot/failed/` with its cause; nothing is
    dropped. `status()` never blocks on saving work. An encoder slower than capture is said, once
    a session, in one warning line within seconds of it falling behind.

    `live_frames` gives the number of frames captured so far in the episode being recorded.
    """

    def __init__(
        self,
        meta: DoRobotDatasetMetadata,
        video: VideoSettings,
        queue_size: int = 10,
        max_retries: int = 3,
        worker: EncodeWorker | None = None,
        live_frames: Callable[[], int] = lambda: 0,
    ) -> None:
        self.meta = meta
        self.video = video
        self.queue_size = queue_size
        self.max_retries = max_retries
        self._worker = worker or EncodeWorker(meta.root, vcodec=video.vcodec)
        self._live_frames = live_frames
        self.pace = EncoderPace()
        self._warned = False
        self._order: list[EpisodeSaveTask] = []  # not yet committed or set aside, in recording order
        # Episodes committed, counted here rather than read from `meta`: a commit updates `meta`
        # a moment before its task leaves `_order`, and indices must never count it twice.
        self._committed = meta.total_episodes
        # Finished episodes: counted, and the last few kept for the progress display, so that a
        # session of thousands of episodes costs what one of ten does.
        self._completed = 0
        self._failed = 0
        self._recent: deque[EpisodeSaveTask] = deque(maxlen=RECENT_KEPT)
        self._in_flight: EpisodeSaveTask | None = None
        self._next_job = 0
        self._queued = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._compact_due = False  # an episode was committed since files were last packed
        # Why saving stopped, when it cannot go on: the disk is full (every episode not yet
        # committed stays in its journal for `dorobot recover` once space is freed), or the
        # dataset folder disappeared. Nothing more is attempted; retries could not help.
        self.halted: str | None = None
        self._disk_full = False

    @property
    def disk_full(self) -> bool:
        return self._disk_full

    # -- called by the recorder -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._closing = False
        self._worker.start()
        self._thread = threading.Thread(target=self._loop, name="async-episode-saver", daemon=True)
        self._thread.start()

    def begin(self, journal: Path) -> None:
        """A new episode is being recorded into `journal`; its encoding may start right away."""
        self.start()
        with self._changed:
            self._order.append(EpisodeSaveTask(journal, self._next_index_locked()))
            self._changed.notify_all()

    def queue(self, journal: Path, frames: int, started: float | None = None) -> EpisodeMetadata:
        """The episode in `journal` is closed with `frames` frames: save it. Never drops it."""
        with self._changed:
            task = self._task(journal)
            task.state = EpisodeState.PENDING
            task.frames = frames
            task.queued_at = time.monotonic()
            self._queued += 1
            if self._waiting_count() > self.queue_size and not self.halted:
                log.warning(
                    f"{PREFIX} Save queue full ({self.queue_size} episodes waiting): waiting for a free "
                    f"slot; episode {task.expected_index} is safe in its journal"
                )
                # A halted saver frees no slot: waiting for one would never end.
                self._changed.wait_for(lambda: self._waiting_count() <= self.queue_size or self.halted)
            if self.halted:
                index = task.expected_index = self._index_of(task)
                log.error(f"{PREFIX} ✗ Episode {index} not saved: {self.halted}; it is kept in its journal")
                elapsed_ms = (time.perf_counter() - started) * 1e3 if started is not None else 0.0
                return EpisodeMetadata(index, 0, frames, False, elapsed_ms, saved=False, error=self.halted)
            position = [t for t in self._order if t.state != EpisodeState.RECORDING].index(task) + 1
            index = task.expected_index = self._index_of(task)
            elapsed_ms = (time.perf_counter() - started) * 1e3 if started is not None else 0.0
            log.info(
                f"{PREFIX} ✓ Queued episode {index} "
                f"(queue_pos={position}, frames={frames}, elapsed={elapsed_ms:.1f}ms)"
            )
            self._announce(task)
            self._changed.notify_all()
        return EpisodeMetadata(index, position, frames, True, elapsed_ms)

    def abandon(self, journal: Path) -> None:
        """The episode in `journal` was discarded (or is left for recovery): forget it."""
        with self._changed:
            self._order = [t for t in self._order if t.journal != journal]
            self._changed.notify_all()

    def next_index(self) -> int:
        """The index the next episode to begin will get."""
        with self._changed:
            return self._next_index_locked()

    def status(self) -> SaverStatus:
        with self._changed:
            progress = [_progress_of(t) for t in (*self._recent, *self._order)]
            completed, failed = self._completed, self._failed
            behind = self._behind_locked()
        pending = sum(1 for p in progress if p.state == EpisodeState.PENDING)
        encoding = sum(1 for p in progress if p.state == EpisodeState.ENCODING)
        return SaverStatus(pending, encoding, completed, failed, progress, behind, self.pace.fps)

    @property
    def stats(self) -> SaveStats:
        with self._changed:
            return SaveStats(self._queued, self._completed, self._failed)

    def wait_episode(self, journal: Path, timeout: float | None = None) -> EpisodeProgress:
        """Wait until the episode queued from `journal` is committed, set aside or kept (halted)."""
        with self._changed:
            # Looked up among the recent too: it may be committed before the caller asks.
            task = next((t for t in (*self._order, *self._recent) if t.journal == journal), None)
            if task is None:
                raise KeyError(f"{journal} is not waiting to be saved")
            finished = (EpisodeState.COMPLETED, EpisodeState.FAILED)
            self._changed.wait_for(lambda: task.state in finished or self.halted is not None, timeout)
            return _progress_of(task)

    def wait_all(self, timeout: float, on_progress: Callable[[SaverStatus], None] | None = None) -> bool:
        """Wait until every queued episode is committed or set aside; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                busy = not self.halted and any(t.state != EpisodeState.RECORDING for t in self._order)
                if not busy:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.2))
            if on_progress is not None:
                on_progress(self.status())

    def stop(self, timeout: float, on_progress: Callable[[SaverStatus], None] | None = None) -> SaveStats:
        """Wait for pending saves (up to `timeout` s), then shut the encoder down."""
        if self._thread is None:
            return self.stats
        started = time.monotonic()
        pending = sum(1 for t in self._order if t.state != EpisodeState.RECORDING)
        if pending:
            log.info(f"[Record] Waiting for {pending} pending saves...")
        self.wait_all(timeout, on_progress)
        with self._changed:
            left = [t for t in self._order if t.state != EpisodeState.RECORDING]
            self._closing = True
            self._changed.notify_all()
        if pending and not left:
            log.info(f"{PREFIX} All saves completed in {time.monotonic() - started:.2f}s")
        # Bounded like every other wait: a publish stuck on a dead storage device must not keep
        # the program from exiting. What it leaves is exactly what a kill would leave.
        self._thread.join(timeout=JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            log.error(f"{PREFIX} Still publishing after {JOIN_TIMEOUT_S:g}s; leaving it to `dorobot recover`")
        self._thread = None
        self._worker.stop()
        if left and self.halted and not self.disk_full:
            log.error(
                f"{PREFIX} {len(left)} episode(s) not saved: {self.halted}; if it was moved, "
                "`dorobot recover NEW_PLACE` finishes them"
            )
        elif left:
            why = self.halted or f"not saved within {timeout:g}s"
            journals = self.meta.private_dir / "journal"
            log.error(
                f"{PREFIX} {len(left)} episode(s) kept in their journals in {journals} ({why}); "
                f"nothing is lost: `dorobot recover {self.meta.root}` finishes them"
            )
        stats = self.stats
        stats = SaveStats(stats.queued, stats.completed, stats.failed, len(left))
        log.info(str(stats))
        return stats

    # -- bookkeeping (caller holds self._changed) ---------------------------------------------------

    def _task(self, journal: Path) -> EpisodeSaveTask:
        for task in self._order:
            if task.journal == journal:
                return task
        raise KeyError(f"{journal} was never begun with the saver")

    def _out_of_retries(self, task: EpisodeSaveTask) -> bool:
        # An episode still being recorded keeps trying: it may yet be encoded once it ends.
        return task.attempts > self.max_retries and task.state != EpisodeState.RECORDING

    def _waiting_count(self) -> int:
        return sum(1 for t in self._order if t.state in (EpisodeState.PENDING, EpisodeState.ENCODING))

    def _index_of(self, task: EpisodeSaveTask) -> int:
        ahead = 0
        for other in self._order:
            if other is task:
                break
            ahead += other.state != EpisodeState.FAILED
        return self._committed + ahead

    def _behind_locked(self) -> int:
        """Frames captured and not yet encoded, over every episode still to be encoded."""
        behind = 0
        for task in self._order:
            if task.encoded is None and not self._out_of_retries(task):
                captured = self._live_frames() if task.state == EpisodeState.RECORDING else task.frames
                behind += max(0, captured - task.encoded_frames)
        return behind

    def _next_index_locked(self) -> int:
        return self._committed + sum(1 for t in self._order if t.state != EpisodeState.FAILED)

    def _announce(self, task: EpisodeSaveTask) -> None:
        started = task is self._in_flight or task.encoded is not None
        if started and task.state != EpisodeState.RECORDING and not task.announced:
            task.announced = True
            task.state = EpisodeState.ENCODING
            log.info(f"{PREFIX} Starting save for episode {self._index_of(task)}")

    # -- the saver thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            message = self._worker.poll(timeout=0.05)
            with self._changed:
                if message is not None:
                    self._handle(message)
                self._check_lag()
                self._dispatch()
                head = self._ready_head()
                closing = self._closing and head is None
            if closing:
                self._compact(final=True)
                return
            if head is None and self._compact_due:
                self._compact(final=False)
            if head is not None:
                try:
                    self._finish(head)
                except Exception as exc:  # never let one episode stop the saver (stop() would hang)
                    self._give_up(head, f"{type(exc).__name__}: {exc}")

    def _handle(self, message: tuple) -> None:
        kind, job_id, *rest = message
        task = self._in_flight if self._in_flight is not None and self._in_flight.job_id == job_id else None
        if task is None:
            return
        if task not in self._order:  # the episode was discarded while being encoded
            if kind in ("done", "failed"):
                self._in_flight = None
                shutil.rmtree(staging_dir(task.journal), ignore_errors=True)
            return
        if kind == "started":
            self._announce(task)
        elif kind == "progress":
            task.encoded_frames = rest[0]
            self._check_pace(job_id, *rest)
        elif kind == "done":
            task.encoded = rest[0]
            task.encoded_frames = task.encoded.length
            self._in_flight = None
        elif kind == "failed":
            self._in_flight = None
            self._record_failure(task, rest[0], disk_full=bool(rest[1:] and rest[1]))
        self._changed.notify_all()

    def _check_pace(self, job_id: int, frames: int, at: float, captured: int) -> None:
        """Warn, once, when the encoder is measured slower than capture."""
        fps = self.pace.report(job_id, frames, at, captured)
        if fps is not None and fps < SLOW_RATIO * self.meta.fps:
            self._warn_slow(fps)

    def _check_lag(self) -> None:
        """Warn, once, when the encoder is far behind, even if it was never measured.

        An encoder that hardly gets the CPU at all (a machine busy with other work) reports too
        seldom to be measured, but its lag grows all the same.
        """
        if not self._warned and not self.halted and self._behind_locked() >= LAG_WARNING_S * self.meta.fps:
            self._warn_slow(self.pace.fps)

    def _warn_slow(self, fps: float | None) -> None:
        if self._warned:
            return
        self._warned = True
        frame_bytes = raw_bytes_per_second(self.meta.features, self.meta.fps) // self.meta.fps
        log.warning(describe_slow_encoder(self.video, fps, self.meta.fps, frame_bytes))

    def _record_failure(self, task: EpisodeSaveTask, reason: str, disk_full: bool = False) -> None:
        task.error = reason
        task.announced = False
        if task.state != EpisodeState.RECORDING:
            task.state = EpisodeState.PENDING
        index = self._index_of(task)
        if not disk_full and not self.meta.root.exists():
            # Setting it aside would recreate the folder the operator removed; keep nothing there.
            self.halted = f"the dataset folder {self.meta.root} disappeared"
            log.error(f"{PREFIX} ✗ Episode {index} cannot be saved: {self.halted}")
            return
        if disk_full:
            # Retrying cannot help and setting aside would hide it: keep it where it is.
            self.halted = f"the disk holding {self.meta.root} is full"
            self._disk_full = True
            log.error(
                f"{PREFIX} ✗ Episode {index} cannot be saved: {self.halted} ({reason}); "
                "it stays in its journal"
            )
            return
        task.attempts += 1
        if self._out_of_retries(task):
            log.error(f"{PREFIX} ✗ Episode {index} failed (attempt {task.attempts}): {reason}")
            return
        delay = 2**task.attempts
        task.retry_at = time.monotonic() + delay
        again = "publishing its encoded videos again" if task.encoded is not None else "retrying"
        log.warning(
            f"{PREFIX} ✗ Episode {index} failed (attempt {task.attempts}): {reason}; {again} in {delay}s"
        )

    def _dispatch(self) -> None:
        if self._in_flight is not None or self._closing or self.halted:
            return
        now = time.monotonic()
        for task in self._order:
            if task.encoded is None and not self._out_of_retries(task) and task.retry_at <= now:
                self._next_job += 1
                task.job_id = self._next_job
                self._in_flight = task
                self._worker.submit(
                    EncodeJob(
                        task.job_id,
                        task.journal,
                        staging_dir(task.journal),
                        self.video,
                        self._index_of(task),
                        task.attempts,
                    )
                )
                return

    def _ready_head(self) -> EpisodeSaveTask | None:
        """The first episode in order, if it can be committed or must be set aside now."""
        if not self._order or self.halted:
            return None
        head = self._order[0]
        if head.state == EpisodeState.RECORDING or head is self._in_flight:
            return None
        if self._out_of_retries(head) or (head.encoded is not None and head.retry_at <= time.monotonic()):
            return head
        return None

    def _finish(self, task: EpisodeSaveTask) -> None:
        """Commit the head episode, or set it aside; runs outside the lock (it writes files)."""
        if self._out_of_retries(task):
            self._set_aside(task)
            return
        try:
            index = commit_episode(task.journal, task.encoded, self.meta, task.attempts)
        except Exception as exc:
            # The dataset is as it was and the encoded videos are back in staging: publish them
            # again later rather than re-encode (one more lossy generation for a storage fault).
            with self._changed:
                self._record_failure(task, f"commit: {type(exc).__name__}: {exc}", is_disk_full(exc))
            return
        elapsed = time.monotonic() - (task.queued_at or time.monotonic())
        task.episode_index = index
        self._compact_due = True
        self._retire(task, EpisodeState.COMPLETED)
        log.info(f"{PREFIX} ✓ Episode {index} saved successfully in {elapsed:.2f}s (frames={task.frames})")
        retire_journal(task.journal)

    def _compact(self, final: bool) -> None:
        """Pack committed episodes into LeRobot-sized files (v3.0), between commits.

        Only an optimisation: the dataset is valid either way, so a failure is reported and left
        for the next time (or `dorobot recover`), never held against an episode.
        """
        self._compact_due = False
        if self.halted:
            return
        try:
            self.meta.compact(final, say=lambda line: log.info(f"{PREFIX} {line}"))
        except Exception as exc:
            log.warning(f"{PREFIX} packing files failed ({type(exc).__name__}: {exc}); tried again later")

    def _retire(self, task: EpisodeSaveTask, state: EpisodeState) -> None:
        """The episode leaves the order, committed or failed, and the next one moves up."""
        with self._changed:
            task.state = state
            if state == EpisodeState.COMPLETED:
                self._committed += 1
                self._completed += 1
            else:
                self._failed += 1
            if task in self._order:
                self._order.remove(task)
            self._recent.append(task)
            self._changed.notify_all()

    def _give_up(self, task: EpisodeSaveTask, reason: str) -> None:
        """Last resort when even setting an episode aside failed (its journal vanished?)."""
        task.error = reason
        self._retire(task, EpisodeState.FAILED)
        log.error(f"{PREFIX} ✗ Episode {task.expected_index} could not be saved or set aside: {reason}")

    def _set_aside(self, task: EpisodeSaveTask) -> None:
        failed_dir = set_aside_journal(task.journal, FAILED, str(task.error))
        self._retire(task, EpisodeState.FAILED)
        log.error(
            f"{PREFIX} ✗ Episode {task.expected_index} could not be saved after {task.attempts} attempts "
            f"({task.error}); its {task.frames} frames are kept whole in {failed_dir}; "
            f"the episodes after it take its place. `dorobot recover {self.meta.root} --retry-failed` "
            "commits it once the cause is fixed"
        )


def describe_slow_encoder(video: VideoSettings, fps: float | None, capture_fps: int, frame_bytes: int) -> str:
    """The operator's line for an encoder slower than capture: measured at `fps` frames/s, or
    (None) found far behind without a measurement."""
    preset = video.codec_options().get("preset")
    encoder = f"{video.vcodec}" + (f" preset {preset}" if preset is not None else "")
    if fps is None:
        pace = f"it is over {LAG_WARNING_S:g} s behind capture, which makes {capture_fps} frames/s"
        growth = f"up to {capture_fps * frame_bytes * 60 / 2**20:,.0f}"
    else:
        pace = f"it encodes {fps:.1f} frames/s, capture makes {capture_fps}"
        growth = f"about {(capture_fps - fps) * frame_bytes * 60 / 2**20:,.0f}"
    fastest = FAST_PRESETS.get(video.vcodec)
    if fastest is not None and preset != fastest:
        remedy = f"a faster --record.preset (up to {fastest})"
        if video.vcodec != "libx264":
            remedy += " or --record.vcodec=libx264"
    elif video.vcodec != "libx264":
        remedy = "--record.vcodec=libx264"
    else:
        remedy = "fewer or smaller cameras, or a lower --record.fps"
    return (
        f"The encoder ({encoder}) cannot keep up on this machine: {pace}. Recording goes on; "
        f"episodes wait in the journal (it grows {growth} MB per minute of recording) and are "
        f"encoded during resets and after the session. To keep up, record with {remedy}"
    )


def _progress_of(task: EpisodeSaveTask) -> EpisodeProgress:
    return EpisodeProgress(
        task.expected_index, task.state, task.frames, task.encoded_frames, task.episode_index, task.error
    )
