"""Budget allocation — how many bits for each unit (layer, band, block).

Each unit ``i`` has candidate settings ``j`` with a distortion ``D[i][j]`` and a size
``S[i][j]``. ``allocate`` picks one setting per unit to minimise ``sum D`` with ``sum S <= budget``.

* method "lagrangian" (default; any problem size): minimise ``D + λ·S`` for each unit, walking the
  lower convex hull of every unit's (size, distortion) points in order of decreasing slope and
  stopping at the budget (Shoham & Gersho, 1988); a greedy pass then spends what is left on the
  best remaining upgrades. Optimal whenever the budget falls on a hull point; otherwise within
  one hull step of optimal.
* method "exact": a Pareto-front dynamic programme over the units; optimal, for small problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from quanta.errors import ConfigError


@dataclass(frozen=True)
class Allocation:
    """The chosen setting index per unit, with totals."""

    choice: np.ndarray
    distortion: float
    size: float
    budget: float


def _prepare(distortion: Sequence[Sequence[float]], size: Sequence[Sequence[float]]
             ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if len(distortion) != len(size) or len(distortion) == 0:
        raise ConfigError("distortion and size need the same, non-zero number of units")
    ds, ss = [], []
    for i, (d, s) in enumerate(zip(distortion, size)):
        d = np.asarray(d, dtype=np.float64).ravel()
        s = np.asarray(s, dtype=np.float64).ravel()
        if d.size == 0 or d.size != s.size:
            raise ConfigError(f"unit {i}: distortion and size need the same non-zero length")
        if not (np.all(np.isfinite(d)) and np.all(np.isfinite(s))) or np.any(s < 0):
            raise ConfigError(f"unit {i}: values must be finite and sizes non-negative")
        ds.append(d)
        ss.append(s)
    return ds, ss


def _hull(d: np.ndarray, s: np.ndarray) -> list[int]:
    """Indices on the lower-left convex hull, by increasing size (decreasing distortion)."""
    order = np.lexsort((d, s))
    pts: list[int] = []
    for j in order:
        if pts and d[j] >= d[pts[-1]]:
            continue  # dominated: larger (or equal) size, no less distortion
        while len(pts) >= 2:
            a, b = pts[-2], pts[-1]
            # drop b if it lies on or above the segment a -> j
            cross = (s[b] - s[a]) * (d[j] - d[a]) - (d[b] - d[a]) * (s[j] - s[a])
            if cross <= 0:
                pts.pop()
            else:
                break
        pts.append(int(j))
    return pts


def _totals(ds: list[np.ndarray], ss: list[np.ndarray], choice: np.ndarray) -> tuple[float, float]:
    return (float(sum(d[c] for d, c in zip(ds, choice))), float(sum(s[c] for s, c in zip(ss, choice))))


def allocate(
    distortion: Sequence[Sequence[float]],
    size: Sequence[Sequence[float]],
    budget: float,
    *,
    method: Literal["lagrangian", "exact"] = "lagrangian",
) -> Allocation:
    """Choose one setting per unit minimising total distortion under ``sum(size) <= budget``."""
    ds, ss = _prepare(distortion, size)
    floor = sum(float(s.min()) for s in ss)
    if budget < floor:
        raise ConfigError(f"budget {budget:g} is below the smallest possible total size {floor:g}")
    if method == "exact":
        choice = _exact(ds, ss, budget)
    elif method == "lagrangian":
        choice = _lagrangian(ds, ss, budget)
    else:
        raise ConfigError(f"unknown allocation method {method!r}")
    dist, used = _totals(ds, ss, choice)
    return Allocation(choice, dist, used, float(budget))


def _segments(hulls: list[np.ndarray], ds: list[np.ndarray], ss: list[np.ndarray]) -> list:
    """Every hull segment as (slope = distortion saved per size unit, unit, step index),
    steepest first."""
    segs = []
    for i, h in enumerate(hulls):
        for k in range(1, len(h)):
            dd = ds[i][h[k - 1]] - ds[i][h[k]]
            dsz = ss[i][h[k]] - ss[i][h[k - 1]]
            segs.append((dd / dsz if dsz > 0 else np.inf, i, k))
    segs.sort(key=lambda t: (-t[0], t[1], t[2]))
    return segs


def _best_upgrade(ds: list[np.ndarray], ss: list[np.ndarray], choice: np.ndarray, used: float,
                  budget: float) -> tuple[float, int, int] | None:
    """The single upgrade with the best gain per size that still fits, or None."""
    best = None
    for i, (d, s) in enumerate(zip(ds, ss)):
        extra = s - s[choice[i]]
        gain = d[choice[i]] - d
        ok = (gain > 0) & (used + extra <= budget * (1 + 1e-12))
        if not ok.any():
            continue
        rate = np.where(ok, gain / np.maximum(extra, 1e-300), -np.inf)
        j = int(np.argmax(rate))
        if best is None or rate[j] > best[0]:
            best = (rate[j], i, j)
    return best


def _lagrangian(ds: list[np.ndarray], ss: list[np.ndarray], budget: float) -> np.ndarray:
    hulls = [_hull(d, s) for d, s in zip(ds, ss)]
    pos = np.zeros(len(ds), dtype=np.int64)  # position on each unit's hull
    choice = np.array([h[0] for h in hulls], dtype=np.int64)
    used = sum(s[c] for s, c in zip(ss, choice))
    for _, i, k in _segments(hulls, ds, ss):
        if pos[i] != k - 1:
            continue
        step = ss[i][hulls[i][k]] - ss[i][hulls[i][k - 1]]
        if used + step > budget * (1 + 1e-12):
            break  # the Lagrangian solution: the next cheaper-per-gain step does not fit
        used += step
        pos[i] = k
        choice[i] = hulls[i][k]
    # Greedy fill: spend the remainder on the upgrade with the best gain per size that fits.
    while (best := _best_upgrade(ds, ss, choice, used, budget)) is not None:
        _, i, j = best
        used += ss[i][j] - ss[i][choice[i]]
        choice[i] = j
    return choice


def _exact(ds: list[np.ndarray], ss: list[np.ndarray], budget: float) -> np.ndarray:
    # Each state: (size, distortion, choices); keep the Pareto front (smaller size, lower distortion).
    front: list[tuple[float, float, tuple[int, ...]]] = [(0.0, 0.0, ())]
    for d, s in zip(ds, ss):
        cand = [(fs + s[j], fd + d[j], (*fc, j)) for fs, fd, fc in front for j in range(d.size)
                if fs + s[j] <= budget * (1 + 1e-12)]
        cand.sort(key=lambda t: (t[0], t[1]))
        front = []
        for c in cand:
            if not front or c[1] < front[-1][1]:
                front.append(c)
    best = min(front, key=lambda t: (t[1], t[0]))
    return np.array(best[2], dtype=np.int64)
