"""The frames of the stand-in camera: frame `n` carries `n` in its pixels, so a test can tell,
from a decoded video, which frame each recorded row holds."""

from __future__ import annotations

import numpy as np

BITS = 8
STRIPE = 8  # rows of the top stripe that holds the bits


def frame_image(n: int, height: int, width: int) -> np.ndarray:
    """Frame `n`: a gradient that shifts with `n`, under a stripe of `n`'s low bits as dark or
    bright blocks (wide blocks and far-apart levels, so they survive video compression)."""
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    level = 60 + x * 80 // width + y * 40 // height + (n % 16) * 4
    image = np.repeat(level[..., None], 3, axis=2).astype(np.uint8)
    image[..., 2] += 10
    block = width // BITS
    for bit in range(BITS):
        image[:STRIPE, bit * block : (bit + 1) * block] = 230 if (n >> bit) & 1 else 25
    return image


def frame_number(image: np.ndarray) -> int:
    """The `n` (modulo 2**BITS) that `frame_image` put into `image`, read from the block centres."""
    block = image.shape[1] // BITS
    n = 0
    for bit in range(BITS):
        centre = image[2 : STRIPE - 2, bit * block + 2 : (bit + 1) * block - 2]
        n |= int(centre.mean() > 128) << bit
    return n
