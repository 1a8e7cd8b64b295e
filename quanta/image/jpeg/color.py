"""Colour conversion and chroma subsampling, as libjpeg does them.

RGB → YCbCr is JFIF's BT.601 full-range transform; samples are rounded to 8-bit integers
(libjpeg's encoder works on integer samples too). Subsampling averages 2×1 or 2×2 cells
with libjpeg's alternating rounding bias (``jcsample.c``), after replicating the right and
bottom edges to whole MCUs.
"""

from __future__ import annotations

import numpy as np

from quanta.errors import ConfigError
from quanta.image.jpeg import _kernels

#: chroma subsampling mode → (horizontal, vertical) luma sampling factors
SUBSAMPLING = {"4:4:4": (1, 1), "4:2:2": (2, 1), "4:2:0": (2, 2)}


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB → uint8 ``(3, H, W)`` Y, Cb, Cr (JFIF, full range)."""
    out = np.empty((3, *rgb.shape[:2]), dtype=np.uint8)
    _kernels.rgb_to_ycbcr(np.ascontiguousarray(rgb), out)
    return out


def pad_to(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Replicate the last row and column of ``plane`` to ``(height, width)``."""
    h, w = plane.shape
    if (h, w) == (height, width):
        return plane
    return np.pad(plane, ((0, height - h), (0, width - w)), mode="edge")


def downsample(plane: np.ndarray, h: int, v: int) -> np.ndarray:
    """Average ``h×v`` cells (sizes already multiples of them) with libjpeg's rounding bias."""
    if (h, v) == (1, 1):
        return plane
    if (h, v) not in ((2, 1), (2, 2)):
        raise ConfigError(f"unsupported sampling {h}x{v}")
    p = plane.astype(np.uint16)
    _rows, cols = p.shape
    if v == 1:
        s = p[:, 0::2] + p[:, 1::2]
        bias = np.tile(np.array([0, 1], dtype=np.uint16), cols // 4 + 1)[: cols // 2]
        return ((s + bias) >> 1).astype(np.uint8)
    s = p[0::2, 0::2] + p[0::2, 1::2] + p[1::2, 0::2] + p[1::2, 1::2]
    bias = np.tile(np.array([1, 2], dtype=np.uint16), cols // 4 + 1)[: cols // 2]
    return ((s + bias) >> 2).astype(np.uint8)
