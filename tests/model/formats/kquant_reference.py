"""numpy oracle of :func:`quanta.model.formats.kquant.refine` (the compiled factor search): the
same candidates, scored on whole arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from quanta.model.formats.kquant import factors


def refine_reference(x: np.ndarray, weights: np.ndarray | None, scale: np.ndarray, zero: np.ndarray | None,
                     per: int, scale_range: tuple[int, int], min_top: int, qmax: int,
                     reach: int = 2) -> tuple[np.ndarray, Any]:
    """Scales (and zero points) on the super-block's grid (:func:`on_grid`), each group's factors
    moved by up to ``reach`` steps where that lowers its (``weights``-weighted) squared error of
    round to nearest — with signed factors on a symmetric grid, also from the factor of the
    opposite sign (ggml's Q3_K and Q6_K do the same) —: ``d`` and ``dmin`` stay, so the grid
    stays the one the block stores.
    x: the weights ``(rows, groups · group)``."""
    lo, hi = scale_range
    rows = scale.shape[0]
    s = np.asarray(scale, np.float32).reshape(rows, -1, per)
    d, f = factors(s, lo, hi)
    xb = np.asarray(x, np.float32).reshape(rows, s.shape[1], per, -1)
    wb = None if weights is None else np.asarray(weights, np.float32).reshape(xb.shape)
    if min_top:
        m = s * np.asarray(zero, np.float32).reshape(s.shape)
        dm, g = factors(m, 0, min_top, zero_ok=True, tol=1e-5)
    else:
        dm, g = np.zeros_like(d), np.zeros_like(f)
    z0 = None if min_top else np.asarray(zero, np.float32).reshape(s.shape)
    best = (None, f, g)
    steps = range(-reach, reach + 1)
    starts = [f]
    if not min_top and lo < 0:  # signed factors of a symmetric grid: the scale's sign flipped puts a
        # group's largest weight on the longer end (code 0, −zero steps, instead of qmax − zero)
        zl = float(z0.flat[0])
        starts.append(-np.rint(f * (qmax - zl) / zl))
    for f0, df in ((f0, df) for f0 in starts for df in steps):
        for dg in steps if min_top else (0,):
            f2 = np.clip(f0 + df, lo, hi)
            f2 = np.where(f2 != 0, f2, f)
            g2 = np.clip(g + dg, 0, min_top)
            s2 = d[..., None] * f2
            z2 = (dm[..., None] * g2) / s2 if min_top else z0
            q = np.clip(np.rint(xb / s2[..., None] + z2[..., None]), 0, qmax)
            e = (s2[..., None] * (q - z2[..., None]) - xb) ** 2
            err = (e if wb is None else e * wb).sum(-1)
            if best[0] is None:
                best = (err, f2, g2)
                continue
            better = err < best[0]
            best = (np.where(better, err, best[0]), np.where(better, f2, best[1]),
                    np.where(better, g2, best[2]))
    _, f, g = best
    s2 = (d[..., None] * f).reshape(scale.shape)
    if not min_top:
        return s2, zero
    return s2, ((dm[..., None] * g).reshape(scale.shape) / s2)
