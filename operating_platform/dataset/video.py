"""Video encoding with PyAV: RGB frames in, one MP4 stream per camera out."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

# SVT-AV1 prints a banner on every encoder it opens; it would garble the operator's console.
os.environ.setdefault("SVT_LOG", "1")

import av
import av.logging

from operating_platform.dataset.realtime import without_realtime

PIX_FMT = "yuv420p"


# With no preset chosen, each encoder runs at its fastest, so that it keeps up with capture.
FAST_PRESETS = {"libx264": "ultrafast", "libx265": "ultrafast", "libsvtav1": "12"}


@dataclass(frozen=True)
class VideoSettings:
    """How camera streams are encoded.

    `preset` is passed as-is to the codec; `None` picks the encoder's fastest (`FAST_PRESETS`),
    or the encoder's own default for one not listed there.
    """

    vcodec: str = "libx264"
    crf: int = 23
    g: int = 2
    preset: str | None = None

    @property
    def stream_codec(self) -> str:
        """The codec of the streams `vcodec` writes, as info.json names it ("h264", "av1")."""
        return av.Codec(self.vcodec, "w").canonical_name

    def codec_options(self) -> dict[str, str]:
        options = {"g": str(self.g), "crf": str(self.crf)}
        preset = self.preset if self.preset is not None else FAST_PRESETS.get(self.vcodec)
        if preset is not None:
            options["preset"] = str(preset)
        if self.vcodec == "libx265":  # else x265 prints its banner and statistics on stderr
            options["x265-params"] = "log-level=error"
        return options


def check_encoder(vcodec: str) -> None:
    """Raise `ValueError` if this FFmpeg build has no encoder named `vcodec`."""
    try:
        codec = av.Codec(vcodec, "w")
    except Exception:  # PyAV raises different types across versions for an unknown name
        raise ValueError(f"no video encoder named {vcodec!r} (try libx264 or libsvtav1)") from None
    if codec.type != "video":
        raise ValueError(f"{vcodec!r} is not a video encoder")


# The smallest frame every encoder we know of accepts (SVT-AV1 refuses anything under 64x64).
_PROBE_SIZE = 64


class EncoderRefused(ValueError):
    """The encoder would not open with these settings; `option` names the one at fault, if known."""

    def __init__(self, option: str | None, reason: str) -> None:
        super().__init__(reason)
        self.option = option
        self.reason = reason


@contextlib.contextmanager
def _ffmpeg_quiet() -> Iterator[list]:
    """Collect FFmpeg's log lines, and silence what encoders print on fd 2 themselves (x264 does).

    Only for the check at start-up, before any other thread runs: fd 2 is the whole process's.
    """
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        with av.logging.Capture() as logged:
            yield logged
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        av.logging.set_level(level)


def _open_probe(vcodec: str, options: dict[str, str]) -> set[str]:
    """Open `vcodec` with `options` and encode one tiny frame in memory; the options left unused."""
    container = av.open(io.BytesIO(), mode="w", format="mp4")
    with _ffmpeg_quiet() as logged:
        try:
            stream = container.add_stream(vcodec, rate=30, options=dict(options))
            stream.width = stream.height = _PROBE_SIZE
            stream.pix_fmt = PIX_FMT
            frame = av.VideoFrame(_PROBE_SIZE, _PROBE_SIZE, PIX_FMT)
            frame.pts = 0
            stream.encode(frame)
            stream.encode(None)
            return set(stream.codec_context.options) & set(options)
        except (av.error.FFmpegError, OverflowError, ValueError) as exc:
            raise EncoderRefused(None, _refusal(exc, logged)) from None
        finally:
            with contextlib.suppress(Exception):
                container.close()


def _refusal(exc: Exception, logged: list) -> str:
    """The encoder's own words for why it refused, as short as they come."""
    said = [m.strip() for level, _name, m in logged if level <= av.logging.ERROR and m.strip()]
    if said:
        return said[0]
    # FFmpeg drops a message repeating the one before; PyAV keeps the last one in the exception.
    last = str(exc).partition("last error log: ")[2]
    if last:
        return last.partition("] ")[2].strip() or last.strip()
    return getattr(exc, "strerror", None) or str(exc).split(":")[0]


def probe_encoder(settings: VideoSettings) -> set[str]:
    """Open the encoder with `settings` once, before anything is recorded.

    Raises `EncoderRefused` naming the option the encoder refuses; returns the options it
    accepted but ignores (an encoder without presets, say).
    """
    options = settings.codec_options()
    with without_realtime():
        return _find_refused_option(settings.vcodec, options)


def _find_refused_option(vcodec: str, options: dict[str, str]) -> set[str]:
    try:
        return _open_probe(vcodec, options)
    except EncoderRefused as refused:
        # FFmpeg says only "Invalid argument": find the option at fault by trying each alone.
        for name, value in options.items():
            try:
                _open_probe(vcodec, {name: value})
            except EncoderRefused as alone:
                raise EncoderRefused(name, alone.reason) from None
        raise refused from None


class VideoEncoder:
    """Encodes RGB frames into an MP4 at `path`, frame i at time i/fps.

    The file is written as a fragmented MP4 while encoding, flushed out of the process at every
    keyframe, and becomes a regular MP4 on `close()`. So a killed process leaves a file whose
    first `durable_frames` frames decode: the raw copies of those frames may be released.
    """

    def __init__(self, path: Path, width: int, height: int, fps: int, settings: VideoSettings) -> None:
        self.path = Path(path)
        self._container = av.open(
            str(self.path),
            mode="w",
            format="mp4",
            # negative_cts_offsets: with B-frames, a fragmented file would otherwise start at 1/fps.
            options={"movflags": "hybrid_fragmented+negative_cts_offsets", "flush_packets": "1"},
        )
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
        self.durable_frames = 0
        self._next_pts = 0  # packets arriving in display order; anything else disables release

    def encode(self, rgb: Any) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames
        # The codec is opened, and its threads started, by the first frame.
        with without_realtime() if self.frames == 0 else contextlib.nullcontext():
            packets = self._stream.encode(frame)
        self._mux(packets)
        self.frames += 1

    def _mux(self, packets: list) -> None:
        for packet in packets:
            in_order = packet.pts == self._next_pts
            self._next_pts = packet.pts + 1 if in_order and self._next_pts >= 0 else -1
            # A keyframe starts a new fragment: everything before it has been written out.
            if packet.is_keyframe and self._next_pts >= 0:
                self.durable_frames = packet.pts
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and write the container's index."""
        try:
            self._mux(self._stream.encode(None))
        finally:
            self._container.close()
        self.durable_frames = self.frames

    def abort(self) -> None:
        """Stop after a failure. The file is kept: its durable frames may be their only copy."""
        with contextlib.suppress(Exception):
            self._container.close()


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


def decode_frames(path: Path, count: int) -> Any:
    """Yield the first `count` frames of a (possibly cut-off) video as RGB arrays."""
    with av.open(str(path)) as container:
        decoded = 0
        for frame in container.decode(video=0):
            if decoded == count:
                return
            yield frame.to_ndarray(format="rgb24")
            decoded += 1
    if decoded < count:
        raise ValueError(f"{path}: only {decoded} of {count} encoded frames can be decoded")


def count_decodable(path: Path) -> int:
    """How many frames of a (possibly cut-off) video decode."""
    try:
        with av.open(str(path)) as container:
            return sum(1 for _ in container.decode(video=0))
    except (av.error.FFmpegError, OSError):
        return 0
