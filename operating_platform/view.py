"""`dorobot view ROOT --episode N`: replay one recorded episode in Rerun.

Every camera's frames go on the `frame_index` and `timestamp` timelines at the episode's own
timestamps (as JPEG, so that long episodes fit in the viewer's memory), and every vector feature
(`action`, `observation.state`, ...) as a plot with a line per joint. Works on v2.1 and v3.0
datasets alike, through `DatasetReader`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from operating_platform.core.rerun_view import (
    RerunSinkError,
    camera_entity,
    close_stream,
    joint_entity,
    open_stream,
    parse_addr,
    plotted_features,
    rerun_missing,
)
from operating_platform.dataset.metadata import DatasetError
from operating_platform.dataset.reader import DatasetReader

if TYPE_CHECKING:
    import rerun as rr

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
JPEG_QUALITY = 90


def send_episode(reader: DatasetReader, index: int, stream: rr.RecordingStream) -> None:
    """Log episode `index` of `reader`'s dataset to `stream`: joints, then each camera's frames."""
    import rerun as rr

    entry = reader.episode(index)
    table = reader.episode_table(index)
    frame_index = table.column("frame_index").to_numpy()
    timestamps = table.column("timestamp").to_numpy().astype(np.float64)
    stream.log("task", rr.TextDocument("\n".join(entry.tasks)), static=True)
    times = [
        rr.TimeColumn("frame_index", sequence=frame_index),
        rr.TimeColumn("timestamp", duration=timestamps),
    ]
    for key, names in plotted_features(reader.features).items():
        if key not in table.column_names:
            continue
        column = table.column(key).combine_chunks()
        if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
            column = column.flatten()
        # A shape [1] feature may be stored as a plain number column: one line all the same.
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        stream.log(joint_entity(key), rr.SeriesLines(names=names), static=True)
        stream.send_columns(
            joint_entity(key),
            indexes=times,
            columns=rr.Scalars.columns(scalars=values.reshape(table.num_rows, -1)),
        )
    for key in reader.video_keys:
        for i, frame in enumerate(reader.frames(index, key)):
            stream.set_time("frame_index", sequence=int(frame_index[i]))
            stream.set_time("timestamp", duration=float(timestamps[i]))
            stream.log(camera_entity(key), rr.Image(frame).compress(jpeg_quality=JPEG_QUALITY))


def view_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dorobot view",
        description="Replay one episode of a dataset (v2.1 or v3.0) in Rerun: every camera, and the "
        "joints as plots. Opens a local viewer unless --rerun_addr or --save says otherwise.",
    )
    parser.add_argument("root", help="the dataset folder (the one holding meta/)")
    parser.add_argument("--episode", default="0", metavar="N", help="the episode's index (default: 0)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--rerun_addr", default="", metavar="HOST:PORT", help="a running Rerun viewer to send it to"
    )
    where.add_argument(
        "--save", type=Path, metavar="FILE.rrd", help="write a Rerun recording instead of showing it"
    )
    args = parser.parse_args(argv)

    missing = rerun_missing("dorobot view")
    if missing:
        return _error(missing, EXIT_FAILED)
    if args.rerun_addr:
        try:
            parse_addr(args.rerun_addr)
        except ValueError as exc:
            return _error(f"--rerun_addr: {exc}", EXIT_USAGE)
    try:
        reader = DatasetReader.open(Path(args.root))
    except DatasetError as exc:
        return _error(str(exc), EXIT_FAILED)
    episodes = reader.total_episodes
    held = f"episodes 0 to {episodes - 1}" if episodes else "no episodes"
    try:
        index = int(args.episode)
    except ValueError:
        return _error(f"--episode={args.episode} is not a number; {args.root} has {held}", EXIT_USAGE)
    if not 0 <= index < episodes:
        return _error(f"episode {index} is not in {args.root}: it has {held}", EXIT_USAGE)

    name = f"{Path(args.root).name} episode {index}"
    try:
        stream = open_stream(name, args.rerun_addr, args.save)
    except RerunSinkError as exc:
        return _error(str(exc), EXIT_FAILED)
    try:
        send_episode(reader, index, stream)
    except DatasetError as exc:
        return _error(str(exc), EXIT_FAILED)
    finally:
        close_stream(stream, timeout_s=60)
    target = args.save or (
        f"the Rerun viewer at {args.rerun_addr}" if args.rerun_addr else "the Rerun viewer"
    )
    length, cameras = reader.episode(index).length, len(reader.video_keys)
    print(f"✓ episode {index} of {args.root} ({length} frames, {cameras} cameras) sent to {target}")
    return EXIT_OK


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code
