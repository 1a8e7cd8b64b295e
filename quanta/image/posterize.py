"""Image bit-depth reduction — the image twin of audio requantization, on the same core.

Each channel goes to ``2**bits`` levels spread evenly over 0..255 (a core grid with scale
``255 / (2**bits − 1)``), rounded plainly, with ordered (Bayer) dither, or with Floyd–Steinberg
error diffusion (:func:`quanta.core.feedback.error_diffusion`).
"""

from __future__ import annotations

import numpy as np

from quanta.core.feedback import error_diffusion
from quanta.core.grid import Grid, choose_qparams, dequantize, quantize
from quanta.errors import ConfigError

METHODS = ("none", "ordered", "fs")


def bayer(n: int = 8) -> np.ndarray:
    """The ``n×n`` Bayer index matrix (n a power of two), values 0..n²−1."""
    m = np.zeros((1, 1), dtype=np.int64)
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m


def posterize(img: np.ndarray, bits: int, *, dither: str = "none") -> np.ndarray:
    """``img`` (uint8, gray or RGB) reduced to ``2**bits`` levels per channel (1..7 bits)."""
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 7:
        raise ConfigError(f"posterize takes 1..7 bits per channel, got {bits!r}")
    if dither not in METHODS:
        raise ConfigError(f"unknown dither {dither!r} (choose from {', '.join(METHODS)})")
    x = np.asarray(img, dtype=np.float64)
    levels = (1 << bits) - 1
    grid = Grid(bits=bits, signed=False, symmetric=False)
    qp = choose_qparams(np.zeros(1), grid, method="given", scale=255.0 / levels, zero_point=0.0)
    step = 255.0 / levels
    if dither == "fs":
        codes = error_diffusion(x / step, qmin=0, qmax=levels)
    else:
        if dither == "ordered":
            b = bayer(8)
            t = (b + 0.5) / 64.0 - 0.5  # thresholds in (-0.5, 0.5) LSB
            h, w = x.shape[:2]
            tile = np.tile(t, (h // 8 + 1, w // 8 + 1))[:h, :w]
            x = x + (tile[..., None] if x.ndim == 3 else tile) * step
        codes = quantize(x, qp)
    return np.clip(np.rint(dequantize(np.asarray(codes), qp)), 0, 255).astype(np.uint8)
