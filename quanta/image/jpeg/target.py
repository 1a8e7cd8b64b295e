"""Encode to a target instead of a quality: a file size, a PSNR or a SSIMULACRA2 score.

The search runs over the tables' scale (percent, continuous, so it is finer than integer
qualities) in log space: a secant step from two measurements, false position (Illinois) once
the target is bracketed, at most ``max_encodes`` encodes. Every measure falls as the scale
grows, so each step knows which way to go.

- ``size`` (bytes): the largest file of at most B bytes; accepted within 2 % under B (or
  anywhere under B when even the finest tables fit).
- ``psnr`` (dB, RGB): the smallest file whose PSNR is at least the target; accepted within
  0.1 dB over it.
- ``ssimulacra2``: a score within ±1 of the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from quanta.errors import ConfigError

KINDS = ("size", "psnr", "ssimulacra2")
SCALE_RANGE = (1.0, 5000.0)  # percent: quality 100 … 1 in IJG terms


@dataclass(frozen=True)
class Reached:
    """What a target search found."""

    kind: str
    target: float
    value: float  # bytes, dB or score of the file returned
    scale: float  # the tables' scale, percent
    encodes: int
    met: bool


def _measure(kind: str, img: np.ndarray) -> Callable[[bytes], float]:
    if kind == "size":
        return lambda data: float(len(data))
    from quanta.image import metrics
    from quanta.image.curve import decode

    ref = metrics.as_rgb(img)  # a gray file decodes gray: both sides as RGB
    if kind == "psnr":
        return lambda data: metrics.psnr_rgb_db(ref, metrics.as_rgb(decode(data)))
    return lambda data: metrics.ssimulacra2(ref, metrics.as_rgb(decode(data)))


def _window(kind: str, target: float) -> tuple[float, float]:
    """Accepted values (inclusive)."""
    if kind == "size":
        return 0.98 * target, target
    if kind == "psnr":
        return target, target + 0.1
    return target - 1.0, target + 1.0


def _feasible(kind: str, target: float, value: float) -> bool:
    return value <= target if kind == "size" else value >= target - (1.0 if kind == "ssimulacra2" else 0.0)


def _better(kind: str, target: float, a: tuple[float, float], b: tuple[float, float] | None) -> bool:
    """Is point ``a`` (scale, value) a better answer than ``b``?"""
    if b is None:
        return True
    fa, fb = _feasible(kind, target, a[1]), _feasible(kind, target, b[1])
    if fa != fb:
        return fa
    if kind == "ssimulacra2" or not fa:
        return abs(a[1] - target) < abs(b[1] - target)
    return a[1] > b[1] if kind == "size" else a[1] < b[1]


@dataclass
class _State:
    """The search so far: the nearest measurement on each side of the target, in log scale."""

    above: tuple[float, float] | None = None  # (u, g) with g > 0: still too big or too good
    below: tuple[float, float] | None = None
    side: int = 0  # consecutive steps that landed on the same side (+ above, − below)
    last: list[tuple[float, float]] | None = None  # the last two (u, f) measured

    def step(self, u: float, g: float, f: float) -> float:
        """The next log scale after measuring ``g`` (measure − target centre) at ``u``."""
        if g > 0:
            self.above, self.side = (u, g), max(self.side, 0) + 1
        else:
            self.below, self.side = (u, g), min(self.side, 0) - 1
        self.last = [*(self.last or [])[-1:], (u, f)]
        if self.above and self.below:  # false position; Illinois halves the stale end's weight
            (ua, ga), (ub, gb) = self.above, self.below
            if self.side > 1:
                gb /= 2 ** (self.side - 1)
            elif self.side < -1:
                ga /= 2 ** (-self.side - 1)
            return ua - ga * (ub - ua) / (gb - ga)
        step = 1.0 if g > 0 else -1.0  # not bracketed yet: a bold step the measure's own way
        if len(self.last) == 2:
            (u0, f0), (u1, f1) = self.last
            if u1 != u0 and (f1 - f0) * (u1 - u0) < 0:
                step = max(-2.0, min(2.0, -g * (u1 - u0) / (f1 - f0)))
        return u + step


def search(encode_at: Callable[[float], bytes], img: np.ndarray, kind: str, target: float, *,
           start_scale: float = 50.0, max_encodes: int = 8) -> tuple[bytes, Reached]:
    """The file ``encode_at(scale)`` that meets ``target`` of ``kind`` (see the module)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown target {kind!r} (choose from {', '.join(KINDS)})")
    if not math.isfinite(target) or (target <= 0 and kind != "ssimulacra2"):  # scores go below 0
        raise ConfigError(f"the {kind} target must be a positive number, got {target!r}")
    measure = _measure(kind, img)
    lo_ok, hi_ok = _window(kind, target)
    # size is compared in log bytes: roughly linear in log scale
    fx = math.log if kind == "size" else float
    u_min, u_max = (math.log(s) for s in SCALE_RANGE)
    seen: dict[float, tuple[bytes, float]] = {}
    best: tuple[float, float] | None = None
    state = _State()
    u = math.log(start_scale)
    for _ in range(max_encodes):
        u = min(max(u, u_min), u_max)
        s = math.exp(u)
        if s in seen:
            break  # pinned at an end of the range: the target cannot be met
        data = encode_at(s)
        seen[s] = (data, measure(data))
        value = seen[s][1]
        if _better(kind, target, (s, value), best):
            best = (s, value)
        if lo_ok <= value <= hi_ok:
            break
        f = fx(value)
        u = state.step(u, f - fx(0.5 * (lo_ok + hi_ok)), f)
    assert best is not None
    finest = min(seen)
    if kind == "size" and finest <= SCALE_RANGE[0] and seen[finest][1] <= target:
        best = (finest, seen[finest][1])  # even the finest tables fit: the best file there is
    data, value = seen[best[0]]
    met = lo_ok <= value <= hi_ok if kind != "psnr" else value >= target
    met = met or (kind == "size" and best[0] <= SCALE_RANGE[0] and value <= target)
    return data, Reached(kind, float(target), float(value), best[0], len(seen), bool(met))
