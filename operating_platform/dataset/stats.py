"""Per-episode statistics, computed by the rules LeRobot applies (FORMAT.md section 6).

Numeric features: min/max/mean/std over time, per element. Cameras: a deterministic sample of
frames, each subsampled by an integer stride, reduced per channel and scaled to [0, 1], shaped
(3, 1, 1) as the LeRobot loader requires.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def sample_indices(length: int) -> list[int]:
    """Which frames of an episode of `length` frames LeRobot samples for image statistics."""
    num = max(min(100, length), min(int(length**0.75), 10_000))
    return np.round(np.linspace(0, length - 1, num)).astype(int).tolist()


def downsample(image: np.ndarray, target: int = 150, threshold: int = 300) -> np.ndarray:
    """A strided view of an (H, W, C) image, as LeRobot subsamples before reducing it."""
    height, width = image.shape[:2]
    if max(height, width) < threshold:
        return image
    stride = int(max(height, width) / target)
    return image[::stride, ::stride]


def _reduce(array: np.ndarray, axis: int | tuple[int, ...], keepdims: bool) -> dict[str, np.ndarray]:
    return {
        "min": np.min(array, axis=axis, keepdims=keepdims),
        "max": np.max(array, axis=axis, keepdims=keepdims),
        "mean": np.mean(array, axis=axis, keepdims=keepdims),
        "std": np.std(array, axis=axis, keepdims=keepdims),
        "count": np.array([len(array)]),
    }


def numeric_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over the time axis of a (frames,) or (frames, n) array."""
    return _reduce(values, axis=0, keepdims=values.ndim == 1)


_CHANNEL_OFFSETS = np.array([0, 256, 512], dtype=np.uint16)
_LEVELS = np.arange(256, dtype=np.int64)
_ROW_BYTES = 4 * 3 * 8


class ImageStatsAccumulator:
    """Image statistics of a stream of frames whose length is known only at its end.

    Which frames LeRobot samples depends on the episode's length, so each frame leaves behind
    a few exact integers per channel (min, max, sum, sum of squares of its subsampled pixels),
    96 bytes, and `stats(length)` combines the sampled ones. The result equals a direct
    computation over the sampled frames, without holding any of them.

    With `log`, every row is also appended to that file as it is computed, so that once a
    frame's raw pixels are released its statistics survive a crash; `keep` resumes from the
    first `keep` rows of an existing log.
    """

    def __init__(self, shape: tuple[int, ...], log: Path | None = None, keep: int = 0) -> None:
        small = downsample(np.empty(shape, dtype=np.uint8))
        self._pixels = small.shape[0] * small.shape[1]
        # One array grown by doubling, not a small array per frame: thousands of long-lived
        # small allocations between the encoder's large buffers fragment the heap, and the
        # process would grow by about a frame's size per frame.
        self._per_frame = np.empty((max(1024, keep), 4, 3), dtype=np.int64)
        self._frames = 0
        self._log: int | None = None
        if log is not None:
            if keep:
                rows = np.fromfile(log, dtype=np.int64, count=keep * 12)
                if rows.size < keep * 12:
                    raise ValueError(f"{log}: statistics of only {rows.size // 12} of {keep} frames")
                self._per_frame[:keep] = rows.reshape(keep, 4, 3)
                self._frames = keep
            self._log = os.open(log, os.O_WRONLY | os.O_CREAT, 0o644)
            os.ftruncate(self._log, keep * _ROW_BYTES)
            os.lseek(self._log, 0, os.SEEK_END)

    def add(self, frame: np.ndarray) -> None:
        small = downsample(frame)
        # One histogram per channel (a single bincount over channel-offset values) gives all
        # four numbers exactly, several times faster than reducing the pixels four times.
        hist = np.bincount((small + _CHANNEL_OFFSETS).reshape(-1), minlength=768).reshape(3, 256)
        present = hist > 0
        if self._frames == len(self._per_frame):
            self._per_frame = np.concatenate([self._per_frame, np.empty_like(self._per_frame)])
        row = self._per_frame[self._frames]
        row[0], row[1] = present.argmax(1), 255 - present[:, ::-1].argmax(1)
        row[2], row[3] = hist @ _LEVELS, hist @ _LEVELS**2
        if self._log is not None:
            os.write(self._log, row.tobytes())
        self._frames += 1

    def close(self) -> None:
        if self._log is not None:
            os.close(self._log)
            self._log = None

    def stats(self, length: int) -> dict[str, np.ndarray]:
        picked = self._per_frame[sample_indices(length)]
        n = self._pixels * len(picked)
        mean = picked[:, 2].sum(0) / n
        variance = np.maximum(picked[:, 3].sum(0) / n - mean**2, 0.0)
        stats = {
            "min": picked[:, 0].min(0).astype(np.float64),
            "max": picked[:, 1].max(0).astype(np.float64),
            "mean": mean,
            "std": np.sqrt(variance),
        }
        result = {k: v.reshape(3, 1, 1) / 255.0 for k, v in stats.items()}
        result["count"] = np.array([len(picked)])
        return result


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {key: {name: np.asarray(v).tolist() for name, v in per.items()} for key, per in stats.items()}
