"""Video encoding with PyAV: RGB frames in, one MP4 stream per camera out."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

# SVT-AV1 prints a banner on every encoder it opens; it would garble the operator's console.
os.environ.setdefault("SVT_LOG", "1")

import av

PIX_FMT = "yuv420p"


@dataclass(frozen=True)
class VideoSettings:
    """How camera streams are encoded. `preset` is passed as-is to the codec (`None`: its default)."""

    vcodec: str = "libx264"
    crf: int = 23
    g: int = 2
    preset: str | None = "ultrafast"

    def codec_options(self) -> dict[str, str]:
        options = {"g": str(self.g), "crf": str(self.crf)}
        if self.preset is not None:
            options["preset"] = str(self.preset)
        return options


def check_encoder(vcodec: str) -> None:
    """Raise `ValueError` if this FFmpeg build has no encoder named `vcodec`."""
    try:
        codec = av.Codec(vcodec, "w")
    except Exception:  # PyAV raises different types across versions for an unknown name
        raise ValueError(f"no video encoder named {vcodec!r} (try libx264 or libsvtav1)") from None
    if codec.type != "video":
        raise ValueError(f"{vcodec!r} is not a video encoder")


class VideoEncoder:
    """Encodes RGB frames into an MP4 at `path`, frame i at time i/fps.

    The file is complete only after `close()`; callers write to a temporary name and publish it.
    """

    def __init__(self, path: Path, width: int, height: int, fps: int, settings: VideoSettings) -> None:
        self.path = Path(path)
        self._container = av.open(str(self.path), mode="w", format="mp4")
        try:
            stream = self._container.add_stream(settings.vcodec, rate=fps, options=settings.codec_options())
            stream.width = width
            stream.height = height
            stream.pix_fmt = PIX_FMT
            stream.time_base = Fraction(1, fps)
        except Exception:
            self._container.close()
            raise
        self._stream = stream
        self.frames = 0

    def encode(self, rgb: Any) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and write the container's index."""
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()

    def abort(self) -> None:
        # The file is being thrown away; its close errors do not matter.
        with contextlib.suppress(Exception):
            self._container.close()
        self.path.unlink(missing_ok=True)


def probe_video_info(path: Path) -> dict[str, Any]:
    """The `info` block info.json carries for a video feature, read from a real encoded file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        fps = stream.average_rate or stream.base_rate
        return {
            "video.height": ctx.height,
            "video.width": ctx.width,
            # The stream's codec ("av1", "h264"), not the decoder PyAV picked ("libdav1d").
            "video.codec": ctx.codec.canonical_name,
            "video.pix_fmt": ctx.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": round(float(fps)),
            "video.channels": 3,
            "has_audio": any(s.type == "audio" for s in container.streams),
        }
