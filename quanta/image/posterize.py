"""Image bit-depth reduction — the image twin of audio requantization, on the same core.

Each channel goes to ``2**bits`` levels spread evenly over 0..255 (a core grid with scale
``255 / (2**bits − 1)``), rounded plainly, with ordered (Bayer) dither, or with Floyd–Steinberg
error diffusion (:func:`quanta.core.feedback.error_diffusion`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quanta.core._checks import check_bits, check_choice
from quanta.core.feedback import error_diffusion
from quanta.core.grid import Grid, QParams, dequantize, quantize
from quanta.errors import ConfigError
from quanta.reports import Report

#: How each pixel's error is handled: plain rounding, ordered (Bayer) dither — a rounding
#: rule — or Floyd–Steinberg error diffusion — an error placement.
METHODS = ("none", "ordered", "fs")


def bayer(n: int = 8) -> np.ndarray:
    """The ``n×n`` Bayer index matrix (n a power of two), values 0..n²−1."""
    m = np.zeros((1, 1), dtype=np.int64)
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m


def posterize(img: np.ndarray, bits: int, *, dither: str = "none") -> np.ndarray:
    """``img`` (uint8, gray or RGB) reduced to ``2**bits`` levels per channel (1..7 bits)."""
    check_bits(bits, 1, 7, "bits per channel")
    check_choice(dither, METHODS, "dither")
    x = np.asarray(img, dtype=np.float64)
    grid = Grid(bits=bits, signed=False, symmetric=False)
    step = 255.0 / grid.qmax
    qp = QParams.given(grid, scale=step, zero_point=0.0)
    if dither == "fs":
        codes = error_diffusion(x / step, qmin=grid.qmin, qmax=grid.qmax)
    else:
        if dither == "ordered":
            b = bayer(8)
            t = (b + 0.5) / 64.0 - 0.5  # thresholds in (-0.5, 0.5) LSB
            h, w = x.shape[:2]
            tile = np.tile(t, (h // 8 + 1, w // 8 + 1))[:h, :w]
            x = x + (tile[..., None] if x.ndim == 3 else tile) * step
        codes = quantize(x, qp)
    return np.clip(np.rint(dequantize(np.asarray(codes), qp)), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PosterizeReport(Report):
    """A posterized PNG: depth, method, distinct levels used and PSNR against the input."""

    output: str
    bits: int
    dither: str
    levels_per_channel: int
    psnr_db: float
    notes: list[str]


def posterize_file(src: Path | str, dst: Path | str, *, bits: int, dither: str = "fs") -> PosterizeReport:
    """Posterize the image ``src`` into the PNG ``dst`` (the ICC profile is kept)."""
    from PIL import Image

    from quanta.image.io import load_image
    from quanta.image.metrics import psnr_rgb_db

    if Path(dst).suffix.lower() != ".png":
        raise ConfigError(f"{dst}: posterize writes PNG (use a .png name)")
    img, icc, notes = load_image(src)
    out = posterize(img, bits, dither=dither)
    Image.fromarray(out).save(dst, format="PNG", icc_profile=icc)
    return PosterizeReport(str(dst), bits, dither, len(np.unique(out)) if out.size else 0,
                           psnr_rgb_db(img, out), notes)
