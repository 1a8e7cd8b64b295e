"""Dither sources, in units of one quantization step (LSB).

* "rpdf": rectangular, uniform in [-0.5, 0.5) — removes the error's dependence on the signal's
  mean but not on its power.
* "tpdf": triangular, the sum of two RPDF values (32-bit resolution each, both from one 64-bit
  draw), in (-1, 1) — the error's mean *and* variance no
  longer depend on the signal (total error variance 1/4 LSB², 4.77 dB above plain rounding).
* "hp-tpdf": high-pass triangular, ``r[n] - r[n-1]`` of one RPDF stream — the same pdf as TPDF
  with its power tilted towards high frequencies.

Each channel has its own generator spawned from one seed, so channels are independent and a
stream drawn in chunks equals the stream drawn at once.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from quanta.core import _kernels
from quanta.core._checks import check_choice
from quanta.errors import ConfigError

DitherKind = Literal["none", "rpdf", "tpdf", "hp-tpdf"]

#: Each kind with the variance of its dither, in LSB²: the one table of per-kind constants.
#: Adding a kind is one row here and one branch in :meth:`DitherSource.draw_channel`.
DITHER_VARIANCE_LSB2: dict[str, float] = {"none": 0.0, "rpdf": 1 / 12, "tpdf": 1 / 6, "hp-tpdf": 1 / 6}
KINDS: tuple[str, ...] = tuple(DITHER_VARIANCE_LSB2)

#: Variance of the rounding error of a uniform quantizer on a busy signal, in LSB².
ROUNDING_VARIANCE_LSB2 = 1 / 12


def total_error_variance_lsb2(kind: str) -> float:
    """Variance of the total error (rounding plus dither) of a dithered quantizer, in LSB²:
    1/12 undithered, 1/6 with RPDF, 1/4 with (HP-)TPDF."""
    return ROUNDING_VARIANCE_LSB2 + DITHER_VARIANCE_LSB2[check_choice(kind, KINDS, "dither")]


class DitherSource:
    """A seeded, per-channel dither stream whose state carries across calls to :meth:`draw`."""

    def __init__(self, kind: DitherKind = "tpdf", channels: int = 1, *, seed: int = 0,
                 amplitude: float = 1.0) -> None:
        check_choice(kind, KINDS, "dither")
        if channels < 1:
            raise ConfigError("dither needs at least one channel")
        self.kind = kind
        self.channels = channels
        self.amplitude = float(amplitude)
        seqs = np.random.SeedSequence(seed).spawn(channels)
        self._rngs = [np.random.Generator(np.random.PCG64(s)) for s in seqs]
        # hp-tpdf needs the previous RPDF value of each channel.
        self._prev = np.array([r.random() - 0.5 for r in self._rngs]) if kind == "hp-tpdf" else None

    def draw_channel(self, channel: int, n: int) -> np.ndarray:
        """The next ``n`` values of one channel's stream, float64, in LSB.

        Channels are independent streams: drawing them separately (in parallel threads, say)
        gives the same values as :meth:`draw`.
        """
        if self.kind == "none" or n == 0:
            return np.zeros(n)
        rng = self._rngs[channel]
        if self.kind == "rpdf":
            out = rng.random(n) - 0.5
        elif self.kind == "tpdf":
            out = _kernels.tpdf_from_raw(rng.bit_generator.random_raw(n))
        else:
            r = rng.random(n) - 0.5
            out = np.empty(n)
            out[0] = r[0] - self._prev[channel]
            out[1:] = r[1:] - r[:-1]
            self._prev[channel] = r[-1]
        if self.amplitude != 1.0:
            out *= self.amplitude
        return out

    def draw(self, n: int) -> np.ndarray:
        """The next ``n`` frames of dither, shape ``(n, channels)``, float64, in LSB."""
        out = np.zeros((n, self.channels))
        for c in range(self.channels):
            out[:, c] = self.draw_channel(c, n)
        return out


def dither_noise(n: int, kind: DitherKind = "tpdf", *, channels: int = 1, seed: int = 0,
                 amplitude: float = 1.0) -> np.ndarray:
    """``n`` frames of dither at once, shape ``(n, channels)``, in LSB."""
    return DitherSource(kind, channels, seed=seed, amplitude=amplitude).draw(n)
