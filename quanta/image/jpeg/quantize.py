"""Quantization of DCT coefficients — a per-frequency grid from :mod:`quanta.core`.

Each of the 64 frequencies is one channel of a symmetric 11-bit grid whose scale is the
table entry: codes ``round(F / Q)`` in ``[-1024, 1023]`` (the baseline range of AC values).
"""

from __future__ import annotations

import numpy as np

from quanta.core.grid import Grid, QParams, quantize

#: one scale per frequency (axis 1 of the ``(blocks, 64)`` coefficient array)
COEF_GRID = Grid(bits=11, signed=True, symmetric=True, granularity="channel", axis=1)


def coef_qparams(table: np.ndarray) -> QParams:
    """The grid of a natural-order quantization ``table`` (64 entries)."""
    return QParams.given(COEF_GRID, scale=np.asarray(table, dtype=np.float32), shape=(1, 64))


def quantize_coefs(coefs: np.ndarray, table: np.ndarray) -> np.ndarray:
    """int16 codes of ``coefs`` (``(N, 64)``, natural order) for a natural-order ``table``."""
    return quantize(coefs, coef_qparams(table)).astype(np.int16)
