"""The LeRobot v3.0 layout: many episodes per data and video file, parquet metadata.

`verify_v30` checks what LeRobot 0.4's loader relies on, and promises, for a dataset whose
info.json says v3.0:

- info.json has the v3.0 keys with the right types and the documented path templates, and its
  totals and splits equal what the metadata and the data files hold;
- meta/tasks.parquet holds the task strings as its pandas index and task_index 0..n-1 in row
  order (LeRobot looks a task up by position);
- meta/episodes/chunk-*/file-*.parquet, read in path order as LeRobot does, has every column,
  one row per episode 0..N-1 in order, dataset_from_index/dataset_to_index contiguous from 0,
  known tasks, the file each row sits in, and per-episode stats (quantiles included) shaped as
  the features say;
- every data file an episode points to exists and holds exactly the rows of the episodes that
  point to it, in order, with the right indices, timestamps and task indices, under the schema
  the features describe; files fill in path order, since LeRobot concatenates them that way;
- for each camera, every video file an episode points to exists and decodes, has the codec, pixel
  format and size of the feature's info, and each episode's [from_timestamp, to_timestamp) lies in
  the file, overlaps no other episode, spans `length` frames, and holds frames at
  from_timestamp + k / fps (the times LeRobot asks the decoder for);
- meta/stats.json has every feature with min/max/mean/std/count and the quantiles;
- no file under meta/, data/, videos/ is left that nothing points to (LeRobot loads every
  data/*/*.parquet), hidden temporary files included.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from operating_platform.dataset.compress_target import accepted_codecs
from operating_platform.dataset.verify import common
from operating_platform.dataset.verify.common import (
    INFO,
    QUANTILE_KEYS,
    STAT_KEYS,
    TEMPORARY,
    TIMESTAMP_TOLERANCE_S,
    is_int,
    is_number,
    is_temporary,
    rel_path,
)
from operating_platform.dataset.verify.report import VerifyReport, guard

CODEBASE_VERSION = "v3.0"
# The totals of info.json, which must agree with the files.
COUNTS = ("total_episodes", "total_frames", "total_tasks")
# Every key, in the order LeRobot writes them.
INFO_KEYS = (
    "codebase_version",
    "robot_type",
    *COUNTS,
    "chunks_size",
    "data_files_size_in_mb",
    "video_files_size_in_mb",
    "fps",
    "splits",
    "data_path",
    "video_path",
    "features",
)
# LeRobot globs data/*/*.parquet whatever data_path says, so only the documented one works.
DATA_PATH = common.PathTemplate(
    "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", {"chunk_index": 0, "file_index": 0}
)
VIDEO_PATH = common.PathTemplate(
    "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
    {"video_key": "k", "chunk_index": 0, "file_index": 0},
)
EPISODES_DIR = "meta/episodes"
EPISODES_FILE = re.compile(r"chunk-(\d{3,})/file-(\d{3,})\.parquet")
TASKS = "meta/tasks.parquet"
STATS = "meta/stats.json"
SUBTASKS = "meta/subtasks.parquet"  # optional; LeRobot 0.4 reads it when present
# `datasets` 4 writes vectors as "List" and still reads the older "Sequence".
VECTOR_TYPES = ("List", "Sequence")
# Task strings are the pandas index of tasks.parquet; pandas stores an unnamed index this way.
TASK_INDEX_COLUMN = "__index_level_0__"
# What the columns of meta/episodes hold, as named in problems.
KIND_NAMES = {
    "int": "an integer",
    "float": "a floating point number",
    "strings": "a list of strings",
    "numbers": "a list of numbers",
}


@dataclass
class _Layout(common.Layout):
    """The v3.0 templates, which place files by their chunk and file index."""

    data_path: str = DATA_PATH.documented
    video_path: str = VIDEO_PATH.documented

    @property
    def stats_features(self) -> dict[str, dict[str, Any]]:
        # LeRobot computes no statistics of string features.
        return {k: ft for k, ft in (self.features or {}).items() if ft["dtype"] != "string"}

    def data_file(self, chunk: int, file: int) -> str:
        return self.data_path.format(chunk_index=chunk, file_index=file)

    def video_file(self, key: str, chunk: int, file: int) -> str:
        return self.video_path.format(video_key=key, chunk_index=chunk, file_index=file)


@dataclass
class _VideoSpan:
    """Where one episode of one camera sits: its file and [start, end) in seconds."""

    chunk: int
    file: int
    start: float
    end: float


@dataclass
class _Episode(common.Episode):
    """One usable row of meta/episodes."""

    # Frames of all episodes before it: its first global `index`, which is also its first row in
    # the concatenation of data files LeRobot indexes by position.
    first_index: int
    where: str  # the metadata file and row, for problems about the row itself
    data: tuple[int, int] | None = None  # (chunk_index, file_index) of its data file
    videos: dict[str, _VideoSpan] = field(default_factory=dict)


@dataclass
class _Episodes:
    """meta/episodes as read: how many rows it has, and the usable ones."""

    rows: int = 0
    episodes: list[_Episode] = field(default_factory=list)
    # False when a file of it is missing or unreadable: the totals cannot be compared then.
    readable: bool = True
    # False also when a row's data or video file is unknown: then which files nothing points to
    # is unknown too, and none is called a leftover.
    complete: bool = True


def verify_v30(root: Path, info: dict[str, Any] | None, report: VerifyReport, decode: bool) -> None:
    """Check `root` against the v3.0 layout; `info` is info.json as loaded (None if unusable)."""
    # Without a usable info.json the other checks go by the documented layout.
    layout = _Layout() if info is None else (guard(report, INFO, _check_info, info, report) or _Layout())
    data_rows, data_readable = guard(report, "data/", _loaded_data_rows, root) or (0, False)
    info = info or {}
    declared = info.get("total_episodes")
    # A fresh dataset has only info.json; the rest appears with the first episode.
    required = (is_int(declared) and declared > 0) or bool(data_rows) or (root / EPISODES_DIR).is_dir()

    tasks = guard(report, TASKS, _check_tasks, root, report, required)
    task_rows, task_list = tasks or (None, None)
    read = guard(report, EPISODES_DIR, _check_episodes, root, report, layout, task_list, required)
    read = read or _Episodes(readable=False, complete=False)
    report.episodes, report.frames = read.rows, data_rows
    # The merged counts are the sum of the episodes' frames, whatever total_frames claims.
    frames = sum(ep.length for ep in read.episodes) if read.readable else None
    guard(report, STATS, _check_stats, root, report, layout, frames, required)
    if info:
        loaded_rows = data_rows if data_readable else None
        guard(report, INFO, _check_counters, info, report, task_rows, read, loaded_rows)
    guard(report, "data/", _check_data, root, report, layout, read.episodes, task_list)
    guard(report, "videos/", _check_videos, root, report, layout, read.episodes, decode)
    guard(report, "leftovers", _check_leftovers, root, report, layout, read)


# ---------------------------------------------------------------------------------------------
# meta/info.json


def _check_info(info: dict[str, Any], report: VerifyReport) -> _Layout:
    """Check info.json on its own and return the layout the other checks rely on."""
    # LeRobot's own v2.1 converter appends keys at the end, so another order is no fault.
    present = common.check_info_keys(info, INFO_KEYS, CODEBASE_VERSION, report)
    if present is not None:
        report.note(f"{INFO}: keys in another order than LeRobot writes them: {', '.join(present)}")
    common.check_info_types(info, COUNTS, report)
    for key in ("data_files_size_in_mb", "video_files_size_in_mb"):
        if key in info and not (is_number(info[key]) and info[key] > 0):
            report.problem(INFO, f"{key} must be a positive number, got {info[key]!r}")
    layout = _Layout()
    # chunks_size is only checked: each episode's metadata says in which chunk its files are.
    common.check_info_layout(info, layout, DATA_PATH, VIDEO_PATH, report)
    return layout


def _check_counters(
    info: dict[str, Any],
    report: VerifyReport,
    task_rows: int | None,
    read: _Episodes,
    data_rows: int | None,
) -> None:
    """Totals and splits must equal what is on disk: LeRobot's len() is total_frames.

    A count is None, or `read` not readable, when its files could not be read; those totals are
    not compared then, the files' own problems say enough.
    """
    episodes, frames, tasks = info.get("total_episodes"), info.get("total_frames"), info.get("total_tasks")
    if is_int(episodes):
        if read.readable and episodes != read.rows:
            report.problem(INFO, f"total_episodes is {episodes} but {EPISODES_DIR} has {read.rows} row(s)")
        common.check_splits(info, episodes, report)
    elif "splits" in info and not isinstance(info["splits"], dict):
        report.problem(INFO, f"splits must be an object, got {info['splits']!r}")
    if is_int(frames):
        lengths = sum(ep.length for ep in read.episodes)
        if read.readable and frames != lengths:
            report.problem(
                INFO, f"total_frames is {frames} but the lengths in {EPISODES_DIR} sum to {lengths}"
            )
        if data_rows is not None and frames != data_rows:
            report.problem(
                INFO, f"total_frames is {frames} but the parquet files LeRobot loads hold {data_rows} rows"
            )
    if is_int(tasks) and task_rows is not None and tasks != task_rows:
        report.problem(INFO, f"total_tasks is {tasks} but {TASKS} has {task_rows} row(s)")


def _loaded_data_rows(root: Path) -> tuple[int, bool]:
    """Rows of the files LeRobot loads as data (data/*/*.parquet, hidden ones included), and
    whether all of them could be read."""
    data = root / "data"
    counts = [common.parquet_rows(path) for path in data.glob("*/*.parquet")] if data.is_dir() else []
    return sum(n or 0 for n in counts), None not in counts


# ---------------------------------------------------------------------------------------------
# meta/tasks.parquet


def _check_tasks(root: Path, report: VerifyReport, required: bool) -> tuple[int | None, list[str] | None]:
    """Task strings as the pandas index, task_index 0..n-1 in row order.

    Returns the row count and the task strings, each None when it cannot be read (then nothing
    is compared with it: that would only repeat this file's problem).
    """
    path = root / TASKS
    if not path.is_file():
        if required:
            report.problem(TASKS, "missing")
            return None, None
        return 0, None
    table = common.read_parquet(path, TASKS, report)
    if table is None:
        return None, None
    index_column = _pandas_index_column(table.schema, report)
    task_index = table.column("task_index") if "task_index" in table.column_names else None
    if task_index is None:
        report.problem(TASKS, "no 'task_index' column")
    elif task_index.type != pa.int64():
        report.problem(TASKS, f"column 'task_index' has type {task_index.type}, expected int64")
    else:
        values = task_index.to_pylist()
        wrong = [row for row, value in enumerate(values) if value != row]
        if wrong:
            row = wrong[0]
            report.problem(
                TASKS,
                f"task_index is {values[row]} at row {row}, expected {row} "
                "(0..n-1 in row order: LeRobot looks tasks up by position)",
            )
    if index_column is None:
        return table.num_rows, None
    tasks = table.column(index_column).to_pylist()
    first_row: dict[str, int] = {}
    for row, task in enumerate(tasks):
        if not isinstance(task, str) or not task:
            report.problem(TASKS, f"task at row {row} is {task!r}, expected a non-empty string")
        elif task in first_row:
            report.problem(TASKS, f"task {task!r} at row {row} is already at row {first_row[task]}")
        else:
            first_row[task] = row
    return table.num_rows, [t if isinstance(t, str) else repr(t) for t in tasks]


def _pandas_index_column(schema: pa.Schema, report: VerifyReport) -> str | None:
    """The column pandas turns into the index, if it holds strings; LeRobot reads tasks from it."""
    expected = f"the task strings must be the pandas index (column {TASK_INDEX_COLUMN!r})"
    raw = (schema.metadata or {}).get(b"pandas")
    try:
        index_columns = json.loads(raw)["index_columns"] if raw is not None else None
    except (ValueError, KeyError, TypeError):
        index_columns = None
    if not isinstance(index_columns, list):
        report.problem(TASKS, f"no usable 'pandas' schema metadata: {expected}")
        return None
    if len(index_columns) != 1 or not isinstance(index_columns[0], str):
        report.problem(TASKS, f"the pandas index is {index_columns}: {expected}")
        return None
    name = index_columns[0]
    if name not in schema.names or not (
        pa.types.is_string(schema.field(name).type) or pa.types.is_large_string(schema.field(name).type)
    ):
        report.problem(TASKS, f"the pandas index column {name!r} is missing or not strings: {expected}")
        return None
    return name


# ---------------------------------------------------------------------------------------------
# meta/episodes


def _episode_columns(layout: _Layout) -> dict[str, str]:
    """Every column LeRobot's episodes metadata has, with the kind of values it holds."""
    columns = {
        "episode_index": "int",
        "tasks": "strings",
        "length": "int",
        "data/chunk_index": "int",
        "data/file_index": "int",
        "dataset_from_index": "int",
        "dataset_to_index": "int",
    }
    for key in layout.video_keys:
        columns |= {
            f"videos/{key}/chunk_index": "int",
            f"videos/{key}/file_index": "int",
            f"videos/{key}/from_timestamp": "float",
            f"videos/{key}/to_timestamp": "float",
        }
    for name in layout.stats_features:
        columns |= {f"stats/{name}/{stat}": "numbers" for stat in (*STAT_KEYS, *QUANTILE_KEYS)}
    columns |= {"meta/episodes/chunk_index": "int", "meta/episodes/file_index": "int"}
    return columns


def _present_columns(rel: str, schema: pa.Schema, columns: dict[str, str], report: VerifyReport) -> set[str]:
    """The expected columns that exist with the right kind of values; the others are reported."""
    missing = [name for name in columns if name not in schema.names]
    if missing:
        report.problem(rel, f"missing columns: {', '.join(missing)}")
    present = set()
    for name, kind in columns.items():
        if name not in schema.names:
            continue
        data_type = schema.field(name).type
        if _has_kind(data_type, kind):
            present.add(name)
        else:
            report.problem(rel, f"column {name!r} has type {data_type}, expected {KIND_NAMES[kind]}")
    return present


def _is_list(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
    )


def _has_kind(data_type: pa.DataType, kind: str) -> bool:
    if kind == "int":
        return pa.types.is_integer(data_type)
    if kind == "float":
        return pa.types.is_floating(data_type)
    if not _is_list(data_type):
        return False
    inner = data_type.value_type
    if kind == "strings":
        return pa.types.is_string(inner) or pa.types.is_large_string(inner)
    while _is_list(inner):
        inner = inner.value_type
    return pa.types.is_integer(inner) or pa.types.is_floating(inner)


def _check_episodes(
    root: Path, report: VerifyReport, layout: _Layout, tasks: list[str] | None, required: bool
) -> _Episodes:
    """Read meta/episodes in path order, as LeRobot does, checking every row."""
    folder = root / EPISODES_DIR
    # LeRobot loads meta/episodes/*/*.parquet in path order; other names are reported as leftovers.
    paths = sorted(p for p in folder.glob("*/*.parquet") if EPISODES_FILE.fullmatch(rel_path(folder, p)))
    read = _Episodes()
    if not paths:
        if required:
            report.problem(EPISODES_DIR, "missing (no chunk-NNN/file-NNN.parquet file)")
            read.readable = read.complete = False
        return read
    columns = _episode_columns(layout)
    first_index = 0  # frames of the usable episodes read so far
    for path in paths:
        rel = rel_path(root, path)
        table = common.read_parquet(path, rel, report)
        if table is None:
            read.readable = read.complete = False
            continue
        present = _present_columns(rel, table.schema, columns, report)
        if not {"episode_index", "length"} <= present:
            read.rows += table.num_rows
            read.readable = read.complete = False
            continue  # rows without an index or a length cannot be checked any further
        match = EPISODES_FILE.fullmatch(rel_path(folder, path))
        assert match is not None  # paths were filtered on it
        here = (int(match.group(1)), int(match.group(2)))
        for row_number, row in enumerate(table.to_pylist()):
            where = f"{rel} row {row_number}"
            episode = _check_episode_row(
                where, row, present, read.rows, first_index, here, layout, tasks, report
            )
            read.rows += 1
            if episode is None:
                read.complete = False
                continue
            read.episodes.append(episode)
            first_index += episode.length
            if episode.data is None or len(episode.videos) != len(layout.video_keys):
                read.complete = False
    return read


def _check_episode_row(
    where: str,
    row: dict[str, Any],
    present: set[str],
    position: int,
    first_index: int,
    here: tuple[int, int],
    layout: _Layout,
    tasks: list[str] | None,
    report: VerifyReport,
) -> _Episode | None:
    """One row of meta/episodes; `position` is its place across all files, `here` its file."""
    index, length = row["episode_index"], row["length"]
    if index is None or length is None:
        report.problem(where, f"episode_index and length must be integers, got {index!r} and {length!r}")
        return None
    if index != position:
        report.problem(
            where, f"episode_index is {index}, expected {position} (episodes must be 0..n-1, in order)"
        )
    if length <= 0:
        report.problem(where, f"length must be a positive integer, got {length}")
        return None
    episode = _Episode(index=index, length=length, tasks=[], first_index=first_index, where=where)

    if "tasks" in present:
        ep_tasks = row["tasks"]
        if not (isinstance(ep_tasks, list) and ep_tasks and all(isinstance(t, str) for t in ep_tasks)):
            report.problem(where, f"tasks must be a non-empty list of strings, got {ep_tasks!r}")
        else:
            episode.tasks = ep_tasks
            unknown = [t for t in ep_tasks if tasks is not None and t not in tasks]
            if unknown:
                report.problem(where, f"tasks not in {TASKS}: {unknown}")

    if "dataset_from_index" in present and row["dataset_from_index"] != first_index:
        report.problem(
            where,
            f"dataset_from_index is {row['dataset_from_index']}, expected {first_index} "
            "(the frames of the episodes before it)",
        )
    if "dataset_to_index" in present and row["dataset_to_index"] != first_index + length:
        report.problem(
            where,
            f"dataset_to_index is {row['dataset_to_index']}, expected dataset_from_index + length "
            f"= {first_index + length}",
        )
    if {"meta/episodes/chunk_index", "meta/episodes/file_index"} <= present:
        said = (row["meta/episodes/chunk_index"], row["meta/episodes/file_index"])
        if said != here:
            report.problem(
                where,
                f"meta/episodes/chunk_index, file_index are {said}, expected {here} (the file the row is in)",
            )

    episode.data = _file_indices(where, row, "data", present, report)
    for key in layout.video_keys:
        span = _video_span(where, row, key, present, report)
        if span is not None:
            episode.videos[key] = span

    for name, ft in layout.stats_features.items():
        columns = {stat: f"stats/{name}/{stat}" for stat in (*STAT_KEYS, *QUANTILE_KEYS)}
        stats = {stat: row[column] for stat, column in columns.items() if column in present}
        # Missing columns are reported once per file; a camera's count may be frames or pixels.
        errors = common.feature_stats_errors(
            stats, ft, length, required=(), visual_count_at_most_length=False
        )
        for error in errors:
            report.problem(where, f"stats of {name!r}: {error}")
    return episode


def _file_indices(
    where: str, row: dict[str, Any], prefix: str, present: set[str], report: VerifyReport
) -> tuple[int, int] | None:
    names = (f"{prefix}/chunk_index", f"{prefix}/file_index")
    if not set(names) <= present:
        return None
    chunk, file = row[names[0]], row[names[1]]
    if not (is_int(chunk) and is_int(file) and chunk >= 0 and file >= 0):
        report.problem(
            where, f"{names[0]}, file_index must be non-negative integers, got {chunk!r}, {file!r}"
        )
        return None
    return chunk, file


def _video_span(
    where: str, row: dict[str, Any], key: str, present: set[str], report: VerifyReport
) -> _VideoSpan | None:
    indices = _file_indices(where, row, f"videos/{key}", present, report)
    names = (f"videos/{key}/from_timestamp", f"videos/{key}/to_timestamp")
    if indices is None or not set(names) <= present:
        return None
    start, end = row[names[0]], row[names[1]]
    if not (is_number(start) and is_number(end)):
        report.problem(where, f"{names[0]} and to_timestamp must be numbers, got {start!r}, {end!r}")
        return None
    if start < 0 or end <= start:
        report.problem(where, f"{names[0]} {start} and to_timestamp {end} are not an interval from 0 on")
        return None
    return _VideoSpan(indices[0], indices[1], start, end)


# ---------------------------------------------------------------------------------------------
# meta/stats.json


def _check_stats(
    root: Path, report: VerifyReport, layout: _Layout, frames: int | None, required: bool
) -> None:
    """The merged stats: every feature, the five stats and five quantiles, the features' shapes.

    `frames` (the episodes' lengths summed; None if unknown) is what a numeric count must be.
    """
    stats = common.read_json_object(root, STATS, report, required)
    if stats is None or layout.features is None:
        return  # without usable features there is nothing to check the stats against
    common.check_stats_object(
        STATS,
        stats,
        layout.stats_features,
        frames,
        report,
        required=(*STAT_KEYS, *QUANTILE_KEYS),
        visual_count_at_most_length=False,
        length_name="the frames of all episodes,",
    )


# ---------------------------------------------------------------------------------------------
# data files


def _pointing(episodes: list[_Episode]) -> str:
    """Which episodes point to a shared file, with the verb: 'episode 3 points', 'episodes 0, 1 point'."""
    indices = [ep.index for ep in episodes]
    shown = ", ".join(str(i) for i in indices[:10]) + (", ..." if len(indices) > 10 else "")
    return f"episode {shown} points" if len(indices) == 1 else f"episodes {shown} point"


def _check_data(
    root: Path, report: VerifyReport, layout: _Layout, episodes: list[_Episode], tasks: list[str] | None
) -> None:
    files: dict[str, list[_Episode]] = {}
    previous: str | None = None
    for episode in episodes:
        if episode.data is None:
            continue
        rel = layout.data_file(*episode.data)
        files.setdefault(rel, []).append(episode)
        # LeRobot concatenates the data files in path order and indexes rows by position.
        if previous is not None and rel.split("/") < previous.split("/"):
            report.problem(
                episode.where,
                f"episode {episode.index} is in {rel}, which LeRobot reads before {previous} (the data "
                "file of the episode before): episodes must fill data files in path order",
            )
        previous = rel

    for rel, in_file in files.items():
        pointed_by = f"{_pointing(in_file)} to it"
        table = common.read_data_file(root, rel, pointed_by, layout.features, report, VECTOR_TYPES)
        if table is None:
            continue
        frames = sum(ep.length for ep in in_file)
        if table.num_rows != frames:
            report.problem(rel, f"{table.num_rows} rows, expected {frames} ({pointed_by})")
        offset = 0
        for episode in in_file:
            known = tasks is not None and bool(episode.tasks)  # else reported in meta/
            allowed = {i for i, task in enumerate(tasks or []) if task in episode.tasks} if known else None
            rows = common.EpisodeRows(
                episode.index, episode.first_index, allowed, offset, f"episode {episode.index}: "
            )
            common.check_episode_rows(rel, table.slice(offset, episode.length), rows, layout.fps, report)
            offset += episode.length
        common.check_missing_values(rel, table, report)


# ---------------------------------------------------------------------------------------------
# videos


def _check_videos(
    root: Path, report: VerifyReport, layout: _Layout, episodes: list[_Episode], decode: bool
) -> None:
    for key, ft, size in common.cameras(layout):
        codec = common.video_info(ft, "video.codec")
        pix_fmt = common.video_info(ft, "video.pix_fmt") or "yuv420p"
        waiting = accepted_codecs(root, codec)
        files: dict[str, list[_Episode]] = {}
        for episode in episodes:
            span = episode.videos.get(key)
            if span is not None:
                files.setdefault(layout.video_file(key, span.chunk, span.file), []).append(episode)
        for rel, in_file in files.items():
            path = root / rel
            if not path.is_file():
                report.problem(rel, f"missing ({_pointing(in_file)} to it for camera {key})")
                continue
            probe = common.probe_video(path, decode)
            for error in common.stream_errors(probe, codec, pix_fmt, decode, waiting):
                report.problem(rel, error)
            if probe.streams == 0:
                continue
            for error in common.size_errors(probe, size):
                report.problem(rel, error)
            _check_overlaps(rel, key, in_file, report)
            for episode in in_file:
                for error in _span_errors(probe, episode, episode.videos[key], layout.fps, decode):
                    report.problem(rel, f"episode {episode.index}: {error}")


def _check_overlaps(rel: str, key: str, episodes: list[_Episode], report: VerifyReport) -> None:
    spans = sorted((ep.videos[key].start, ep.videos[key].end, ep.index) for ep in episodes)
    for (start1, end1, ep1), (start2, end2, ep2) in itertools.pairwise(spans):
        if start2 < end1 - TIMESTAMP_TOLERANCE_S:
            report.problem(
                rel,
                f"episodes {ep1} and {ep2} overlap: [{start1:.6f}, {end1:.6f}) and "
                f"[{start2:.6f}, {end2:.6f}) s",
            )


def _span_errors(
    probe: common.VideoProbe, episode: _Episode, span: _VideoSpan, fps: int | None, decoded: bool
) -> list[str]:
    """An episode's [from_timestamp, to_timestamp) against the frames of its file."""
    errors = []
    if probe.duration is not None and span.end > probe.duration + TIMESTAMP_TOLERANCE_S:
        errors.append(
            f"to_timestamp {span.end:.6f} s is beyond the end of the video ({probe.duration:.6f} s)"
        )
    if fps is not None:
        # LeRobot's own tools cut episodes out of a file at these frame numbers.
        spanned = round(span.end * fps) - round(span.start * fps)
        if spanned != episode.length:
            errors.append(
                f"to_timestamp - from_timestamp is {span.end - span.start:.6f} s, {spanned} frames at "
                f"{fps} fps, but the episode has {episode.length}"
            )
    low, high = span.start - TIMESTAMP_TOLERANCE_S, span.end - TIMESTAMP_TOLERANCE_S
    inside = [t for t in probe.times if t is not None and low <= t < high]
    what = "decoded frames" if decoded else "packets"
    if len(inside) != episode.length:
        errors.append(
            f"{len(inside)} {what} between from_timestamp and to_timestamp, expected {episode.length} "
            "(the episode length)"
        )
    elif fps is not None:
        for k, time in enumerate(inside):
            # LeRobot asks for from_timestamp + timestamp and refuses a frame more than 1e-4 s away.
            want = span.start + k / fps
            if abs(time - want) > TIMESTAMP_TOLERANCE_S:
                errors.append(
                    f"frame {k} is at {time:.6f} s, expected from_timestamp + {k} / fps = {want:.6f} s"
                )
                break
    return errors


# ---------------------------------------------------------------------------------------------
# leftovers


def _check_leftovers(root: Path, report: VerifyReport, layout: _Layout, read: _Episodes) -> None:
    """Any file under meta/, data/, videos/ that nothing points to is a problem."""
    expected = {INFO, TASKS, STATS, SUBTASKS}
    # Well-named episode metadata files are the dataset's even when unreadable (reported then).
    expected |= {
        rel
        for rel in common.files_under(root, [EPISODES_DIR])
        if EPISODES_FILE.fullmatch(rel[len(EPISODES_DIR) + 1 :])
    }
    for episode in read.episodes:
        if episode.data is not None:
            expected.add(layout.data_file(*episode.data))
        for key, span in episode.videos.items():
            expected.add(layout.video_file(key, span.chunk, span.file))
    if read.complete:
        checked = ["meta", *common.leftover_folders(root, layout, report)]
    else:
        checked = ["meta"]
        report.note(f"data/, videos/: not checked for leftovers because {EPISODES_DIR} is not all readable")
    common.report_leftovers(root, checked, expected, _leftover_reason, report)


def _leftover_reason(rel: str) -> str:
    parts = rel.split("/")
    # LeRobot loads every data/*/*.parquet and meta/episodes/*/*.parquet, hidden ones too.
    loaded = rel.endswith(".parquet") and (
        (parts[0] == "data" and len(parts) == 3) or (parts[:2] == ["meta", "episodes"] and len(parts) == 4)
    )
    if is_temporary(rel):
        return TEMPORARY + (" that LeRobot would load" if loaded else "")
    if loaded and parts[0] == "data":
        return f"parquet file not referenced by any episode in {EPISODES_DIR} (LeRobot would load it)"
    if loaded:
        return "not named chunk-NNN/file-NNN.parquet, yet LeRobot would load it as episode metadata"
    if parts[0] == "videos" and rel.endswith(".mp4"):
        return f"video not referenced by any episode in {EPISODES_DIR}"
    return "unexpected file"
