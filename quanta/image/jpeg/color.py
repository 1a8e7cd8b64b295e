"""Colour conversion and chroma subsampling, as libjpeg does them.

RGB → YCbCr is JFIF's BT.601 full-range transform; samples are rounded to 8-bit integers
(libjpeg's encoder works on integer samples too). Subsampling averages 2×1 or 2×2 cells
with libjpeg's alternating rounding bias (``jcsample.c``), after replicating the right and
bottom edges to whole MCUs.
"""

from __future__ import annotations

import numba
import numpy as np

from quanta.errors import ConfigError

#: chroma subsampling mode → (horizontal, vertical) luma sampling factors
SUBSAMPLING = {"4:4:4": (1, 1), "4:2:2": (2, 1), "4:2:0": (2, 2)}


@numba.njit(cache=True, nogil=True)
def _rgb_to_ycbcr(rgb, out):  # pragma: no cover - compiled
    for i in range(rgb.shape[0]):
        for j in range(rgb.shape[1]):
            r = np.float32(rgb[i, j, 0])
            g = np.float32(rgb[i, j, 1])
            b = np.float32(rgb[i, j, 2])
            y = np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b
            cb = (np.float32(-0.168735892) * r - np.float32(0.331264108) * g
                  + np.float32(0.5) * b + np.float32(128.0))
            cr = (np.float32(0.5) * r - np.float32(0.418687589) * g
                  - np.float32(0.081312411) * b + np.float32(128.0))
            # libjpeg rounds with +0.5 and truncates; results lie in [0, 255]
            out[0, i, j] = min(255, max(0, int(y + np.float32(0.5))))
            out[1, i, j] = min(255, max(0, int(cb + np.float32(0.5))))
            out[2, i, j] = min(255, max(0, int(cr + np.float32(0.5))))


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB → uint8 ``(3, H, W)`` Y, Cb, Cr (JFIF, full range)."""
    out = np.empty((3, *rgb.shape[:2]), dtype=np.uint8)
    _rgb_to_ycbcr(np.ascontiguousarray(rgb), out)
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
