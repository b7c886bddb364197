"""`Record`: the capture clock, and the save / discard / stop calls the operator's program makes.

Capture runs on its own thread at a fixed rate. Each tick reads the robot and hands the frame
to the dataset's journal, which writes it before the tick ends; nothing slow ever runs there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from operating_platform.core.record_config import ConfigError, RecordConfig
from operating_platform.dataset.dorobot_dataset import DoRobotDataset
from operating_platform.robots.base import Robot

__all__ = ["CaptureStats", "ConfigError", "Record", "RecordConfig"]


@dataclass
class CaptureStats:
    """How well the capture clock kept time during the current episode."""

    fps: int
    lateness_s: list[float] = field(default_factory=list)
    missed_ticks: int = 0

    @property
    def frames(self) -> int:
        return len(self.lateness_s)

    def late_ticks(self, threshold_s: float = 0.005) -> int:
        return int(sum(1 for x in self.lateness_s if x > threshold_s))

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.lateness_s, q) * 1e3) if self.lateness_s else 0.0


class Record:
    """Records episodes from `robot` into a dataset at `fps`.

    `start()` begins (or continues) capturing the current episode; `save()` ends it and commits
    it; `discard()` drops it so its index is used again; `stop()` ends the session. A frame the
    dataset refuses, or a failing robot, stops capture: `error` then holds the cause, and every
    frame before it is still in the episode.
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
            )
        self.dataset = dataset
        self._skip_keys = [k for k in robot.features if k not in dataset.features]
        self.task = record_cfg.single_task
        self.stats = CaptureStats(fps)
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._max_frames: int | None = None
        self._stop_capture = threading.Event()

    # -- capture ------------------------------------------------------------------------------

    @property
    def capturing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def episode_frames(self) -> int:
        return self.dataset.num_frames_in_episode

    @property
    def next_episode_index(self) -> int:
        return self.dataset.meta.total_episodes

    def start(self, max_frames: int | None = None) -> None:
        """Start capturing into the current episode (a new one after `save` or `discard`).

        With `max_frames`, capture stops by itself once the episode holds that many frames, so a
        timed episode has exactly `episode_time_s * fps` frames whatever the scheduling.
        """
        if self.capturing:
            return
        if self.error is not None:
            raise RuntimeError(f"capture stopped after an error: {self.error}")
        if self.dataset.num_frames_in_episode == 0:
            self.stats = CaptureStats(self.fps)
        self._stop_capture.clear()
        self._max_frames = max_frames
        self._thread = threading.Thread(target=self._capture_loop, name="capture", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Stop the capture clock; the episode stays open and `start()` continues it."""
        self._stop_capture.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _capture_loop(self) -> None:
        period = 1.0 / self.fps
        next_tick = time.perf_counter()
        try:
            while not self._stop_capture.is_set():
                now = time.perf_counter()
                if now < next_tick:
                    # Wake on the stop event too, so pausing never waits a whole tick.
                    if self._stop_capture.wait(next_tick - now):
                        break
                    now = time.perf_counter()
                self.stats.lateness_s.append(now - next_tick)
                self._tick()
                if self._max_frames is not None and self.episode_frames >= self._max_frames:
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

    def _tick(self) -> None:
        frame = self.robot.capture()
        for key in self._skip_keys:
            frame.pop(key, None)
        self.dataset.add_frame(frame, self.task, capture_time=time.time())

    # -- ending episodes --------------------------------------------------------------------------

    def save(self) -> int | None:
        """End the current episode and commit it; returns its index (None if it had no frames)."""
        return self.save_sync()

    def save_sync(self) -> int | None:
        """End the current episode and commit it completely before returning."""
        self.pause()
        return self.dataset.save_episode()

    def discard(self) -> int:
        """Drop the current episode; returns the number of frames dropped."""
        self.pause()
        return self.dataset.discard_episode()

    def stop(self) -> None:
        """Stop capturing. An episode still open is kept in its journal, not committed."""
        self.pause()
