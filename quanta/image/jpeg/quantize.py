"""Quantization of DCT coefficients — a per-frequency grid from :mod:`quanta.core`.

Each of the 64 frequencies is one channel of a symmetric 11-bit grid whose scale is the
table entry: codes ``round(F / Q)`` in ``[-1024, 1023]`` (the baseline range of AC values).
"""

from __future__ import annotations

import numpy as np

from quanta.core.grid import Grid, choose_qparams, dequantize, quantize

#: one scale per frequency (axis 1 of the ``(blocks, 64)`` coefficient array)
COEF_GRID = Grid(bits=11, signed=True, symmetric=True, granularity="channel", axis=1)


def quantize_coefs(coefs: np.ndarray, table: np.ndarray) -> np.ndarray:
    """int16 codes of ``coefs`` (``(N, 64)``, natural order) for a natural-order ``table``."""
    qp = choose_qparams(coefs[:1], COEF_GRID, method="given", scale=table.astype(np.float32))
    return quantize(coefs, qp).astype(np.int16)


def dequantize_coefs(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Reconstructed coefficients (float32) — what a decoder sees."""
    qp = choose_qparams(codes[:1].astype(np.float32), COEF_GRID, method="given",
                        scale=table.astype(np.float32))
    return dequantize(codes, qp)
