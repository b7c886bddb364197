"""What the simulated nodes send, as functions of a frame counter, so that what was recorded
can be checked against what was sent.

Each camera image is a textured scene that slides sideways, with per-pixel sensor noise (as
real cameras give an encoder), and the frame counter stamped into its top-left corner in big
black and white blocks that survive lossy encoding. The leader arm's joints are smooth
functions of its counter.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

STAMP_BITS = 24
NOISE_PAD = 32
JOINTS = 6


def block_size(width: int) -> int:
    """Side of one stamp block in pixels: the 24 blocks span three quarters of the width."""
    return max(2, width // 32)


@functools.lru_cache(maxsize=8)
def _scene(camera: str, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(camera.encode()))
    # Coarse random blobs blurred into smooth shapes, plus fine grain: texture an encoder must work on.
    cell = 16
    coarse = rng.integers(30, 200, size=(height // cell + 2, width // cell + 2, 3)).astype(np.float32)
    smooth = np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)[:height, :width]
    for axis in (0, 1):
        smooth = (smooth + np.roll(smooth, cell // 2, axis=axis)) / 2
    grain = rng.integers(0, 24, size=(height, width, 1)).astype(np.float32)
    return np.clip(smooth + grain, 0, 230).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _noise(camera: str, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(camera.encode()) + 1)
    return rng.integers(0, 24, size=(height + NOISE_PAD, width + NOISE_PAD, 3), dtype=np.uint8)


def render(camera: str, counter: int, height: int, width: int, noise: bool = True) -> np.ndarray:
    """The RGB image camera `camera` sends as its frame number `counter`."""
    frame = np.roll(_scene(camera, height, width), (counter * 4) % width, axis=1)
    if noise:
        dy, dx = (counter * 7) % NOISE_PAD, (counter * 13) % NOISE_PAD
        frame += _noise(camera, height, width)[dy : dy + height, dx : dx + width]  # at most 230 + 23
    stamp(frame, counter)
    return frame


def stamp(frame: np.ndarray, counter: int) -> None:
    """Write `counter` into the frame's top-left corner, one block per bit."""
    b = block_size(frame.shape[1])
    for bit in range(STAMP_BITS):
        frame[:b, bit * b : (bit + 1) * b] = 255 if counter >> bit & 1 else 0


def read_stamp(frame: np.ndarray) -> int:
    """The counter stamped into a frame (also one that went through a lossy codec)."""
    b = block_size(frame.shape[1])
    margin = max(1, b // 4)  # block edges blur; their middles do not
    counter = 0
    for bit in range(STAMP_BITS):
        block = frame[margin : b - margin, bit * b + margin : (bit + 1) * b - margin]
        counter |= int(block.mean() > 127) << bit
    return counter


def leader_joints(counter: int) -> np.ndarray:
    """The leader arm's six joint positions (degrees) at its tick `counter`."""
    t = counter / 30.0
    phases = np.arange(JOINTS, dtype=np.float64)
    return (40.0 * np.sin(2 * np.pi * 0.2 * t + phases) + 5.0 * phases).astype(np.float32)
