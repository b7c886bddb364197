"""The LeRobot v2.1 layout: one parquet and one mp4 per camera for each episode, JSONL metadata.

`verify_v21` promises, for a dataset whose info.json says v2.1 (or cannot be read): info.json is
well formed and its counters equal what is on disk; the three JSONL files are consistent with
each other; every episode has a complete, readable parquet with contiguous indices and exact
timestamps, and a video per camera with exactly as many frames, at the right size and times; no
stray file sits where LeRobot looks. Problems go to the report; nothing is raised or written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operating_platform.dataset.compress_target import accepted_codecs
from operating_platform.dataset.verify import common
from operating_platform.dataset.verify.common import (
    DEFAULT_CHUNKS_SIZE,
    INFO,
    TEMPORARY,
    is_hidden,
    is_int,
    is_temporary,
)
from operating_platform.dataset.verify.report import VerifyReport, guard

CODEBASE_VERSION = "v2.1"
# The totals of info.json, which must agree with the files.
COUNTS = ("total_episodes", "total_frames", "total_tasks", "total_videos", "total_chunks")
# Every key, in the order LeRobot writes them.
INFO_KEYS = (
    "codebase_version",
    "robot_type",
    *COUNTS,
    "chunks_size",
    "fps",
    "splits",
    "data_path",
    "video_path",
    "features",
)
# Every file meta/ holds.
META_FILES = ("info.json", "tasks.jsonl", "episodes.jsonl", "episodes_stats.jsonl")
DATA_PATH = common.PathTemplate(
    "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
    {"episode_chunk": 0, "episode_index": 0},
)
VIDEO_PATH = common.PathTemplate(
    "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    {"episode_chunk": 0, "video_key": "k", "episode_index": 0},
)


@dataclass
class _Layout(common.Layout):
    """The v2.1 templates, and the chunk size that places each episode's files."""

    data_path: str = DATA_PATH.documented
    video_path: str = VIDEO_PATH.documented
    chunks_size: int = DEFAULT_CHUNKS_SIZE

    def data_file(self, episode_index: int) -> str:
        chunk = episode_index // self.chunks_size
        return self.data_path.format(episode_chunk=chunk, episode_index=episode_index)

    def video_file(self, episode_index: int, video_key: str) -> str:
        chunk = episode_index // self.chunks_size
        return self.video_path.format(episode_chunk=chunk, video_key=video_key, episode_index=episode_index)


@dataclass
class _Episode(common.Episode):
    """One usable line of episodes.jsonl."""

    line: int


@dataclass
class _Jsonl:
    """A JSONL file as read: how many lines it has and the ones that parsed to objects."""

    lines: int = 0
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def verify_v21(root: Path, info: dict[str, Any] | None, report: VerifyReport, decode: bool) -> None:
    """Check `root` against the v2.1 contract; `info` is info.json as loaded (None if unusable)."""
    # Without a usable info.json the other checks go by the documented layout.
    layout = _Layout() if info is None else (guard(report, INFO, _check_info, info, report) or _Layout())
    parquet_files, rows = guard(report, "data/", _count_parquet_on_disk, root) or ([], 0)
    report.episodes, report.frames = len(parquet_files), rows
    # Fresh datasets (LeRobot's create()) have only info.json: the JSONL files appear with the
    # first episode, so they are required only once some episode exists.
    declared = info.get("total_episodes") if isinstance(info, dict) else None
    required = bool(parquet_files) or (is_int(declared) and declared > 0)

    tasks = guard(report, "meta/tasks.jsonl", _check_tasks, root, report, required)
    tasks_file, task_list = tasks or (_Jsonl(), [])
    episodes = guard(report, "meta/episodes.jsonl", _check_episodes, root, report, task_list, required)
    episodes_file, episode_list = episodes or (_Jsonl(), [])
    guard(report, "meta/episodes_stats.jsonl", _check_stats, root, report, layout, episode_list, required)
    if isinstance(info, dict):
        disk = (len(parquet_files), rows)
        guard(report, INFO, _check_counters, info, layout, report, tasks_file, episodes_file, disk)
    guard(report, "data/", _check_parquets, root, report, layout, episode_list, task_list)
    guard(report, "videos/", _check_videos, root, report, layout, episode_list, decode)
    guard(report, "leftovers", _check_leftovers, root, report, layout, episode_list)


# ---------------------------------------------------------------------------------------------
# meta/info.json


def _check_info(info: dict[str, Any], report: VerifyReport) -> _Layout:
    """Check info.json on its own and return the layout the other checks rely on."""
    # LeRobot writes the keys in this order; a different order means another writer.
    present = common.check_info_keys(info, INFO_KEYS, CODEBASE_VERSION, report)
    if present is not None:
        report.problem(INFO, f"keys out of order: {', '.join(present)} (expected {', '.join(INFO_KEYS)})")
    if info.get("codebase_version") != CODEBASE_VERSION:
        report.problem(INFO, f"codebase_version is {info.get('codebase_version')!r}, expected 'v2.1'")
    common.check_info_types(info, COUNTS, report)
    layout = _Layout()
    chunks_size = common.check_info_layout(info, layout, DATA_PATH, VIDEO_PATH, report)
    layout.chunks_size = chunks_size or layout.chunks_size
    return layout


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
    disk_files, disk_rows = disk
    episodes, frames = info.get("total_episodes"), info.get("total_frames")
    if is_int(episodes):
        if episodes != episodes_file.lines:
            report.problem(
                INFO,
                f"total_episodes is {episodes} but meta/episodes.jsonl has {episodes_file.lines} line(s)",
            )
        if episodes != disk_files:
            report.problem(INFO, f"total_episodes is {episodes} but data/ holds {disk_files} parquet file(s)")
        videos = info.get("total_videos")
        if layout.features is not None and is_int(videos) and videos != episodes * len(layout.video_keys):
            report.problem(
                INFO,
                f"total_videos is {videos}, expected {episodes * len(layout.video_keys)} "
                f"(total_episodes x {len(layout.video_keys)} video features)",
            )
        chunks, want_chunks = info.get("total_chunks"), math.ceil(episodes / layout.chunks_size)
        if is_int(chunks) and chunks != want_chunks:
            report.problem(INFO, f"total_chunks is {chunks}, expected {want_chunks}")
        common.check_splits(info, episodes, report)
    if is_int(frames):
        lengths = sum(row.get("length", 0) for _, row in episodes_file.rows if is_int(row.get("length")))
        if frames != lengths:
            report.problem(
                INFO, f"total_frames is {frames} but the lengths in meta/episodes.jsonl sum to {lengths}"
            )
        if frames != disk_rows:
            report.problem(INFO, f"total_frames is {frames} but the parquet files hold {disk_rows} rows")
    tasks = info.get("total_tasks")
    if is_int(tasks) and tasks != tasks_file.lines:
        report.problem(INFO, f"total_tasks is {tasks} but meta/tasks.jsonl has {tasks_file.lines} line(s)")


def _count_parquet_on_disk(root: Path) -> tuple[list[Path], int]:
    """The parquet files LeRobot would load (visible ones under data/) and their total rows."""
    data = root / "data"
    files = sorted(p for p in data.rglob("*.parquet") if not is_hidden(data, p)) if data.is_dir() else []
    # Unreadable files count 0 rows here; the per-episode or leftover checks report them.
    return files, sum(common.parquet_rows(path) or 0 for path in files)


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
        if index != len(tasks) or not is_int(index):
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
        if not is_int(index):
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
        if not (is_int(length) and length > 0):
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
        elif layout.features is not None:  # else there is nothing to check the stats against
            length = episode.length if episode else None
            common.check_stats_object(where, stats, layout.features, length, report)


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
    pointed_by = f"episode {episode.index} is in meta/episodes.jsonl"
    table = common.read_data_file(root, rel, pointed_by, layout.features, report)
    if table is None:
        return
    if table.num_rows != episode.length:
        report.problem(rel, f"{table.num_rows} rows but meta/episodes.jsonl says length {episode.length}")
    allowed = {i for i, task in enumerate(tasks) if task in episode.tasks}
    common.check_episode_rows(
        rel, table, common.EpisodeRows(episode.index, first_index, allowed), layout.fps, report
    )
    common.check_missing_values(rel, table, report)


# ---------------------------------------------------------------------------------------------
# videos


def _check_videos(
    root: Path, report: VerifyReport, layout: _Layout, episodes: list[_Episode], decode: bool
) -> None:
    for key, ft, size in common.cameras(layout):
        info = ft.get("info")
        codec = info.get("video.codec") if isinstance(info, dict) else None
        waiting = accepted_codecs(root, codec)
        for episode in episodes:
            rel = layout.video_file(episode.index, key)
            if not (root / rel).is_file():
                report.problem(rel, f"missing (episode {episode.index}, camera {key})")
                continue
            probe = common.probe_video(root / rel, decode)
            for error in _video_errors(probe, episode.length, size, layout.fps, codec, waiting, decode):
                report.problem(rel, error)


def _video_errors(
    probe: common.VideoProbe,
    length: int,
    size: tuple[int, int],
    fps: int | None,
    codec: str | None,
    waiting: set[str],
    decoded: bool,
) -> list[str]:
    errors = common.stream_errors(probe, codec, "yuv420p", decoded, waiting)
    if probe.streams == 0:
        return errors
    what = "decoded frames" if decoded else "packets"
    if probe.frames != length:
        errors.append(f"{probe.frames} {what}, expected {length} (the episode length)")
    errors += common.size_errors(probe, size)
    if fps is not None:
        for i, time in enumerate(probe.times):
            # Frame i must be shown at i / fps; LeRobot seeks by timestamp, so drift mislabels frames.
            if time is None or abs(time - i / fps) > 0.5 / fps:
                errors.append(f"frame {i} is at {time} s, expected {i / fps:.4f} s")
                break
    return errors


# ---------------------------------------------------------------------------------------------
# leftovers


def _check_leftovers(root: Path, report: VerifyReport, layout: _Layout, episodes: list[_Episode]) -> None:
    """Any file under meta/, data/, videos/ the dataset does not account for is a problem.

    LeRobot loads every parquet under data/, so a stray or half-written file breaks loading.
    """
    expected = {f"meta/{name}" for name in META_FILES}
    expected |= {layout.data_file(ep.index) for ep in episodes}
    expected |= {layout.video_file(ep.index, key) for ep in episodes for key in layout.video_keys}
    checked = ["meta", *common.leftover_folders(root, layout, report)]
    common.report_leftovers(root, checked, expected, _leftover_reason, report)


def _leftover_reason(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    if is_temporary(rel):
        return TEMPORARY
    if rel.startswith("data/") and name.endswith(".parquet"):
        return "parquet file not accounted for by meta/episodes.jsonl (LeRobot would load it)"
    if rel.startswith("videos/") and name.endswith(".mp4"):
        return "video not accounted for by meta/episodes.jsonl and the video features"
    return "unexpected file"
