"""`dorobot info ROOT`: what a dataset holds and what its videos weigh, camera by camera.

Per camera: the codecs of its videos (mixed while background compression is under way), its
bytes, bytes per recorded minute, the episodes still waiting for compression and the size the
camera will have once they are compressed. Works on v2.1 and v3.0 datasets alike, through
`DatasetReader`; a video is only opened to read its stream's codec, never decoded.

A dataset has a compression target when `.dorobot/compress/settings.json` names a codec. An
episode's video is waiting when its codec is not the target's. In v3.0 several episodes share a
file, so they share its codec: sizes are counted per file, and a file's minutes are those of the
episodes the metadata places in it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from rich.console import Console

from operating_platform.dataset.compress_target import COMPRESS_DIR, SETTINGS_FILE, read_target
from operating_platform.dataset.metadata import DatasetError
from operating_platform.dataset.reader import DatasetReader

# A root that is not a readable dataset is a usage error, as argparse's own (exit 2).
EXIT_OK, EXIT_BAD_ROOT = 0, 2
# Written by the background compressor: {"codec": "av1", "encoder": ..., ...}, where "codec" is the
# stream codec name the compressed files report. Absent: the dataset has no compression target.
# Only these hold the dataset besides its videos; .dorobot/ is the recorder's own.
DATA_DIR, META_DIR = "data", "meta"
UNITS = (("GB", 2**30), ("MB", 2**20), ("KB", 2**10))


@dataclass
class Share:
    """A part of a camera's videos: how many episodes, their frames, their bytes on disk."""

    fps: int
    episodes: int = 0
    frames: int = 0
    bytes: int = 0

    @property
    def minutes(self) -> float:
        return self.frames / self.fps / 60 if self.fps > 0 else 0.0

    def add(self, other: Share) -> None:
        self.episodes += other.episodes
        self.frames += other.frames
        self.bytes += other.bytes

    def bytes_per_minute(self) -> float | None:
        return self.bytes / self.minutes if self.minutes > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "frames": self.frames,
            "minutes": self.minutes,
            "bytes": self.bytes,
        }


@dataclass
class CameraInfo:
    """One camera's videos: every file the metadata points to, counted once.

    `compressed` (in the target codec) is None when the dataset has no compression target; then
    nothing waits. `projected_bytes` is the camera's size once every waiting episode is
    compressed at the rate (bytes per minute) of the ones already compressed, the rest kept as
    it is: None while episodes wait and none is compressed yet to give that rate.
    """

    key: str
    total: Share
    waiting: Share
    compressed: Share | None
    files: int = 0
    codecs: dict[str | None, Share] = field(default_factory=dict)  # None: the file cannot be read
    unreadable: list[str] = field(default_factory=list)  # "path: why"

    @property
    def projected_bytes(self) -> int | None:
        if self.waiting.episodes == 0:
            return self.total.bytes
        rate = self.compressed.bytes_per_minute() if self.compressed is not None else None
        if rate is None:
            return None
        # Whatever does not wait stays as it is, unreadable files included.
        return round(self.total.bytes - self.waiting.bytes + self.waiting.minutes * rate)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            **self.total.to_json(),
            "bytes_per_minute": self.total.bytes_per_minute(),
            "codecs": [{"codec": codec, **share.to_json()} for codec, share in self.codecs.items()],
            "compressed": None if self.compressed is None else self.compressed.to_json(),
            "waiting": self.waiting.to_json(),
            "projected_bytes": self.projected_bytes,
            "unreadable": self.unreadable,
        }


@dataclass
class DatasetInfo:
    """A dataset's counters from its metadata and the sizes of its files, as they are on disk."""

    root: Path
    codebase_version: str
    episodes: int
    frames: int
    fps: int
    target: dict[str, Any] | None  # the compression settings; None: no compression target
    cameras: list[CameraInfo]
    data_bytes: int
    meta_bytes: int

    @property
    def minutes(self) -> float:
        return self.frames / self.fps / 60 if self.fps > 0 else 0.0

    @property
    def video_bytes(self) -> int:
        return sum(camera.total.bytes for camera in self.cameras)

    @property
    def projected_video_bytes(self) -> int | None:
        projected = [camera.projected_bytes for camera in self.cameras]
        return None if None in projected else sum(p for p in projected if p is not None)

    def to_json(self) -> dict[str, Any]:
        """One JSON object: bytes exact, minutes unrounded, None where a figure is unknown."""
        projected = self.projected_video_bytes
        return {
            "root": str(self.root),
            "codebase_version": self.codebase_version,
            "episodes": self.episodes,
            "frames": self.frames,
            "fps": self.fps,
            "minutes": self.minutes,
            "compression_target": self.target,
            "cameras": {camera.key: camera.to_json() for camera in self.cameras},
            "totals": {
                "video_bytes": self.video_bytes,
                "data_bytes": self.data_bytes,
                "meta_bytes": self.meta_bytes,
                "bytes": self.video_bytes + self.data_bytes + self.meta_bytes,
                "projected_video_bytes": projected,
                "projected_bytes": None
                if projected is None
                else projected + self.data_bytes + self.meta_bytes,
            },
        }


def dataset_info(root: Path) -> DatasetInfo:
    """Read `root`'s metadata and the sizes and codecs of its files; raises `DatasetError` when
    `root` is not a readable dataset."""
    root = Path(root)
    reader = DatasetReader.open(root)
    target = read_target(root)
    target_codec = target["codec"] if target is not None else None
    fps = reader.fps
    cameras = []
    for key in reader.video_keys:
        # Episodes by the file holding them, in episode order: each file is probed once.
        by_file: dict[Path, Share] = {}
        for index in range(reader.total_episodes):
            share = by_file.setdefault(reader.video_segment(index, key).path, Share(fps))
            share.episodes += 1
            share.frames += reader.episode(index).length
        camera = CameraInfo(
            key,
            total=Share(fps),
            waiting=Share(fps),
            compressed=Share(fps) if target is not None else None,
            files=len(by_file),
        )
        for path, share in by_file.items():
            codec, size, problem = _probe(path)
            share.bytes = size
            if problem is not None:
                camera.unreadable.append(f"{path.relative_to(root).as_posix()}: {problem}")
            camera.total.add(share)
            camera.codecs.setdefault(codec, Share(fps)).add(share)
            if camera.compressed is not None and codec is not None:
                (camera.compressed if codec == target_codec else camera.waiting).add(share)
        cameras.append(camera)
    return DatasetInfo(
        root=root,
        codebase_version=reader.codebase_version,
        episodes=reader.total_episodes,
        frames=reader.total_frames,
        fps=reader.fps,
        target=target,
        cameras=cameras,
        data_bytes=_folder_bytes(root / DATA_DIR),
        meta_bytes=_folder_bytes(root / META_DIR),
    )


def info_lines(info: DatasetInfo) -> list[str]:
    """The report for a terminal or a log: one fact per line, sizes rounded (exact in `--json`)."""
    lines = [
        f"{info.root}: LeRobot {info.codebase_version}, {_count(info.episodes, 'episode')}, "
        f"{info.frames} frames at {info.fps} fps, {info.minutes:.2f} min",
    ]
    if info.target is None:
        lines.append(f"compression: no target ({COMPRESS_DIR}/{SETTINGS_FILE} absent)")
    else:
        # The encoder's settings; lists (the codecs files wait in...) are for the compressor.
        details = ", ".join(
            f"{k} {v}" for k, v in info.target.items() if k != "codec" and isinstance(v, (str, int, float))
        )
        lines.append(f"compression: target {info.target['codec']}" + (f" ({details})" if details else ""))
    if not info.cameras:
        lines.append("no cameras")
    for camera in info.cameras:
        codecs = ", ".join(
            f"{codec or 'unreadable'} ({_count(share.episodes, 'episode')})"
            for codec, share in camera.codecs.items()
        )
        rate = camera.total.bytes_per_minute()
        lines += [
            f"{camera.key}:",
            f"  codec      {codecs or 'none (no episodes)'}",
            f"  size       {_size(camera.total.bytes)} in {_count(camera.files, 'file')}, "
            f"{camera.total.minutes:.2f} min" + (f", {_size(rate)}/min" if rate is not None else ""),
        ]
        if camera.compressed is None:
            lines.append("  waiting    none (no compression target)")
        else:
            waiting = camera.waiting
            lines.append(
                f"  waiting    {_count(waiting.episodes, 'episode')}, {waiting.minutes:.2f} min"
                + (f" ({_size(waiting.bytes)})" if waiting.episodes else "")
            )
            lines.append(f"  projected  {_projection(camera)}")
        lines += [f"  unreadable {problem}" for problem in camera.unreadable]
    projected = info.projected_video_bytes
    lines.append(
        f"total: {_size(info.video_bytes + info.data_bytes + info.meta_bytes)} "
        f"(videos {_size(info.video_bytes)}, data {_size(info.data_bytes)}, meta {_size(info.meta_bytes)})"
    )
    if info.target is not None:
        lines.append(
            "total projected: "
            + (
                "unknown until every camera has a compressed episode"
                if projected is None
                else f"{_size(projected + info.data_bytes + info.meta_bytes)} (videos {_size(projected)})"
            )
        )
    return lines


def info_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dorobot info",
        description="Show a dataset (v2.1 or v3.0): its episodes and, per camera, the codecs of its "
        "videos, their size and bytes per minute, the episodes waiting for compression and the "
        "size once they are compressed. The dataset is only read.",
    )
    parser.add_argument("root", help="the dataset folder (the one holding meta/)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead, sizes in exact bytes"
    )
    args = parser.parse_args(argv)
    try:
        info = dataset_info(Path(args.root))
    except DatasetError as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"cannot read {args.root}: {exc.strerror or exc} ({exc.filename or args.root})")
    if args.json:
        print(json.dumps(info.to_json(), indent=2))
        return EXIT_OK
    console = Console(highlight=False, soft_wrap=True)
    for line in info_lines(info):
        console.print(line, markup=False)
    return EXIT_OK


# -- helpers -------------------------------------------------------------------------------------


def _probe(path: Path) -> tuple[str | None, int, str | None]:
    """(codec, bytes, problem) of one video; opening the container reads its header, no frame."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, 0, "missing"
    except OSError as exc:
        return None, 0, exc.strerror or str(exc)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None, size, "no video stream"
            # The codec's name ("av1"), not the decoder's ("libdav1d").
            return container.streams.video[0].codec_context.codec.canonical_name, size, None
    except (av.FFmpegError, OSError, ValueError) as exc:
        return None, size, " ".join(str(exc).split())


def _folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            # A writer may replace a file while we walk (a temporary renamed onto its final name).
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def _projection(camera: CameraInfo) -> str:
    projected = camera.projected_bytes
    if camera.waiting.episodes == 0:
        return f"{_size(camera.total.bytes)} (nothing waits)"
    if projected is None:
        return "unknown until the first episode is compressed"
    assert camera.compressed is not None  # a projection with episodes waiting needs a rate
    kept, rate = camera.total.bytes - camera.waiting.bytes, camera.compressed.bytes_per_minute() or 0
    return (
        f"{_size(projected)} ({_size(kept)} as is + {camera.waiting.minutes:.2f} min waiting at "
        f"{_size(rate)}/min, the rate of the {_count(camera.compressed.episodes, 'compressed episode')})"
    )


def _size(count: float) -> str:
    for unit, scale in UNITS:
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f} B"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return EXIT_BAD_ROOT
