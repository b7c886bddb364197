"""Finalize and commit: a closed episode journal becomes a published dataset episode.

Two steps, so that the slow one can run ahead of the dataset's order, in another process:
- `encode_episode` does the slow work that does not depend on where the episode lands:
  it encodes every camera from the journal into staging and computes the image statistics,
  while the episode is still being recorded if asked to follow it.
- `commit_episode` takes the next episode index, writes the parquet, moves the files into
  place (temporary name, fsync, rename) and then publishes the metadata, info.json last.
The journal is only deleted after the commit, so a failure at any point can start over from it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from operating_platform import faults
from operating_platform.dataset.features import arrow_schema, parquet_keys
from operating_platform.dataset.fsutil import (
    fsync_dir,
    fsync_file,
    make_dirs_within,
    temp_path,
    write_json_atomic,
)
from operating_platform.dataset.journal import JournalError, JournalReader
from operating_platform.dataset.metadata import DoRobotDatasetMetadata, EpisodeRecord
from operating_platform.dataset.stats import ImageStatsAccumulator, numeric_stats, stats_to_json
from operating_platform.dataset.video import (
    VideoEncoder,
    VideoSettings,
    count_decodable,
    decode_frames,
    probe_video_info,
)


@dataclass
class EncodedEpisode:
    """An episode whose videos are encoded in staging and whose image statistics are known."""

    length: int
    task: str
    videos: dict[str, Path] = field(default_factory=dict)
    video_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def encode_episode(
    journal_dir: Path,
    staging_dir: Path,
    video: VideoSettings,
    follow: bool = False,
    on_progress: Callable[[int], None] | None = None,
    still_wanted: Callable[[], bool] = lambda: True,
) -> EncodedEpisode:
    """Encode every camera of a journal into `staging_dir`; touches nothing in the dataset.

    With `follow`, the journal may still be recording: frames are encoded as they are
    captured and the call returns once the episode is closed and fully encoded. Raw segments
    are released from the journal as soon as every camera's encoded copy of them is durable,
    so the journal holds only the encoder's lag. An attempt that starts after some were
    released (a retry, or recovery) rebuilds each video from the encoded part and the raw
    remainder.
    """
    reader = JournalReader(journal_dir)
    if not follow and reader.closed is None:
        raise JournalError(f"{journal_dir}: the episode was not closed")
    released = reader.released_frames()
    sources: dict[str, Path] = {}
    if released == 0:
        if staging_dir.exists():
            shutil.rmtree(staging_dir)  # a previous attempt's leftovers; the journal is the truth
        # Staging and journal share the recorder's private folder; a vanished dataset stays gone.
        make_dirs_within(journal_dir.parent.parent, staging_dir)
    else:
        sources = {key: _encoded_source(staging_dir, key, released) for key in reader.video_keys}
    encoders: dict[str, VideoEncoder] = {}
    accumulators: dict[str, ImageStatsAccumulator] = {}
    cursors = {key: reader.cursor(key, start=released) for key in reader.video_keys}
    try:
        for key in reader.video_keys:
            shape = reader.frame_shape(key)
            encoders[key] = VideoEncoder(staging_dir / f"{key}.mp4", shape[1], shape[0], reader.fps, video)
            accumulators[key] = ImageStatsAccumulator(shape, log=staging_dir / f"{key}.stats", keep=released)
            if released:
                for frame in decode_frames(sources[key], released):
                    encoders[key].encode(frame)
        next_release = released // reader.segment_frames
        for i in reader.follow(still_wanted=still_wanted, start=released):
            for key, encoder in encoders.items():
                frame = cursors[key].read()
                encoder.encode(frame)
                accumulators[key].add(frame)
            durable = min((e.durable_frames for e in encoders.values()), default=0)
            while (next_release + 1) * reader.segment_frames <= durable:
                reader.release_segment(next_release)
                next_release += 1
            if on_progress is not None and i % 15 == 14:
                on_progress(i + 1)
        for encoder in encoders.values():
            encoder.close()
    except BaseException:
        for encoder in encoders.values():
            encoder.abort()
        raise
    finally:
        for item in [*cursors.values(), *accumulators.values()]:
            item.close()
    for source in sources.values():
        source.unlink(missing_ok=True)
    length = int(reader.closed["frames"])  # type: ignore[index] - follow() returns once closed
    encoded = EncodedEpisode(length, reader.task)
    for key, encoder in encoders.items():
        encoded.videos[key] = encoder.path
        encoded.video_info[key] = probe_video_info(encoder.path)
        encoded.image_stats[key] = accumulators[key].stats(length)
    return encoded


def _encoded_source(staging_dir: Path, key: str, released: int) -> Path:
    """The staged video holding the first `released` frames of `key`, moved aside to read from.

    It is the last attempt's output, or, if that attempt was itself rebuilding, the file it was
    rebuilding from: whichever decodes far enough.
    """
    current, previous = staging_dir / f"{key}.mp4", staging_dir / f"{key}.partial.mp4"
    for candidate in (current, previous):
        if candidate.exists() and count_decodable(candidate) >= released:
            if candidate != previous:
                os.replace(candidate, previous)
            return previous
    raise JournalError(
        f"{staging_dir}: the encoded copy of the first {released} frames of {key} is missing, "
        "and their raw pixels were already released"
    )


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


COMMIT_FILE = "commit.json"


def commit_episode(
    journal_dir: Path, encoded: EncodedEpisode, meta: DoRobotDatasetMetadata, attempt: int = 0
) -> int:
    """Publish an encoded episode as the dataset's next episode; returns its index.

    Everything slow (writing, fsync) happens under hidden names first; the visible steps that
    follow are renames, the JSONL lines and info.json, last. The journal is first marked with
    the index it is committed as, so that recovery can tell a finished commit (info.json
    counts it: the journal is only left to delete) from a half-done one (rolled back and
    committed again from the journal).
    """
    rows = JournalReader(journal_dir).read_rows()
    if rows.frames < encoded.length:
        raise JournalError(f"{journal_dir}: {rows.frames} of {encoded.length} rows are intact")
    vectors = {k: v[: encoded.length] for k, v in rows.columns.items()}
    episode_index = meta.total_episodes
    task_index = meta.task_index(encoded.task)
    defaults = _default_columns(encoded.length, meta.fps, episode_index, meta.total_frames, task_index)
    columns = {**vectors, **defaults}
    write_json_atomic(journal_dir / COMMIT_FILE, {"episode_index": episode_index})

    moves = [(temp_path(meta.data_path(episode_index)), meta.data_path(episode_index))]
    moves += [(staged, meta.video_path(episode_index, key)) for key, staged in encoded.videos.items()]
    for _, final in moves:
        make_dirs_within(meta.root, final.parent)
    try:
        pq.write_table(_parquet_table(columns, meta.features), moves[0][0], compression="snappy")
        faults.check("fsync", episode_index, attempt)
        for tmp, _ in moves:
            fsync_file(tmp)
        faults.check("rename", episode_index, attempt)
        for tmp, final in moves:
            os.replace(tmp, final)
        for parent in {final.parent for _, final in moves}:
            fsync_dir(parent)
        faults.pause("publish")
        stats = {**encoded.image_stats, **{k: numeric_stats(v) for k, v in columns.items()}}
        ordered = {k: stats[k] for k in meta.features}
        meta.commit_episode(
            EpisodeRecord(
                episode_index, encoded.length, [encoded.task], stats_to_json(ordered), encoded.video_info
            )
        )
    except BaseException:
        # Not committed: put the videos back in staging (their raw frames may be released,
        # so they can be the only copy) and remove the parquet, which the journal rebuilds; a
        # hidden half-written file (the disk filled mid-write) would otherwise stay behind.
        for tmp, final in moves:
            if final.exists() and not tmp.exists():
                os.replace(final, tmp)
        moves[0][0].unlink(missing_ok=True)
        raise
    return episode_index


def staging_dir_for(meta: DoRobotDatasetMetadata, journal_dir: Path) -> Path:
    return meta.private_dir / "staging" / journal_dir.name


def discard_journal(meta: DoRobotDatasetMetadata, journal_dir: Path) -> None:
    """Remove a journal and its staging once its episode is committed (or discarded)."""
    shutil.rmtree(staging_dir_for(meta, journal_dir), ignore_errors=True)
    shutil.rmtree(journal_dir, ignore_errors=True)


def set_aside_journal(meta: DoRobotDatasetMetadata, journal_dir: Path, kind: str, why: str) -> Path:
    """Move a journal whole to `.dorobot/<kind>/`, with `why` in its error.txt; returns where.

    Used for an episode that cannot be committed: its raw data is kept, never deleted, and the
    dataset carries on without a gap.
    """
    target = meta.private_dir / kind / journal_dir.name
    make_dirs_within(meta.root, target.parent)
    shutil.rmtree(staging_dir_for(meta, journal_dir), ignore_errors=True)
    shutil.move(journal_dir, target)
    (target / "error.txt").write_text(f"{why}\n", encoding="utf-8")
    return target


def committing_index(journal_dir: Path) -> int | None:
    """The index a journal's commit was started as (see `commit_episode`), or None."""
    marker = journal_dir / COMMIT_FILE
    if not marker.exists():
        return None
    return int(json.loads(marker.read_text(encoding="utf-8"))["episode_index"])


def finalize_journal(journal_dir: Path, meta: DoRobotDatasetMetadata, video: VideoSettings) -> int:
    """Encode and commit one closed journal, then delete it; returns the episode index."""
    encoded = encode_episode(journal_dir, staging_dir_for(meta, journal_dir), video)
    episode_index = commit_episode(journal_dir, encoded, meta)
    discard_journal(meta, journal_dir)
    return episode_index
