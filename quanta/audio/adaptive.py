"""Masking-driven, time-varying noise shaping: the shaping filter re-fitted every frame (~21 ms)
to the music's masking threshold and glided between fits every ~2.7 ms (after Verhelst and De
Koning, 2001–2003).

Per hop of :func:`shaper_length` samples (~21 ms at every rate; the shaper's frames abut), per
channel:

1. **Analysis, causal.** The masking threshold (:mod:`quanta.audio.masking`) of the frame that
   *ends* where the hop starts. Forward masking lasts far longer than a frame (100–200 ms), so
   a mask from the last 21 ms still covers the hop; at an onset the old, lower mask is the
   cautious one. Being causal, the analysis needs no look-ahead: a stream processed in chunks
   gives exactly the bytes of the stream processed whole.
2. **Design.** As :func:`quanta.audio.shaping.design` does for the fixed filter, but weighting
   the noise by the inverse of this frame's threshold (20 Hz – 20 kHz): the monic
   minimum-phase FIR ``A`` (order :data:`ORDER`) minimising ``∫ |A|² / T`` — the mean
   noise-to-mask ratio over frequency — by Levinson–Durbin on the weighting's autocorrelation.
   (Reading the threshold per critical band, as the NMR measure does, was measured: the masked
   part per band and the threshold in quiet per line moved the median NMR by 0.05 dB; the whole
   threshold per band lowered it by 2.3 dB, but only by averaging the threshold in quiet over
   bands where it is steep — below 100 Hz and above 15 kHz, where the measure sets noise against
   the band's mean — and it made silence 4 dB worse threshold-weighted. Neither is used.)
   Regularised towards white noise by the smallest ``μ`` (a search on the gain, frame by frame,
   compiled) that keeps the total power gain ``mean |A|² = Σ a²`` within :func:`total_gain_db`
   (within 3 dB of SoX's strongest filter at the rate) and the peak gain within
   :data:`MAX_PEAK_GAIN_DB` — so shaping never trades inaudible noise for loud noise. In silence
   the threshold is the threshold in quiet, and the noise takes the threshold-weighted shape.
   Flat noise is the point ``A = 1`` of the same minimisation, so a frame's filter never
   predicts a larger noise-to-mask ratio than no shaping: where nothing beats flat noise, the
   filter stays flat.
3. **Interpolation.** Between one hop's filter and the next, the reflection coefficients
   (Levinson's, all of magnitude < 1) are interpolated linearly over :data:`SUBBLOCKS` steps
   and turned into taps: every filter in between is minimum-phase too, and the noise colour
   glides instead of jumping.
4. **Feedback.** :func:`quanta.core.feedback.error_feedback_segments` (compiled): an FIR error
   filter, whose loop is stable whatever its taps (the shaped error is the filter applied to
   a bounded rounding error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from quanta.audio import _kernels
from quanta.audio.masking import Frames, line_power, threshold_power

#: the ``--shape`` name of this shaping
ADAPTIVE = "adaptive"
#: interpolation steps per hop. The shaper's hop is a whole frame (~21 ms at 48 kHz: steps of
#: ~2.7 ms); measured on 30 s of the bench's music at 44.1 and 48 kHz, 16 and 8 bits, re-fitting
#: every half frame (4 steps per hop) moved the median NMR by at most 0.1 dB, at twice the cost
SUBBLOCKS = 8
#: bound on the peak power gain of the noise filter (dB): the masking threshold spans more than
#: the fixed design's 30 dB within one frame (measured: 30 → 50 dB moves the median NMR by 3 dB)
MAX_PEAK_GAIN_DB = 50.0
#: the noise filter's order (taps after the leading 1): 12 → 32 moves the median NMR by 3 dB
ORDER = 32
#: points of the frequency grid the peak gain is checked on (0 to π)
_GAIN_POINTS = 257
_MU_RANGE = (-12.0, 2.0)  # log10 μ searched
_MU_STEPS = 10  # the search's budget: at most 20 filters on the total gain (regula falsi, to 0.05 dB
# under the bound or 0.01 decade), 10 bisection steps more where the peak bound binds


def shaper_length(rate_hz: float) -> int:
    """Samples per frame of the shaper's analysis: a power of two near 21 ms at every rate (1024
    at 44.1 and 48 kHz, 512 at 22.05–32 kHz, 256 at 16 kHz, 4096 at 192 kHz). Unlike the NMR
    measure's frames (:func:`quanta.audio.masking.frame_length`, never under 1024), it shrinks
    below 44.1 kHz: the analysis is causal, and a mask as stale as 64–128 ms (1024 samples at
    16 kHz) made speech at 8 bits worse than plain TPDF (the LibriSpeech clip: median NMR
    +11.0 dB against TPDF's +10.7; with 256 samples +5.9)."""
    return max(64, int(1024 * 2 ** round(np.log2(rate_hz / 48000.0))))


def total_gain_db(rate_hz: float, bits: int = 16) -> float:
    """The bound on the shaped noise's total power (dB over unshaped): within 3 dB of SoX's
    strongest Shibata filter at the rate — 32 dB below 46 kHz (``high-shibata`` at 44.1 kHz
    takes 29.2 dB), 24 dB from 46 kHz (``shibata`` at 48 kHz takes 21.3 dB) — and at most 24 dB
    at 8 bits and below, where noise 32 dB over an 8-bit step reaches a sixth of full scale and
    clips (measured: 155 and 227 clips per channel in 60 s at 32 dB; the shaping collapses at 40)."""
    return min(32.0 if rate_hz < 46_000 else 24.0, 24.0 if bits <= 8 else np.inf)


def taps_from_reflection(k: np.ndarray) -> np.ndarray:
    """The monic filter ``(…, order + 1)`` of reflection coefficients ``k`` (``(…, order)``)
    (the step-up recursion, compiled)."""
    k = np.asarray(k, dtype=np.float64)
    flat = np.ascontiguousarray(k.reshape(-1, k.shape[-1]))
    out = np.empty((flat.shape[0], flat.shape[1] + 1))
    _kernels.step_up(flat, out)
    return out.reshape(*k.shape[:-1], k.shape[-1] + 1)


@lru_cache(maxsize=8)
def _design_tables(length: int, rate_hz: float, order: int) -> tuple:
    """``cos(2π f k / n)`` per line and lag, the first and last line + 1 of 20 Hz – 20 kHz,
    and the peak check's grid (``cos(m ω)`` per lag at :data:`_GAIN_POINTS` frequencies from 0 to
    π)."""
    freqs = np.fft.rfftfreq(length, 1.0 / rate_hz)
    inside = np.flatnonzero((freqs >= 20.0) & (freqs <= min(20000.0, rate_hz / 2)))
    lags = np.arange(order + 1)
    cos_lines = np.cos(2 * np.pi * np.outer(np.arange(freqs.size), lags) / length)
    omega = np.linspace(0.0, np.pi, _GAIN_POINTS)
    return cos_lines, int(inside[0]), int(inside[-1]) + 1, np.cos(np.outer(lags, omega))


def design(thr: np.ndarray, freqs_hz: np.ndarray, rate_hz: float, *, order: int,
           max_total_gain_db: float, max_peak_gain_db: float = MAX_PEAK_GAIN_DB) -> np.ndarray:
    """Reflection coefficients ``(frames, order)`` of each frame's noise filter, from its masking
    threshold per line ``thr`` (linear power, ``(frames, lines)``) — see the module docstring.
    Compiled (:mod:`quanta.audio._kernels`), one frame at a time."""
    thr = np.ascontiguousarray(thr, dtype=np.float64)
    length = 2 * (freqs_hz.size - 1)
    cos_lines, first, last, grid = _design_tables(length, float(rate_hz), order)
    out = np.empty((thr.shape[0], order))
    _kernels.design(thr, cos_lines, first, last, length / 2, grid, 10 ** (max_total_gain_db / 10),
                    10 ** (max_peak_gain_db / 10), _MU_RANGE[0], _MU_RANGE[1], _MU_STEPS, out)
    return out


@dataclass
class AdaptiveShaper:
    """One channel's time-varying noise filter, hop by hop, for a stream in chunks: call
    :meth:`plan` with each chunk (in order); it returns the taps of every segment of the chunk
    and where each segment ends."""

    rate_hz: float
    bits: int = 16
    order: int = 0
    max_total_gain_db: float = 0.0
    max_peak_gain_db: float = MAX_PEAK_GAIN_DB
    length: int = field(init=False)
    hop: int = field(init=False)

    def __post_init__(self) -> None:
        self.order = self.order or ORDER
        self.max_total_gain_db = self.max_total_gain_db or total_gain_db(self.rate_hz, self.bits)
        self.length = shaper_length(self.rate_hz)
        self.hop = self.length  # frames abut (SUBBLOCKS says why a whole frame suffices)
        self._history = np.zeros(self.length)  # the last `length` samples before `pos`
        self._pos = 0  # absolute index of the next sample
        self._k_prev: np.ndarray | None = None  # the filters of the hop in progress and the one before
        self._k_cur: np.ndarray | None = None

    def _filters(self, ext: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Reflection coefficients of the hops starting at ``starts`` (indices into ``ext``,
        where each frame ``ext[s - length : s]`` … is the frame *before* the hop)."""
        fr = Frames(starts - self.length, self.length, self.hop, self.rate_hz)
        thr = threshold_power(line_power(ext, fr), fr.freqs_hz)
        return design(thr, fr.freqs_hz, self.rate_hz, order=self.order,
                      max_total_gain_db=self.max_total_gain_db, max_peak_gain_db=self.max_peak_gain_db)

    def plan(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(taps ``(segments, order)`` — ``b[1:]`` of each —, segment ends) for the next chunk ``x``."""
        n = x.size
        ext = np.concatenate([self._history, np.asarray(x, dtype=np.float64)])
        first = -(-self._pos // self.hop)  # the first hop starting in this chunk
        hop_starts = np.arange(first * self.hop, self._pos + n, self.hop)
        ks = self._filters(ext, hop_starts - self._pos + self.length) if hop_starts.size else \
            np.zeros((0, self.order))
        if self._k_cur is None:  # the stream's start: the first hop is not interpolated
            self._k_prev = self._k_cur = ks[0]
        # the rest of the hop in progress when the chunk starts inside one, then each hop it starts
        inside = self._pos % self.hop
        prev = np.vstack([self._k_prev[None], self._k_cur[None], ks])  # filter before each hop …
        starts = np.r_[self._pos - inside, hop_starts] if inside else hop_starts
        kp, kc = (prev[:-1], prev[1:]) if inside else (prev[1:-1], prev[2:])
        steps = self.hop // SUBBLOCKS
        offsets = np.arange(SUBBLOCKS) * steps
        seg_start = (starts[:, None] + offsets[None, :]).ravel()
        seg_end = (starts[:, None] + np.r_[offsets[1:], self.hop][None, :]).ravel()
        t = np.tile(np.arange(1, SUBBLOCKS + 1) / SUBBLOCKS, starts.size)[:, None]
        kp, kc = np.repeat(kp, SUBBLOCKS, axis=0), np.repeat(kc, SUBBLOCKS, axis=0)
        k = kp + t * (kc - kp)
        keep = (seg_end > self._pos) & (seg_start < self._pos + n)
        ends = np.minimum(seg_end[keep], self._pos + n) - self._pos
        self._k_prev, self._k_cur = prev[-2], prev[-1]
        self._history = ext[-self.length:]
        self._pos += n
        return taps_from_reflection(k[keep])[:, 1:], ends.astype(np.int64)
