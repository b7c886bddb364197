"""The timing file of an episode: when each frame was really captured, and from what.

LeRobot's `timestamp` column must be `frame_index / fps`, so the truth about a frame goes into
a file of ours beside the dataset, `.dorobot/timing/episode_NNNNNN.parquet`, one row per frame:

    frame_index        int64    as in the episode's parquet
    timestamp          float32  frame_index / fps, as in the episode's parquet
    capture_time       float64  wall-clock time of the tick's read (Unix seconds)
    <stream>.age_s     float32  per stream the robot reports (a camera, an arm): the tick's time
                                minus the arrival of the newest message it used
    <stream>.seq       int64    which message that was (the stream's own count)
    <stream>.repeated  bool     the same message as the frame before: a repeated frame

Stream names are feature keys (`observation.images.top`, `observation.state`, `action`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from operating_platform.dataset.journal import JournalRows


def repeated(seqs: np.ndarray) -> np.ndarray:
    """Per frame (rows) and stream (columns): the same message as the frame before."""
    out = np.zeros(seqs.shape, dtype=bool)
    out[1:] = seqs[1:] == seqs[:-1]
    return out


def timing_table(rows: JournalRows, length: int, fps: int) -> pa.Table:
    """The timing file's table for the first `length` frames of a journal."""
    frame_index = np.arange(length, dtype=np.int64)
    columns: dict[str, pa.Array] = {
        "frame_index": pa.array(frame_index),
        "timestamp": pa.array((frame_index / fps).astype(np.float32)),
        "capture_time": pa.array(rows.capture_times[:length]),
    }
    seqs = rows.seqs[:length]
    again = repeated(seqs)
    for i, stream in enumerate(rows.streams):
        columns[f"{stream}.age_s"] = pa.array(rows.ages[:length, i])
        columns[f"{stream}.seq"] = pa.array(seqs[:, i])
        columns[f"{stream}.repeated"] = pa.array(again[:, i])
    return pa.table(columns)
