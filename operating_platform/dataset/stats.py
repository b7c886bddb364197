"""Per-episode statistics, computed by the rules LeRobot applies (FORMAT.md section 6).

Numeric features: min/max/mean/std over time, per element. Cameras: a deterministic sample of
frames, each subsampled by an integer stride, reduced per channel and scaled to [0, 1], shaped
(3, 1, 1) as the LeRobot loader requires. Both also carry the quantiles v3.0 datasets store
(q01 ... q99); v2.1 datasets leave them out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
BASIC_STATS = ("min", "max", "mean", "std", "count")
# Image quantiles come from a histogram of this many bins per channel: 4 levels each, exact
# enough for normalisation, and 768 bytes per frame instead of 3 KB.
_BINS = 64
_BIN_WIDTH = 256 // _BINS


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
    """Stats over the time axis of a (frames,) or (frames, n) array, quantiles included."""
    stats = _reduce(values, axis=0, keepdims=values.ndim == 1)
    for name, q in QUANTILES.items():
        stats[name] = np.quantile(values.astype(np.float64), q, axis=0, keepdims=values.ndim == 1)
    return stats


def histogram_quantiles(hist: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel quantiles, in pixel levels, of a (channels, bins) histogram of 0..255 values.

    Values are taken as spread evenly inside their bin, and clipped to the exact `low`/`high`.
    """
    cumulative = np.cumsum(hist, axis=1)
    total = cumulative[:, -1:]
    result = {}
    for name, q in QUANTILES.items():
        target = q * total
        values = []
        for channel in range(hist.shape[0]):
            b = int(np.searchsorted(cumulative[channel], target[channel, 0], side="left"))
            b = min(b, hist.shape[1] - 1)
            before = cumulative[channel, b - 1] if b else 0
            inside = hist[channel, b]
            fraction = (target[channel, 0] - before) / inside if inside else 0.0
            values.append(b * _BIN_WIDTH + fraction * _BIN_WIDTH)
        result[name] = np.clip(np.array(values), low, high)
    return result


_CHANNEL_OFFSETS = np.array([0, 256, 512], dtype=np.uint16)
_LEVELS = np.arange(256, dtype=np.int64)
_SUMS_BYTES = 4 * 3 * 8
_HIST_BYTES = 3 * _BINS * 4
_ROW_BYTES = _SUMS_BYTES + _HIST_BYTES


class ImageStatsAccumulator:
    """Image statistics of a stream of frames whose length is known only at its end.

    Which frames LeRobot samples depends on the episode's length, so each frame leaves behind
    a few exact integers per channel (min, max, sum, sum of squares of its subsampled pixels)
    and a coarse histogram for the quantiles, under 1 KB, and `stats(length)` combines the
    sampled ones. The result equals a direct
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
        self._hist = np.empty((max(1024, keep), 3, _BINS), dtype=np.int32)
        self._frames = 0
        self._log: int | None = None
        if log is not None:
            if keep:
                data = np.fromfile(log, dtype=np.uint8, count=keep * _ROW_BYTES)
                if data.size < keep * _ROW_BYTES:
                    raise ValueError(f"{log}: statistics of only {data.size // _ROW_BYTES} of {keep} frames")
                rows = data.reshape(keep, _ROW_BYTES)
                self._per_frame[:keep] = rows[:, :_SUMS_BYTES].copy().view(np.int64).reshape(keep, 4, 3)
                self._hist[:keep] = rows[:, _SUMS_BYTES:].copy().view(np.int32).reshape(keep, 3, _BINS)
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
            self._hist = np.concatenate([self._hist, np.empty_like(self._hist)])
        row = self._per_frame[self._frames]
        row[0], row[1] = present.argmax(1), 255 - present[:, ::-1].argmax(1)
        row[2], row[3] = hist @ _LEVELS, hist @ _LEVELS**2
        coarse = self._hist[self._frames]
        coarse[:] = hist.reshape(3, _BINS, _BIN_WIDTH).sum(2)
        if self._log is not None:
            os.write(self._log, row.tobytes() + coarse.tobytes())
        self._frames += 1

    def close(self) -> None:
        if self._log is not None:
            os.close(self._log)
            self._log = None

    def stats(self, length: int) -> dict[str, np.ndarray]:
        sampled = sample_indices(length)
        picked = self._per_frame[sampled]
        n = self._pixels * len(picked)
        mean = picked[:, 2].sum(0) / n
        variance = np.maximum(picked[:, 3].sum(0) / n - mean**2, 0.0)
        stats = {
            "min": picked[:, 0].min(0).astype(np.float64),
            "max": picked[:, 1].max(0).astype(np.float64),
            "mean": mean,
            "std": np.sqrt(variance),
        }
        stats.update(histogram_quantiles(self._hist[sampled].sum(0), stats["min"], stats["max"]))
        result = {k: v.reshape(3, 1, 1) / 255.0 for k, v in stats.items()}
        result["count"] = np.array([len(picked)])
        return result


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {key: {name: np.asarray(v).tolist() for name, v in per.items()} for key, per in stats.items()}


def aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Statistics over several episodes from theirs, as LeRobot merges them: extremes of the
    extremes, count-weighted means and quantiles, and the pooled variance."""
    merged: dict[str, dict[str, np.ndarray]] = {}
    for key in per_episode[0]:
        parts = [stats[key] for stats in per_episode]
        counts = np.array([int(np.asarray(p["count"]).reshape(-1)[0]) for p in parts], dtype=np.float64)
        total = counts.sum()
        weights = counts.reshape(-1, *([1] * np.asarray(parts[0]["mean"]).ndim)) / total
        means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
        mean = (means * weights).sum(0)
        variances = np.stack([np.asarray(p["std"], dtype=np.float64) ** 2 for p in parts])
        variance = ((variances + (means - mean) ** 2) * weights).sum(0)
        result = {
            "min": np.min(np.stack([np.asarray(p["min"]) for p in parts]), axis=0),
            "max": np.max(np.stack([np.asarray(p["max"]) for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(variance),
            "count": np.array([int(total)]),
        }
        for name in QUANTILES:
            if all(name in p for p in parts):
                result[name] = (
                    np.stack([np.asarray(p[name], dtype=np.float64) for p in parts]) * weights
                ).sum(0)
        merged[key] = result
    return merged
