"""The dataset's `meta/` folder, whatever its layout: info.json and what goes with it.

`DoRobotDatasetMetadata` is its only writer: every change goes through `_meta_lock`, and
info.json is replaced by atomic rename, last, so its counters never point at data that is not
there. What differs between LeRobot's layouts (where an episode's files go, which files list
the episodes) lives in one subclass per layout: `formats/v21.py` and `formats/v30.py`.
`create` and `load` pick the subclass; the rest of the program never asks which it has.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from operating_platform import faults
from operating_platform.dataset.compress_target import accepted_codecs, read_target, write_target
from operating_platform.dataset.features import arrow_schema, video_keys, with_default_features
from operating_platform.dataset.fsutil import PRIVATE_DIR, fsync_dir, write_json_atomic

INFO_PATH = "meta/info.json"
CHUNKS_SIZE = 1000
FORMATS = ("v2.1", "v3.0")
DEFAULT_FORMAT = "v2.1"
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
    """Reads and writes `meta/` of one dataset; thread-safe, and never ahead of the data on disk.

    `create` and `load` return the subclass of the dataset's layout (`codebase_version`).
    """

    codebase_version: ClassVar[str] = ""
    hf_list_type: ClassVar[str] = "Sequence"  # see features.arrow_schema
    data_template: ClassVar[str] = ""  # info.json's data_path and video_path
    video_template: ClassVar[str] = ""
    extra_counters: ClassVar[dict[str, int]] = {}  # info.json keys besides the three totals
    file_settings: ClassVar[dict[str, float]] = {}  # and besides chunks_size

    def __init__(self, root: Path, info: dict[str, Any], tasks: list[str], lengths: list[int]) -> None:
        self.root = Path(root)
        self.info = info
        self._tasks = tasks
        self._committed_tasks = len(tasks)
        self._lengths = lengths
        self._meta_lock = threading.Lock()
        target = read_target(root)
        # With a compression target, info.json names the codec every video is on its way to.
        self.compress_codec: str | None = target["codec"] if target else None

    # -- creation and loading ---------------------------------------------------------------

    @staticmethod
    def layout(codebase_version: str | None) -> type[DoRobotDatasetMetadata]:
        """The class that reads and writes datasets of `codebase_version`."""
        from operating_platform.dataset.formats import v21, v30

        layouts: dict[str, type[DoRobotDatasetMetadata]] = {
            v21.V21Metadata.codebase_version: v21.V21Metadata,
            v30.V30Metadata.codebase_version: v30.V30Metadata,
        }
        if codebase_version not in layouts:
            raise DatasetError(
                f"unknown dataset format {codebase_version!r}: this program reads and writes "
                f"{' and '.join(layouts)}"
            )
        return layouts[codebase_version]

    @classmethod
    def create(
        cls,
        root: Path,
        fps: int,
        robot_type: str | None,
        features: dict[str, dict[str, Any]],
        codebase_version: str = DEFAULT_FORMAT,
        layout_options: dict[str, Any] | None = None,
    ) -> DoRobotDatasetMetadata:
        """Start an empty dataset of the given layout in `root`, which must not hold anything yet.

        `layout_options` set info.json fields the layout has (v3.0's file sizes).
        """
        root = Path(root)
        layout = cls.layout(codebase_version)
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
        info = layout.new_info(fps, robot_type, all_features)
        info.update(layout_options or {})
        (root / "meta").mkdir(parents=True, exist_ok=True)
        layout.create_files(root)
        write_json_atomic(root / INFO_PATH, info)
        return layout(root, info, [], [])

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
        version = info.get("codebase_version")
        if version not in FORMATS:
            raise DatasetError(
                f"{root} is a {version} dataset; only {' and '.join(FORMATS)} datasets can be appended to"
            )
        layout = cls.layout(version)
        try:
            return layout.load_committed(root, info)
        except FileNotFoundError as exc:
            raise DatasetError(f"{root} is not a dataset: {exc.filename} is missing") from None
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise DatasetError(
                f"{root}: damaged metadata ({exc}); run `dorobot verify {root}` for details"
            ) from None

    # -- what each layout provides ----------------------------------------------------------

    @classmethod
    def new_info(
        cls, fps: int, robot_type: str | None, features: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """info.json of an empty dataset of this layout, its keys in LeRobot's order."""
        return {
            "codebase_version": cls.codebase_version,
            "robot_type": robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            **cls.extra_counters,
            "chunks_size": CHUNKS_SIZE,
            **cls.file_settings,
            "fps": fps,
            "splits": {"train": "0:0"},
            "data_path": cls.data_template,
            "video_path": cls.video_template if video_keys(features) else None,
            "features": features,
        }

    @classmethod
    def create_files(cls, root: Path) -> None:
        """The metadata files an empty dataset of this layout has besides info.json."""

    @classmethod
    def load_committed(cls, root: Path, info: dict[str, Any]) -> DoRobotDatasetMetadata:
        """Read what info.json counts; raise `DatasetError` if the files disagree with it."""
        raise NotImplementedError

    @classmethod
    def trim_to_info(cls, root: Path, info: dict[str, Any], act: Callable[[str], None]) -> None:
        """Recovery: cut the metadata files back to what info.json counts (a commit that never
        reached info.json may have written ahead of it)."""
        raise NotImplementedError

    @classmethod
    def snapshot(
        cls, root: Path, info: dict[str, Any], meta: dict[str, bytes]
    ) -> tuple[dict[str, bytes], list[str]] | None:
        """For an upload: `meta/`'s files (relative path -> bytes) as of the commit `info`
        describes, and the data and video files that state uses; None while a change is under
        way (a commit or a merge), to be read again a moment later."""
        raise NotImplementedError

    def data_path(self, episode_index: int) -> Path:
        """The parquet holding a committed episode's rows, or where the next episode's go."""
        raise NotImplementedError

    def video_path(self, episode_index: int, video_key: str) -> Path:
        """The video holding a committed episode's frames, or where the next episode's go."""
        raise NotImplementedError

    def _write_episode(self, record: EpisodeRecord, new_tasks: list[str]) -> Callable[[], None]:
        """Write everything but info.json that lists the episode; returns how to undo it.

        If it fails itself, it undoes what it wrote before raising.
        """
        raise NotImplementedError

    def compact(self, final: bool, say: Callable[[str], None] = lambda _line: None) -> int:
        """Pack committed episodes into fewer files where the layout wants that; returns how
        many files were merged. `final` also packs the files still growing (end of a session)."""
        return 0

    def finish_interrupted(self, say: Callable[[str], None]) -> None:
        """Recovery: finish or drop work on committed files that a kill interrupted."""

    def _episode_written(self, record: EpisodeRecord) -> None:
        """The episode is committed: keep what `_write_episode` prepared."""

    def _set_counters(self, info: dict[str, Any], episodes: int, frames: int, tasks: int) -> None:
        info["total_episodes"] = episodes
        info["total_frames"] = int(frames)
        info["total_tasks"] = tasks
        info["splits"] = {"train": f"0:{episodes}"}

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

    def data_schema(self) -> pa.Schema:
        """The schema of the dataset's data parquet files."""
        return arrow_schema(self.features, self.hf_list_type)

    def episode_length(self, episode_index: int) -> int:
        return self._lengths[episode_index]

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    @property
    def private_dir(self) -> Path:
        return self.root / PRIVATE_DIR

    def timing_path(self, episode_index: int) -> Path:
        """The episode's timing file (see `dataset/timing.py`): ours, never read by LeRobot."""
        return self.private_dir / "timing" / f"episode_{episode_index:06d}.parquet"

    def committed_files(self) -> set[Path]:
        """Every data, video and timing file of the committed episodes."""
        files = set()
        for i in range(self.total_episodes):
            files.add(self.data_path(i))
            files.add(self.timing_path(i))
            files.update(self.video_path(i, key) for key in self.video_keys)
        return files

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
        waiting = accepted_codecs(self.root, self.compress_codec)
        for key in self.video_keys:
            info = self.features[key].get("info") or {}
            codec, their_pix_fmt = info.get("video.codec"), info.get("video.pix_fmt")
            if codec is not None and codec != stream_codec and stream_codec not in waiting:
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

    def set_compression_target(self, target: dict[str, Any]) -> None:
        """Give the dataset a compression target (see `compress_target`): its settings file,
        then info.json naming the target codec for every camera that has videos."""
        with self._meta_lock:
            write_target(self.root, {**target, "waiting_codecs": self._video_codecs() - {target["codec"]}})
            self.compress_codec = target["codec"]
            info = json.loads(json.dumps(self.info))
            for key in self.video_keys:
                if "info" in info["features"][key]:
                    info["features"][key]["info"]["video.codec"] = target["codec"]
            if info != self.info:
                write_json_atomic(self.root / INFO_PATH, info)
                self.info = info

    def _note_waiting_codecs(self, record: EpisodeRecord) -> None:
        """Before info.json names the target codec for an episode recorded in another, the
        target's settings say that codec waits (so verify takes it for what it is)."""
        if self.compress_codec is None:
            return
        recorded = {block["video.codec"] for block in record.video_info.values()}
        if not recorded <= accepted_codecs(self.root, self.compress_codec) | {self.compress_codec}:
            target = read_target(self.root) or {"codec": self.compress_codec}
            write_target(self.root, {**target, "waiting_codecs": sorted(recorded - {self.compress_codec})})

    def _video_codecs(self) -> set[str]:
        return {
            ft["info"]["video.codec"]
            for key, ft in self.features.items()
            if key in self.video_keys and "video.codec" in ft.get("info", {})
        }

    def commit_episode(self, record: EpisodeRecord) -> None:
        """Publish an episode whose data files are already in place: the layout's lists, then
        info.json.

        If any write fails (a full disk), the lists are put back as they were and nothing in
        memory changes: the dataset is exactly as before the call.
        """
        with self._meta_lock:
            if record.episode_index != self.total_episodes:
                raise DatasetError(
                    f"episode {record.episode_index} committed out of order (next is {self.total_episodes})"
                )
            needed = max(self._tasks.index(t) for t in record.tasks) + 1
            committed_tasks = max(needed, self._committed_tasks)
            new_tasks = self._tasks[self._committed_tasks : committed_tasks]
            info = json.loads(json.dumps(self.info))
            undo: Callable[[], None] = lambda: None  # noqa: E731 - nothing written yet
            try:
                undo = self._write_episode(record, new_tasks)
                faults.pause("metadata")
                self._set_counters(
                    info, len(self._lengths) + 1, sum(self._lengths) + record.length, committed_tasks
                )
                self._note_waiting_codecs(record)
                for key, block in record.video_info.items():
                    info["features"][key].setdefault("info", block)
                    if self.compress_codec is not None:
                        info["features"][key]["info"]["video.codec"] = self.compress_codec
                write_json_atomic(self.root / INFO_PATH, info, sync_dir=False)  # the commit point
            except BaseException:
                undo()
                raise
            # Committed. A failing directory fsync now only weakens durability against a power
            # cut; undoing the lists would contradict the info.json readers already see.
            with contextlib.suppress(OSError):
                fsync_dir(self.root / "meta")
            self.info = info
            self._committed_tasks = committed_tasks
            self._lengths.append(record.length)
            self._episode_written(record)
