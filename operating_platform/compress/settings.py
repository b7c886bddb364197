"""What a dataset's videos are compressed to."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from operating_platform.dataset.metadata import ENCODER_FOR
from operating_platform.dataset.video import VideoSettings, check_encoder

# Measured on 640x480 camera-like frames with sensor noise (bench/bench_compress.py): preset 10
# encodes about 190 frames/s on one core, 1.3x the speed of preset 8 for the same size; a
# keyframe every 15 frames makes files 7.7x smaller than the recorder's libx264 ultrafast
# with a keyframe every 2, while fetching a random frame costs 7 ms instead of 4.
DEFAULT_PRESET = {"libsvtav1": "10", "libx265": "medium", "libx264": "slow"}
DEFAULT_CRF = {"libsvtav1": 30, "libx265": 28, "libx264": 23}
DEFAULT_G = 15
# Any faithful copy is far above it (40-43 dB on noisy frames at crf 30); a wrong frame, a
# colour swap or a broken encode falls far below.
DEFAULT_MIN_PSNR = 30.0


@dataclass(frozen=True)
class CompressSettings:
    """The encoder, its settings and the PSNR floor a copy must clear to be swapped in."""

    encoder: str = "libsvtav1"
    preset: str | None = None
    crf: int | None = None
    g: int = DEFAULT_G
    min_psnr: float = DEFAULT_MIN_PSNR

    @classmethod
    def parse(cls, name: str, **overrides: Any) -> CompressSettings:
        """`name` is a codec ("av1", "hevc") or an encoder ("libsvtav1"); raises ValueError."""
        encoder = ENCODER_FOR.get(name, name)
        check_encoder(encoder)
        return cls(encoder, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def video(self) -> VideoSettings:
        preset = self.preset if self.preset is not None else DEFAULT_PRESET.get(self.encoder)
        crf = self.crf if self.crf is not None else DEFAULT_CRF.get(self.encoder, 30)
        return VideoSettings(vcodec=self.encoder, crf=crf, g=self.g, preset=preset)

    @property
    def codec(self) -> str:
        return self.video.stream_codec

    def as_target(self) -> dict[str, Any]:
        """What `compress_target` stores: the settings, resolved, and the codec they write."""
        video = self.video
        return {**asdict(self), "preset": video.preset, "crf": video.crf, "codec": self.codec}

    @classmethod
    def from_target(cls, target: dict[str, Any]) -> CompressSettings:
        names = ("encoder", "preset", "crf", "g", "min_psnr")
        return cls(**{k: target[k] for k in names if k in target})
