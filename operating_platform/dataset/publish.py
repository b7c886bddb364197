"""Publishing: an encoded episode becomes the dataset's next episode, or nothing at all.

Every file of the episode is written and fsynced under `.dorobot/staging/` (on the dataset's
filesystem, where no reader looks), then renamed into place; then the JSONL lines, then
info.json, the commit point. A failure at any step puts the dataset back as it was and keeps
the encoded videos in staging, so a retry publishes them again without re-encoding.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from operating_platform import faults
from operating_platform.dataset.encode import EncodedEpisode
from operating_platform.dataset.fsutil import fsync_dir, fsync_file, make_dirs_within, write_json_atomic
from operating_platform.dataset.journal import JournalError, JournalReader
from operating_platform.dataset.journal_store import COMMIT_FILE, staging_dir
from operating_platform.dataset.metadata import DoRobotDatasetMetadata, EpisodeRecord
from operating_platform.dataset.stats import numeric_stats, stats_to_json
from operating_platform.dataset.timing import timing_table


def default_columns(length: int, fps: int, episode_index: int, start: int, task_index: int) -> dict:
    """The five columns every LeRobot episode has, for an episode of `length` frames whose first
    frame is the dataset's frame `start`."""
    frame_index = np.arange(length, dtype=np.int64)
    return {
        # Stats use the float64 times, as LeRobot computes them; the parquet stores float32.
        "timestamp": frame_index / fps,
        "frame_index": frame_index,
        "episode_index": np.full(length, episode_index, dtype=np.int64),
        "index": np.arange(start, start + length, dtype=np.int64),
        "task_index": np.full(length, task_index, dtype=np.int64),
    }


def parquet_table(columns: dict[str, np.ndarray], schema: pa.Schema) -> pa.Table:
    """An episode's parquet table from its columns (vectors as (frames, n) arrays)."""
    arrays = []
    for key in schema.names:
        values = columns[key]
        arrow_type = schema.field(key).type
        if pa.types.is_fixed_size_list(arrow_type):
            flat = pa.array(values.reshape(-1), type=arrow_type.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, type=arrow_type))
        else:
            arrays.append(pa.array(values.astype(arrow_type.to_pandas_dtype()), type=arrow_type))
    return pa.Table.from_arrays(arrays, schema=schema)


STAGED_PARQUET = "episode.parquet"
STAGED_TIMING = "timing.parquet"
REBUILT_FROM_JOURNAL = 2  # the first moves of a commit: its parquet and its timing file


def commit_episode(
    journal_dir: Path, encoded: EncodedEpisode, meta: DoRobotDatasetMetadata, attempt: int = 0
) -> int:
    """Publish an encoded episode as the dataset's next episode; returns its index.

    The journal is first marked with the index it is committed as, so that recovery can tell a
    finished commit (info.json counts it: the journal is only left to retire) from a half-done
    one (rolled back and committed again from the journal). A commit that fails takes its
    marker back: the index may go to another episode before this one is tried again.
    """
    rows = JournalReader(journal_dir).read_rows()
    if rows.frames < encoded.length:
        raise JournalError(f"{journal_dir}: {rows.frames} of {encoded.length} rows are intact")
    vectors = {k: v[: encoded.length] for k, v in rows.columns.items()}
    episode_index = meta.total_episodes
    task_index = meta.task_index(encoded.task)
    defaults = default_columns(encoded.length, meta.fps, episode_index, meta.total_frames, task_index)
    columns = {**vectors, **defaults}
    marker = journal_dir / COMMIT_FILE
    staged_parquet = staging_dir(journal_dir) / STAGED_PARQUET
    staged_timing = staging_dir(journal_dir) / STAGED_TIMING
    # The files rebuilt from the journal come first: a rollback deletes them (see `_roll_back`).
    moves = [
        (staged_parquet, meta.data_path(episode_index)),
        (staged_timing, meta.timing_path(episode_index)),
    ]
    moves += [(staged, meta.video_path(episode_index, key)) for key, staged in encoded.videos.items()]
    try:
        write_json_atomic(marker, {"episode_index": episode_index})
        make_dirs_within(meta.root, staged_parquet.parent)
        for _, final in moves:
            make_dirs_within(meta.root, final.parent)
        pq.write_table(parquet_table(columns, meta.data_schema()), staged_parquet, compression="snappy")
        pq.write_table(timing_table(rows, encoded.length, meta.fps), staged_timing, compression="snappy")
        faults.check("fsync", episode_index, attempt)
        for staged, _ in moves:
            fsync_file(staged)
        faults.check("rename", episode_index, attempt)
        for staged, final in moves:
            os.replace(staged, final)
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
        _roll_back(moves, marker)
        raise
    return episode_index


def _roll_back(moves: list[tuple[Path, Path]], marker: Path) -> None:
    """Undo a commit that did not reach info.json: the dataset is left exactly as it was.

    The videos go back to staging (their raw frames may be released, so they can be the only
    copy); the parquet and the timing file are removed, the journal rebuilds them.
    """
    for staged, final in moves:
        if final.exists() and not staged.exists():
            os.replace(final, staged)
    for staged, _ in moves[:REBUILT_FROM_JOURNAL]:
        staged.unlink(missing_ok=True)
    marker.unlink(missing_ok=True)


def committing_index(journal_dir: Path) -> int | None:
    """The index a journal's commit was started as (see `commit_episode`), or None."""
    marker = Path(journal_dir) / COMMIT_FILE
    if not marker.exists():
        return None
    return int(json.loads(marker.read_text(encoding="utf-8"))["episode_index"])
