"""The dataset's `meta/` folder: info.json and the three JSONL files of LeRobot v2.1.

`DoRobotDatasetMetadata` is their only writer: every change goes through `_meta_lock`, and
info.json is replaced by atomic rename, last, so its counters never point at data that is not
there.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operating_platform import faults
from operating_platform.dataset.features import video_keys, with_default_features
from operating_platform.dataset.fsutil import (
    append_lines_durable,
    fsync_dir,
    write_json_atomic,
)

CODEBASE_VERSION = "v2.1"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
INFO_PATH = "meta/info.json"
TASKS_PATH = "meta/tasks.jsonl"
EPISODES_PATH = "meta/episodes.jsonl"
EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
PRIVATE_DIR = ".dorobot"
# The encoder to suggest for a dataset's video codec.
ENCODER_FOR = {
    "h264": "libx264",
    "av1": "libsvtav1",
    "hevc": "libx265",
    "vp9": "libvpx-vp9",
    "mpeg4": "mpeg4",
}


class DatasetError(RuntimeError):
    """The dataset folder cannot be used as asked; the message says why and what to do."""


def _jsonl_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _strip_video_info(features: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {f: v for f, v in ft.items() if f != "info"} for k, ft in features.items()}


def _size(feature: dict[str, Any]) -> str:
    height, width = feature["shape"][:2]
    return f"{width}x{height}"


@dataclass(frozen=True)
class EpisodeRecord:
    """What one committed episode adds to the metadata."""

    episode_index: int
    length: int
    tasks: list[str]
    stats: dict[str, dict[str, Any]]
    video_info: dict[str, dict[str, Any]]


class DoRobotDatasetMetadata:
    """Reads and writes `meta/` of one dataset; thread-safe, and never ahead of the data on disk."""

    def __init__(self, root: Path, info: dict[str, Any], tasks: list[str], lengths: list[int]) -> None:
        self.root = Path(root)
        self.info = info
        self._tasks = tasks
        self._committed_tasks = len(tasks)
        self._lengths = lengths
        self._meta_lock = threading.Lock()

    # -- creation and loading ---------------------------------------------------------------

    @classmethod
    def create(
        cls, root: Path, fps: int, robot_type: str | None, features: dict[str, dict[str, Any]]
    ) -> DoRobotDatasetMetadata:
        """Start an empty dataset in `root`, which must not hold anything yet."""
        root = Path(root)
        if root.exists() and any(root.iterdir()):
            unfinished = root / PRIVATE_DIR / "journal"
            if unfinished.exists() and any(unfinished.iterdir()):
                raise DatasetError(
                    f"{root} holds episodes an interrupted session did not finish saving; run "
                    f"`dorobot recover {root}`, or pass --record.resume=true to recover them and go on"
                )
            raise DatasetError(
                f"{root} already exists and is not empty; pass --record.resume=true to add episodes to it, "
                "or choose another --record.root"
            )
        all_features = with_default_features(features)
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "total_videos": 0,
            "total_chunks": 0,
            "chunks_size": CHUNKS_SIZE,
            "fps": fps,
            "splits": {"train": "0:0"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if video_keys(all_features) else None,
            "features": all_features,
        }
        (root / "meta").mkdir(parents=True, exist_ok=True)
        for rel in (TASKS_PATH, EPISODES_PATH, EPISODES_STATS_PATH):
            (root / rel).touch()
        write_json_atomic(root / INFO_PATH, info)
        return cls(root, info, [], [])

    @staticmethod
    def read_info(root: Path) -> dict[str, Any]:
        """info.json, or a `DatasetError` saying why it cannot be used."""
        try:
            return json.loads((Path(root) / INFO_PATH).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DatasetError(f"{root} is not a dataset: {INFO_PATH} is missing") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(
                f"{root}: damaged metadata ({INFO_PATH}: {exc}); run `dorobot verify {root}` for details"
            ) from None

    @classmethod
    def load(cls, root: Path) -> DoRobotDatasetMetadata:
        """Open an existing dataset; refuse one whose metadata is damaged rather than guess."""
        root = Path(root)
        info = cls.read_info(root)
        try:
            tasks_rows = _read_jsonl(root / TASKS_PATH)
            episodes = _read_jsonl(root / EPISODES_PATH)
        except FileNotFoundError as exc:
            raise DatasetError(f"{root} is not a dataset: {exc.filename} is missing") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(
                f"{root}: damaged metadata ({exc}); run `dorobot verify {root}` for details"
            ) from None
        if info.get("codebase_version") != CODEBASE_VERSION:
            raise DatasetError(
                f"{root} is a {info.get('codebase_version')} dataset; "
                f"only {CODEBASE_VERSION} datasets can be appended to"
            )
        tasks = [row["task"] for row in sorted(tasks_rows, key=lambda r: r["task_index"])]
        episodes = episodes[: info["total_episodes"]]
        if len(episodes) != info["total_episodes"] or len(tasks) < info["total_tasks"]:
            raise DatasetError(
                f"{root}: info.json counts {info['total_episodes']} episodes but meta/ lists "
                f"{len(episodes)}; run `dorobot verify {root}`"
            )
        return cls(root, info, tasks, [int(ep["length"]) for ep in episodes])

    # -- what is committed ------------------------------------------------------------------

    @property
    def fps(self) -> int:
        return self.info["fps"]

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return video_keys(self.features)

    @property
    def total_episodes(self) -> int:
        return self.info["total_episodes"]

    @property
    def total_frames(self) -> int:
        return self.info["total_frames"]

    def episode_length(self, episode_index: int) -> int:
        return self._lengths[episode_index]

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def data_path(self, episode_index: int) -> Path:
        chunk = episode_index // self.info["chunks_size"]
        return self.root / DATA_PATH.format(episode_chunk=chunk, episode_index=episode_index)

    def video_path(self, episode_index: int, video_key: str) -> Path:
        chunk = episode_index // self.info["chunks_size"]
        return self.root / VIDEO_PATH.format(
            episode_chunk=chunk, video_key=video_key, episode_index=episode_index
        )

    @property
    def private_dir(self) -> Path:
        return self.root / PRIVATE_DIR

    def timing_path(self, episode_index: int) -> Path:
        """The episode's timing file (see `dataset/timing.py`): ours, never read by LeRobot."""
        return self.private_dir / "timing" / f"episode_{episode_index:06d}.parquet"

    def check_compatible(self, fps: int, robot_type: str | None, features: dict[str, dict[str, Any]]) -> None:
        """Raise unless new episodes recorded with these settings belong in this dataset."""
        if fps != self.fps:
            raise DatasetError(f"cannot resume {self.root}: it was recorded at {self.fps} fps, not {fps}")
        if robot_type != self.info["robot_type"]:
            raise DatasetError(
                f"cannot resume {self.root}: its robot_type is "
                f"{self.info['robot_type']!r}, not {robot_type!r}"
            )
        ours = _strip_video_info(with_default_features(features))
        theirs = _strip_video_info(self.features)
        for key in video_keys(theirs):
            if key in ours and ours[key]["shape"] != theirs[key]["shape"]:
                raise DatasetError(
                    f"cannot resume {self.root}: the robot's {key} gives {_size(ours[key])} images, the "
                    f"dataset's are {_size(theirs[key])}; set the camera size (--robot.*) to match"
                )
        if ours != theirs:
            diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise DatasetError(f"cannot resume {self.root}: features differ ({', '.join(diff)})")

    def check_video(self, vcodec: str, stream_codec: str, pix_fmt: str) -> None:
        """Raise unless videos encoded by `vcodec` (a `stream_codec` stream) match the dataset's.

        info.json states one codec and pixel format per camera for every episode; an episode
        encoded otherwise would contradict it.
        """
        for key in self.video_keys:
            info = self.features[key].get("info") or {}
            codec, their_pix_fmt = info.get("video.codec"), info.get("video.pix_fmt")
            if codec is not None and codec != stream_codec:
                encoder = ENCODER_FOR.get(codec, f"<an encoder of {codec}>")
                raise DatasetError(
                    f"cannot resume {self.root}: --record.vcodec={vcodec} writes {stream_codec} videos, "
                    f"but its {key} videos are {codec}; pass --record.vcodec={encoder}"
                )
            if their_pix_fmt is not None and their_pix_fmt != pix_fmt:
                raise DatasetError(
                    f"cannot resume {self.root}: its {key} videos are {their_pix_fmt}, "
                    f"this recorder writes {pix_fmt}"
                )

    # -- changes ----------------------------------------------------------------------------

    def task_index(self, task: str) -> int:
        """The index of `task`, reserving the next one for a new task (written at commit)."""
        with self._meta_lock:
            if task not in self._tasks:
                self._tasks.append(task)
            return self._tasks.index(task)

    def commit_episode(self, record: EpisodeRecord) -> None:
        """Publish an episode whose data files are already in place: JSONL lines, then info.json.

        If any write fails (a full disk), the JSONL files are cut back to where they were and
        nothing in memory changes: the dataset is exactly as before the call.
        """
        with self._meta_lock:
            if record.episode_index != self.total_episodes:
                raise DatasetError(
                    f"episode {record.episode_index} committed out of order (next is {self.total_episodes})"
                )
            needed = max(self._tasks.index(t) for t in record.tasks) + 1
            committed_tasks = max(needed, self._committed_tasks)
            episode = {"episode_index": record.episode_index, "tasks": record.tasks, "length": record.length}
            stats_line = {"episode_index": record.episode_index, "stats": record.stats}
            appends = {
                TASKS_PATH: [
                    _jsonl_line({"task_index": i, "task": self._tasks[i]})
                    for i in range(self._committed_tasks, committed_tasks)
                ],
                EPISODES_PATH: [_jsonl_line(episode)],
                EPISODES_STATS_PATH: [_jsonl_line(stats_line)],
            }
            sizes = {rel: (self.root / rel).stat().st_size for rel in appends}
            info = json.loads(json.dumps(self.info))
            try:
                for rel, lines in appends.items():
                    if lines:
                        append_lines_durable(self.root / rel, lines)
                faults.pause("metadata")
                self._set_counters(
                    info, len(self._lengths) + 1, sum(self._lengths) + record.length, committed_tasks
                )
                for key, block in record.video_info.items():
                    info["features"][key].setdefault("info", block)
                write_json_atomic(self.root / INFO_PATH, info, sync_dir=False)  # the commit point
            except BaseException:
                for rel, size in sizes.items():
                    os.truncate(self.root / rel, size)
                raise
            # Committed. A failing directory fsync now only weakens durability against a power
            # cut; undoing the JSONL lines would contradict the info.json readers already see.
            with contextlib.suppress(OSError):
                fsync_dir(self.root / "meta")
            self.info = info
            self._committed_tasks = committed_tasks
            self._lengths.append(record.length)

    @staticmethod
    def _set_counters(info: dict[str, Any], episodes: int, frames: int, tasks: int) -> None:
        """Set info.json's counters for `episodes` committed episodes."""
        info["total_episodes"] = episodes
        info["total_frames"] = int(frames)
        info["total_tasks"] = tasks
        info["total_videos"] = episodes * len(video_keys(info["features"]))
        info["total_chunks"] = math.ceil(episodes / info["chunks_size"])
        info["splits"] = {"train": f"0:{episodes}"}
