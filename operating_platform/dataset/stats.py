"""Per-episode statistics, computed by the rules LeRobot applies (FORMAT.md section 6).

Numeric features: min/max/mean/std over time, per element. Cameras: a deterministic sample of
frames, each subsampled by an integer stride, reduced per channel and scaled to [0, 1], shaped
(3, 1, 1) as the LeRobot loader requires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from operating_platform.dataset.features import VISUAL_DTYPES


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


def image_stats(samples: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of sampled (N, h, w, 3) uint8 frames, per channel, in [0, 1], shaped (3, 1, 1)."""
    stats = _reduce(samples, axis=(0, 1, 2), keepdims=False)
    return {k: v if k == "count" else (v.reshape(3, 1, 1) / 255.0) for k, v in stats.items()}


def episode_stats(
    columns: dict[str, np.ndarray],
    features: dict[str, dict[str, Any]],
    read_frame: Callable[[str, int], np.ndarray],
    length: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Stats for every feature, in `features` order.

    `columns` holds every non-camera feature (defaults included) as arrays over time;
    `read_frame(key, i)` returns frame i of camera `key`.
    """
    result: dict[str, dict[str, np.ndarray]] = {}
    indices = sample_indices(length)
    for key, ft in features.items():
        if ft["dtype"] in VISUAL_DTYPES:
            samples = np.stack([downsample(read_frame(key, i)) for i in indices])
            result[key] = image_stats(samples)
        else:
            result[key] = numeric_stats(columns[key])
    return result


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {key: {name: np.asarray(v).tolist() for name, v in per.items()} for key, per in stats.items()}
