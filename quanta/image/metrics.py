"""Image quality and rate measures: PSNR (RGB and luma), SSIM, SSIMULACRA2, bits per pixel,
and the Bjøntegaard delta rate between two rate–distortion curves."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quanta.core._checks import check_same_shape
from quanta.core.measures import psnr_db
from quanta.errors import ConfigError, InputError
from quanta.reports import Report


def _pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, t = np.asarray(ref), np.asarray(test)
    check_same_shape(r, t, "images")
    return r, t


def as_rgb(img: np.ndarray) -> np.ndarray:
    """A gray ``(H, W)`` image as ``(H, W, 3)``; RGB passes through."""
    return img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)


def luma(img: np.ndarray) -> np.ndarray:
    """BT.601 luma (float64, 0..255) of an RGB image; gray images pass through."""
    a = np.asarray(img, dtype=np.float64)
    return a if a.ndim == 2 else a @ np.array([0.299, 0.587, 0.114])


def psnr_rgb_db(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR over all samples of all channels, peak 255 (dB)."""
    return psnr_db(*_pair(ref, test), peak=255.0)


def psnr_luma_db(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR of BT.601 luma, peak 255 (dB)."""
    r, t = _pair(ref, test)
    return psnr_db(luma(r), luma(t), peak=255.0)


def ssim(ref: np.ndarray, test: np.ndarray) -> float:
    """SSIM (scikit-image, Gaussian-free default window, data range 255), mean over channels."""
    from skimage.metrics import structural_similarity

    r, t = _pair(ref, test)
    return float(structural_similarity(r, t, data_range=255,
                                       channel_axis=-1 if r.ndim == 3 else None))


def ssimulacra2(ref: np.ndarray, test: np.ndarray) -> float:
    """SSIMULACRA2 score (the PyPI ``ssimulacra2`` package; 100 = identical, higher is better)."""
    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    r, t = _pair(ref, test)
    with tempfile.TemporaryDirectory() as d:
        pr, pt = Path(d) / "ref.png", Path(d) / "test.png"
        Image.fromarray(r).save(pr)
        Image.fromarray(t).save(pt)
        return float(compute_ssimulacra2(str(pr), str(pt)))


def bits_per_pixel(n_bytes: int, width: int, height: int) -> float:
    """File size in bits per pixel."""
    return 8.0 * n_bytes / (width * height)


@dataclass(frozen=True)
class CompareReport(Report):
    """Quality of a distorted image against its reference (dB, SSIM, SSIMULACRA2, bpp)."""

    psnr_db: float
    psnr_luma_db: float
    ssim: float
    bpp: float | None = None
    ssimulacra2: float | None = None


def compare(ref: np.ndarray, test: np.ndarray, *, n_bytes: int | None = None,
            with_ssimulacra2: bool = True) -> CompareReport:
    """Every metric of ``test`` against ``ref``; gray against colour is compared as colour.

    n_bytes: the distorted file's size, for bits per pixel.
    """
    if ref.ndim != test.ndim:
        ref, test = as_rgb(ref), as_rgb(test)
    if ref.shape != test.shape:
        raise InputError(f"sizes differ: {ref.shape[1]}×{ref.shape[0]} vs {test.shape[1]}×{test.shape[0]}")
    h, w = ref.shape[:2]
    return CompareReport(
        psnr_db=psnr_rgb_db(ref, test), psnr_luma_db=psnr_luma_db(ref, test), ssim=ssim(ref, test),
        bpp=None if n_bytes is None else bits_per_pixel(n_bytes, w, h),
        ssimulacra2=ssimulacra2(as_rgb(ref), as_rgb(test)) if with_ssimulacra2 else None)


def bd_rate(rate_ref: list[float], quality_ref: list[float], rate_test: list[float],
            quality_test: list[float]) -> float:
    """Bjøntegaard delta rate (%): the test curve's average bit-rate change at equal quality.

    VCEG-M33's method: fit log10(rate) as a cubic polynomial of quality for each curve and
    compare their integrals over the overlapping quality range. Negative: the test saves bits.
    """
    qr, qt = np.asarray(quality_ref, float), np.asarray(quality_test, float)
    lr, lt = np.log10(np.asarray(rate_ref, float)), np.log10(np.asarray(rate_test, float))
    if min(qr.size, qt.size) < 4:
        raise ConfigError("BD-rate needs at least 4 points per curve")
    pr, pt = np.polyfit(qr, lr, 3), np.polyfit(qt, lt, 3)
    lo, hi = max(qr.min(), qt.min()), min(qr.max(), qt.max())
    if hi <= lo:
        raise ConfigError("the curves' quality ranges do not overlap")
    ir, it = np.polyint(pr), np.polyint(pt)
    avg = ((np.polyval(it, hi) - np.polyval(it, lo)) - (np.polyval(ir, hi) - np.polyval(ir, lo))) \
        / (hi - lo)
    return float((10**avg - 1) * 100)
