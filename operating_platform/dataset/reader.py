"""Read the committed episodes of a LeRobot dataset, in either layout (v2.1 or v3.0).

`DatasetReader` gives every episode as the same things whatever the layout: its length, tasks
and stats, its parquet rows exactly as stored, and per camera the stretch of an mp4 that holds
its frames. It only reads: nothing under the dataset's folder is created or changed.

Only what info.json counts is read. A writer that was interrupted may have listed an episode in
the metadata files without counting it in info.json yet (info.json is written last); such an
episode is not part of the dataset and is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from operating_platform.dataset.metadata import DatasetError

SUPPORTED_VERSIONS = ("v2.1", "v3.0")
INFO_PATH = "meta/info.json"
# v2.1
EPISODES_JSONL = "meta/episodes.jsonl"
EPISODES_STATS_JSONL = "meta/episodes_stats.jsonl"
TASKS_JSONL = "meta/tasks.jsonl"
# v3.0
EPISODES_DIR = "meta/episodes"
TASKS_PARQUET = "meta/tasks.parquet"
# pandas writes a DataFrame's index (v3.0 keeps the task strings there) under this name.
PANDAS_INDEX_COLUMN = "__index_level_0__"


@dataclass(frozen=True)
class VideoSegment:
    """Where one episode's frames of one camera are: a file and a half-open time range in it."""

    path: Path  # the mp4 holding the episode
    from_timestamp: float  # where the episode starts in it (0.0 in v2.1)
    to_timestamp: float  # where it ends (exclusive), = from + length/fps


@dataclass(frozen=True)
class EpisodeEntry:
    """One committed episode as the metadata lists it.

    `stats` maps each feature to its min/max/mean/std/count (and q01..q99 when the dataset has
    them) as JSON-like nested lists, as stored in the files.
    """

    index: int
    length: int
    tasks: list[str]
    stats: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class _Located:
    """Where an episode's files are, besides its metadata."""

    data_path: Path
    segments: dict[str, VideoSegment]


class DatasetReader:
    """Reads a committed LeRobot dataset (v2.1 or v3.0) without changing it.

    Promises:
    - `open` refuses, with a `DatasetError` of one line, a folder that is not a dataset, a layout
      other than v2.1 and v3.0, and metadata that disagrees with info.json's counts.
    - `episode(i)`, `episode_table(i)`, `video_segment(i, key)` and `frames(i, key)` describe the
      same episode in both layouts; an index outside `range(total_episodes)` raises `IndexError`
      and a key that is not a video feature raises `KeyError`.
    - `episode_table(i)` has exactly `episode(i).length` rows, in the schema of the file that
      holds them; `frames(i, key)` yields exactly that many frames, or raises `DatasetError`
      after the ones it could decode.
    """

    def __init__(
        self,
        root: Path,
        info: dict[str, Any],
        tasks: list[str],
        episodes: list[EpisodeEntry],
        located: list[_Located],
    ) -> None:
        self.root = root
        self.info = info
        self.codebase_version: str = info["codebase_version"]
        self.fps: int = int(info["fps"])
        self.features: dict[str, dict[str, Any]] = info["features"]
        self.video_keys: list[str] = [k for k, ft in self.features.items() if ft.get("dtype") == "video"]
        self.total_episodes: int = int(info["total_episodes"])
        self.total_frames: int = int(info["total_frames"])
        self.tasks = tasks
        self._episodes = episodes
        self._located = located
        # v3.0 keeps many episodes in one data file: reading episodes in order reads it once.
        self._cached_table: tuple[Path, pa.Table] | None = None

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path) -> DatasetReader:
        """Read the metadata of the dataset in `root` (the folder holding meta/)."""
        root = Path(root)
        info = _read_info(root)
        version = info.get("codebase_version")
        if version not in SUPPORTED_VERSIONS:
            raise DatasetError(
                f"{root} is a LeRobot {version} dataset; only {' and '.join(SUPPORTED_VERSIONS)} "
                "datasets can be read (LeRobot's own tools convert older ones)"
            )
        for key in ("fps", "features", "total_episodes", "total_frames", "data_path"):
            if key not in info:
                raise DatasetError(f"{root}: {INFO_PATH} has no {key!r}; the dataset's metadata is damaged")
        try:
            if version == "v2.1":
                tasks, episodes, located = _load_v21(root, info)
            else:
                tasks, episodes, located = _load_v30(root, info)
        except FileNotFoundError as exc:
            raise DatasetError(f"{root} is not a complete dataset: {exc.filename} is missing") from None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, pa.ArrowException) as exc:
            raise DatasetError(f"{root}: damaged metadata ({_one_line(exc)})") from None
        frames = sum(e.length for e in episodes)
        if frames != int(info["total_frames"]):
            raise DatasetError(
                f"{root}: damaged metadata: the episodes hold {frames} frames, "
                f"{INFO_PATH} counts {info['total_frames']}"
            )
        return cls(root, info, tasks, episodes, located)

    # -- episodes ------------------------------------------------------------------------------

    def episode(self, index: int) -> EpisodeEntry:
        return self._episodes[self._check_index(index)]

    def episode_table(self, index: int) -> pa.Table:
        """The episode's parquet rows as stored: every column, in the file's schema."""
        entry = self.episode(index)
        path = self._located[index].data_path
        table = self._read_data_file(path)
        if self.codebase_version != "v2.1":
            table = table.filter(pc.equal(table["episode_index"], index))
        if table.num_rows != entry.length:
            raise DatasetError(
                f"{path} holds {table.num_rows} rows of episode {index}, its metadata says "
                f"{entry.length}; the dataset is damaged"
            )
        return table

    def video_segment(self, index: int, key: str) -> VideoSegment:
        self._check_index(index)
        if key not in self.video_keys:
            raise KeyError(
                f"{key!r} is not a camera of {self.root} (its cameras: {', '.join(self.video_keys)})"
            )
        return self._located[index].segments[key]

    def frames(self, index: int, key: str) -> Iterator[np.ndarray]:
        """The episode's frames of camera `key`, decoded to RGB (height x width x 3, uint8).

        A frame belongs to the episode when its presentation time falls in the segment's
        [from, to), give or take half a frame period for the rounding of stored timestamps.
        """
        length = self.episode(index).length
        segment = self.video_segment(index, key)
        half = 0.5 / self.fps
        start, end = segment.from_timestamp - half, segment.to_timestamp - half
        decoded = 0
        try:
            with av.open(str(segment.path)) as container:
                stream = container.streams.video[0]
                if start > 0 and stream.time_base is not None:
                    # Lands on the keyframe at or before the start; frames before it are skipped below.
                    container.seek(int(start / stream.time_base), stream=stream, backward=True)
                for frame in container.decode(stream):
                    time = frame.time
                    if time is None or time < start:
                        continue
                    if time >= end:
                        break
                    if decoded == length:
                        raise DatasetError(
                            f"{segment.path} has more than {length} frames of episode {index} between "
                            f"{segment.from_timestamp:.3f} s and {segment.to_timestamp:.3f} s; "
                            "the dataset is damaged"
                        )
                    yield frame.to_ndarray(format="rgb24")
                    decoded += 1
        except FileNotFoundError:
            raise DatasetError(f"{segment.path} is missing; the dataset is incomplete") from None
        except av.error.FFmpegError as exc:
            raise DatasetError(f"{segment.path} cannot be decoded ({_one_line(exc)})") from None
        if decoded != length:
            raise DatasetError(
                f"{segment.path} has {decoded} frames of episode {index} between "
                f"{segment.from_timestamp:.3f} s and {segment.to_timestamp:.3f} s, its metadata says {length}"
            )

    # -- helpers -------------------------------------------------------------------------------

    def _check_index(self, index: int) -> int:
        if not 0 <= index < self.total_episodes:
            held = f"episodes 0..{self.total_episodes - 1}" if self.total_episodes else "no episodes"
            raise IndexError(f"episode {index} is not in {self.root}: it has {held}")
        return index

    def _read_data_file(self, path: Path) -> pa.Table:
        if self._cached_table is not None and self._cached_table[0] == path:
            return self._cached_table[1]
        try:
            table = pq.ParquetFile(path).read()
        except FileNotFoundError:
            raise DatasetError(f"{path} is missing; the dataset is incomplete") from None
        except (OSError, pa.ArrowException) as exc:
            raise DatasetError(f"{path} cannot be read ({_one_line(exc)})") from None
        self._cached_table = (path, table)
        return table


# -- the two layouts -------------------------------------------------------------------------------

Loaded = tuple[list[str], list[EpisodeEntry], list[_Located]]


def _load_v21(root: Path, info: dict[str, Any]) -> Loaded:
    total = int(info["total_episodes"])
    chunks_size = int(info.get("chunks_size") or 1000)
    tasks = _tasks_from_rows(_read_jsonl(root / TASKS_JSONL), "task", info)
    listed = _counted(_read_jsonl(root / EPISODES_JSONL), total, EPISODES_JSONL)
    stats = _counted(_read_jsonl(root / EPISODES_STATS_JSONL), total, EPISODES_STATS_JSONL)
    video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
    episodes, located = [], []
    for index in range(total):
        row = listed[index]
        length = int(row["length"])
        episodes.append(EpisodeEntry(index, length, list(row["tasks"]), stats[index]["stats"]))
        where = {"episode_chunk": index // chunks_size, "episode_index": index}
        segments = {
            key: VideoSegment(
                root / info["video_path"].format(video_key=key, **where), 0.0, length / int(info["fps"])
            )
            for key in video_keys
        }
        located.append(_Located(root / info["data_path"].format(**where), segments))
    return tasks, episodes, located


def _load_v30(root: Path, info: dict[str, Any]) -> Loaded:
    total = int(info["total_episodes"])
    table = pq.ParquetFile(root / TASKS_PARQUET).read()
    # pandas wrote the task strings as the frame's index; a writer without pandas may name them.
    column = PANDAS_INDEX_COLUMN if PANDAS_INDEX_COLUMN in table.column_names else "task"
    tasks = _tasks_from_rows(table.to_pylist(), column, info)
    files = sorted((root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not files and total:
        raise FileNotFoundError(
            2, "no episode files", str(root / EPISODES_DIR / "chunk-000/file-000.parquet")
        )
    rows = [row for path in files for row in pq.ParquetFile(path).read().to_pylist()]
    listed = _counted(rows, total, f"{EPISODES_DIR}/")
    video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
    episodes, located = [], []
    for index in range(total):
        row = listed[index]
        stats: dict[str, dict[str, Any]] = {}
        for column, value in row.items():
            if column.startswith("stats/"):
                feature, _, stat = column[len("stats/") :].rpartition("/")
                stats.setdefault(feature, {})[stat] = value
        episodes.append(EpisodeEntry(index, int(row["length"]), list(row["tasks"]), stats))
        segments = {}
        for key in video_keys:
            prefix = f"videos/{key}/"
            path = info["video_path"].format(
                video_key=key, chunk_index=row[prefix + "chunk_index"], file_index=row[prefix + "file_index"]
            )
            segments[key] = VideoSegment(
                root / path, float(row[prefix + "from_timestamp"]), float(row[prefix + "to_timestamp"])
            )
        data = info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        located.append(_Located(root / data, segments))
    return tasks, episodes, located


def _counted(rows: list[dict[str, Any]], total: int, where: str) -> list[dict[str, Any]]:
    """The rows of episodes 0..total-1, by index; rows past what info.json counts are ignored."""
    by_index = {int(row["episode_index"]): row for row in rows if int(row["episode_index"]) < total}
    missing = [i for i in range(total) if i not in by_index]
    if missing:
        raise ValueError(f"{where} does not list episode {missing[0]}, which {INFO_PATH} counts")
    return [by_index[i] for i in range(total)]


def _tasks_from_rows(rows: list[dict[str, Any]], column: str, info: dict[str, Any]) -> list[str]:
    """Task strings by task_index; only the first total_tasks when info.json counts them."""
    counted = info.get("total_tasks")
    by_index = {int(row["task_index"]): row[column] for row in rows}
    count = int(counted) if counted is not None else len(by_index)
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        raise ValueError(f"the tasks do not list task {missing[0]}, which {INFO_PATH} counts")
    return [str(by_index[i]) for i in range(count)]


def _read_info(root: Path) -> dict[str, Any]:
    path = root / INFO_PATH
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{root} is not a dataset: {INFO_PATH} is missing") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{root}: {INFO_PATH} cannot be read ({_one_line(exc)})") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{root}: {INFO_PATH} is not a JSON object; the dataset's metadata is damaged")
    return info


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
