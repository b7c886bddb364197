"""Check that a folder is a valid LeRobot v2.1 dataset, as the format contract FORMAT.md describes.

`verify_dataset(root)` reads the whole dataset and returns a `VerifyReport`. What it promises:

- It never raises on a damaged dataset. A missing or unparseable info.json, a truncated parquet,
  an undecodable mp4 are problems in the report, and checking goes on with whatever can still be
  read, so one run lists every problem it can find.
- It never changes anything on disk.
- Each problem is one human-readable line that starts with the file it concerns (a path relative
  to the root, sometimes with a line number).
- `report.ok` (no problems) means: info.json is well formed and its counters equal what is on
  disk; the three JSONL files are consistent with each other; every episode has a complete,
  readable parquet with contiguous indices and exact timestamps, and a video per camera with
  exactly as many frames, at the right size and times; no stray file sits where LeRobot looks.
- The recorder's own hidden folder `ROOT/.dorobot/` is never a problem; unfinished journals in
  it give a note (`report.notes`), as do unknown entries at the top level.

v3.0 datasets are recognised but not verified yet (reported as a problem).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v2.1"
INFO_KEYS = (
    "codebase_version",
    "robot_type",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "total_videos",
    "total_chunks",
    "chunks_size",
    "fps",
    "splits",
    "data_path",
    "video_path",
    "features",
)
DEFAULT_CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
# The five features LeRobot adds after the user's, in this order, each shape [1], names null.
DEFAULT_FEATURES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
VIDEO_NAMES = ["height", "width", "channels"]
META_FILES = ("info.json", "tasks.jsonl", "episodes.jsonl", "episodes_stats.jsonl")
STAT_KEYS = ("min", "max", "mean", "std", "count")
VISUAL_DTYPES = ("video", "image")
# LeRobot checks timestamps against frame_index / fps with this tolerance (seconds).
TIMESTAMP_TOLERANCE_S = 1e-4
# float32 timestamps lose the 1e-4 s precision LeRobot wants after about this long.
FLOAT32_TIMESTAMP_LIMIT_S = 1024
ARROW_SCALARS = {
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int16": pa.int16(),
    "int8": pa.int8(),
    "uint8": pa.uint8(),
    "bool": pa.bool_(),
    "string": pa.string(),
}
RECORDER_DIR = ".dorobot"
DATASET_DIRS = ("meta", "data", "videos")


@dataclass
class VerifyReport:
    """What `verify_dataset` found. `problems` make the dataset invalid; `notes` do not."""

    root: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    episodes: int = 0  # episode parquet files on disk
    frames: int = 0  # rows in those files

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def note(self, message: str) -> None:
        self.notes.append(message)

    def summary(self) -> str:
        """A few lines for a terminal: the verdict, then every problem and note."""
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines = [f"{self.root}: {verdict} ({self.episodes} episodes, {self.frames} frames)"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class _Layout:
    """What the rest of the checks need from info.json, with safe fallbacks when it is damaged."""

    fps: int | None = None
    chunks_size: int = DEFAULT_CHUNKS_SIZE
    data_path: str = DATA_PATH
    video_path: str = VIDEO_PATH
    # Features that passed the structural checks, in info.json order; None when unusable.
    features: dict[str, dict[str, Any]] | None = None

    @property
    def video_keys(self) -> list[str]:
        return [k for k, ft in (self.features or {}).items() if ft["dtype"] == "video"]

    @property
    def columns(self) -> list[str]:
        return [k for k, ft in (self.features or {}).items() if ft["dtype"] != "video"]

    def data_file(self, episode_index: int) -> str:
        chunk = episode_index // self.chunks_size
        return self.data_path.format(episode_chunk=chunk, episode_index=episode_index)

    def video_file(self, episode_index: int, video_key: str) -> str:
        chunk = episode_index // self.chunks_size
        return self.video_path.format(episode_chunk=chunk, video_key=video_key, episode_index=episode_index)


@dataclass
class _Episode:
    """One usable line of episodes.jsonl."""

    index: int
    length: int
    tasks: list[str]
    line: int


@dataclass
class _Jsonl:
    """A JSONL file as read: how many lines it has and the ones that parsed to objects."""

    lines: int = 0
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _VideoProbe:
    """Facts read from one mp4, judged later against the dataset's metadata."""

    streams: int = 0
    codec: str | None = None
    pix_fmt: str | None = None
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    times: list[float | None] = field(default_factory=list)
    error: str | None = None


def verify_dataset(root: str | Path, decode_videos: bool = True) -> VerifyReport:
    """Check the dataset at `root` against the v2.1 contract; see the module docstring.

    With `decode_videos=False` videos are demuxed (packets counted) instead of decoded: much
    faster, but a corrupt frame payload goes unnoticed.
    """
    root = Path(root)
    report = VerifyReport(root=root)
    if not root.is_dir():
        report.problem(str(root), "not a directory")
        return report

    info = _guard(report, "meta/info.json", _load_info, root, report)
    if isinstance(info, dict) and info.get("codebase_version") == "v3.0":
        # The v3.0 layout (many episodes per file) needs its own checks; not written yet.
        report.problem("meta/info.json", "v3.0 datasets are not verified yet")
        return report

    layout = _guard(report, "meta/info.json", _check_info, info, report) or _Layout()
    parquet_files, parquet_rows = _guard(report, "data/", _count_parquet_on_disk, root) or ([], 0)
    report.episodes, report.frames = len(parquet_files), parquet_rows
    # Fresh datasets (LeRobot's create()) have only info.json: the JSONL files appear with the
    # first episode, so they are required only once some episode exists.
    declared = info.get("total_episodes") if isinstance(info, dict) else None
    required = bool(parquet_files) or (_is_int(declared) and declared > 0)

    tasks = _guard(report, "meta/tasks.jsonl", _check_tasks, root, report, required)
    tasks_file, task_list = tasks or (_Jsonl(), [])
    episodes = _guard(report, "meta/episodes.jsonl", _check_episodes, root, report, task_list, required)
    episodes_file, episode_list = episodes or (_Jsonl(), [])
    _guard(report, "meta/episodes_stats.jsonl", _check_stats, root, report, layout, episode_list, required)
    if isinstance(info, dict):
        disk = (len(parquet_files), parquet_rows)
        _guard(
            report, "meta/info.json", _check_counters, info, layout, report, tasks_file, episodes_file, disk
        )
    _guard(report, "data/", _check_parquets, root, report, layout, episode_list, task_list)
    _guard(report, "videos/", _check_videos, root, report, layout, episode_list, decode_videos)
    _guard(report, "leftovers", _check_leftovers, root, report, layout, episode_list)
    _guard(report, "top level", _check_top_level, root, report)
    return report


def _guard(report: VerifyReport, where: str, check: Callable[..., Any], *args: Any) -> Any:
    """Run one group of checks; an unexpected exception becomes a problem, never escapes."""
    try:
        return check(*args)
    except Exception as exc:  # the verifier's promise is to report, not to crash
        report.problem(where, f"could not be checked ({type(exc).__name__}: {exc})")
        return None


def _is_int(value: Any) -> bool:
    # JSON true/false load as bool, which is an int subclass in Python; they are not counts.
    return isinstance(value, int) and not isinstance(value, bool)


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# ---------------------------------------------------------------------------------------------
# meta/info.json


def _load_info(root: Path, report: VerifyReport) -> dict[str, Any] | None:
    path = root / "meta" / "info.json"
    if not path.is_file():
        report.problem("meta/info.json", "missing")
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.problem("meta/info.json", f"not valid JSON ({exc})")
        return None
    if not isinstance(info, dict):
        report.problem("meta/info.json", "not a JSON object")
        return None
    return info


def _check_info(info: dict[str, Any] | None, report: VerifyReport) -> _Layout:
    """Check info.json on its own and return the layout the other checks rely on."""
    layout = _Layout()
    if info is None:
        return layout
    where = "meta/info.json"
    _check_info_keys(info, report)
    if info.get("codebase_version") != CODEBASE_VERSION:
        report.problem(where, f"codebase_version is {info.get('codebase_version')!r}, expected 'v2.1'")
    robot_type = info.get("robot_type")
    if robot_type is not None and not isinstance(robot_type, str):
        report.problem(where, f"robot_type must be a string or null, got {robot_type!r}")
    for key in ("total_episodes", "total_frames", "total_tasks", "total_videos", "total_chunks"):
        if key in info and not (_is_int(info[key]) and info[key] >= 0):
            report.problem(where, f"{key} must be a non-negative integer, got {info[key]!r}")

    chunks_size, fps = info.get("chunks_size"), info.get("fps")
    if _is_int(chunks_size) and chunks_size > 0:
        layout.chunks_size = chunks_size
        if chunks_size != DEFAULT_CHUNKS_SIZE:
            report.note(f"{where}: chunks_size is {chunks_size} (LeRobot writes {DEFAULT_CHUNKS_SIZE})")
    elif "chunks_size" in info:
        report.problem(where, f"chunks_size must be a positive integer, got {chunks_size!r}")
    if _is_int(fps) and fps > 0:
        layout.fps = fps
    elif "fps" in info:
        report.problem(where, f"fps must be a positive integer, got {fps!r}")

    features = info.get("features")
    if isinstance(features, dict):
        has_episodes = _is_int(info.get("total_episodes")) and info["total_episodes"] > 0
        layout.features = _check_features(features, has_episodes, report)
    elif "features" in info:
        report.problem(where, "features must be an object")
    _check_templates(info, layout, report)
    return layout


def _check_info_keys(info: dict[str, Any], report: VerifyReport) -> None:
    where = "meta/info.json"
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        report.problem(where, f"missing keys: {', '.join(missing)}")
    # LeRobot writes the keys in this order; a different order means another writer.
    present = [k for k in info if k in INFO_KEYS]
    if present != [k for k in INFO_KEYS if k in info]:
        report.problem(where, f"keys out of order: {', '.join(present)} (expected {', '.join(INFO_KEYS)})")
    unknown = [k for k in info if k not in INFO_KEYS]
    if unknown:
        report.note(f"{where}: keys not in the v2.1 contract: {', '.join(unknown)}")


def _check_templates(info: dict[str, Any], layout: _Layout, report: VerifyReport) -> None:
    """The path templates must be the documented ones; a broken one falls back to the default."""
    where = "meta/info.json"
    data_path = info.get("data_path")
    if "data_path" in info and data_path != DATA_PATH:
        report.problem(where, f"data_path is {data_path!r}, expected {DATA_PATH!r}")
    if isinstance(data_path, str) and _template_works(data_path, episode_chunk=0, episode_index=0):
        layout.data_path = data_path

    video_path = info.get("video_path")
    if video_path is None:
        if layout.video_keys:
            report.problem(where, "video_path is null but there are video features")
        return
    if video_path != VIDEO_PATH:
        report.problem(where, f"video_path is {video_path!r}, expected {VIDEO_PATH!r} or null")
    if isinstance(video_path, str) and _template_works(
        video_path, episode_chunk=0, video_key="k", episode_index=0
    ):
        layout.video_path = video_path


def _template_works(template: str, **values: Any) -> bool:
    try:
        template.format(**values)
    except (KeyError, IndexError, ValueError):
        return False
    return True


def _check_features(
    features: dict[str, Any], has_episodes: bool, report: VerifyReport
) -> dict[str, dict[str, Any]]:
    """Check every feature; return the ones sound enough to drive the parquet/video checks."""
    where = "meta/info.json"
    usable: dict[str, dict[str, Any]] = {}
    for name, ft in features.items():
        errors = _feature_errors(name, ft, has_episodes)
        for error in errors:
            report.problem(where, f"feature {name!r}: {error}")
        if isinstance(ft, dict) and _feature_is_usable(ft):
            usable[name] = ft

    # LeRobot appends the defaults after the user's features; the parquet column order follows.
    names = list(features)
    defaults = list(DEFAULT_FEATURES)
    missing = [d for d in defaults if d not in features]
    if missing:
        report.problem(where, f"default features missing: {', '.join(missing)}")
    elif names[-len(defaults) :] != defaults:
        report.problem(where, f"the default features must come last, in the order {', '.join(defaults)}")
    return usable


def _feature_is_usable(ft: dict[str, Any]) -> bool:
    shape = ft.get("shape")
    return (
        isinstance(ft.get("dtype"), str)
        and isinstance(shape, list)
        and len(shape) > 0
        and all(_is_int(n) and n > 0 for n in shape)
        and (ft["dtype"] != "video" or len(shape) == 3)
    )


def _feature_errors(name: str, ft: Any, has_episodes: bool) -> list[str]:
    if not isinstance(ft, dict):
        return ["must be an object with dtype, shape, names"]
    errors = []
    if "/" in name:
        errors.append("feature names must not contain '/'")
    dtype, shape, names = ft.get("dtype"), ft.get("shape"), ft.get("names")
    if not isinstance(dtype, str):
        errors.append(f"dtype must be a string, got {dtype!r}")
    if not (isinstance(shape, list) and shape and all(_is_int(n) and n > 0 for n in shape)):
        errors.append(f"shape must be a list of positive integers, got {shape!r}")
    if "names" not in ft or not (names is None or isinstance(names, list)):
        errors.append("names must be a list or null")
    if name in DEFAULT_FEATURES:
        want = {"dtype": DEFAULT_FEATURES[name], "shape": [1], "names": None}
        got = {k: ft.get(k) for k in want}
        if got != want:
            errors.append(f"must be {want}, got {got}")
    if dtype == "video":
        errors += _video_feature_errors(ft, has_episodes)
    return errors


def _video_feature_errors(ft: dict[str, Any], has_episodes: bool) -> list[str]:
    errors = []
    shape = ft.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and shape[2] == 3):
        errors.append(f"a video's shape must be [height, width, 3], got {shape!r}")
        return errors
    if ft.get("names") != VIDEO_NAMES:
        errors.append(f"a video's names must be {VIDEO_NAMES}, got {ft.get('names')!r}")
    # The info block is probed from the first encoded file, so it exists once an episode does.
    info = ft.get("info")
    if info is None:
        if has_episodes:
            errors.append("no 'info' block although episodes exist")
        return errors
    if not isinstance(info, dict):
        return [*errors, "'info' must be an object"]
    size = (info.get("video.height"), info.get("video.width"))
    if size != (shape[0], shape[1]):
        errors.append(f"info video.height/width {size} do not match shape {shape[:2]}")
    if not isinstance(info.get("video.codec"), str):
        errors.append("info has no video.codec")
    return errors


# ---------------------------------------------------------------------------------------------
# counters


def _check_counters(
    info: dict[str, Any],
    layout: _Layout,
    report: VerifyReport,
    tasks_file: _Jsonl,
    episodes_file: _Jsonl,
    disk: tuple[int, int],
) -> None:
    """Every counter of info.json must equal what is on disk (LeRobot trusts them blindly)."""
    where = "meta/info.json"
    disk_files, disk_rows = disk
    episodes, frames = info.get("total_episodes"), info.get("total_frames")
    if _is_int(episodes):
        if episodes != episodes_file.lines:
            report.problem(
                where,
                f"total_episodes is {episodes} but meta/episodes.jsonl has {episodes_file.lines} line(s)",
            )
        if episodes != disk_files:
            report.problem(
                where, f"total_episodes is {episodes} but data/ holds {disk_files} parquet file(s)"
            )
        videos = info.get("total_videos")
        if layout.features is not None and _is_int(videos) and videos != episodes * len(layout.video_keys):
            report.problem(
                where,
                f"total_videos is {videos}, expected {episodes * len(layout.video_keys)} "
                f"(total_episodes x {len(layout.video_keys)} video features)",
            )
        chunks, want_chunks = info.get("total_chunks"), math.ceil(episodes / layout.chunks_size)
        if _is_int(chunks) and chunks != want_chunks:
            report.problem(where, f"total_chunks is {chunks}, expected {want_chunks}")
        splits = info.get("splits")
        if splits != {"train": f"0:{episodes}"} and not (episodes == 0 and splits == {}):
            report.problem(where, f"splits is {splits!r}, expected {{'train': '0:{episodes}'}}")
    if _is_int(frames):
        lengths = sum(row.get("length", 0) for _, row in episodes_file.rows if _is_int(row.get("length")))
        if frames != lengths:
            report.problem(
                where, f"total_frames is {frames} but the lengths in meta/episodes.jsonl sum to {lengths}"
            )
        if frames != disk_rows:
            report.problem(where, f"total_frames is {frames} but the parquet files hold {disk_rows} rows")
    tasks = info.get("total_tasks")
    if _is_int(tasks) and tasks != tasks_file.lines:
        report.problem(where, f"total_tasks is {tasks} but meta/tasks.jsonl has {tasks_file.lines} line(s)")


def _count_parquet_on_disk(root: Path) -> tuple[list[Path], int]:
    """The parquet files LeRobot would load (visible ones under data/) and their total rows."""
    data = root / "data"
    files = sorted(p for p in data.rglob("*.parquet") if not _is_hidden(data, p)) if data.is_dir() else []
    rows = 0
    for path in files:
        # Unreadable files count 0 rows here; the per-episode or leftover checks report them.
        with contextlib.suppress(OSError, pa.ArrowException, ValueError):
            rows += pq.ParquetFile(path).metadata.num_rows
    return files, rows


def _is_hidden(base: Path, path: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)


# ---------------------------------------------------------------------------------------------
# JSONL files


def _read_jsonl(root: Path, name: str, report: VerifyReport, required: bool) -> _Jsonl:
    where = f"meta/{name}"
    path = root / "meta" / name
    result = _Jsonl()
    if not path.is_file():
        if required:
            report.problem(where, "missing")
        return result
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.problem(where, f"unreadable ({exc})")
        return result
    if text and not text.endswith("\n"):
        report.problem(where, "last line has no trailing newline (torn write?)")
    # split("\n"), not splitlines(): JSON strings may hold U+2028, which splitlines breaks on.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    result.lines = len(lines)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            report.problem(f"{where} line {lineno}", "blank line")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            report.problem(f"{where} line {lineno}", f"not valid JSON ({exc})")
            continue
        if isinstance(row, dict):
            result.rows.append((lineno, row))
        else:
            report.problem(f"{where} line {lineno}", "not a JSON object")
    return result


def _check_tasks(root: Path, report: VerifyReport, required: bool) -> tuple[_Jsonl, list[str]]:
    """tasks.jsonl: task_index 0..n-1 in order, distinct strings. Returns the task list."""
    jsonl = _read_jsonl(root, "tasks.jsonl", report, required)
    tasks: list[str] = []
    for lineno, row in jsonl.rows:
        where = f"meta/tasks.jsonl line {lineno}"
        index, task = row.get("task_index"), row.get("task")
        if index != len(tasks) or not _is_int(index):
            report.problem(where, f"task_index is {index!r}, expected {len(tasks)} (0..n-1, in order)")
        if not isinstance(task, str):
            report.problem(where, f"task must be a string, got {task!r}")
            task = repr(task)
        elif task in tasks:
            report.problem(where, f"task {task!r} already listed with task_index {tasks.index(task)}")
        tasks.append(task)
    return jsonl, tasks


def _check_episodes(
    root: Path, report: VerifyReport, tasks: list[str], required: bool
) -> tuple[_Jsonl, list[_Episode]]:
    """episodes.jsonl: indices 0..n-1 in order, known tasks, positive lengths."""
    jsonl = _read_jsonl(root, "episodes.jsonl", report, required)
    episodes: list[_Episode] = []
    for position, (lineno, row) in enumerate(jsonl.rows):
        where = f"meta/episodes.jsonl line {lineno}"
        index, ep_tasks, length = row.get("episode_index"), row.get("tasks"), row.get("length")
        if not _is_int(index):
            report.problem(where, f"episode_index must be an integer, got {index!r}")
            continue
        if index != position:
            report.problem(
                where,
                f"episode_index is {index}, expected {position} "
                "(indices must be 0..n-1, contiguous and in order)",
            )
        if not (isinstance(ep_tasks, list) and ep_tasks and all(isinstance(t, str) for t in ep_tasks)):
            report.problem(where, f"tasks must be a non-empty list of strings, got {ep_tasks!r}")
            ep_tasks = []
        unknown = [t for t in ep_tasks if t not in tasks]
        if unknown:
            report.problem(where, f"tasks not in meta/tasks.jsonl: {unknown}")
        if not (_is_int(length) and length > 0):
            report.problem(where, f"length must be a positive integer, got {length!r}")
            continue
        episodes.append(_Episode(index=index, length=length, tasks=ep_tasks, line=lineno))
    return jsonl, episodes


def _check_stats(
    root: Path, report: VerifyReport, layout: _Layout, episodes: list[_Episode], required: bool
) -> None:
    """episodes_stats.jsonl: one line per episode, same order, stats for every feature."""
    jsonl = _read_jsonl(root, "episodes_stats.jsonl", report, required)
    if len(jsonl.rows) != len(episodes):
        report.problem(
            "meta/episodes_stats.jsonl",
            f"{len(jsonl.rows)} episode lines but meta/episodes.jsonl has {len(episodes)}",
        )
    for position, (lineno, row) in enumerate(jsonl.rows):
        where = f"meta/episodes_stats.jsonl line {lineno}"
        episode = episodes[position] if position < len(episodes) else None
        if episode is not None and row.get("episode_index") != episode.index:
            report.problem(
                where,
                f"episode_index is {row.get('episode_index')!r}, expected {episode.index} "
                "(same order as meta/episodes.jsonl)",
            )
        stats = row.get("stats")
        if not isinstance(stats, dict):
            report.problem(where, "stats must be an object")
            continue
        if layout.features is None:
            continue  # without usable features there is nothing to check the stats against
        missing = [name for name in layout.features if name not in stats]
        if missing:
            report.problem(where, f"no stats for features: {', '.join(missing)}")
        for name, feature_stats in stats.items():
            if name not in layout.features:
                report.problem(where, f"stats for {name!r}, which is not a feature in meta/info.json")
                continue
            length = episode.length if episode else None
            for error in _feature_stats_errors(feature_stats, layout.features[name], length):
                report.problem(where, f"stats of {name!r}: {error}")


def _feature_stats_errors(stats: Any, ft: dict[str, Any], length: int | None) -> list[str]:
    """Shape and range rules for one feature's stats (FORMAT.md section 6)."""
    if not isinstance(stats, dict):
        return ["must be an object"]
    errors = []
    missing = [k for k in STAT_KEYS if k not in stats]
    if missing:
        errors.append(f"missing {', '.join(missing)}")
    visual = ft["dtype"] in VISUAL_DTYPES
    # The LeRobot loader refuses image stats not shaped (3,1,1): per channel, over the frames.
    want = (3, 1, 1) if visual else tuple(ft["shape"])
    for key in ("min", "max", "mean", "std"):
        if key not in stats:
            continue
        values = _numeric_array(stats[key])
        if values is None:
            errors.append(f"{key} is not numeric")
        elif values.shape != want:
            errors.append(f"{key} has shape {values.shape}, expected {want}")
        elif not np.all(np.isfinite(values)):
            errors.append(f"{key} has NaN or infinite values")
        elif visual and (values.min() < 0 or values.max() > 1):
            errors.append(f"{key} has values outside [0, 1] (pixels must be divided by 255)")
    if "count" in stats:
        count = _numeric_array(stats["count"])
        if count is None or count.shape != (1,):
            errors.append(f"count must be shaped (1,), got {stats['count']!r}")
        elif visual and length is not None and not 1 <= count[0] <= length:
            errors.append(f"count is {count[0]:g}, expected between 1 and the episode length {length}")
        elif not visual and length is not None and count[0] != length:
            errors.append(f"count is {count[0]:g}, expected the episode length {length}")
    return errors


def _numeric_array(value: Any) -> np.ndarray | None:
    """A rectangular array of numbers, or None (ragged lists, strings, objects)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return None
    return array.astype(np.float64) if array.dtype.kind in "biuf" else None


# ---------------------------------------------------------------------------------------------
# episode parquet files


def _check_parquets(
    root: Path, report: VerifyReport, layout: _Layout, episodes: list[_Episode], tasks: list[str]
) -> None:
    first_index = 0  # `index` is global: episode k starts after all frames of episodes 0..k-1
    for episode in episodes:
        _check_parquet(root, report, layout, episode, first_index, tasks)
        first_index += episode.length


def _check_parquet(
    root: Path, report: VerifyReport, layout: _Layout, episode: _Episode, first_index: int, tasks: list[str]
) -> None:
    rel = layout.data_file(episode.index)
    path = root / rel
    if not path.is_file():
        report.problem(rel, f"missing (episode {episode.index} is in meta/episodes.jsonl)")
        return
    try:
        table = pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException, ValueError) as exc:
        report.problem(rel, f"unreadable parquet, incomplete or corrupt ({exc})")
        return
    if layout.features is not None:
        _check_parquet_schema(rel, table.schema, layout, report)
    _check_parquet_values(rel, table, layout, episode, first_index, tasks, report)


def _check_parquet_schema(rel: str, schema: pa.Schema, layout: _Layout, report: VerifyReport) -> None:
    """Columns, Arrow types and the `huggingface` metadata LeRobot's loader relies on."""
    assert layout.features is not None
    if schema.names != layout.columns:
        report.problem(rel, f"columns are {schema.names}, expected {layout.columns}")
    for name in layout.columns:
        want = _arrow_type(layout.features[name])
        if name in schema.names and want is not None and schema.field(name).type != want:
            report.problem(rel, f"column {name!r} has type {schema.field(name).type}, expected {want}")

    raw = (schema.metadata or {}).get(b"huggingface")
    if raw is None:
        report.problem(rel, "no 'huggingface' schema metadata")
        return
    try:
        hf_features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError) as exc:
        report.problem(rel, f"'huggingface' schema metadata is not valid ({exc})")
        return
    if not isinstance(hf_features, dict) or set(hf_features) != set(layout.columns):
        names = sorted(hf_features) if isinstance(hf_features, dict) else hf_features
        report.problem(rel, f"'huggingface' metadata features are {names}, expected {layout.columns}")
        return
    for name in layout.columns:
        want = _hf_feature(layout.features[name])
        if want is not None and hf_features[name] != want:
            report.problem(
                rel, f"'huggingface' metadata for {name!r} is {hf_features[name]}, expected {want}"
            )


# The two functions below restate FORMAT.md instead of importing the writer's (features.py) on
# purpose: a verifier that shared the writer's code would agree with the writer's mistakes.
def _arrow_type(ft: dict[str, Any]) -> pa.DataType | None:
    """The Arrow type LeRobot writes for a feature; None where we do not check it."""
    scalar = ARROW_SCALARS.get(ft["dtype"])
    if scalar is None:
        return None
    if ft["shape"] == [1]:
        return scalar
    return pa.list_(scalar, ft["shape"][0]) if len(ft["shape"]) == 1 else None


def _hf_feature(ft: dict[str, Any]) -> dict[str, Any] | None:
    """A feature in Hugging Face `datasets` notation; None where we do not check it."""
    if ft["dtype"] == "image":
        return {"_type": "Image"}
    value = {"dtype": ft["dtype"], "_type": "Value"}
    if ft["shape"] == [1]:
        return value
    if len(ft["shape"]) == 1:
        return {"feature": value, "length": ft["shape"][0], "_type": "Sequence"}
    return None


def _check_parquet_values(
    rel: str,
    table: pa.Table,
    layout: _Layout,
    episode: _Episode,
    first_index: int,
    tasks: list[str],
    report: VerifyReport,
) -> None:
    length = table.num_rows
    if length != episode.length:
        report.problem(rel, f"{length} rows but meta/episodes.jsonl says length {episode.length}")
    expected = {
        "frame_index": np.arange(length),
        "episode_index": np.full(length, episode.index),
        "index": first_index + np.arange(length),
    }
    for name, want in expected.items():
        got = _int_column(table, name)
        if got is not None and not np.array_equal(got, want):
            row = int(np.argmax(got != want))
            report.problem(rel, f"column {name!r} is {got[row]} at row {row}, expected {want[row]}")

    task_index = _int_column(table, "task_index")
    if task_index is not None:
        used = (int(t) for t in np.unique(task_index))
        bad = [t for t in used if not (0 <= t < len(tasks) and tasks[t] in episode.tasks)]
        if bad:
            report.problem(rel, f"task_index values {bad} are not tasks of episode {episode.index}")

    timestamps = _float_column(table, "timestamp")
    if timestamps is not None and layout.fps is not None:
        error = np.abs(timestamps - np.arange(length) / layout.fps)
        if error.size and error.max() > TIMESTAMP_TOLERANCE_S:
            row = int(np.argmax(error))
            report.problem(
                rel,
                f"timestamp is {timestamps[row]:.6f} at row {row}, expected "
                f"frame_index / fps = {row / layout.fps:.6f}",
            )
        if length / layout.fps > FLOAT32_TIMESTAMP_LIMIT_S:
            report.note(
                f"{rel}: episode longer than {FLOAT32_TIMESTAMP_LIMIT_S} s; float32 timestamps "
                "may fail LeRobot's 1e-4 s check"
            )
    _check_missing_values(rel, table, report)


def _check_missing_values(rel: str, table: pa.Table, report: VerifyReport) -> None:
    """No nulls anywhere, no NaN in float columns: trainers would propagate them silently."""
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if column.null_count:
            report.problem(rel, f"column {name!r} has {column.null_count} null values")
            continue
        while pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
            column = column.flatten()
        if pa.types.is_floating(column.type) and np.isnan(column.to_numpy(zero_copy_only=False)).any():
            report.problem(rel, f"column {name!r} contains NaN")


def _int_column(table: pa.Table, name: str) -> np.ndarray | None:
    if name not in table.column_names or not pa.types.is_integer(table.schema.field(name).type):
        return None  # absent or mistyped: already reported by the schema check
    return table.column(name).to_numpy()


def _float_column(table: pa.Table, name: str) -> np.ndarray | None:
    if name not in table.column_names or not pa.types.is_floating(table.schema.field(name).type):
        return None
    return table.column(name).to_numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------------
# videos


def _check_videos(
    root: Path, report: VerifyReport, layout: _Layout, episodes: list[_Episode], decode: bool
) -> None:
    if layout.features is None:
        return
    for key in layout.video_keys:
        info = layout.features[key].get("info")
        codec = info.get("video.codec") if isinstance(info, dict) else None
        height, width = layout.features[key]["shape"][:2]
        for episode in episodes:
            rel = layout.video_file(episode.index, key)
            if not (root / rel).is_file():
                report.problem(rel, f"missing (episode {episode.index}, camera {key})")
                continue
            probe = _probe_video(root / rel, decode)
            for error in _video_errors(probe, episode.length, (width, height), layout.fps, codec, decode):
                report.problem(rel, error)


def _probe_video(path: Path, decode: bool) -> _VideoProbe:
    """Read the stream facts and every frame's size and time (or packet times without decoding)."""
    probe = _VideoProbe()
    try:
        with av.open(str(path)) as container:
            probe.streams = len(container.streams)
            if not container.streams.video:
                probe.error = "no video stream"
                return probe
            stream = container.streams.video[0]
            probe.codec = stream.codec_context.codec.canonical_name  # "av1", not the decoder "libdav1d"
            probe.pix_fmt = stream.codec_context.pix_fmt
            if decode:
                stream.thread_type = "AUTO"
                for frame in container.decode(video=0):
                    probe.frames += 1
                    probe.sizes.add((frame.width, frame.height))
                    probe.times.append(frame.time)
            else:
                for packet in container.demux(stream):
                    if packet.size:  # the demuxer ends with an empty flush packet
                        probe.frames += 1
                        pts = packet.pts
                        probe.times.append(None if pts is None else float(pts * stream.time_base))
                # Packets come in decode order; presentation times are what must be regular.
                probe.times.sort(key=lambda t: -1.0 if t is None else t)
    except (av.FFmpegError, OSError, ValueError) as exc:
        probe.error = f"{type(exc).__name__}: {exc}"
    return probe


def _video_errors(
    probe: _VideoProbe,
    length: int,
    size: tuple[int, int],
    fps: int | None,
    codec: str | None,
    decoded: bool,
) -> list[str]:
    what = "decoded frames" if decoded else "packets"
    errors = []
    if probe.error is not None:
        errors.append(f"unreadable video after {probe.frames} {what}, incomplete or corrupt ({probe.error})")
    if probe.streams == 0:
        return errors
    if probe.streams != 1:
        errors.append(f"{probe.streams} streams, expected a single video stream")
    if probe.pix_fmt != "yuv420p":
        errors.append(f"pixel format {probe.pix_fmt}, expected yuv420p")
    if codec is not None and probe.codec != codec:
        errors.append(f"codec {probe.codec}, but meta/info.json says {codec}")
    if probe.frames != length:
        errors.append(f"{probe.frames} {what}, expected {length} (the episode length)")
    wrong_sizes = sorted(s for s in probe.sizes if s != size)
    if wrong_sizes:
        errors.append(f"frames of size {wrong_sizes} (width x height), expected {size}")
    if fps is not None:
        for i, time in enumerate(probe.times):
            # Frame i must be shown at i / fps; LeRobot seeks by timestamp, so drift mislabels frames.
            if time is None or abs(time - i / fps) > 0.5 / fps:
                errors.append(f"frame {i} is at {time} s, expected {i / fps:.4f} s")
                break
    return errors


# ---------------------------------------------------------------------------------------------
# leftovers and top level


def _check_leftovers(root: Path, report: VerifyReport, layout: _Layout, episodes: list[_Episode]) -> None:
    """Any file under meta/, data/, videos/ the dataset does not account for is a problem.

    LeRobot loads every parquet under data/, so a stray or half-written file breaks loading.
    """
    expected = {f"meta/{name}" for name in META_FILES}
    expected |= {layout.data_file(ep.index) for ep in episodes}
    expected |= {layout.video_file(ep.index, key) for ep in episodes for key in layout.video_keys}
    checked = ["meta", "data"]
    if layout.features is not None:
        checked.append("videos")
    elif (root / "videos").is_dir():
        report.note("videos/: not checked for leftovers because meta/info.json has no usable features")
    for top in checked:
        for dirpath, _dirnames, filenames in os.walk(root / top):
            for filename in filenames:
                rel = _rel(root, Path(dirpath) / filename)
                if rel not in expected:
                    report.problem(rel, _leftover_reason(rel))


def _leftover_reason(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    hidden = any(part.startswith(".") for part in rel.split("/"))
    if hidden or name.endswith((".tmp", ".temp", ".part", "~")) or ".tmp" in name:
        return "temporary file left behind (not part of the dataset)"
    if rel.startswith("data/") and name.endswith(".parquet"):
        return "parquet file not accounted for by meta/episodes.jsonl (LeRobot would load it)"
    if rel.startswith("videos/") and name.endswith(".mp4"):
        return "video not accounted for by meta/episodes.jsonl and the video features"
    return "unexpected file"


def _check_top_level(root: Path, report: VerifyReport) -> None:
    """Unknown top-level entries are only notes; pending journals call for `dorobot recover`."""
    for entry in sorted(root.iterdir()):
        name = entry.name
        readme_like = name.lower().startswith(("readme", "license")) or name == ".gitattributes"
        if name not in (*DATASET_DIRS, RECORDER_DIR) and not readme_like:
            report.note(f"{name}: unexpected entry at the top level of the dataset")
    journal = root / RECORDER_DIR / "journal"
    if journal.is_dir():
        count = sum(1 for _ in journal.iterdir())
        if count:
            plural = "journal" if count == 1 else "journals"
            where = f"{RECORDER_DIR}/journal"
            report.note(f"{count} unfinished episode {plural} in {where} (run `dorobot recover {root}`)")
    for kind, flag in (("failed", "--retry-failed"), ("partial", "--salvage-partial")):
        folder = root / RECORDER_DIR / kind
        count = sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0
        if count:
            report.note(
                f"{count} episode(s) set aside in {RECORDER_DIR}/{kind} (see their error.txt; "
                f"`dorobot recover {root} {flag}` tries them again)"
            )
