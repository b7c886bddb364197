"""Checks both layouts share: info.json's common keys, features, statistics values, parquet schema
and rows, video probing, leftovers and the top level.

Nothing here knows where a layout keeps its files: callers pass the relative path a problem is
about, their documented path templates, and the facts (episode index, first global index, allowed
task indices...) to check against.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from operating_platform.dataset.verify.report import VerifyReport

INFO = "meta/info.json"
DEFAULT_CHUNKS_SIZE = 1000  # LeRobot's, in both layouts
# The five features LeRobot adds after the user's, in this order, each shape [1], names null.
DEFAULT_FEATURES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
VIDEO_NAMES = ["height", "width", "channels"]
STAT_KEYS = ("min", "max", "mean", "std", "count")
QUANTILE_KEYS = ("q01", "q10", "q50", "q90", "q99")
VISUAL_DTYPES = ("video", "image")
# Histogram quantiles of pixels come out a hair outside [0, 1] (LeRobot widens the bins by 1e-10).
QUANTILE_RANGE_SLACK = 1e-6
# LeRobot checks timestamps against frame_index / fps, and frame times against the timestamps it
# asks the decoder for, with this tolerance (seconds).
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
TEMPORARY = "temporary file left behind (not part of the dataset)"


def is_int(value: Any) -> bool:
    # JSON true/false load as bool, which is an int subclass in Python; they are not counts.
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def rel_path(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def is_hidden(base: Path, path: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)


def template_works(template: str, **values: Any) -> bool:
    try:
        template.format(**values)
    except (KeyError, IndexError, ValueError):
        return False
    return True


def read_json_object(
    root: Path, rel: str, report: VerifyReport, required: bool = True
) -> dict[str, Any] | None:
    """The JSON object in `rel`, or None after reporting why not (a missing file only if required)."""
    path = root / rel
    if not path.is_file():
        if required:
            report.problem(rel, "missing")
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.problem(rel, f"not valid JSON ({exc})")
        return None
    if not isinstance(value, dict):
        report.problem(rel, "not a JSON object")
        return None
    return value


# ---------------------------------------------------------------------------------------------
# meta/info.json


@dataclass
class Layout:
    """What the rest of the checks need from info.json, with safe fallbacks when it is damaged.

    Each layout subclasses it with its documented path templates as the defaults.
    """

    fps: int | None = None
    data_path: str = ""
    video_path: str = ""
    # Features that passed the structural checks, in info.json order; None when unusable.
    features: dict[str, dict[str, Any]] | None = None

    @property
    def video_keys(self) -> list[str]:
        return [k for k, ft in (self.features or {}).items() if ft["dtype"] == "video"]


@dataclass(frozen=True)
class PathTemplate:
    """A path template as its layout documents it, with an example value for each of its fields."""

    documented: str
    example: dict[str, Any]

    def usable(self, template: Any) -> bool:
        """Whether paths can be built from `template`: it formats with the example values."""
        return isinstance(template, str) and template_works(template, **self.example)


def load_info(root: Path, report: VerifyReport) -> dict[str, Any] | None:
    return read_json_object(root, INFO, report)


def check_info_keys(
    info: dict[str, Any], keys: tuple[str, ...], version: str, report: VerifyReport
) -> list[str] | None:
    """Missing keys are problems, unknown ones notes; `version` names the contract in the note.

    Returns the contract's keys in info.json's order when that is not the contract's order, else
    None: the layouts disagree on whether another order is a fault.
    """
    missing = [k for k in keys if k not in info]
    if missing:
        report.problem(INFO, f"missing keys: {', '.join(missing)}")
    unknown = [k for k in info if k not in keys]
    if unknown:
        report.note(f"{INFO}: keys not in the {version} contract: {', '.join(unknown)}")
    present = [k for k in info if k in keys]
    return present if present != [k for k in keys if k in info] else None


def check_info_types(info: dict[str, Any], counts: tuple[str, ...], report: VerifyReport) -> None:
    """robot_type, and the `counts` as counts; whether they match the disk is checked later."""
    robot_type = info.get("robot_type")
    if robot_type is not None and not isinstance(robot_type, str):
        report.problem(INFO, f"robot_type must be a string or null, got {robot_type!r}")
    for key in counts:
        if key in info and not (is_int(info[key]) and info[key] >= 0):
            report.problem(INFO, f"{key} must be a non-negative integer, got {info[key]!r}")


def check_info_layout(
    info: dict[str, Any], layout: Layout, data: PathTemplate, video: PathTemplate, report: VerifyReport
) -> int | None:
    """chunks_size, fps, features and path templates; the usable ones go into `layout`.

    Returns chunks_size when usable: only the layout that places files by it needs it.
    """
    chunks_size = _check_chunks_size(info, report)
    fps = info.get("fps")
    if is_int(fps) and fps > 0:
        layout.fps = fps
    elif "fps" in info:
        report.problem(INFO, f"fps must be a positive integer, got {fps!r}")
    features = info.get("features")
    if isinstance(features, dict):
        has_episodes = is_int(info.get("total_episodes")) and info["total_episodes"] > 0
        layout.features = check_features(features, has_episodes, report)
    elif "features" in info:
        report.problem(INFO, "features must be an object")
    _check_templates(info, layout, data, video, report)
    return chunks_size


def _check_chunks_size(info: dict[str, Any], report: VerifyReport) -> int | None:
    chunks_size = info.get("chunks_size")
    if is_int(chunks_size) and chunks_size > 0:
        if chunks_size != DEFAULT_CHUNKS_SIZE:
            report.note(f"{INFO}: chunks_size is {chunks_size} (LeRobot writes {DEFAULT_CHUNKS_SIZE})")
        return chunks_size
    if "chunks_size" in info:
        report.problem(INFO, f"chunks_size must be a positive integer, got {chunks_size!r}")
    return None


def _check_templates(
    info: dict[str, Any], layout: Layout, data: PathTemplate, video: PathTemplate, report: VerifyReport
) -> None:
    """The path templates must be the documented ones; a broken one (no path can be built from it)
    falls back to the layout's default, the documented one."""
    data_path = info.get("data_path")
    if "data_path" in info and data_path != data.documented:
        report.problem(INFO, f"data_path is {data_path!r}, expected {data.documented!r}")
    if data.usable(data_path):
        layout.data_path = data_path

    video_path = info.get("video_path")
    if video_path is None:
        if layout.video_keys:
            report.problem(INFO, "video_path is null but there are video features")
        return
    if video_path != video.documented:
        report.problem(INFO, f"video_path is {video_path!r}, expected {video.documented!r} or null")
    if video.usable(video_path):
        layout.video_path = video_path


def check_splits(info: dict[str, Any], episodes: int, report: VerifyReport) -> None:
    """LeRobot writes one split, train, over all episodes; none at all while there are none."""
    splits = info.get("splits")
    if splits != {"train": f"0:{episodes}"} and not (episodes == 0 and splits == {}):
        report.problem(INFO, f"splits is {splits!r}, expected {{'train': '0:{episodes}'}}")


def check_features(
    features: dict[str, Any], has_episodes: bool, report: VerifyReport
) -> dict[str, dict[str, Any]]:
    """Check every feature; return the ones sound enough to drive the parquet/video checks."""
    usable: dict[str, dict[str, Any]] = {}
    for name, ft in features.items():
        for error in _feature_errors(name, ft, has_episodes):
            report.problem(INFO, f"feature {name!r}: {error}")
        if isinstance(ft, dict) and _feature_is_usable(ft):
            usable[name] = ft

    # LeRobot appends the defaults after the user's features; the parquet column order follows.
    names = list(features)
    defaults = list(DEFAULT_FEATURES)
    missing = [d for d in defaults if d not in features]
    if missing:
        report.problem(INFO, f"default features missing: {', '.join(missing)}")
    elif names[-len(defaults) :] != defaults:
        report.problem(INFO, f"the default features must come last, in the order {', '.join(defaults)}")
    return usable


def _feature_is_usable(ft: dict[str, Any]) -> bool:
    shape = ft.get("shape")
    return (
        isinstance(ft.get("dtype"), str)
        and isinstance(shape, list)
        and len(shape) > 0
        and all(is_int(n) and n > 0 for n in shape)
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
    if not (isinstance(shape, list) and shape and all(is_int(n) and n > 0 for n in shape)):
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


def video_info(ft: dict[str, Any], key: str) -> str | None:
    """One string entry of a video feature's `info` block, or None."""
    info = ft.get("info")
    value = info.get(key) if isinstance(info, dict) else None
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------------------------
# statistics


def feature_stats_errors(
    stats: Any,
    ft: dict[str, Any],
    length: int | None,
    *,
    required: tuple[str, ...] = STAT_KEYS,
    visual_count_at_most_length: bool = True,
    length_name: str = "the episode length",
) -> list[str]:
    """Shape and range rules for one feature's stats (FORMAT.md section 6), quantiles included.

    `length` is what a numeric feature's `count` must equal (None: not checked). A camera's
    `count` is the number of frames sampled, at most `length`, unless
    `visual_count_at_most_length` is off: LeRobot 0.4's streaming encoder counts pixels.
    """
    if not isinstance(stats, dict):
        return ["must be an object"]
    errors = []
    missing = [k for k in required if k not in stats]
    if missing:
        errors.append(f"missing {', '.join(missing)}")
    visual = ft["dtype"] in VISUAL_DTYPES
    # The LeRobot loader refuses image stats not shaped (3,1,1): per channel, over the frames.
    want = (3, 1, 1) if visual else tuple(ft["shape"])
    for key in ("min", "max", "mean", "std", *QUANTILE_KEYS):
        if key not in stats:
            continue
        values = numeric_array(stats[key])
        slack = QUANTILE_RANGE_SLACK if key in QUANTILE_KEYS else 0.0
        if values is None:
            errors.append(f"{key} is not numeric")
        elif values.shape != want:
            errors.append(f"{key} has shape {values.shape}, expected {want}")
        elif not np.all(np.isfinite(values)):
            errors.append(f"{key} has NaN or infinite values")
        elif visual and (values.min() < -slack or values.max() > 1 + slack):
            errors.append(f"{key} has values outside [0, 1] (pixels must be divided by 255)")
    if "count" in stats:
        count = numeric_array(stats["count"])
        if count is None or count.shape != (1,):
            errors.append(f"count must be shaped (1,), got {stats['count']!r}")
        elif visual and length is not None and visual_count_at_most_length and not 1 <= count[0] <= length:
            errors.append(f"count is {count[0]:g}, expected between 1 and {length_name} {length}")
        elif visual and count[0] < 1:
            errors.append(f"count is {count[0]:g}, expected at least 1")
        elif not visual and length is not None and count[0] != length:
            errors.append(f"count is {count[0]:g}, expected {length_name} {length}")
    return errors


def check_stats_object(
    where: str,
    stats: dict[str, Any],
    features: dict[str, dict[str, Any]],
    length: int | None,
    report: VerifyReport,
    **rules: Any,
) -> None:
    """Stats for exactly `features`, each checked by `feature_stats_errors` with `length` and the
    layout's `rules` (its keyword arguments)."""
    missing = [name for name in features if name not in stats]
    if missing:
        report.problem(where, f"no stats for features: {', '.join(missing)}")
    for name, feature_stats in stats.items():
        if name not in features:
            report.problem(where, f"stats for {name!r}, which is not a feature in meta/info.json")
            continue
        for error in feature_stats_errors(feature_stats, features[name], length, **rules):
            report.problem(where, f"stats of {name!r}: {error}")


def numeric_array(value: Any) -> np.ndarray | None:
    """A rectangular array of numbers, or None (ragged lists, strings, objects)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return None
    return array.astype(np.float64) if array.dtype.kind in "biuf" else None


# ---------------------------------------------------------------------------------------------
# parquet


def read_parquet(path: Path, rel: str, report: VerifyReport) -> pa.Table | None:
    """The whole table, or None after reporting why it cannot be read."""
    try:
        return pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException, ValueError) as exc:
        report.problem(rel, f"unreadable parquet, incomplete or corrupt ({exc})")
        return None


def parquet_rows(path: Path) -> int | None:
    """Rows of a parquet file from its footer; None when unreadable (reported where it is read)."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException, ValueError):
        return None


def read_data_file(
    root: Path,
    rel: str,
    pointed_by: str,
    features: dict[str, dict[str, Any]] | None,
    report: VerifyReport,
    vector_types: tuple[str, ...] = ("Sequence",),
) -> pa.Table | None:
    """A data file the metadata points to, its schema checked against the usable `features`.

    None once reported missing (`pointed_by` says which metadata expects it) or unreadable.
    """
    path = root / rel
    if not path.is_file():
        report.problem(rel, f"missing ({pointed_by})")
        return None
    table = read_parquet(path, rel, report)
    if table is not None and features is not None:
        check_parquet_schema(rel, table.schema, features, report, vector_types)
    return table


def check_parquet_schema(
    rel: str,
    schema: pa.Schema,
    features: dict[str, dict[str, Any]],
    report: VerifyReport,
    vector_types: tuple[str, ...] = ("Sequence",),
) -> None:
    """Columns, Arrow types and the `huggingface` metadata LeRobot's loader relies on.

    `vector_types` are the accepted `_type` names of a vector in the metadata, the first being
    the one expected (`datasets` 4 writes "List" and still reads the older "Sequence").
    """
    columns = [k for k, ft in features.items() if ft["dtype"] != "video"]
    if schema.names != columns:
        report.problem(rel, f"columns are {schema.names}, expected {columns}")
    for name in columns:
        want = arrow_type(features[name])
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
    if not isinstance(hf_features, dict) or set(hf_features) != set(columns):
        names = sorted(hf_features) if isinstance(hf_features, dict) else hf_features
        report.problem(rel, f"'huggingface' metadata features are {names}, expected {columns}")
        return
    for name in columns:
        accepted = [hf_feature(features[name], vector_type) for vector_type in vector_types]
        if accepted[0] is not None and hf_features[name] not in accepted:
            report.problem(
                rel, f"'huggingface' metadata for {name!r} is {hf_features[name]}, expected {accepted[0]}"
            )


# The two functions below restate FORMAT.md instead of importing the writer's (features.py) on
# purpose: a verifier that shared the writer's code would agree with the writer's mistakes.
def arrow_type(ft: dict[str, Any]) -> pa.DataType | None:
    """The Arrow type LeRobot writes for a feature; None where we do not check it."""
    scalar = ARROW_SCALARS.get(ft["dtype"])
    if scalar is None:
        return None
    if ft["shape"] == [1]:
        return scalar
    return pa.list_(scalar, ft["shape"][0]) if len(ft["shape"]) == 1 else None


def hf_feature(ft: dict[str, Any], vector_type: str = "Sequence") -> dict[str, Any] | None:
    """A feature in Hugging Face `datasets` notation; None where we do not check it."""
    if ft["dtype"] == "image":
        return {"_type": "Image"}
    value = {"dtype": ft["dtype"], "_type": "Value"}
    if ft["shape"] == [1]:
        return value
    if len(ft["shape"]) == 1:
        return {"feature": value, "length": ft["shape"][0], "_type": vector_type}
    return None


@dataclass
class Episode:
    """What the episode metadata of either layout says of one episode."""

    index: int
    length: int
    tasks: list[str]


@dataclass
class EpisodeRows:
    """What one episode's rows of a data parquet must hold."""

    index: int
    first_index: int  # the global `index` of its first frame
    allowed_tasks: set[int] | None  # task_index values that are its tasks; None: not checked
    row_offset: int = 0  # where its rows start in the file, for row numbers in problems
    prefix: str = ""  # put before each problem, e.g. "episode 3: " in files of many episodes


def check_episode_rows(
    rel: str, table: pa.Table, episode: EpisodeRows, fps: int | None, report: VerifyReport
) -> None:
    """frame_index 0..L-1, constant episode_index, global index, task_index, timestamp = frame/fps."""
    length, at = table.num_rows, episode.prefix
    expected = {
        "frame_index": np.arange(length),
        "episode_index": np.full(length, episode.index),
        "index": episode.first_index + np.arange(length),
    }
    for name, want in expected.items():
        got = int_column(table, name)
        if got is not None and not np.array_equal(got, want):
            row = int(np.argmax(got != want))
            report.problem(
                rel,
                f"{at}column {name!r} is {got[row]} at row {row + episode.row_offset}, expected {want[row]}",
            )

    task_index = int_column(table, "task_index")
    if task_index is not None and episode.allowed_tasks is not None:
        bad = [int(t) for t in np.unique(task_index) if int(t) not in episode.allowed_tasks]
        if bad:
            report.problem(rel, f"{at}task_index values {bad} are not tasks of episode {episode.index}")

    timestamps = float_column(table, "timestamp")
    if timestamps is not None and fps is not None:
        error = np.abs(timestamps - np.arange(length) / fps)
        if error.size and error.max() > TIMESTAMP_TOLERANCE_S:
            row = int(np.argmax(error > TIMESTAMP_TOLERANCE_S))  # the first one off
            report.problem(
                rel,
                f"{at}timestamp is {timestamps[row]:.6f} at row {row + episode.row_offset}, expected "
                f"frame_index / fps = {row / fps:.6f}",
            )
        if length / fps > FLOAT32_TIMESTAMP_LIMIT_S:
            report.note(
                f"{rel}: {at}episode longer than {FLOAT32_TIMESTAMP_LIMIT_S} s; float32 timestamps "
                "may fail LeRobot's 1e-4 s check"
            )


def check_missing_values(rel: str, table: pa.Table, report: VerifyReport) -> None:
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


def int_column(table: pa.Table, name: str) -> np.ndarray | None:
    if name not in table.column_names or not pa.types.is_integer(table.schema.field(name).type):
        return None  # absent or mistyped: already reported by the schema check
    return table.column(name).to_numpy()


def float_column(table: pa.Table, name: str) -> np.ndarray | None:
    if name not in table.column_names or not pa.types.is_floating(table.schema.field(name).type):
        return None
    return table.column(name).to_numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------------
# videos


@dataclass
class VideoProbe:
    """Facts read from one mp4, judged later against the dataset's metadata."""

    streams: int = 0
    codec: str | None = None
    pix_fmt: str | None = None
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    # Presentation time of every frame (or packet, without decoding), in increasing order.
    times: list[float | None] = field(default_factory=list)
    # How long LeRobot thinks the file is: the stream's duration, else the container's.
    duration: float | None = None
    error: str | None = None


def cameras(layout: Layout) -> Iterator[tuple[str, dict[str, Any], tuple[int, int]]]:
    """Each video feature's key, feature and frame size (width, height, as frames report it)."""
    features = layout.features or {}  # no video keys either without usable features
    for key in layout.video_keys:
        height, width = features[key]["shape"][:2]
        yield key, features[key], (width, height)


def probe_video(path: Path, decode: bool) -> VideoProbe:
    """Read the stream facts and every frame's size and time (or packet times without decoding)."""
    probe = VideoProbe()
    try:
        with av.open(str(path)) as container:
            probe.streams = len(container.streams)
            if not container.streams.video:
                probe.error = "no video stream"
                return probe
            stream = container.streams.video[0]
            probe.codec = stream.codec_context.codec.canonical_name  # "av1", not the decoder "libdav1d"
            probe.pix_fmt = stream.codec_context.pix_fmt
            if stream.duration is not None and stream.time_base is not None:
                probe.duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                probe.duration = container.duration / av.time_base
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


def stream_errors(
    probe: VideoProbe, codec: str | None, pix_fmt: str, decoded: bool, waiting: Collection[str] = ()
) -> list[str]:
    """Readability, stream count, pixel format and codec; empty when the file has no stream at all.

    `waiting`: codecs a file may still have until it is compressed (see `compress_target`).
    """
    what = "decoded frames" if decoded else "packets"
    errors = []
    if probe.error is not None:
        errors.append(f"unreadable video after {probe.frames} {what}, incomplete or corrupt ({probe.error})")
    if probe.streams == 0:
        return errors
    if probe.streams != 1:
        errors.append(f"{probe.streams} streams, expected a single video stream")
    if probe.pix_fmt != pix_fmt:
        errors.append(f"pixel format {probe.pix_fmt}, expected {pix_fmt}")
    if codec is not None and probe.codec != codec and probe.codec not in waiting:
        errors.append(f"codec {probe.codec}, but meta/info.json says {codec}")
    return errors


def size_errors(probe: VideoProbe, size: tuple[int, int]) -> list[str]:
    """`size` is (width, height), as frames report it."""
    wrong_sizes = sorted(s for s in probe.sizes if s != size)
    return [f"frames of size {wrong_sizes} (width x height), expected {size}"] if wrong_sizes else []


# ---------------------------------------------------------------------------------------------
# leftovers and top level


def files_under(root: Path, tops: list[str]) -> Iterator[str]:
    """Every file under the given top-level folders, as paths relative to the root."""
    for top in tops:
        for dirpath, _dirnames, filenames in os.walk(root / top):
            for filename in filenames:
                yield rel_path(root, Path(dirpath) / filename)


def leftover_folders(root: Path, layout: Layout, report: VerifyReport) -> list[str]:
    """data/, and videos/ once the features say which cameras there are: where every file must be
    accounted for (meta/ always is)."""
    if layout.features is not None:
        return ["data", "videos"]
    if (root / "videos").is_dir():
        report.note("videos/: not checked for leftovers because meta/info.json has no usable features")
    return ["data"]


def report_leftovers(
    root: Path, folders: list[str], expected: set[str], reason: Callable[[str], str], report: VerifyReport
) -> None:
    """Every file under `folders` not `expected` is a problem, for the layout's `reason`."""
    for rel in files_under(root, folders):
        if rel not in expected:
            report.problem(rel, reason(rel))


def is_temporary(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    hidden = any(part.startswith(".") for part in rel.split("/"))
    return hidden or name.endswith((".tmp", ".temp", ".part", "~")) or ".tmp" in name


def check_top_level(root: Path, report: VerifyReport) -> None:
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
