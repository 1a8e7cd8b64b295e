"""The textbook check of a quantizer: SNR of a full-scale sine against 6.02·N + 1.76 dB."""

from __future__ import annotations

import math

import numpy as np

from quanta.core.dither import DITHER_VARIANCE_LSB2, dither_noise
from quanta.core.grid import Grid, QParams, fake_quantize
from quanta.core.measures import snr_db, sqnr_theory_db


def sine(n: int, *, freq: float = 997.0 / 48000.0, amplitude: float = 1.0,
         phase: float = 0.1) -> np.ndarray:
    """``n`` samples of ``amplitude · sin(2π·freq·t + phase)``; ``freq`` in cycles per sample."""
    return amplitude * np.sin(2 * np.pi * freq * np.arange(n) + phase)


def sine_snr_db(bits: int, *, dither: str = "none", n: int = 1 << 18, seed: int = 0) -> dict:
    """Measured and expected SNR (dB) of a sine rounded to ``bits`` bits.

    The grid is the ideal mid-rise quantizer of the 6.02·N + 1.76 law: ``2**bits`` levels of step
    ``Δ = 2 / 2**bits`` centred in [-1, 1]. Undithered, the sine is full scale in the AES17 sense
    (its peaks reach the outermost levels: amplitude ``1 − Δ/2``). With dither it keeps one step
    of headroom (amplitude ``1 − Δ``), so that signal plus dither never clips. ``expected_db`` is
    ``10·log10((A²/2) / (Δ²/12 + σ²_dither))`` for the amplitude used; ``law_db`` is 6.02·N + 1.76.
    """
    step = 2.0 / (1 << bits)
    grid = Grid(bits=bits, signed=False, symmetric=False)
    qp = QParams.given(grid, scale=step, zero_point=(1 << (bits - 1)) - 0.5)
    amp = 1.0 - (step / 2 if dither == "none" else step)
    x = sine(n, amplitude=amp)
    d = dither_noise(n, dither, seed=seed)[:, 0] * step
    y = fake_quantize(x + d, qp)
    dither_var = DITHER_VARIANCE_LSB2[dither]
    expected = 10 * math.log10((amp * amp / 2) / (step * step * (1 / 12 + dither_var)))
    return {"bits": bits, "dither": dither, "snr_db": snr_db(x, y), "expected_db": expected,
            "law_db": sqnr_theory_db(bits)}
