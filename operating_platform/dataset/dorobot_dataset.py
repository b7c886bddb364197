"""The entry point for recording into a LeRobot dataset (v2.1 or v3.0).

`DoRobotDataset` takes frames into the episode journal as they are captured and turns closed
journals into committed episodes; `DoRobotDatasetMetadata` (metadata.py) owns `meta/`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from operating_platform.dataset.features import validate_frame
from operating_platform.dataset.finalize import finalize_journal
from operating_platform.dataset.fsutil import make_dirs_within
from operating_platform.dataset.journal import JournalWriter, new_journal_id
from operating_platform.dataset.lock import FileLock, lock_session
from operating_platform.dataset.metadata import (
    DEFAULT_FORMAT,
    INFO_PATH,
    DatasetError,
    DoRobotDatasetMetadata,
)
from operating_platform.dataset.recovery import recover_dataset
from operating_platform.dataset.video import PIX_FMT, VideoSettings

__all__ = ["DatasetError", "DoRobotDataset", "DoRobotDatasetMetadata"]

log = logging.getLogger("operating_platform.recovery")


class DoRobotDataset:
    """A dataset being recorded: frames go to the episode journal as they come, episodes to disk.

    `add_frame` validates a frame against the features and writes it to the journal within
    the call; a frame that does not fit is refused with a `FrameError` naming the feature, and
    every frame before it stays recorded. `save_episode` commits the episode completely before
    returning.
    """

    def __init__(self, meta: DoRobotDatasetMetadata, repo_id: str, video: VideoSettings) -> None:
        self.meta = meta
        self.repo_id = repo_id
        self.video = video
        self.features = meta.features
        self._journal: JournalWriter | None = None
        self._lock: FileLock | None = None

    @classmethod
    def create(
        cls,
        repo_id: str,
        root: Path,
        fps: int,
        robot_type: str | None,
        features: dict[str, dict[str, Any]],
        video: VideoSettings | None = None,
        resume: bool = False,
        salvage_partial: bool = False,
        codebase_version: str | None = None,
        layout_options: dict[str, Any] | None = None,
    ) -> DoRobotDataset:
        """Open `root` for recording: a new dataset, or with `resume` the existing one to append to.

        A new dataset gets the layout `codebase_version` (v2.1 unless given); a resumed one keeps
        its own, and asking for another is refused. Resuming first recovers whatever an earlier
        session left unfinished. The dataset stays locked against other dorobot processes while
        this object lives. `layout_options` are settings of the layout (v3.0's file sizes); a
        resumed dataset takes them from here on.
        """
        root = Path(root)
        if resume and (root / INFO_PATH).exists():
            lock = lock_session(root)
            report = recover_dataset(
                root, salvage_partial=salvage_partial, say=log.info, hold_session_lock=False
            )
            if report.no_space:
                lock.release()
                raise DatasetError(report.no_space)
            meta = DoRobotDatasetMetadata.load(root)
            if codebase_version not in (None, meta.codebase_version):
                lock.release()
                raise DatasetError(
                    f"cannot resume {root} as {codebase_version}: it is a {meta.codebase_version} dataset; "
                    f"resume it as it is, or convert it first: dorobot convert {root} --to {codebase_version}"
                )
            meta.check_compatible(fps, robot_type, features)
            if unknown := sorted(set(layout_options or {}) - set(meta.info)):
                lock.release()
                raise DatasetError(
                    f"cannot resume {root} with --record.{unknown[0]}: it is a {meta.codebase_version} "
                    "dataset, which has no such setting"
                )
            meta.info.update(layout_options or {})  # written with the next commit's info.json
            video = video or VideoSettings()
            meta.check_video(video.vcodec, video.stream_codec, PIX_FMT)
        else:
            meta = DoRobotDatasetMetadata.create(
                root, fps, robot_type, features, codebase_version or DEFAULT_FORMAT, layout_options
            )
            lock = lock_session(root)
        dataset = cls(meta, repo_id, video or VideoSettings())
        dataset._lock = lock
        return dataset

    @property
    def root(self) -> Path:
        return self.meta.root

    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def journal_dir(self) -> Path:
        return self.meta.private_dir / "journal"

    @property
    def num_frames_in_episode(self) -> int:
        return self._journal.frames if self._journal else 0

    @property
    def episode_journal(self) -> Path | None:
        """The journal of the episode being recorded, if one is open."""
        return self._journal.path if self._journal else None

    def open_episode(self, task: str, streams: Sequence[str] = ()) -> Path:
        """Open the journal of a new episode (done by the first `add_frame` otherwise).

        `streams` names the sources whose per-frame timing `add_frame` is given.
        """
        if self._journal is None:
            make_dirs_within(self.root, self.journal_dir)
            self._journal = JournalWriter(
                self.journal_dir / new_journal_id(),
                self.features,
                self.fps,
                task,
                # Recovery encodes with the settings the episode was recorded with.
                extra={"video": dataclasses.asdict(self.video)},
                streams=streams,
            )
        return self._journal.path

    def add_frame(
        self,
        frame: dict[str, np.ndarray],
        task: str,
        capture_time: float | None = None,
        ages: np.ndarray | None = None,
        seqs: np.ndarray | None = None,
    ) -> int:
        """Validate and journal one frame of the current episode; returns its frame index.

        `capture_time` is the wall-clock time of the read; `ages` and `seqs`, one value per
        stream named at `open_episode`, say how old each stream's message was and which it was.
        """
        validate_frame(frame, self.features)
        if self._journal is None:
            self.open_episode(task)
        assert self._journal is not None
        if capture_time is None:
            capture_time = self._journal.frames / self.fps
        return self._journal.append(frame, capture_time, ages, seqs)

    def close_episode(self, episode_index: int) -> Path | None:
        """Seal the current episode's journal and hand it over; None when it has no frames."""
        journal, self._journal = self._journal, None
        if journal is None:
            return None
        if journal.frames == 0:
            journal.discard()
            return None
        return journal.close(episode_index)

    def discard_episode(self) -> int:
        """Drop the current episode's frames; returns how many were dropped."""
        journal, self._journal = self._journal, None
        if journal is None:
            return 0
        journal.discard()
        return journal.frames

    def close(self) -> None:
        """Release the dataset for other processes (an open episode stays in its journal)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def save_episode(self) -> int | None:
        """Commit the current episode before returning; its index, or None when it was empty."""
        path = self.close_episode(self.meta.total_episodes)
        if path is None:
            return None
        index = finalize_journal(path, self.meta, self.video)
        self.meta.compact(final=False, say=log.info)
        return index
