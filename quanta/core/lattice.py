"""Lattice codebooks: vectors of values rounded together onto a fixed set of points.

A :class:`Lattice` keeps ``dim`` magnitudes per vector, each one of a few ``levels``, but only
the combinations listed in ``points`` (llama.cpp's IQ2/IQ3 grids: 256 to 1024 of the 3⁸ or 8⁴
combinations) — fewer bits per value than the levels alone would take. Signs are kept apart,
one per value, either free or (``parity``) with an even count of negatives in each run of
``parity`` values, so that one sign in each run need not be stored.

The question "which levels" is answered per vector: :func:`fit` searches each sub-block's scale
and every vector's point for the least (weighted) squared error, :func:`assign` finds the points
at given scales. Each value is first rounded to its nearest level; when that vector is a point
it is the nearest point (the error is a sum over values), else the nearest of the
:data:`NEIGHBOURS` points closest to it is taken. The loops run in a compiled kernel
(:func:`quanta.core._kernels.lattice_fit`) over slices of sub-blocks on this process's threads;
the candidate lists are built the first time a lattice is used (a fraction of a second), never at
import.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from quanta.errors import ConfigError

#: points listed for a vector whose nearest levels are not a point: the closest ones to it
NEIGHBOURS = 16
#: sub-blocks per call of the compiled search on one thread
FIT_BLOCKS = 4096
#: the scales tried per sub-block by :func:`fit`, relative to the one that puts its largest
#: magnitude on the top level
RATIOS = np.linspace(0.8, 1.25, 10)


class Lattice:
    """``points`` (``N × dim`` indices into ``levels``, positive and increasing) and the sign
    rule (``parity``: 0, every sign free; P, an even count of negatives in each run of P)."""

    def __init__(self, levels: np.ndarray, points: np.ndarray, parity: int = 0) -> None:
        self.levels = np.asarray(levels, np.float32)
        self.points = np.asarray(points, np.int64)
        self.parity = int(parity)
        if self.levels.ndim != 1 or np.any(np.diff(self.levels) <= 0) or self.levels[0] <= 0:
            raise ConfigError("a lattice's levels must be positive and increasing")
        if self.points.ndim != 2 or self.points.min() < 0 or self.points.max() >= len(self.levels):
            raise ConfigError("a lattice's points must index its levels")

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    @cached_property
    def values(self) -> np.ndarray:
        """The points' magnitudes, ``N × dim`` float32 (contiguous: the kernel reads it)."""
        return np.ascontiguousarray(self.levels[self.points])

    @cached_property
    def _mids(self) -> np.ndarray:
        """The midpoints between neighbouring levels (a value's nearest level is counted by them)."""
        return ((self.levels[1:] + self.levels[:-1]) / 2).astype(np.float32)

    def keys(self, level_idx: np.ndarray) -> np.ndarray:
        """The key of vectors of level indices (``… × dim``): ``Σ l_j · K^j``."""
        k = len(self.levels)
        return (np.asarray(level_idx, np.int64) * k ** np.arange(self.dim)).sum(-1)

    @cached_property
    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(key → point or −1; candidate starts per key; candidates), for the kernel."""
        k, dim = len(self.levels), self.dim
        every = (np.arange(k**dim)[:, None] // k ** np.arange(dim)) % k
        table = np.full(k**dim, -1, np.int32)
        table[self.keys(self.points)] = np.arange(len(self.points), dtype=np.int32)
        off = np.flatnonzero(table < 0)
        v, p = self.levels[every[off]].astype(np.float64), self.values.astype(np.float64)
        d2 = (v * v).sum(1)[:, None] + (p * p).sum(1)[None] - 2 * v @ p.T
        take = min(NEIGHBOURS, len(self.points))
        near = np.argsort(d2, axis=1, kind="stable")[:, :take].astype(np.int32)
        counts = np.zeros(k**dim, np.int64)
        counts[off] = take
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return table, starts, np.ascontiguousarray(near.reshape(-1))

    def index(self, level_idx: np.ndarray) -> np.ndarray:
        """The point index of each vector of level indices (``… × dim``); −1 where it is none."""
        return self._tables[0][self.keys(level_idx)]

    def _run(self, a: np.ndarray, w: np.ndarray | None, scale: np.ndarray,
             ratios: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from quanta.core import _kernels
        from quanta.threads import each

        a = np.ascontiguousarray(a, np.float32)
        if a.ndim != 2 or a.shape[1] % self.dim:
            raise ConfigError(f"a lattice of {self.dim}-value points needs sub-blocks of whole vectors")
        w = np.ones_like(a) if w is None else np.ascontiguousarray(np.broadcast_to(w, a.shape), np.float32)
        scale = np.ascontiguousarray(scale, np.float64).reshape(-1)
        table, starts, cand = self._tables
        mids, pv = self._mids, self.values
        s_blocks = a.shape[0]
        idx = np.zeros((s_blocks, a.shape[1] // self.dim), np.int32)
        s_out, e_out = np.zeros(s_blocks), np.zeros(s_blocks)
        r = np.ascontiguousarray(ratios, np.float64)

        def run(b: int) -> None:
            sl = slice(b, b + FIT_BLOCKS)
            _kernels.lattice_fit(a[sl], w[sl], scale[sl], r, mids, pv, table, starts, cand, idx[sl],
                                 s_out[sl], e_out[sl])

        each(run, range(0, s_blocks, FIT_BLOCKS))
        return idx, s_out, e_out


def signs(x: np.ndarray, w: np.ndarray | None, parity: int) -> np.ndarray:
    """±1 per value of ``x`` (``… × n``, ``n`` a multiple of ``parity``): the value's own sign,
    except that in a run of ``parity`` values with an odd count of negatives the sign of the value
    whose flip costs least (``w · x²``) is flipped. The magnitudes to round are then ``x · sign``
    (the flipped one negative: its nearest level is the smallest)."""
    x = np.asarray(x, np.float32)
    s = np.where(x < 0, np.float32(-1), np.float32(1))
    if not parity:
        return s
    runs = s.reshape(-1, parity)
    odd = (runs < 0).sum(1) % 2 == 1
    cost = (x * x if w is None else np.broadcast_to(w, x.shape) * x * x).reshape(-1, parity)
    j = cost.argmin(1)
    rows = np.flatnonzero(odd)
    runs[rows, j[rows]] *= -1
    return runs.reshape(x.shape)


def fit(a: np.ndarray, lattice: Lattice, w: np.ndarray | None = None,
        ratios: np.ndarray = RATIOS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each sub-block's scale and points for magnitudes ``a`` (``sub-blocks × n``, ``n`` whole
    vectors; ``w``: weights of the squared error, same shape, or None): the scales
    ``max(a) / top level · ratio`` tried, each refitted by least squares to the points it chose.
    Returns (points ``sub-blocks × n/dim``, scales, errors)."""
    a = np.asarray(a, np.float32)
    start = a.max(1) / lattice.levels[-1]
    return lattice._run(a, w, start, ratios)


def assign(a: np.ndarray, lattice: Lattice, scale: np.ndarray,
           w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's nearest point at each sub-block's ``scale`` (``a``: ``sub-blocks × n``).
    Returns (points, errors per sub-block)."""
    idx, _, err = lattice._run(a, w, scale, np.zeros(0))
    return idx, err
