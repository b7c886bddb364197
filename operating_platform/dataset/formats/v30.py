"""LeRobot v3.0: many episodes per data and video file; episodes listed in parquet files.

An episode is committed into files of its own (`data/chunk-000/file-007.parquet`, one video per
camera), so a commit writes only the episode and never rewrites what is already committed: it
costs what a v2.1 commit costs, and a kill can only leave files info.json does not count. The
episode's row is added to `meta/episodes/...`, a new task to `meta/tasks.parquet`, and
`meta/stats.json` takes the episode in; each is replaced whole by rename, with a hard-linked
copy of the old file to put back if the commit fails, and info.json comes last. Packing the
small files into files of LeRobot's sizes is `compact.py`'s job, done in the background.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from operating_platform.dataset import compact
from operating_platform.dataset.features import video_keys
from operating_platform.dataset.fsutil import make_dirs_within, temp_path, write_bytes_atomic
from operating_platform.dataset.metadata import (
    CHUNKS_SIZE,
    PRIVATE_DIR,
    DatasetError,
    DoRobotDatasetMetadata,
    EpisodeRecord,
)
from operating_platform.dataset.stats import BASIC_STATS, QUANTILES, aggregate_stats, stats_to_json

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
STATS_PATH = "meta/stats.json"
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
# Rows per episodes file: each commit rewrites one such file, so this bounds a commit's cost.
EPISODES_PER_FILE = 1000
STAT_NAMES = (*BASIC_STATS, *QUANTILES)
TASK_INDEX_COLUMN = "__index_level_0__"  # pandas stores its index under this name
# What pandas needs to read tasks.parquet back with the task strings as its index, as LeRobot does.
_TASKS_PANDAS_METADATA = {
    "index_columns": [TASK_INDEX_COLUMN],
    "column_indexes": [
        {
            "name": None,
            "field_name": None,
            "pandas_type": "unicode",
            "numpy_type": "object",
            "metadata": {"encoding": "UTF-8"},
        }
    ],
    "columns": [
        {
            "name": "task_index",
            "field_name": "task_index",
            "pandas_type": "int64",
            "numpy_type": "int64",
            "metadata": None,
        },
        {
            "name": None,
            "field_name": TASK_INDEX_COLUMN,
            "pandas_type": "unicode",
            "numpy_type": "object",
            "metadata": None,
        },
    ],
    "attributes": {},
    "creator": {"library": "pyarrow", "version": pa.__version__},
    "pandas_version": "2.2.3",
}


def file_slot(position: int) -> tuple[int, int]:
    """The (chunk_index, file_index) of the `position`-th file of a kind, `CHUNKS_SIZE` per chunk."""
    return divmod(position, CHUNKS_SIZE)


def next_slot(chunk: int, file: int) -> tuple[int, int]:
    return file_slot(chunk * CHUNKS_SIZE + file + 1)


def streams(features: dict[str, dict[str, Any]]) -> list[str]:
    """The kinds of files an episode has: "data", then one per camera."""
    return ["data", *(f"videos/{key}" for key in video_keys(features))]


def episodes_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    """The columns of `meta/episodes/...`, in LeRobot 0.4's order and types."""
    fields = [
        pa.field("episode_index", pa.int64()),
        pa.field("tasks", pa.list_(pa.string())),
        pa.field("length", pa.int64()),
        pa.field("data/chunk_index", pa.int64()),
        pa.field("data/file_index", pa.int64()),
        pa.field("dataset_from_index", pa.int64()),
        pa.field("dataset_to_index", pa.int64()),
    ]
    for key in video_keys(features):
        fields += [
            pa.field(f"videos/{key}/chunk_index", pa.int64()),
            pa.field(f"videos/{key}/file_index", pa.int64()),
            pa.field(f"videos/{key}/from_timestamp", pa.float64()),
            pa.field(f"videos/{key}/to_timestamp", pa.float64()),
        ]
    for key, ft in features.items():
        depth = 3 if ft["dtype"] in ("video", "image") else 1
        integer = ft["dtype"].startswith(("int", "uint", "bool"))
        for stat in STAT_NAMES:
            value = pa.int64() if stat == "count" or (integer and stat in ("min", "max")) else pa.float64()
            for _ in range(1 if stat == "count" else depth):
                value = pa.list_(value)
            fields.append(pa.field(f"stats/{key}/{stat}", value))
    fields += [
        pa.field("meta/episodes/chunk_index", pa.int64()),
        pa.field("meta/episodes/file_index", pa.int64()),
    ]
    return pa.schema(fields)


def episode_stats(row: dict[str, Any], features: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The per-feature statistics stored in an episodes row."""
    return {key: {stat: row[f"stats/{key}/{stat}"] for stat in STAT_NAMES} for key in features}


def tasks_table(tasks: list[str]) -> pa.Table:
    table = pa.table(
        {
            "task_index": pa.array(range(len(tasks)), pa.int64()),
            TASK_INDEX_COLUMN: pa.array(tasks, pa.large_string()),
        }
    )
    return table.replace_schema_metadata({"pandas": json.dumps(_TASKS_PANDAS_METADATA)})


def read_tasks(root: Path) -> list[str]:
    path = root / TASKS_PATH
    if not path.exists():
        return []
    rows = pq.read_table(path).to_pylist()
    return [row[TASK_INDEX_COLUMN] for row in sorted(rows, key=lambda r: r["task_index"])]


def episodes_files(root: Path) -> list[Path]:
    """The episodes files, in order."""
    return sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))


def read_episode_rows(root: Path) -> list[dict[str, Any]]:
    """Every row of the episodes files, in order (including any a commit left past info.json)."""
    rows: list[dict[str, Any]] = []
    for path in episodes_files(root):
        rows += pq.read_table(path).to_pylist()
    return rows


class V30Metadata(DoRobotDatasetMetadata):
    """`meta/` of a v3.0 dataset: info.json, tasks.parquet, stats.json, the episodes files."""

    codebase_version = "v3.0"
    hf_list_type = "List"
    data_template = DATA_PATH
    video_template = VIDEO_PATH
    file_settings: ClassVar[dict[str, float]] = {
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
    }

    def __init__(
        self,
        root: Path,
        info: dict[str, Any],
        tasks: list[str],
        lengths: list[int],
        rows: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(root, info, tasks, lengths)
        self._rows = rows or []
        self._stats: dict[str, dict[str, np.ndarray]] | None = None  # over every committed episode
        self._pending: dict[str, Any] | None = None
        self._backups: list[Path] = []

    @classmethod
    def load_committed(cls, root: Path, info: dict[str, Any]) -> V30Metadata:
        rows = read_episode_rows(root)[: info["total_episodes"]]
        tasks = read_tasks(root)
        if len(rows) != info["total_episodes"] or len(tasks) < info["total_tasks"]:
            raise DatasetError(
                f"{root}: info.json counts {info['total_episodes']} episodes but meta/episodes lists "
                f"{len(rows)}; run `dorobot verify {root}`"
            )
        return cls(root, info, tasks[: info["total_tasks"]], [int(r["length"]) for r in rows], rows)

    @classmethod
    def trim_to_info(cls, root: Path, info: dict[str, Any], act: Callable[[str], None]) -> None:
        keep = info["total_episodes"]
        rows = read_episode_rows(root)
        if len(rows) < keep:
            raise DatasetError(
                f"{root}: meta/episodes lists {len(rows)} episodes but info.json counts {keep}; this is "
                f"damage recovery cannot undo, run `dorobot verify {root}`"
            )
        stats_missing = keep > 0 and not (root / STATS_PATH).exists()
        if len(rows) > keep:
            for path in episodes_files(root):
                table = pq.read_table(path)
                kept = [r for r in table.to_pylist() if r["episode_index"] < keep]
                if not kept:
                    path.unlink()
                elif len(kept) < table.num_rows:
                    _write_parquet(path, pa.Table.from_pylist(kept, schema=table.schema))
            act(f"meta/episodes: removed {len(rows) - keep} row(s) of a commit that never reached info.json")
        tasks = read_tasks(root)
        if len(tasks) > info["total_tasks"]:
            _write_parquet(root / TASKS_PATH, tasks_table(tasks[: info["total_tasks"]]))
            act(f"{TASKS_PATH}: removed {len(tasks) - info['total_tasks']} task(s) no committed episode has")
        if len(rows) > keep or stats_missing:
            kept_rows = rows[:keep]
            if kept_rows:
                per_episode = [episode_stats(r, info["features"]) for r in kept_rows]
                total = aggregate_stats([_as_arrays(s) for s in per_episode])
                write_bytes_atomic(root / STATS_PATH, json.dumps(stats_to_json(total), indent=4).encode())
            else:
                (root / STATS_PATH).unlink(missing_ok=True)
            act(f"{STATS_PATH}: recomputed from the {keep} committed episode(s)")

    @classmethod
    def snapshot(
        cls, root: Path, info: dict[str, Any], meta: dict[str, bytes]
    ) -> tuple[dict[str, bytes], list[str]] | None:
        # A commit replaces the episodes file, tasks.parquet and stats.json before info.json; a
        # merge moves files before it rewrites the rows. Either is a matter of milliseconds.
        if (root / PRIVATE_DIR / compact.COMPACT_DIR / compact.PLAN_FILE).exists():
            return None
        rows = []
        for rel in sorted(r for r in meta if r.startswith("meta/episodes/")):
            rows += pq.read_table(pa.BufferReader(meta[rel])).to_pylist()
        tasks = pq.read_table(pa.BufferReader(meta[TASKS_PATH])).num_rows if TASKS_PATH in meta else 0
        if len(rows) != info["total_episodes"] or tasks != info["total_tasks"]:
            return None
        files: dict[str, None] = {}
        for row in rows:
            slot = {"chunk_index": row["data/chunk_index"], "file_index": row["data/file_index"]}
            files[info["data_path"].format(**slot)] = None
            for key in video_keys(info["features"]):
                slot = {
                    "chunk_index": row[f"videos/{key}/chunk_index"],
                    "file_index": row[f"videos/{key}/file_index"],
                }
                files[info["video_path"].format(video_key=key, **slot)] = None
        return meta, list(files)

    # -- where files go ---------------------------------------------------------------------

    def _slot(self, episode_index: int, stream: str) -> tuple[int, int]:
        """The (chunk, file) of `stream` holding an episode; the next free one for the next episode."""
        if episode_index < len(self._rows):
            row = self._rows[episode_index]
            return row[f"{stream}/chunk_index"], row[f"{stream}/file_index"]
        if episode_index != len(self._rows):
            raise IndexError(f"episode {episode_index} is neither committed nor the next one")
        if not self._rows:
            return 0, 0
        last = self._rows[-1]
        return next_slot(last[f"{stream}/chunk_index"], last[f"{stream}/file_index"])

    def data_path(self, episode_index: int) -> Path:
        return self.stream_path("data", *self._slot(episode_index, "data"))

    def video_path(self, episode_index: int, video_key: str) -> Path:
        stream = f"videos/{video_key}"
        return self.stream_path(stream, *self._slot(episode_index, stream))

    def stream_path(self, stream: str, chunk: int, file: int) -> Path:
        """The file `file` of chunk `chunk` of a kind of file ("data" or "videos/<key>")."""
        if stream == "data":
            return self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        key = stream.removeprefix("videos/")
        return self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)

    @property
    def streams(self) -> list[str]:
        return streams(self.features)

    next_slot = staticmethod(next_slot)

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def frames_in(self, episodes: list[int]) -> int:
        return sum(self._lengths[i] for i in episodes)

    # -- packing files (compact.py) ---------------------------------------------------------

    def compact(self, final: bool, say: Callable[[str], None] = lambda _line: None) -> int:
        return compact.compact(self, final, say)

    def finish_interrupted(self, say: Callable[[str], None]) -> None:
        compact.finish_interrupted(self, say)

    def update_rows(self, updates: dict[int, dict[str, Any]]) -> None:
        """Change columns of committed episodes' rows (where their files are) and rewrite the
        episodes files that hold them."""
        with self._meta_lock:
            touched = set()
            for index, values in updates.items():
                self._rows[index].update(values)
                row = self._rows[index]
                touched.add((row["meta/episodes/chunk_index"], row["meta/episodes/file_index"]))
            schema = episodes_schema(self.features)
            for chunk, file in sorted(touched):
                rows = [
                    r
                    for r in self._rows
                    if (r["meta/episodes/chunk_index"], r["meta/episodes/file_index"]) == (chunk, file)
                ]
                path = self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)
                _write_parquet(path, pa.Table.from_pylist(rows, schema=schema))

    @property
    def episode_rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    # -- commit -----------------------------------------------------------------------------

    def _new_row(self, record: EpisodeRecord) -> dict[str, Any]:
        index = record.episode_index
        start = self.total_frames
        row: dict[str, Any] = {"episode_index": index, "tasks": record.tasks, "length": record.length}
        row["data/chunk_index"], row["data/file_index"] = self._slot(index, "data")
        row["dataset_from_index"], row["dataset_to_index"] = start, start + record.length
        for key in self.video_keys:
            stream = f"videos/{key}"
            row[f"{stream}/chunk_index"], row[f"{stream}/file_index"] = self._slot(index, stream)
            row[f"{stream}/from_timestamp"] = 0.0
            row[f"{stream}/to_timestamp"] = record.length / self.fps
        for key, per in record.stats.items():
            for stat in STAT_NAMES:
                row[f"stats/{key}/{stat}"] = per[stat]
        chunk, file = file_slot(index // EPISODES_PER_FILE)
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = chunk, file
        return row

    def _write_episode(self, record: EpisodeRecord, new_tasks: list[str]) -> Callable[[], None]:
        row = self._new_row(record)
        chunk, file = row["meta/episodes/chunk_index"], row["meta/episodes/file_index"]
        same_file = [
            r
            for r in self._rows
            if (r["meta/episodes/chunk_index"], r["meta/episodes/file_index"]) == (chunk, file)
        ]
        episodes = pa.Table.from_pylist([*same_file, row], schema=episodes_schema(self.features))
        episode_stats_arrays = _as_arrays(episode_stats(row, self.features))
        total = self._total_stats()
        stats = aggregate_stats([total, episode_stats_arrays]) if total else episode_stats_arrays
        writes: list[tuple[Path, Callable[[Path], None]]] = [
            (
                self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file),
                lambda p: _write_parquet(p, episodes),
            ),
        ]
        if new_tasks:
            table = tasks_table(self._tasks[: self._committed_tasks + len(new_tasks)])
            writes.append((self.root / TASKS_PATH, lambda p: _write_parquet(p, table)))
        data = json.dumps(stats_to_json(stats), indent=4).encode()
        writes.append((self.root / STATS_PATH, lambda p: write_bytes_atomic(p, data)))
        restores: list[Callable[[], None]] = []

        def undo() -> None:
            for restore in reversed(restores):
                restore()
            self._backups.clear()

        try:
            for path, write in writes:
                restores.append(self._replace_keeping_old(path, write))
        except BaseException:
            undo()
            raise
        self._pending = {"row": row, "stats": stats}
        return undo

    def _replace_keeping_old(self, path: Path, write: Callable[[Path], None]) -> Callable[[], None]:
        """Write `path` anew, keeping a hard link to its old content; returns how to put it back.

        The link costs no space, so putting the old file back works on a full disk too.
        """
        make_dirs_within(self.root, path.parent)
        backup = path.with_name(f".{path.name}.old")
        backup.unlink(missing_ok=True)
        existed = path.exists()
        if existed:
            os.link(path, backup)
            self._backups.append(backup)
        write(path)

        def restore() -> None:
            if existed:
                os.replace(backup, path)
            else:
                path.unlink(missing_ok=True)

        return restore

    def _episode_written(self, record: EpisodeRecord) -> None:
        assert self._pending is not None
        self._rows.append(self._pending["row"])
        self._stats = self._pending["stats"]
        self._pending = None
        for backup in self._backups:
            with contextlib.suppress(OSError):
                backup.unlink()
        self._backups.clear()

    def _total_stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        if not self._rows:
            return None
        if self._stats is None:
            self._stats = aggregate_stats([_as_arrays(episode_stats(r, self.features)) for r in self._rows])
        return self._stats


def _as_arrays(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    return {key: {name: np.asarray(v) for name, v in per.items()} for key, per in stats.items()}


def _write_parquet(path: Path, table: pa.Table) -> None:
    """Replace `path` with `table` by rename, so readers see the old file or the new one."""
    tmp = temp_path(path)
    try:
        pq.write_table(table, tmp, compression="snappy")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
