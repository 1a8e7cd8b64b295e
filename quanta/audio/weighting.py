"""Frequency weightings for noise measurement, in dB (0 dB at 1 kHz).

* ``a_weighting_db``: IEC 61672 A-weighting.
* ``itu468_weighting_db``: ITU-R BS.468-4 (CCIR 468) weighting, +12.2 dB near 6.3 kHz.
* ``threshold_db``: the absolute threshold of hearing in quiet (Terhardt, 1979), dB SPL.
* ``threshold_weighting_db``: the inverse of that threshold, 0 dB at 1 kHz: how loud noise at
  each frequency is relative to noise at 1 kHz, for a listener at the edge of audibility.
  Noise shaping is judged by this weighting; A-weighting alone hides most of its gain.
"""

from __future__ import annotations

import numpy as np


def _f(freq_hz: np.ndarray | float) -> np.ndarray:
    return np.maximum(np.asarray(freq_hz, dtype=np.float64), 1e-3)


def a_weighting_db(freq_hz: np.ndarray | float) -> np.ndarray:
    """A-weighting gain in dB (IEC 61672-1)."""
    f2 = _f(freq_hz) ** 2
    ra = (12194.0**2 * f2**2) / ((f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2))
                                 * (f2 + 12194.0**2))
    return 20 * np.log10(ra) + 2.0


def itu468_weighting_db(freq_hz: np.ndarray | float) -> np.ndarray:
    """ITU-R BS.468-4 weighting gain in dB (0 dB at 1 kHz)."""
    f = _f(freq_hz)
    h1 = (-4.737338981378384e-24 * f**6 + 2.043828333606125e-15 * f**4
          - 1.363894795463638e-7 * f**2 + 1)
    h2 = 1.306612257412824e-19 * f**5 - 2.118150887518656e-11 * f**3 + 5.559488023498642e-4 * f
    r = 1.246332637532143e-4 * f / np.sqrt(h1**2 + h2**2)
    return 18.2 + 20 * np.log10(r)


def threshold_db(freq_hz: np.ndarray | float) -> np.ndarray:
    """Absolute threshold of hearing in dB SPL (Terhardt's formula)."""
    k = _f(freq_hz) / 1000.0
    return 3.64 * k**-0.8 - 6.5 * np.exp(-0.6 * (k - 3.3) ** 2) + 1e-3 * k**4


def threshold_weighting_db(freq_hz: np.ndarray | float) -> np.ndarray:
    """Hearing-threshold weighting in dB: ``threshold(1 kHz) - threshold(f)``."""
    return threshold_db(1000.0) - threshold_db(freq_hz)


WEIGHTINGS = {
    "unweighted": None,
    "a": a_weighting_db,
    "itu468": itu468_weighting_db,
    "threshold": threshold_weighting_db,
}
