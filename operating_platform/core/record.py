"""`Record`: the capture clock, and the save / discard / stop calls the operator's program makes.

Capture runs on its own thread at a fixed rate. Each tick reads the robot and hands the frame
to the dataset's journal, which writes it before the tick ends; nothing slow ever runs there,
and nothing waits for the encoder, which follows the journal at its own pace. Ending an
episode only closes its journal and hands it to the `AsyncEpisodeSaver`. A tick that cannot
be kept (a robot read that blocked) is skipped and counted, per episode and per session.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from operating_platform.compress.process import CompressProcess
from operating_platform.core.async_episode_saver import (
    AsyncEpisodeSaver,
    EpisodeMetadata,
    EpisodeState,
    SaverStatus,
    SaveStats,
)
from operating_platform.core.record_config import ConfigError, RecordConfig
from operating_platform.dataset.diskspace import (
    check_room,
    low_water_bytes,
    raw_bytes_per_second,
)
from operating_platform.dataset.dorobot_dataset import DoRobotDataset
from operating_platform.robots.base import Robot
from operating_platform.streams import Arrival, StreamStale

__all__ = ["CaptureStats", "ConfigError", "EpisodeMetadata", "Record", "RecordConfig"]

log = logging.getLogger("operating_platform.record")

STALL_TIMEOUT_S = 2.0
LATE_TICK_S = 0.005


def short_stream_name(stream: str) -> str:
    """A stream's name for the operator: a camera's own name, else the feature key."""
    return stream.removeprefix("observation.images.")


class CaptureStalled(TimeoutError):
    """The robot stopped delivering frames: a read that timed out, an OSError like a failed one."""


@dataclass
class CaptureStats:
    """How well the capture clock kept time during the current episode.

    Lateness is summarised in a fixed histogram, not kept tick by tick, so a long episode costs
    no more memory than a short one: bins grow by 2% from 1 us to 100 s, so percentiles are
    within 2% of the exact values.
    """

    # Not annotated, so not fields: the same for every episode.
    BIN_RATIO = 1.02
    FIRST_BIN_S = 1e-6
    LOG_RATIO = float(np.log(BIN_RATIO))
    BINS = int(np.ceil(np.log(100.0 / FIRST_BIN_S) / LOG_RATIO)) + 2

    fps: int
    streams: list[str] = field(default_factory=list)
    ticks: int = 0
    late_ticks: int = 0  # later than LATE_TICK_S; counted as they happen, for the status line
    missed_ticks: int = 0  # skipped because capture fell more than a tick behind
    max_lateness_s: float = 0.0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(CaptureStats.BINS, np.int64))
    recent_ticks: deque = field(default_factory=lambda: deque(maxlen=31))
    # Per stream (in `streams` order): frames that repeated the message before, worst age (s).
    repeated: np.ndarray = field(init=False)
    worst_age_s: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.repeated = np.zeros(len(self.streams), np.int64)
        self.worst_age_s = np.zeros(len(self.streams))

    def stream_frame(self, ages: np.ndarray, repeated: np.ndarray) -> None:
        self.repeated += repeated
        np.maximum(self.worst_age_s, ages, out=self.worst_age_s)

    def tick(self, now: float, lateness: float) -> None:
        self.ticks += 1
        self.histogram[self._bin(lateness)] += 1
        self.max_lateness_s = max(self.max_lateness_s, lateness)
        self.late_ticks += lateness > LATE_TICK_S
        self.recent_ticks.append(now)

    def _bin(self, lateness: float) -> int:
        if lateness < self.FIRST_BIN_S:
            return 0
        index = 1 + int(math.log(lateness / self.FIRST_BIN_S) / self.LOG_RATIO)  # per tick: no numpy
        return min(index, self.BINS - 1)

    def lateness_percentile(self, q: float) -> float:
        """The q-th percentile of tick lateness in seconds (0 before the first tick)."""
        if not self.ticks:
            return 0.0
        rank = max(1, int(np.ceil(q / 100 * self.ticks)))
        index = int(np.searchsorted(np.cumsum(self.histogram), rank))
        if index == 0:
            return 0.0
        # The middle of the bin, never beyond the latest tick actually seen.
        middle = self.FIRST_BIN_S * self.BIN_RATIO ** (index - 0.5)
        return min(middle, self.max_lateness_s)

    def merge(self, other: CaptureStats) -> None:
        """Add another episode's summary to this one (a session's, a benchmark's)."""
        self.ticks += other.ticks
        self.late_ticks += other.late_ticks
        self.missed_ticks += other.missed_ticks
        self.max_lateness_s = max(self.max_lateness_s, other.max_lateness_s)
        self.histogram += other.histogram
        if other.streams == self.streams:
            self.stream_frame(other.worst_age_s, other.repeated)

    def achieved_fps(self) -> float:
        """Frames per second over the last second of capture."""
        ticks = self.recent_ticks
        if len(ticks) < 2 or ticks[-1] == ticks[0]:
            return 0.0
        return (len(ticks) - 1) / (ticks[-1] - ticks[0])


class Record:
    """Records episodes from `robot` into a dataset at `fps`.

    `start()` begins (or continues) capturing the current episode; `save()` ends it and hands it
    to the background saver, returning in milliseconds (`save_sync()`, or
    `use_async_save=false`, commits it before returning instead); `discard()` drops it so its
    index is used again; `stop()` waits for every pending save. A frame the dataset refuses, or
    a failing robot, stops capture: `error` then holds the cause, and every frame before it is
    still in the episode.
    """

    def __init__(
        self, fps: int, robot: Robot, record_cfg: RecordConfig, dataset: DoRobotDataset | None = None
    ) -> None:
        self.fps = fps
        self.robot = robot
        self.cfg = record_cfg
        if dataset is None:
            features = robot.features
            if not record_cfg.video:
                features = {k: v for k, v in features.items() if v["dtype"] != "video"}
            dataset = DoRobotDataset.create(
                record_cfg.repo_id,
                record_cfg.dataset_root,
                fps,
                robot.robot_type,
                features,
                video=record_cfg.video_settings,
                resume=record_cfg.resume,
                salvage_partial=record_cfg.salvage_partial,
                codebase_version=record_cfg.format,
                layout_options=record_cfg.layout_options,
            )
        self.dataset = dataset
        self.async_saver: AsyncEpisodeSaver | None = None
        if record_cfg.use_async_save:
            self.async_saver = AsyncEpisodeSaver(
                dataset.meta,
                dataset.video,
                queue_size=record_cfg.async_save_queue_size,
                max_retries=record_cfg.async_save_max_retries,
                live_frames=lambda: self._frames_captured,
            )
        self.compress = self._start_compression(record_cfg)
        self._skip_keys = [k for k in robot.features if k not in dataset.features]
        self._streams = robot.all_streams
        self._stale_s = robot.config.stale_timeout_s
        self._last_seqs: np.ndarray | None = None
        self._low_water = low_water_bytes(dataset.features, fps)
        self._raw_rate = raw_bytes_per_second(dataset.features, fps)
        self.task = record_cfg.single_task
        self.stats = CaptureStats(fps, self._streams)
        # Every episode saved in this session, merged as each is saved.
        self.session_stats = CaptureStats(fps, self._streams)
        # Frames of the current episode, for the saver's view of the encoder's lag: a plain int,
        # read from the saver's thread without a lock.
        self._frames_captured = 0
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop_capture = threading.Event()
        # Held by the capture thread only while it writes a frame, so ending an episode waits
        # for at most one journal write, never for a robot read.
        self._episode_lock = threading.Lock()
        self._max_frames: int | None = None
        self._read_started: float | None = None  # while robot.capture() runs
        self.latest_frame: dict[str, np.ndarray] | None = None  # for a preview; never copied

    def _start_compression(self, cfg: RecordConfig) -> CompressProcess | None:
        settings = cfg.compress_settings
        if settings is None or not self.dataset.meta.video_keys:
            return None
        self.dataset.meta.set_compression_target(settings.as_target())
        return CompressProcess.for_session(self.dataset.root, may_run=self._may_compress)

    def _may_compress(self) -> bool:
        """Compression waits while an episode is recorded and while the encoder catches up."""
        if self.capturing:
            return False
        status = self.status()
        return status is None or not (status.pending or status.encoding or status.behind_frames)

    # -- capture ------------------------------------------------------------------------------

    @property
    def capturing(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop_capture.is_set()

    @property
    def raw_bytes_per_frame(self) -> int:
        return self._raw_rate // self.fps

    @property
    def episode_frames(self) -> int:
        return self.dataset.num_frames_in_episode

    @property
    def session_missed_ticks(self) -> int:
        """Ticks skipped in this session: the episodes saved, and the one being recorded."""
        current = self.stats.missed_ticks if self.dataset.episode_journal is not None else 0
        return self.session_stats.missed_ticks + current

    @property
    def next_episode_index(self) -> int:
        """The index the episode being recorded (or the next one) will get."""
        if self.async_saver is not None:
            index = self.async_saver.next_index()
            return index - 1 if self.dataset.episode_journal is not None else index
        return self.dataset.meta.total_episodes

    def start(self, max_frames: int | None = None) -> None:
        """Start capturing into the current episode (a new one after `save` or `discard`).

        With `max_frames`, capture stops by itself once the episode holds that many frames, so a
        timed episode has exactly `episode_time_s * fps` frames whatever the scheduling.
        """
        if self.capturing:
            return
        self._join_capture()
        if isinstance(self.error, CaptureStalled):
            # Stuck on the read that followed the last episode: the robot is not answering, and
            # callers report that as they report a read that failed.
            raise self.error
        if self.error is not None:
            raise RuntimeError(f"capture stopped after an error: {self.error}")
        if self.dataset.episode_journal is None:
            # Saving in the background, the journal only holds the encoder's lag; saving at the
            # end, it holds the whole raw episode.
            seconds = (max_frames or 0) / self.fps if self.async_saver is None else 0
            needed = self._low_water + int(seconds * self._raw_rate)
            length = f"a {max_frames / self.fps:g} s episode" if max_frames else "recording"
            check_room(self.dataset.root, needed, length)
            self.stats = CaptureStats(self.fps, self._streams)
            self._frames_captured = 0
            self._last_seqs = None
            journal = self.dataset.open_episode(self.task, self._streams)
            if self.async_saver is not None:
                self.async_saver.begin(journal)
        if self.compress is not None:
            self.compress.hold()
        # Each capture thread gets its own stop event: a thread abandoned in a stuck read must
        # never write its late frame into whatever episode is recorded after it.
        self._stop_capture = stop = threading.Event()
        self._max_frames = max_frames
        self._thread = threading.Thread(target=self._capture_loop, args=(stop,), name="capture", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Stop the capture clock; the episode stays open and `start()` continues it."""
        self._stop_capture.set()
        self._join_capture()

    def _join_capture(self, timeout_s: float = STALL_TIMEOUT_S) -> None:
        """Wait for the capture thread to end, but never longer than a read may take.

        A read that is still stuck `timeout_s` after it began (a camera that stopped answering
        right before the episode ended) is abandoned with the stall error, as while capturing.
        """
        thread = self._thread
        if thread is None:
            return
        joined = time.monotonic()
        while thread.is_alive():
            started = self._read_started
            since = joined if started is None else min(started, joined)
            remaining = since + timeout_s - time.monotonic()
            if remaining <= 0:
                self._stall(timeout_s)
                break
            thread.join(min(remaining, 0.05))
        self._thread = None

    def _capture_loop(self, stop: threading.Event) -> None:
        period = 1.0 / self.fps
        next_tick = time.perf_counter()
        try:
            while not stop.is_set():
                now = time.perf_counter()
                if now < next_tick:
                    # Wake on the stop event too, so ending an episode never waits a whole tick.
                    if stop.wait(next_tick - now):
                        break
                    now = time.perf_counter()
                self.stats.tick(now, now - next_tick)
                if not self._tick(stop):
                    break
                next_tick += period
                behind = time.perf_counter() - next_tick
                if behind > period:
                    # Ticks that cannot be caught up are skipped, not fired in a burst: a
                    # burst would record the same scene several times at wrong timestamps.
                    skipped = int(behind // period)
                    self.stats.missed_ticks += skipped
                    next_tick += skipped * period
        except BaseException as exc:
            self.error = exc

    def _tick(self, stop: threading.Event) -> bool:
        """Capture and journal one frame; False once the episode is complete or ended."""
        self._read_started = time.monotonic()
        frame, arrivals = self.robot.read()
        read_at = time.monotonic()
        self._read_started = None
        ages, seqs = self._stream_timing(arrivals, read_at)
        for key in self._skip_keys:
            frame.pop(key, None)
        with self._episode_lock:
            if stop.is_set():
                return False  # read after the operator ended the episode: not part of it
            frames = self.dataset.add_frame(frame, self.task, time.time(), ages, seqs) + 1
        self._frames_captured = frames
        self.latest_frame = frame
        if frames % self.fps == 0:  # once a second: statvfs costs microseconds
            check_room(self.dataset.root, self._low_water, "recording")
        return self._max_frames is None or frames < self._max_frames

    def _stream_timing(self, arrivals: dict[str, Arrival], now: float) -> tuple[np.ndarray, np.ndarray]:
        """Each stream's age and message number for this tick; raises if one fell silent."""
        ages = np.array([now - arrivals[s].time for s in self._streams], np.float32)
        seqs = np.array([arrivals[s].seq for s in self._streams], np.int64)
        if ages.size and ages.max() > self._stale_s:
            silent = [
                short_stream_name(s)
                for s, age in zip(self._streams, ages, strict=True)
                if age > self._stale_s
            ]
            raise StreamStale(
                f"nothing new from {', '.join(silent)} for {ages.max():.1f} s (--robot.stale_timeout_s="
                f"{self._stale_s:g}): {'its' if len(silent) == 1 else 'their'} camera or arm stopped sending"
            )
        repeated = seqs == self._last_seqs if self._last_seqs is not None else np.zeros(len(seqs), bool)
        self.stats.stream_frame(ages, repeated)
        self._last_seqs = seqs
        return ages, seqs

    def check_stalled(self, timeout_s: float = STALL_TIMEOUT_S) -> bool:
        """If the robot has not returned a frame for `timeout_s`, stop capture with an error.

        A camera that stops delivering frames usually blocks its read rather than failing it;
        the stuck read is abandoned (the thread is a daemon) and every frame before it is kept.
        """
        started = self._read_started
        if started is None or not self.capturing or time.monotonic() - started < timeout_s:
            return False
        self._stall(timeout_s)
        self._thread = None
        return True

    def _stall(self, timeout_s: float) -> None:
        self.error = self.error or CaptureStalled(
            f"no frame from the robot for {timeout_s:g} s (a camera or the arm stopped answering)"
        )
        self._stop_capture.set()

    # -- ending episodes --------------------------------------------------------------------------

    def save(self) -> EpisodeMetadata:
        """End the current episode and save it, in the background unless `use_async_save=false`."""
        if self.async_saver is not None:
            return self.save_async()
        return self.save_sync()

    def _end_episode(self, index: int) -> tuple[Path | None, Path | None, int]:
        """Stop capture and close the journal without waiting for the capture thread.

        Returns (journal it was recording, closed journal or None if empty, frames).
        """
        with self._episode_lock:
            self._stop_capture.set()
            journal = self.dataset.episode_journal
            frames = self.dataset.num_frames_in_episode
            closed = self.dataset.close_episode(index)
        return journal, closed, frames

    def save_async(self) -> EpisodeMetadata:
        """End the current episode and queue it; returns at once with where it stands."""
        if self.async_saver is None:
            raise RuntimeError("save_async() needs use_async_save=true")
        started = time.perf_counter()
        index = self.next_episode_index
        journal = self.dataset.episode_journal
        try:
            _, closed, frames = self._end_episode(index)
        except OSError as exc:  # e.g. no space left to mark the journal closed
            if journal is not None:
                self.async_saver.abandon(journal)
            self.error = self.error or exc
            log.error(f"[Record] Episode {index} could not be closed ({exc}); its frames stay in {journal}")
            return EpisodeMetadata(index, 0, 0, False, (time.perf_counter() - started) * 1e3)
        if closed is None:
            if journal is not None:
                self.async_saver.abandon(journal)
            return EpisodeMetadata(index, 0, 0, False, (time.perf_counter() - started) * 1e3)
        self.session_stats.merge(self.stats)
        return self.async_saver.queue(closed, frames, started=started)

    def save_sync(self) -> EpisodeMetadata:
        """End the current episode and commit it completely before returning."""
        if self.async_saver is not None:
            # Episodes commit in order: going through the saver keeps it, and waits for its turn.
            journal = self.dataset.episode_journal
            meta = self.save_async()
            if not meta.queued or journal is None:
                return meta
            done = self.async_saver.wait_episode(journal)
            saved = done.state == EpisodeState.COMPLETED
            index = done.episode_index if saved else meta.episode_index
            error = None if saved else done.error or self.async_saver.halted
            return EpisodeMetadata(index, 0, meta.frames, False, meta.elapsed_ms, saved=saved, error=error)
        started = time.perf_counter()
        self.pause()
        frames = self.dataset.num_frames_in_episode
        expected = self.dataset.meta.total_episodes
        if frames:
            self.session_stats.merge(self.stats)
        try:
            index = self.dataset.save_episode()
        except Exception as exc:  # the closed journal keeps every frame for `dorobot recover`
            self.error = self.error or exc
            log.error(f"[Record] Episode {expected} could not be saved ({exc}); it is kept in its journal")
            elapsed_ms = (time.perf_counter() - started) * 1e3
            return EpisodeMetadata(expected, 0, frames, False, elapsed_ms, saved=False, error=str(exc))
        elapsed_ms = (time.perf_counter() - started) * 1e3
        saved = index is not None
        return EpisodeMetadata(
            expected if index is None else index, 0, frames, False, elapsed_ms, saved=saved
        )

    def discard(self) -> int:
        """Drop the current episode; returns the number of frames dropped. Its index is reused."""
        with self._episode_lock:
            self._stop_capture.set()
            journal = self.dataset.episode_journal
            dropped = self.dataset.discard_episode()
        if journal is not None and self.async_saver is not None:
            self.async_saver.abandon(journal)
        return dropped

    @property
    def halted(self) -> str | None:
        """Why saving stopped for good (a full disk, a vanished folder), or None."""
        return self.async_saver.halted if self.async_saver is not None else None

    def status(self) -> SaverStatus | None:
        return self.async_saver.status() if self.async_saver is not None else None

    def stop(self, on_progress: Callable[[SaverStatus], None] | None = None) -> SaveStats | None:
        """Stop capturing and wait (up to `async_save_timeout_s`) until every queued episode is saved.

        An episode still open is not saved: it stays in its journal, where nothing is lost.
        """
        self.pause()
        journal = self.dataset.episode_journal
        if journal is not None and self.episode_frames:
            log.warning(f"[Record] The episode in progress was not saved; its frames are kept in {journal}")
        if journal is not None and self.async_saver is not None:
            self.async_saver.abandon(journal)
        if self.async_saver is None:
            self.dataset.meta.compact(final=True, say=log.info)  # the saver does it otherwise
            stats = None
        else:
            stats = self.async_saver.stop(self.cfg.async_save_timeout_s, on_progress)
        if self.compress is not None:
            self._finish_compression(self.compress)
        return stats

    def _finish_compression(self, compress: CompressProcess) -> None:
        """Leave what waits to the compressor, which goes on alone: the operator does not wait."""
        status = compress.finish_session()
        if status.waiting_episodes:
            log.info(
                f"[Record] Compression goes on in the background: {status.waiting_episodes} episode(s) "
                f"({status.waiting_s / 60:.1f} min) to go; `dorobot info {self.dataset.root}` shows "
                "what is left, `dorobot compress` finishes it if it is stopped"
            )
