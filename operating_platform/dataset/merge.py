"""Gathering datasets: `dorobot merge` (many stations into one) and `dorobot convert` (one
dataset into the other layout) are the same job.

Every episode of every source, in order, becomes the output's next episode: its rows get the
new episode, frame and task indices, its videos are copied packet for packet (never
re-encoded; an episode starts on a keyframe in both layouts), its statistics are recomputed
for the renumbered columns and kept for the cameras. The output is built in a hidden folder
beside it and renamed into place at the end, so it appears whole or not at all, and the sources
are only read. Sources may be folders or fsspec URLs (`s3://bucket/prefix`), copied locally
first.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from operating_platform.dataset.features import DEFAULT_FEATURES
from operating_platform.dataset.fsutil import make_dirs_within
from operating_platform.dataset.metadata import (
    PRIVATE_DIR,
    DatasetError,
    DoRobotDatasetMetadata,
    EpisodeRecord,
)
from operating_platform.dataset.publish import default_columns, parquet_table
from operating_platform.dataset.reader import DatasetReader, VideoSegment
from operating_platform.dataset.stats import QUANTILES, ImageStatsAccumulator, numeric_stats, stats_to_json

# What must agree between sources for their episodes to belong in one dataset.
VIDEO_INFO_KEYS = ("video.codec", "video.pix_fmt", "video.height", "video.width")


@dataclass(frozen=True)
class MergeReport:
    """What `merge_datasets` wrote."""

    output: Path
    codebase_version: str
    episodes: int
    frames: int
    tasks: int


def merge_datasets(
    sources: list[str],
    output: Path,
    codebase_version: str | None = None,
    say: Callable[[str], None] = lambda _line: None,
) -> MergeReport:
    """Write every episode of `sources` into a new dataset at `output`, in the layout
    `codebase_version` (default: the first source's)."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise DatasetError(f"{output} already exists; choose a new folder for the result")
    with ExitStack() as stack:
        readers = [DatasetReader.open(_local(source, stack, say)) for source in sources]
        version = codebase_version or readers[0].codebase_version
        _check_alike(readers, sources)
        output.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
        try:
            meta = _create(building, readers[0], version)
            for source, reader in zip(sources, readers, strict=True):
                say(f"{source}: {reader.total_episodes} episode(s), {reader.codebase_version}")
                for index in range(reader.total_episodes):
                    _copy_episode(reader, index, meta)
                    meta.compact(final=False)
            meta.compact(final=True)
            shutil.rmtree(building / PRIVATE_DIR, ignore_errors=True)
            if output.exists():
                output.rmdir()
            building.rename(output)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return MergeReport(output, version, meta.total_episodes, meta.total_frames, len(meta.tasks))


def _local(source: str, stack: ExitStack, say: Callable[[str], None]) -> Path:
    """A local folder holding `source`: itself, or a copy of a remote one (removed afterwards)."""
    if "://" not in source or source.startswith("file://"):
        return Path(source.removeprefix("file://"))
    try:
        import fsspec
    except ImportError:
        raise DatasetError(
            f"reading {source} needs fsspec: pip install 'operating_platform[upload]'"
        ) from None
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dorobot-source-")))
    say(f"{source}: copying it here first")
    fs, path = fsspec.core.url_to_fs(source)
    for sub in ("meta", "data", "videos"):
        if fs.exists(f"{path}/{sub}"):
            fs.get(f"{path}/{sub}", str(folder / sub), recursive=True)
    return folder


def _check_alike(readers: list[DatasetReader], sources: list[str]) -> None:
    first = readers[0]
    for source, reader in zip(sources[1:], readers[1:], strict=True):
        if reader.fps != first.fps:
            raise DatasetError(f"{source} is recorded at {reader.fps} fps, {sources[0]} at {first.fps}")
        if reader.info.get("robot_type") != first.info.get("robot_type"):
            raise DatasetError(
                f"{source} is from robot_type {reader.info.get('robot_type')!r}, "
                f"{sources[0]} from {first.info.get('robot_type')!r}"
            )
        ours, theirs = _shape_of(first.features), _shape_of(reader.features)
        if ours != theirs:
            differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise DatasetError(f"{source} and {sources[0]} have different features ({', '.join(differ)})")
        for key in first.video_keys:
            a, b = first.features[key].get("info") or {}, reader.features[key].get("info") or {}
            for name in VIDEO_INFO_KEYS:
                if name in a and name in b and a[name] != b[name]:
                    raise DatasetError(
                        f"{source}'s {key} videos have {name}={b[name]}, {sources[0]}'s have {a[name]}; "
                        "videos are copied, not re-encoded, so they must match"
                    )


def _shape_of(features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: (ft["dtype"], list(ft["shape"]), ft.get("names")) for k, ft in features.items()}


def _create(root: Path, reader: DatasetReader, version: str) -> DoRobotDatasetMetadata:
    features = {k: ft for k, ft in reader.features.items() if k not in DEFAULT_FEATURES}
    layout = DoRobotDatasetMetadata.layout(version)
    # A v3.0 source's file sizes carry over to a v3.0 result.
    sizes = {k: reader.info[k] for k in layout.file_settings if k in reader.info}
    return layout.create(root, reader.fps, reader.info.get("robot_type"), features, version, sizes)


def _copy_episode(reader: DatasetReader, index: int, meta: DoRobotDatasetMetadata) -> None:
    entry = reader.episode(index)
    table = reader.episode_table(index)
    new_index = meta.total_episodes
    tasks = [reader.tasks[i] for i in table.column("task_index").to_pylist()]
    task_of = {task: meta.task_index(task) for task in dict.fromkeys(tasks)}
    length = table.num_rows
    columns = {
        name: _column(table, name) for name in meta.data_schema().names if name not in DEFAULT_FEATURES
    }
    columns.update(default_columns(length, meta.fps, new_index, meta.total_frames, 0))
    columns["task_index"] = np.array([task_of[t] for t in tasks], dtype=np.int64)  # may vary by frame
    data_path = meta.data_path(new_index)
    make_dirs_within(meta.root, data_path.parent)
    pq.write_table(parquet_table(columns, meta.data_schema()), data_path, compression="snappy")
    stats = {k: numeric_stats(v) for k, v in columns.items()}
    video_info = {}
    for key in reader.video_keys:
        path = meta.video_path(new_index, key)
        make_dirs_within(meta.root, path.parent)
        copy_segment(reader.video_segment(index, key), path)
        stats[key] = _camera_stats(reader, index, key, entry.stats.get(key))
        video_info[key] = reader.features[key].get("info") or {}
    ordered = {k: stats[k] for k in meta.features}
    meta.commit_episode(
        EpisodeRecord(new_index, length, list(dict.fromkeys(tasks)), stats_to_json(ordered), video_info)
    )


def _column(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        return column.flatten().to_numpy().reshape(len(column), column.type.list_size)
    if pa.types.is_list(column.type):
        return np.asarray(column.to_pylist())
    return column.to_numpy()


def _camera_stats(
    reader: DatasetReader, index: int, key: str, stored: dict[str, Any] | None
) -> dict[str, np.ndarray]:
    """The camera's statistics as the source stored them; computed from its frames when the
    source has none, or none of the quantiles v3.0 keeps."""
    if stored is not None and all(q in stored for q in QUANTILES):
        return {name: np.asarray(value) for name, value in stored.items()}
    shape = tuple(reader.features[key]["shape"])
    accumulator = ImageStatsAccumulator(shape)
    for frame in reader.frames(index, key):
        accumulator.add(frame)
    return accumulator.stats(reader.episode(index).length)


def copy_segment(segment: VideoSegment, output: Path) -> None:
    """Copy one episode's frames of a video into a file of their own, starting at time 0."""
    with av.open(str(segment.path)) as source:
        stream = source.streams.video[0]
        fps = float(stream.average_rate or stream.base_rate)
        half = 0.5 / fps
        start, end = segment.from_timestamp - half, segment.to_timestamp - half
        packets = [
            p
            for p in source.demux(stream)
            if p.pts is not None and start <= float(p.pts * stream.time_base) < end
        ]
        if not packets:
            raise DatasetError(
                f"{segment.path} has no frames between {segment.from_timestamp:.3f} s and "
                f"{segment.to_timestamp:.3f} s"
            )
        first = min(p.pts for p in packets)
        if not next(p for p in packets if p.pts == first).is_keyframe:
            raise DatasetError(
                f"{segment.path}: the episode at {segment.from_timestamp:.3f} s does not start on a "
                "keyframe, so it cannot be copied without re-encoding"
            )
        with av.open(str(output), "w", format="mp4") as out:
            out_stream = out.add_stream_from_template(stream, opaque=True)  # copy, never encode
            for packet in packets:
                packet.pts -= first
                packet.dts = packet.dts - first if packet.dts is not None else None
                packet.stream = out_stream
                out.mux(packet)
