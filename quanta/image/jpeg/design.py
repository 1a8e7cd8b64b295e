"""Per-image quantization tables: a preset's shape adjusted, band by band, to the image.

The cost of a table ``T`` on one image is ``J = bits + λ · D``: the bits of a baseline scan of
the blocks rounded on ``T`` (counted with optimal Huffman tables for those very blocks), and the
squared error of every coefficient measured in steps of the *preset's* table at the same
quality (``D = Σ ((F − c·T) / P)²``), so the preset's contrast-sensitivity weighting is the
yardstick and ``T`` may depart from it wherever the image makes that pay. ``λ`` is the local
slope of the preset's own rate–distortion curve (bits saved per unit of ``D`` when every entry
grows by the same factor), so the search reshapes the table at about the quality asked for
instead of sliding to another quality.

Coordinate descent: the 64 frequencies form :data:`BANDS` (DC and six zigzag bands); each pass
tries each band's entries scaled by each factor of :data:`FACTORS` and keeps what lowers ``J``.
"""

from __future__ import annotations

import numpy as np

from quanta.core.grid import dequantize
from quanta.image.jpeg import dct, entropy
from quanta.image.jpeg.quantize import coef_qparams, quantize_coefs
from quanta.image.jpeg.tables import ZIGZAG

#: zigzag positions of each band: DC, then the AC coefficients from low to high frequency
BANDS: tuple[tuple[int, int], ...] = ((0, 1), (1, 3), (3, 6), (6, 10), (10, 21), (21, 36), (36, 64))
FACTORS = (0.8, 0.9, 1.12, 1.25)


def rate_distortion(coefs: np.ndarray, table: np.ndarray, yardstick: np.ndarray) -> tuple[int, float]:
    """Bits and ``D`` of natural-order DCT ``coefs`` ``(N, 64)`` rounded on ``table``."""
    codes = quantize_coefs(coefs, table)  # the coefficient grid of quanta.core
    err = (coefs - dequantize(codes, coef_qparams(table))) / np.asarray(yardstick, dtype=np.float32)
    bits = entropy.scan_bits(np.ascontiguousarray(codes[:, ZIGZAG]))
    return bits, float(np.sum(err.astype(np.float64) ** 2))


def _scaled(table: np.ndarray, f: float) -> np.ndarray:
    return np.clip(np.rint(np.asarray(table) * f), 1, 255).astype(np.int32)


def slope(coefs: np.ndarray, preset: np.ndarray) -> float:
    """Bits per unit of ``D`` along the preset's own curve (its entries scaled ×0.9 and ×1.12)."""
    (r0, d0), (r1, d1) = (rate_distortion(coefs, _scaled(preset, f), preset) for f in (0.9, 1.12))
    return (r0 - r1) / (d1 - d0) if d1 > d0 and r0 > r1 else 0.0


def optimize_table(planes: list[np.ndarray], preset: np.ndarray, passes: int = 2,
                   factors: tuple[float, ...] = FACTORS) -> np.ndarray:
    """The table (natural order, 1..255) of least ``J`` over the blocks of ``planes`` (uint8,
    sides multiples of 8), starting from ``preset`` (already scaled to the quality)."""
    coefs = np.concatenate([dct.forward(p) for p in planes])
    best = np.asarray(preset, dtype=np.int32).copy()
    lam = slope(coefs, best)
    if lam <= 0:
        return best

    def table_cost(table: np.ndarray) -> float:
        bits, dist = rate_distortion(coefs, table, preset)
        return bits + lam * dist

    cost = table_cost(best)
    natural = [ZIGZAG[a:b] for a, b in BANDS]
    for _ in range(passes):
        improved = False
        for idx in natural:
            for f in factors:
                trial = best.copy()
                trial[idx] = _scaled(best[idx], f)
                if np.array_equal(trial, best):
                    continue
                c = table_cost(trial)
                if c < cost:
                    best, cost, improved = trial, c, True
        if not improved:
            break
    return best
