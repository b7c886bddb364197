"""Finalize and commit: a closed episode journal becomes a published dataset episode.

Two steps, so that the slow one can run ahead of the dataset's order:
- `prepare_episode` does the slow work that does not depend on where the episode lands:
  it encodes every camera from the journal into staging and computes the statistics.
- `commit_episode` takes the next episode index, writes the parquet, moves the files into
  place (temporary name, fsync, rename) and then publishes the metadata, info.json last.
The journal is only deleted after the commit, so a failure at any point can start over from it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from operating_platform.dataset.features import arrow_schema, parquet_keys
from operating_platform.dataset.fsutil import publish, temp_path
from operating_platform.dataset.journal import JournalError, JournalReader
from operating_platform.dataset.metadata import DoRobotDatasetMetadata, EpisodeRecord
from operating_platform.dataset.stats import (
    downsample,
    image_stats,
    numeric_stats,
    sample_indices,
    stats_to_json,
)
from operating_platform.dataset.video import VideoEncoder, VideoSettings, probe_video_info


@dataclass
class PreparedEpisode:
    """An episode whose videos are encoded in staging and whose user-feature stats are known."""

    journal: Path
    staging: Path
    length: int
    task: str
    fps: int
    columns: dict[str, np.ndarray]
    stats: dict[str, dict[str, np.ndarray]]
    videos: dict[str, Path] = field(default_factory=dict)
    video_info: dict[str, dict[str, Any]] = field(default_factory=dict)


def prepare_episode(journal_dir: Path, staging_dir: Path, video: VideoSettings) -> PreparedEpisode:
    """Encode and analyse a closed journal; touches nothing in the published dataset."""
    reader = JournalReader(journal_dir)
    if reader.closed is None:
        raise JournalError(f"{journal_dir}: the episode was not closed")
    rows = reader.read_rows()
    length = int(reader.closed["frames"])
    if rows.frames < length:
        raise JournalError(f"{journal_dir}: {rows.frames} of {length} frames are intact")
    columns = {k: v[:length] for k, v in rows.columns.items()}
    stats = {k: numeric_stats(v) for k, v in columns.items()}
    if staging_dir.exists():
        shutil.rmtree(staging_dir)  # a previous attempt's leftovers; the journal is the truth
    staging_dir.mkdir(parents=True)
    prepared = PreparedEpisode(journal_dir, staging_dir, length, reader.task, reader.fps, columns, stats)
    for key in reader.video_keys:
        path, samples = _encode_camera(reader, key, length, staging_dir / f"{key}.mp4", video)
        prepared.videos[key] = path
        prepared.stats[key] = image_stats(samples)
        prepared.video_info[key] = probe_video_info(path)
    return prepared


def _encode_camera(
    reader: JournalReader, key: str, length: int, path: Path, video: VideoSettings
) -> tuple[Path, np.ndarray]:
    """Encode one camera; returns the file and the frames sampled for its statistics."""
    height, width, _ = reader.frame_shape(key)
    wanted = set(sample_indices(length))
    samples = []
    encoder = VideoEncoder(path, width, height, reader.fps, video)
    try:
        for i, frame in enumerate(reader.iter_frames(key, length)):
            encoder.encode(frame)
            if i in wanted:
                samples.append(downsample(frame).copy())
        encoder.close()
    except BaseException:
        encoder.abort()
        raise
    return path, np.stack(samples)


def _default_columns(length: int, fps: int, episode_index: int, start: int, task_index: int) -> dict:
    frame_index = np.arange(length, dtype=np.int64)
    return {
        # Stats use the float64 times, as LeRobot computes them; the parquet stores float32.
        "timestamp": frame_index / fps,
        "frame_index": frame_index,
        "episode_index": np.full(length, episode_index, dtype=np.int64),
        "index": np.arange(start, start + length, dtype=np.int64),
        "task_index": np.full(length, task_index, dtype=np.int64),
    }


def _parquet_table(columns: dict[str, np.ndarray], features: dict[str, dict[str, Any]]) -> pa.Table:
    schema = arrow_schema(features)
    arrays = []
    for key in parquet_keys(features):
        values = columns[key]
        arrow_type = schema.field(key).type
        if pa.types.is_fixed_size_list(arrow_type):
            flat = pa.array(values.reshape(-1), type=arrow_type.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, type=arrow_type))
        else:
            arrays.append(pa.array(values.astype(arrow_type.to_pandas_dtype()), type=arrow_type))
    return pa.Table.from_arrays(arrays, schema=schema)


def commit_episode(prepared: PreparedEpisode, meta: DoRobotDatasetMetadata) -> int:
    """Publish a prepared episode as the dataset's next episode; returns its index."""
    episode_index = meta.total_episodes
    task_index = meta.task_index(prepared.task)
    defaults = _default_columns(prepared.length, meta.fps, episode_index, meta.total_frames, task_index)
    columns = {**prepared.columns, **defaults}

    data_path = meta.data_path(episode_index)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(data_path)
    pq.write_table(_parquet_table(columns, meta.features), tmp, compression="snappy")
    publish(tmp, data_path)
    for key, staged in prepared.videos.items():
        final = meta.video_path(episode_index, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        publish(staged, final)

    stats = {**prepared.stats, **{k: numeric_stats(v) for k, v in defaults.items()}}
    ordered = {k: stats[k] for k in meta.features}
    meta.commit_episode(
        EpisodeRecord(
            episode_index, prepared.length, [prepared.task], stats_to_json(ordered), prepared.video_info
        )
    )
    return episode_index


def finalize_journal(journal_dir: Path, meta: DoRobotDatasetMetadata, video: VideoSettings) -> int:
    """Prepare and commit one closed journal, then delete it; returns the episode index."""
    staging = meta.private_dir / "staging" / journal_dir.name
    prepared = prepare_episode(journal_dir, staging, video)
    episode_index = commit_episode(prepared, meta)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(journal_dir, ignore_errors=True)
    return episode_index
