"""Measures of what quantization cost: error power, SNR, PSNR, theory, and storage."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quanta.core._checks import check_same_shape
from quanta.core.grid import QParams
from quanta.errors import ConfigError


def _pair(ref: Any, test: Any) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(ref, dtype=np.float64)
    t = np.asarray(test, dtype=np.float64)
    check_same_shape(r, t)
    if r.size == 0:
        raise ConfigError("cannot measure empty arrays")
    return r, t


def db_power(power: float) -> float:
    """``10·log10(power)`` in dB; ``-inf`` for 0 and ``+inf`` for an infinite ratio (the one
    rule every medium uses; reports turn infinities into JSON ``null``)."""
    if power <= 0:
        return -math.inf
    return math.inf if math.isinf(power) else 10.0 * math.log10(power)


def db_amplitude(amplitude: float) -> float:
    """``20·log10(amplitude)`` in dB (dBFS for amplitudes re full scale); ``-inf`` for 0."""
    return db_power(float(amplitude) ** 2) if amplitude > 0 else -math.inf


def mse(ref: Any, test: Any) -> float:
    """Mean squared error (in the inputs' units squared)."""
    r, t = _pair(ref, test)
    return float(np.mean((t - r) ** 2))


def snr_db(ref: Any, test: Any) -> float:
    """Signal-to-noise ratio in dB: signal power of ``ref`` over the power of ``test - ref``."""
    r, t = _pair(ref, test)
    noise = float(np.sum((t - r) ** 2))
    signal = float(np.sum(r ** 2))
    return db_power(math.inf if noise == 0 else signal / noise)


def psnr_db(ref: Any, test: Any, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB for signals whose full scale is ``peak``."""
    m = mse(ref, test)
    return db_power(math.inf if m == 0 else peak * peak / m)


def sqnr_theory_db(bits: int) -> float:
    """SNR of a full-scale sine on an ideal ``bits``-bit quantizer: 6.02·N + 1.76 dB."""
    return 20.0 * math.log10(2.0) * bits + 10.0 * math.log10(1.5)


def storage_bits(n_elements: int, bits: int, n_blocks: int = 1, *, scale_bits: int = 16,
                 zero_bits: int = 0) -> int:
    """Total bits to store ``n_elements`` codes plus one scale (and zero point) per block."""
    return n_elements * bits + n_blocks * (scale_bits + zero_bits)


def bits_per_element(qp: QParams, *, scale_bits: int = 16, zero_bits: int | None = None) -> float:
    """Bits per element of a quantized array, scale and zero-point overhead included.

    ``zero_bits`` defaults to 0 for symmetric grids (the zero point is implied) and to
    ``scale_bits`` for asymmetric ones.
    """
    n = int(np.prod(qp.shape)) if qp.shape else 1
    blocks = int(np.prod(np.shape(qp.scale))) if np.ndim(qp.scale) else 1
    zb = (0 if qp.grid.symmetric else scale_bits) if zero_bits is None else zero_bits
    return storage_bits(n, qp.grid.bits, blocks, scale_bits=scale_bits, zero_bits=zb) / n
