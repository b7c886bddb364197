"""Encoding: a journal's camera frames become videos in staging, with their image statistics.

The slow step of saving, and the only one that does not depend on where the episode lands in
the dataset, so it can run ahead of the dataset's order, in the encoder process, while the
episode is still being recorded. It touches nothing in the dataset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from operating_platform.dataset.fsutil import make_dirs_within
from operating_platform.dataset.journal import JournalError, JournalReader
from operating_platform.dataset.stats import ImageStatsAccumulator
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
