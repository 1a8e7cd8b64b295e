"""Masking-driven, time-varying noise shaping: the shaping filter re-fitted every hop (~10 ms)
to the music's masking threshold (after Verhelst and De Koning, 2001–2003).

Per hop of :func:`quanta.audio.masking.frame_length` / 2 samples, per channel:

1. **Analysis, causal.** The masking threshold (:mod:`quanta.audio.masking`) of the frame that
   *ends* where the hop starts. Forward masking lasts far longer than a frame (100–200 ms), so
   a mask from the last 21 ms still covers the hop; at an onset the old, lower mask is the
   cautious one. Being causal, the analysis needs no look-ahead: a stream processed in chunks
   gives exactly the bytes of the stream processed whole.
2. **Design.** As :func:`quanta.audio.shaping.design` does for the fixed filter, but weighting
   the noise by the inverse of this frame's threshold (20 Hz – 20 kHz): the monic
   minimum-phase FIR ``A`` (order :data:`ORDER`) minimising ``∫ |A|² / T`` — the mean
   noise-to-mask ratio over frequency — by Levinson–Durbin on the weighting's autocorrelation.
   Regularised towards white noise by the smallest ``μ`` (bisection, all frames at once) that
   keeps the total power gain ``mean |A|²`` within :func:`total_gain_db` (within 3 dB of SoX's
   strongest filter at the rate) and the peak gain within :data:`MAX_PEAK_GAIN_DB` — so
   shaping never trades inaudible noise for loud noise. In silence the threshold is the
   threshold in quiet, and the noise takes the threshold-weighted shape.
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

import numpy as np

from quanta.audio.masking import Frames, frame_length, line_power_db, masking_threshold_db

#: the ``--shape`` name of this shaping
ADAPTIVE = "adaptive"
#: interpolation steps per hop (a hop is ~10.7 ms at 48 kHz: steps of ~2.7 ms)
SUBBLOCKS = 4
#: bound on the peak power gain of the noise filter (dB): the masking threshold spans more than
#: the fixed design's 30 dB within one frame (measured: 30 → 50 dB moves the median NMR by 3 dB)
MAX_PEAK_GAIN_DB = 50.0
#: the noise filter's order (taps after the leading 1): 12 → 32 moves the median NMR by 3 dB
ORDER = 32
#: points of the frequency grid the gains are checked on
_GAIN_FFT = 512
_MU_RANGE = (-12.0, 2.0)  # log10 μ searched
_MU_STEPS = 10  # bisection steps: 14 decades to 0.014 of one


def total_gain_db(rate_hz: float, bits: int = 16) -> float:
    """The bound on the shaped noise's total power (dB over unshaped): within 3 dB of SoX's
    strongest Shibata filter at the rate — 32 dB below 46 kHz (``high-shibata`` at 44.1 kHz
    takes 29.2 dB), 24 dB from 46 kHz (``shibata`` at 48 kHz takes 21.3 dB) — and at most 24 dB
    at 8 bits and below, where noise 32 dB over an 8-bit step reaches a sixth of full scale and
    clips (measured: 155 and 227 clips per channel in 60 s at 32 dB; the shaping collapses at 40)."""
    return min(32.0 if rate_hz < 46_000 else 24.0, 24.0 if bits <= 8 else np.inf)


def levinson(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levinson–Durbin over the last axis of autocorrelations ``r`` (``(…, order + 1)``): the
    monic prediction-error filters ``a`` (``(…, order + 1)``) and reflection coefficients
    ``k`` (``(…, order)``). The recursion of :func:`quanta.audio.shaping.design`'s 1-D loop, over
    many frames at once; that loop stays as it is because its ``np.dot`` sums in another order,
    and the fixed filters' output bytes are pinned (``tests/golden``)."""
    shape = r.shape[:-1]
    order = r.shape[-1] - 1
    a = np.zeros((*shape, order + 1))
    a[..., 0] = 1.0
    k = np.zeros((*shape, order))
    err = r[..., 0].copy()
    for m in range(1, order + 1):
        km = -np.einsum("...i,...i->...", a[..., :m], r[..., m:0:-1]) / err
        a[..., : m + 1] = a[..., : m + 1] + km[..., None] * a[..., m::-1]
        err = err * (1.0 - km * km)
        k[..., m - 1] = km
    return a, k


def taps_from_reflection(k: np.ndarray) -> np.ndarray:
    """The monic filter ``(…, order + 1)`` of reflection coefficients ``k`` (``(…, order)``)
    (the step-up recursion)."""
    order = k.shape[-1]
    a = np.zeros((*k.shape[:-1], order + 1))
    a[..., 0] = 1.0
    for m in range(1, order + 1):
        a[..., : m + 1] = a[..., : m + 1] + k[..., m - 1, None] * a[..., m::-1]
    return a


def _gains_db(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.abs(np.fft.rfft(a, n=_GAIN_FFT, axis=-1)) ** 2
    return 10 * np.log10(h.mean(axis=-1)), 10 * np.log10(h.max(axis=-1))


def design(thr_db: np.ndarray, freqs_hz: np.ndarray, rate_hz: float, *, order: int,
           max_total_gain_db: float, max_peak_gain_db: float = MAX_PEAK_GAIN_DB) -> np.ndarray:
    """Reflection coefficients ``(frames, order)`` of each frame's noise filter, from its masking
    threshold per line ``thr_db`` (``(frames, lines)``) — see the module docstring."""
    band = (freqs_hz >= 20.0) & (freqs_hz <= min(20000.0, rate_hz / 2))
    w = np.where(band, 10 ** (-(thr_db - thr_db[:, band].min(axis=1, keepdims=True)) / 10), 0.0)
    # the weighting's autocorrelation Σ_f trap(f)·W(f)·cos(2π f k / fs) over the frame's lines
    # (f = i·fs/n): n/2 times the inverse real FFT, one row at a time
    n = 2 * (freqs_hz.size - 1)
    r_w = np.fft.irfft(w, n=n, axis=1)[:, : order + 1] * (n / 2)
    r_1 = np.zeros(order + 1)
    r_1[0] = n / 2  # white noise over the same lines
    lo = np.full(thr_db.shape[0], _MU_RANGE[0])
    hi = np.full(thr_db.shape[0], _MU_RANGE[1])

    def fits(log_mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, k = levinson(r_w + 10 ** log_mu[:, None] * r_1[None])
        total, peak = _gains_db(a)
        return k, (total <= max_total_gain_db) & (peak <= max_peak_gain_db)

    k_hi, _ = fits(hi)  # μ = 100: nearly white; always within the bounds
    k_lo, ok_lo = fits(lo)
    for _ in range(_MU_STEPS):
        mid = (lo + hi) / 2
        k_mid, ok = fits(mid)
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
        k_hi = np.where(ok[:, None], k_mid, k_hi)
    return np.where(ok_lo[:, None], k_lo, k_hi)


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
        self.length = frame_length(self.rate_hz)
        self.hop = self.length // 2
        self._history = np.zeros(self.length)  # the last `length` samples before `pos`
        self._pos = 0  # absolute index of the next sample
        self._k_prev: np.ndarray | None = None  # the filters of the hop in progress and the one before
        self._k_cur: np.ndarray | None = None

    def _filters(self, ext: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Reflection coefficients of the hops starting at ``starts`` (indices into ``ext``,
        where each frame ``ext[s - length : s]`` … is the frame *before* the hop)."""
        fr = Frames(starts - self.length, self.length, self.hop, self.rate_hz)
        thr = masking_threshold_db(line_power_db(ext, fr), fr.freqs_hz)
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
        steps = self.hop // SUBBLOCKS
        taps, ends = [], []
        # the rest of the hop in progress when the chunk starts inside one, then each hop it starts
        inside = self._pos % self.hop
        bounds = [(self._pos - inside, self._k_prev, self._k_cur)] if inside else []
        prev, cur = self._k_prev, self._k_cur
        for h, k in zip(hop_starts, ks, strict=True):
            prev, cur = cur, k
            bounds.append((int(h), prev, cur))
        for start, kp, kc in bounds:
            for j in range(SUBBLOCKS):
                end = start + (self.hop if j == SUBBLOCKS - 1 else (j + 1) * steps)
                if end <= self._pos or start + j * steps >= self._pos + n:
                    continue
                t = (j + 1) / SUBBLOCKS
                taps.append(kp + t * (kc - kp))
                ends.append(min(end, self._pos + n) - self._pos)
        self._k_prev, self._k_cur = prev, cur
        self._history = ext[-self.length:]
        self._pos += n
        return taps_from_reflection(np.array(taps))[:, 1:], np.array(ends, dtype=np.int64)
