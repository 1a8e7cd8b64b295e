"""Rate–distortion curves: one type for every comparison of encoders (the ``image curve``
command, the tour, ``bench/jpeg_rd.py``).

An :class:`RDCurve` is one encoder's points on one image, in the order encoded: each point a
dict with ``bytes`` (and, where measured, ``bpp`` in bits per pixel, ``psnr_db`` and
``psnr_luma_db`` in dB, ``ssim_luma`` 0–1, ``ssimulacra2`` up to 100, ``encode_s`` in seconds).
:meth:`RDCurve.bd_rate` is the Bjøntegaard delta rate (VCEG-M33) against another curve on one
quality measure; :func:`mean_bd_rate` averages it over images (the figure the benches quote).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from quanta.errors import ConfigError
from quanta.image import metrics


@dataclass(frozen=True)
class RDCurve:
    """One encoder's rate–distortion points on one image (see the module docstring)."""

    points: tuple[dict, ...]

    @classmethod
    def of(cls, points: Iterable[dict]) -> RDCurve:
        return cls(tuple(points))

    def values(self, key: str) -> list[float]:
        """One measure at every point (``"bytes"``, ``"bpp"``, ``"psnr_db"`` …)."""
        return [float(p[key]) for p in self.points]

    def bd_rate(self, reference: RDCurve, metric: str = "psnr_db", rate: str = "bytes") -> float:
        """This curve's average rate change against ``reference`` at equal ``metric``, in %
        (negative: this encoder saves bytes). Raises :class:`ConfigError` under 4 points per
        curve or when the curves' quality ranges do not overlap."""
        return metrics.bd_rate(reference.values(rate), reference.values(metric),
                               self.values(rate), self.values(metric))


def mean_bd_rate(references: Sequence[RDCurve], tests: Sequence[RDCurve], metric: str = "psnr_db", *,
                 skip_disjoint: bool = False) -> float | None:
    """The mean over images of ``tests[i].bd_rate(references[i], metric)``, in %. With
    ``skip_disjoint``, an image whose curves do not overlap is left out (None if none is left);
    otherwise it raises."""
    vals = []
    for ref, test in zip(references, tests, strict=True):
        try:
            vals.append(test.bd_rate(ref, metric))
        except ConfigError:
            if not skip_disjoint:
                raise
    return float(np.mean(vals)) if vals else None


def mean_curve(curves: Sequence[RDCurve], key: str) -> list[float]:
    """Point by point, the mean of one measure over images encoded at the same settings."""
    return [float(np.mean(col)) for col in zip(*(c.values(key) for c in curves), strict=True)]
