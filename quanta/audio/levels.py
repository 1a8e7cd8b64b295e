"""Audio's grid, built through the core: N-bit codes with full scale 1.0 ↔ ``2**(N-1)``.

Codes span ``[-2**(N-1), 2**(N-1)-1]`` (the negative extreme is usable): a signed, asymmetric
core :class:`~quanta.core.grid.Grid` (asymmetric because 1-bit audio is allowed and a symmetric
grid needs two bits) with scale ``2**-(N-1)`` and zero point 0.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from quanta.core._checks import check_bits as _check
from quanta.core.grid import Grid, QParams

MIN_BITS, MAX_BITS = 1, 24


def check_bits(bits: int) -> int:
    """A target depth in 1..24 bits."""
    return _check(bits, MIN_BITS, MAX_BITS, "bit depth")


@lru_cache(maxsize=64)
def full_scale(bits: int) -> QParams:
    """The ``bits``-bit audio grid (1..32 bits: files are read up to 32-bit precision)."""
    return QParams.given(Grid(bits=bits, signed=True, symmetric=False), scale=2.0 ** -(bits - 1),
                         zero_point=0.0)


def codes_per_unit(bits: int) -> float:
    """Codes per 1.0 of full scale: ``2**(bits-1)``."""
    return 1.0 / float(full_scale(bits).scale)


def fits_grid(x: np.ndarray, bits: int) -> bool:
    """True when every sample already lies on the ``bits``-bit grid (and inside its range)."""
    g = full_scale(bits).grid
    with np.errstate(over="ignore", invalid="ignore"):  # huge samples simply do not fit
        y = x * codes_per_unit(bits)
    return bool(np.array_equal(y, np.rint(y)) and (y.size == 0 or (y.min() >= g.qmin and y.max() <= g.qmax)))


def effective_bits(x: np.ndarray, max_bits: int = 32) -> int | None:
    """Smallest N ≤ ``max_bits`` such that every sample is a multiple of ``2**-(N-1)``.

    ``None`` when no such N exists (float audio with finer detail).
    """
    if x.size == 0:
        return 1
    for n in range(1, max_bits + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            y = x * codes_per_unit(n)
        if np.array_equal(y, np.round(y)):
            return n
    return None


def clip_top(bits: int) -> float:
    """The largest sample value of the ``bits``-bit grid, ``1 − 2**-(bits-1)``."""
    qp = full_scale(bits)
    return qp.grid.qmax * float(qp.scale)
