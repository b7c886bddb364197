"""Re-encoding one committed video file, and checking the copy before anyone may use it.

The copy keeps every frame at the timestamp it had: the episodes' rows (which frames, from and
to which timestamp) stay true for it, so swapping it in changes nothing but the bytes. It is
checked by decoding it next to the original: the same number of frames, each at the same
timestamp, each close enough in picture (PSNR over all three planes of yuv420p, the lowest
frame's against the floor).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from operating_platform.dataset.realtime import without_realtime
from operating_platform.dataset.video import PIX_FMT, VideoSettings


class CopyRefused(Exception):
    """The re-encoded copy is not faithful to the original; the original stays."""


@dataclass(frozen=True)
class CopyCheck:
    """What the check of a copy found."""

    frames: int
    min_psnr: float  # dB, the worst frame; inf for identical pictures
    mean_psnr: float
    bytes_before: int
    bytes_after: int


def transcode(
    source: Path, output: Path, settings: VideoSettings, between_frames: Callable[[], None] = lambda: None
) -> int:
    """Write `source`'s frames into `output` with `settings`, same timestamps; returns the frame count.

    `between_frames` is called before each frame: the compressor pauses there while the
    recorder needs the CPU.
    """
    with av.open(str(source)) as src, av.open(str(output), "w", format="mp4") as out:
        in_stream = src.streams.video[0]
        in_stream.thread_type = "AUTO"
        fps = in_stream.average_rate or in_stream.base_rate
        stream = out.add_stream(settings.vcodec, rate=fps, options=settings.codec_options())
        stream.width = in_stream.codec_context.width
        stream.height = in_stream.codec_context.height
        stream.pix_fmt = PIX_FMT
        stream.time_base = in_stream.time_base
        frames = 0
        for frame in src.decode(in_stream):
            between_frames()
            if frame.format.name != PIX_FMT:
                frame = frame.reformat(format=PIX_FMT)
            frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder place keyframes
            # The codec is opened, and its threads started, by the first frame.
            with without_realtime() if frames == 0 else contextlib.nullcontext():
                packets = stream.encode(frame)
            out.mux(packets)
            frames += 1
        out.mux(stream.encode(None))
    return frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.int16) - b
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def check_copy(
    original: Path, copy: Path, min_psnr: float, between_frames: Callable[[], None] = lambda: None
) -> CopyCheck:
    """Decode both files side by side; raise `CopyRefused` unless the copy is faithful."""
    worst, total, frames = math.inf, 0.0, 0
    with av.open(str(original)) as a, av.open(str(copy)) as b:
        sa, sb = a.streams.video[0], b.streams.video[0]
        sa.thread_type = sb.thread_type = "AUTO"
        ours, theirs = a.decode(sa), b.decode(sb)
        half_frame = 0.5 / float(sa.average_rate or sa.base_rate)
        for fa in ours:
            between_frames()
            fb = next(theirs, None)
            if fb is None:
                raise CopyRefused(f"the copy has {frames} frames, the original more")
            if fa.time is None or fb.time is None or abs(fa.time - fb.time) > half_frame:
                raise CopyRefused(
                    f"frame {frames} is at {fb.time} s in the copy, at {fa.time} s in the original"
                )
            psnr = _psnr(fa.to_ndarray(format=PIX_FMT), fb.to_ndarray(format=PIX_FMT))
            worst = min(worst, psnr)
            total += min(psnr, 100.0)
            frames += 1
        if next(theirs, None) is not None:
            raise CopyRefused(f"the copy has more frames than the original's {frames}")
    if frames == 0:
        raise CopyRefused("the original has no frame")
    if worst < min_psnr:
        raise CopyRefused(f"a frame's PSNR is {worst:.1f} dB, under the floor of {min_psnr:g} dB")
    return CopyCheck(frames, worst, total / frames, original.stat().st_size, copy.stat().st_size)
