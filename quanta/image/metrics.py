"""Image quality and rate measures: PSNR (RGB and luma), SSIM, SSIMULACRA2, bits per pixel,
and the Bjøntegaard delta rate between two rate–distortion curves."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from quanta.core.measures import psnr_db
from quanta.errors import ConfigError


def _pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, t = np.asarray(ref), np.asarray(test)
    if r.shape != t.shape:
        raise ConfigError(f"images differ in shape: {r.shape} vs {t.shape}")
    return r, t


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
