"""Colour conversion and chroma subsampling, as libjpeg does them.

RGB → YCbCr is JFIF's BT.601 full-range transform; samples are rounded to 8-bit integers
(libjpeg's encoder works on integer samples too). Subsampling averages 2×1 or 2×2 cells
with libjpeg's alternating rounding bias (``jcsample.c``), after replicating the right and
bottom edges to whole MCUs.
"""

from __future__ import annotations

from functools import partial
from itertools import pairwise

import numpy as np

from quanta.errors import ConfigError
from quanta.image.jpeg._dispatch import kernels as _kernels
from quanta.image.jpeg._parallel import run_all

#: chroma subsampling mode → (horizontal, vertical) luma sampling factors
SUBSAMPLING = {"4:4:4": (1, 1), "4:2:2": (2, 1), "4:2:0": (2, 2)}


def rgb_to_ycbcr(rgb: np.ndarray, height: int | None = None, width: int | None = None,
                 threads: int = 1) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB → uint8 ``(3, height, width)`` Y, Cb, Cr (JFIF, full range); a
    larger ``height``/``width`` (default: the image's) repeats the last row and column.
    threads: horizontal strips converted in parallel (the kernel releases the GIL)."""
    h, w = rgb.shape[:2]
    height, width = height or h, width or w
    if height < h or width < w:
        raise ConfigError("the padded size cannot be smaller than the image")
    out = np.empty((3, height, width), dtype=np.uint8)
    rgb = np.ascontiguousarray(rgb)
    cuts = np.linspace(0, h, max(1, min(threads, h)) + 1).round().astype(int)
    run_all([partial(_kernels.rgb_to_ycbcr, rgb, out, int(a), int(b)) for a, b in pairwise(cuts)],
            len(cuts) - 1)  # the strip that ends the image also fills the padding rows
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
    out = _subsampled(plane, h, v)
    _kernels.downsample(np.ascontiguousarray(plane, dtype=np.uint8), h, v, out)
    return out


def _subsampled(plane: np.ndarray, h: int, v: int) -> np.ndarray:
    """The empty output plane of an ``h×v`` subsampling (2×1 or 2×2)."""
    if (h, v) not in ((2, 1), (2, 2)):
        raise ConfigError(f"unsupported sampling {h}x{v}")
    rows, cols = plane.shape
    return np.empty((rows // v, cols // h), dtype=np.uint8)


def upsample_fancy(plane: np.ndarray, h: int, v: int) -> np.ndarray:
    """What a decoder shows of a subsampled plane: libjpeg's "fancy" (triangle) upsampling,
    each output sample ¾ its own cell and ¼ the next cell toward it, edges replicated (float)."""
    out = np.asarray(plane, dtype=np.float32)
    for axis, factor in ((1, h), (0, v)):
        if factor == 2:
            n = out.shape[axis]
            prev = np.take(out, np.r_[0, 0:n - 1], axis=axis)
            nxt = np.take(out, np.r_[1:n, n - 1], axis=axis)
            pair = np.stack([0.75 * out + 0.25 * prev, 0.75 * out + 0.25 * nxt], axis=axis + 1)
            shape = list(out.shape)
            shape[axis] *= 2
            out = pair.reshape(shape)
    return out


def downsample_sharp(plane: np.ndarray, h: int, v: int, iterations: int = 3) -> np.ndarray:
    """Subsampled samples chosen so that the decoder's fancy upsampling of them
    (:func:`upsample_fancy`) comes close to ``plane``: box averages refined by back-projecting
    the upsampled error ``iterations`` times (Landweber steps toward least squares), rounded to
    8 bits; compiled. Sides: multiples of ``h``, ``v``."""
    if (h, v) == (1, 1):
        return plane
    out = _subsampled(plane, h, v)
    _kernels.downsample_fit(np.ascontiguousarray(plane, dtype=np.uint8), h, v, iterations, out)
    return out


#: Subsampling's error (mean variance of Cb and Cr inside 2×2 cells) over the chroma
#: quantization's (``Q²/12`` of the chroma table's six lowest frequencies) above which "auto"
#: keeps full chroma resolution: the 24 Kodak photographs stay under 5.2 up to quality 90
#: (4:2:0 is smaller at equal quality there), coloured text and line art exceed 14 from quality 50.
AUTO_RATIO = 8.0


def choose_subsampling(rgb: np.ndarray, chroma_table: np.ndarray,
                       ycc: np.ndarray | None = None) -> tuple[str, float]:
    """"4:4:4" or "4:2:0" for an RGB image whose chroma is quantized with ``chroma_table``
    (natural order), and the ratio of subsampling's error to quantization's that decided it.
    ycc: the image's :func:`rgb_to_ycbcr` planes when already converted (padding allowed)."""
    from quanta.image.jpeg.tables import ZIGZAG

    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    if h == 0 or w == 0:
        return "4:4:4", float("inf")
    if ycc is None:
        ycc = rgb_to_ycbcr(np.ascontiguousarray(rgb[:h, :w]))
    spread = _kernels.cell_spread(np.ascontiguousarray(ycc), h, w)
    q = float(np.mean(np.asarray(chroma_table, dtype=np.float64)[ZIGZAG[:6]]))
    ratio = spread / (q * q / 12.0)
    return ("4:4:4" if ratio > AUTO_RATIO else "4:2:0"), ratio
