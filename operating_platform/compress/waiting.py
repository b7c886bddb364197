"""Which committed video files still wait for compression, oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from operating_platform.dataset import compact
from operating_platform.dataset.formats.v30 import V30Metadata
from operating_platform.dataset.metadata import DoRobotDatasetMetadata
from operating_platform.dataset.swap import FileId


@dataclass(frozen=True)
class Waiting:
    """One video file not yet in the target codec, and what it holds."""

    relative: str
    camera: str
    episodes: tuple[int, ...]
    frames: int
    seconds: float
    file_id: FileId
    ready: bool  # v3.0: packing will not merge it again, so it may be compressed now


# FileId -> codec: every file is opened once, however often the list is made.
_codecs: dict[FileId, str] = {}


def file_codec(path: Path, file_id: FileId) -> str:
    if file_id not in _codecs:
        with av.open(str(path)) as container:
            _codecs[file_id] = container.streams.video[0].codec_context.codec.canonical_name
    return _codecs[file_id]


def _files(meta: DoRobotDatasetMetadata, key: str) -> list[tuple[Path, list[int]]]:
    """The camera's files in the order of their first episode, with the episodes each holds."""
    files: dict[Path, list[int]] = {}
    for episode in range(meta.total_episodes):
        files.setdefault(meta.video_path(episode, key), []).append(episode)
    return list(files.items())


def waiting_files(
    meta: DoRobotDatasetMetadata, codec: str, final: bool, skip: set[FileId] = frozenset()
) -> list[Waiting]:
    """Every committed video file not in `codec`, oldest episode first, cameras interleaved.

    In v3.0, only files packing will not merge again are `ready` (`final`: the session is
    over); `skip` holds files whose copy was refused.
    """
    found: list[tuple[int, int, Waiting]] = []
    for order, key in enumerate(meta.video_keys):
        settled = (
            compact.settled_files(meta, f"videos/{key}", final) if isinstance(meta, V30Metadata) else None
        )
        for path, episodes in _files(meta, key):
            try:
                file_id = FileId.of(path)
                if file_id in skip or file_codec(path, file_id) == codec:
                    continue
            except (OSError, av.error.FFmpegError):
                continue  # moved by packing since the metadata was read: seen again next time
            frames = sum(meta.episode_length(e) for e in episodes)
            waiting = Waiting(
                str(path.relative_to(meta.root)),
                key,
                tuple(episodes),
                frames,
                frames / meta.fps,
                file_id,
                ready=settled is None or path in settled,
            )
            found.append((episodes[0], order, waiting))
    return [w for _, _, w in sorted(found, key=lambda item: item[:2])]
