"""Quantization of DCT coefficients — a per-frequency grid from :mod:`quanta.core`.

Each of the 64 frequencies is one channel of a symmetric 11-bit grid whose scale is the
table entry: codes ``round(F / Q)`` in ``[-1024, 1023]`` (the baseline range of AC values).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from quanta.core.grid import Grid, QParams, quantize
from quanta.image.jpeg import dct
from quanta.image.jpeg._dispatch import kernels as _kernels
from quanta.image.jpeg.tables import ZIGZAG

#: one scale per frequency (axis 1 of the ``(blocks, 64)`` coefficient array)
COEF_GRID = Grid(bits=11, signed=True, symmetric=True, granularity="channel", axis=1)


def coef_qparams(table: np.ndarray) -> QParams:
    """The grid of a natural-order quantization ``table`` (64 entries)."""
    return QParams.given(COEF_GRID, scale=np.asarray(table, dtype=np.float32), shape=(1, 64))


def quantize_coefs(coefs: np.ndarray, table: np.ndarray) -> np.ndarray:
    """int16 codes of ``coefs`` (``(N, 64)``, natural order) for a natural-order ``table``."""
    return quantize(coefs, coef_qparams(table)).astype(np.int16)


_ORDER = np.ascontiguousarray(ZIGZAG, dtype=np.intp)


def _prepare(plane: np.ndarray, table: np.ndarray, out: np.ndarray | None,
             rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid's 64 scales (float32), the output array and each block's destination row,
    checked for the compiled passes."""
    h, w = plane.shape
    n = (h // 8) * (w // 8)
    if out is None:
        out = np.empty((n, 64), dtype=np.int16)
    dest = np.arange(n, dtype=np.intp) if rows is None else np.ascontiguousarray(rows, dtype=np.intp)
    if dest.shape != (n,) or out.dtype != np.int16 or out.ndim != 2 or out.shape[1] != 64 or (
            n and not 0 <= dest.min() <= dest.max() < out.shape[0]):
        raise ValueError("rows must give each block a row of out, an int16 (N, 64) array")
    return _scales(np.ascontiguousarray(table).tobytes(), np.asarray(table).dtype.str), out, dest


@functools.lru_cache(maxsize=64)
def _scales(table: bytes, dtype: str) -> np.ndarray:
    """The grid's 64 scales (float32, read-only) of the natural-order table held in ``table``
    (its bytes, of ``dtype``): :func:`coef_qparams` once per table, not once per plane."""
    qp = coef_qparams(np.frombuffer(table, dtype=dtype))
    scale = np.ascontiguousarray(np.broadcast_to(qp.scale, (1, 64)).ravel(), dtype=np.float32)
    scale.flags.writeable = False
    return scale


def transform_quantize(plane: np.ndarray, table: np.ndarray, out: np.ndarray | None = None,
                       rows: np.ndarray | None = None) -> np.ndarray:
    """Zigzag-ordered int16 codes ``(blocks, 64)`` of a uint8 plane (sides multiples of 8):
    ``quantize_coefs(dct.forward(plane), table)[:, ZIGZAG]`` in one compiled pass, on the same
    grid (its scales and code range come from :func:`coef_qparams`) and to the same codes.

    out, rows: write block ``b`` (raster order) to ``out[rows[b]]`` instead (the encoder puts
    every component's blocks straight into scan order); returns ``out``.
    """
    scale, out, dest = _prepare(plane, table, out, rows)
    _kernels.forward_quantize(np.ascontiguousarray(plane), dct.C32, scale, float(COEF_GRID.qmin),
                              float(COEF_GRID.qmax), _ORDER, dest, out)
    return out


@dataclass(frozen=True)
class Trellis:
    """The rate–distortion rounding rule's settings (see :func:`transform_trellis`).

    lam: bits one squared quantization step of error is worth (larger: closer to nearest
    rounding); masking: the mean squared AC coefficient (orthonormal DCT, 8-bit samples) at
    which a block's λ halves (0: no adaptation); high_weight: distortion weight of the highest
    zigzag frequency relative to DC's neighbours (linear in between).
    """

    lam: float = 1.0
    masking: float = 0.0
    high_weight: float = 1.0

    def weights(self) -> np.ndarray:
        return _weights(self.high_weight)


@functools.cache
def _weights(high: float) -> np.ndarray:
    """The 64 distortion weights from 1 to ``high`` (read-only: shared between calls)."""
    w = np.linspace(1.0, high, 64, dtype=np.float32)
    w.flags.writeable = False
    return w


def transform_trellis(plane: np.ndarray, table: np.ndarray, ac_bits: np.ndarray,
                      rule: Trellis = Trellis(), out: np.ndarray | None = None,
                      rows: np.ndarray | None = None) -> np.ndarray:
    """:func:`transform_quantize` with rate–distortion optimal AC codes: each block's codes
    minimise Huffman bits + λ·(squared error in quantization steps), the bits read from
    ``ac_bits`` (256 code lengths of the AC table the block is written with, in bits; absent
    symbols given a finite cost by the caller). DC is rounded to nearest."""
    bits = np.ascontiguousarray(ac_bits, dtype=np.float32)
    if bits.shape != (256,):
        raise ValueError("ac_bits must hold 256 code lengths")
    scale, out, dest = _prepare(plane, table, out, rows)
    _kernels.forward_trellis(np.ascontiguousarray(plane), dct.C32, scale, float(COEF_GRID.qmax), _ORDER,
                             dest, bits, rule.weights(), float(rule.lam), float(rule.masking), out)
    return out
