"""Error feedback — the core's answer to *where does the error go?*

``error_feedback_quantize`` rounds a 1-D stream to integer codes while feeding each sample's
quantization error back through a filter, so that the output is

    y = x + H(z) e,        H(z) = B(z) / A(z),   b[0] = a[0] = 1,

where ``e`` is the (white, when dithered) rounding error. ``H`` is the noise transfer function:
its magnitude response is the spectrum the error ends up with. With ``b = [1]`` this is plain
(dithered) rounding; an FIR ``b`` is classic noise shaping; ``a`` adds poles.

The kernel is compiled ahead of time (``_kernels.pyx``; it releases the GIL, so channels run in
parallel threads) and its state travels in a :class:`FeedbackState`, so a stream processed in
chunks gives exactly the same codes as the stream processed whole. Clipping to ``[qmin, qmax]``
is counted; the error fed back is the rounding error only, so a clipped sample never
destabilises the filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quanta.core import _kernels
from quanta.errors import ConfigError


@dataclass
class FeedbackState:
    """Filter memory between chunks: past errors ``e`` and past shaped errors ``s = H e``."""

    e_hist: np.ndarray
    s_hist: np.ndarray
    clipped: int = field(default=0)

    @classmethod
    def zeros(cls, b: np.ndarray, a: np.ndarray) -> FeedbackState:
        return cls(np.zeros(len(b) - 1), np.zeros(len(a) - 1))


def _coeffs(c: np.ndarray | list[float] | None, name: str) -> np.ndarray:
    arr = np.array([1.0] if c is None else c, dtype=np.float64).ravel()
    if arr.size == 0 or arr[0] != 1.0:
        raise ConfigError(f"the error filter's {name}[0] must be 1")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"the error filter's {name} coefficients must be finite")
    return arr


def error_feedback_quantize(
    x: np.ndarray,
    *,
    b: np.ndarray | list[float] | None = None,
    a: np.ndarray | list[float] | None = None,
    qmin: int = -32768,
    qmax: int = 32767,
    dither: np.ndarray | None = None,
    state: FeedbackState | None = None,
    gain: float = 1.0,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, FeedbackState]:
    """Quantize ``x * gain`` (1-D, in LSB units: one code step = 1.0) with error feedback.

    b, a: the noise transfer function's numerator and denominator (``b[0] = a[0] = 1``).
    dither: the same length as ``x``, in LSB, added before rounding (``None``: no dither).
    state: memory from the previous chunk (``None``: start from silence); not modified.
    gain: scale applied to ``x`` first (e.g. ``2**(bits-1)`` for full-scale audio).
    out: optional 1-D integer array (a strided channel view is fine) to write the codes to.
    Returns the codes (int32 unless ``out`` is given) in ``[qmin, qmax]`` and the state to pass
    with the next chunk; ``state.clipped`` counts clipped samples so far.
    """
    bb, aa = _coeffs(b, "b"), _coeffs(a, "a")
    u = np.asarray(x)
    if u.ndim != 1:
        u = u.ravel()
    if not np.issubdtype(u.dtype, np.floating):
        u = u.astype(np.float64)
    d = np.zeros(0) if dither is None else np.ascontiguousarray(dither, dtype=np.float64).ravel()
    if dither is not None and d.size != u.size:
        raise ConfigError("dither and signal lengths differ")
    st = FeedbackState.zeros(bb, aa) if state is None else state
    if st.e_hist.size != bb.size - 1 or st.s_hist.size != aa.size - 1:
        raise ConfigError("feedback state does not match the filter order")
    if out is None:
        out = np.empty(u.size, dtype=np.int32)
    elif out.shape != u.shape or not np.issubdtype(out.dtype, np.integer):
        raise ConfigError("out must be a 1-D integer array as long as x")
    new = FeedbackState(st.e_hist.astype(np.float64).copy(), st.s_hist.astype(np.float64).copy(),
                        st.clipped)
    br, ar = np.ascontiguousarray(bb[None, 1:][:, ::-1]), np.ascontiguousarray(aa[1:][::-1])
    new.clipped += int(_kernels.feedback(u, float(gain), d, br, np.array([u.size], dtype=np.int64), ar,
                                         new.e_hist, new.s_hist, float(qmin), float(qmax), out))
    return out, new


def error_feedback_segments(
    x: np.ndarray,
    taps: np.ndarray,
    ends: np.ndarray,
    *,
    qmin: int = -32768,
    qmax: int = 32767,
    dither: np.ndarray | None = None,
    state: FeedbackState,
    gain: float = 1.0,
    out: np.ndarray,
) -> FeedbackState:
    """:func:`error_feedback_quantize` through an FIR noise filter that changes along ``x``:
    ``taps[s]`` (``b[1:]`` of segment ``s``, every segment one order) holds for the samples
    before ``ends[s]`` (increasing; the last one ``len(x)``). Codes go to ``out``; returns the
    state to pass with the next chunk. One segment gives :func:`error_feedback_quantize`'s codes
    exactly (the same arithmetic in the same order)."""
    taps = np.asarray(taps, dtype=np.float64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    u = np.asarray(x)
    if taps.ndim != 2 or taps.shape[0] != ends.size or not 1 <= taps.shape[1] == state.e_hist.size:
        raise ConfigError("segment taps must be (segments, order) with the state's order")
    if not np.all(np.isfinite(taps)) or ends.size == 0 or ends[-1] != u.size or np.any(np.diff(ends) < 0):
        raise ConfigError("segment taps must be finite and the segments must end at len(x), in order")
    d = np.zeros(0) if dither is None else np.ascontiguousarray(dither, dtype=np.float64).ravel()
    new = FeedbackState(state.e_hist.astype(np.float64).copy(), np.zeros(0), state.clipped)
    br = np.ascontiguousarray(taps[:, ::-1])
    new.clipped += int(_kernels.feedback(u, float(gain), d, br, ends, np.zeros(0), new.e_hist, new.s_hist,
                                         float(qmin), float(qmax), out))
    return new


def noise_gain_db(b: np.ndarray | list[float], a: np.ndarray | list[float] | None = None,
                  n_fft: int = 8192) -> tuple[float, float]:
    """(power gain, peak magnitude gain) of the noise transfer function, in dB.

    The power gain is the white-noise power amplification ``mean |H|²``; the peak is ``max |H|``.
    """
    bb, aa = _coeffs(b, "b"), _coeffs(a, "a")
    hb = np.fft.rfft(bb, 2 * n_fft)
    ha = np.fft.rfft(aa, 2 * n_fft)
    mag2 = np.abs(hb / ha) ** 2
    return float(10 * np.log10(np.mean(mag2))), float(10 * np.log10(np.max(mag2)))


def error_diffusion(x: np.ndarray, *, qmin: int, qmax: int) -> np.ndarray:
    """Round a 2-D field (``(H, W)`` or ``(H, W, C)``, in LSB units) to integer codes, spreading
    each pixel's error onto its unprocessed neighbours (Floyd–Steinberg weights 7, 3, 5, 1 /16,
    serpentine scan) — the image twin of 1-D error feedback. Returns int32 codes.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (2, 3):
        raise ConfigError("error diffusion takes (H, W) or (H, W, C) arrays")
    a3 = a[..., None] if a.ndim == 2 else a
    out = np.empty(a3.shape, dtype=np.int32)
    _kernels.diffuse(np.ascontiguousarray(a3), float(qmin), float(qmax), out)
    return out[..., 0] if a.ndim == 2 else out
