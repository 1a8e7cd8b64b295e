"""Error feedback — the core's answer to *where does the error go?*

``error_feedback_quantize`` rounds a 1-D stream to integer codes while feeding each sample's
quantization error back through a filter, so that the output is

    y = x + H(z) e,        H(z) = B(z) / A(z),   b[0] = a[0] = 1,

where ``e`` is the (white, when dithered) rounding error. ``H`` is the noise transfer function:
its magnitude response is the spectrum the error ends up with. With ``b = [1]`` this is plain
(dithered) rounding; an FIR ``b`` is classic noise shaping; ``a`` adds poles.

The kernel is numba-compiled (``cache=True``, ``nogil=True`` so channels run in parallel threads)
and its state travels in a :class:`FeedbackState`, so a stream processed in chunks gives exactly
the same codes as the stream processed whole. Clipping to ``[qmin, qmax]`` is counted; the error
fed back is the rounding error only, so a clipped sample never destabilises the filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

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


@numba.njit(cache=True, nogil=True)
def _kernel(u, d, b, a, ebuf, sbuf, qmin, qmax, out):  # pragma: no cover - compiled
    nb = b.size - 1
    na = a.size - 1
    clipped = 0
    for i in range(u.size):
        acc = 0.0
        for k in range(1, nb + 1):
            acc += b[k] * ebuf[nb + i - k]
        for k in range(1, na + 1):
            acc -= a[k] * sbuf[na + i - k]
        v = u[i] + acc
        q = np.floor(v + d[i] + 0.5)
        e = q - v
        ebuf[nb + i] = e
        sbuf[na + i] = e + acc
        if q > qmax:
            q = qmax
            clipped += 1
        elif q < qmin:
            q = qmin
            clipped += 1
        out[i] = q
    return clipped


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
) -> tuple[np.ndarray, FeedbackState]:
    """Quantize ``x`` (1-D, in LSB units: one code step = 1.0) with error feedback.

    b, a: the noise transfer function's numerator and denominator (``b[0] = a[0] = 1``).
    dither: the same length as ``x``, in LSB, added before rounding (``None``: no dither).
    state: memory from the previous chunk (``None``: start from silence).
    Returns int32 codes in ``[qmin, qmax]`` and the state to pass with the next chunk;
    ``state.clipped`` counts clipped samples so far.
    """
    bb, aa = _coeffs(b, "b"), _coeffs(a, "a")
    u = np.ascontiguousarray(x, dtype=np.float64).ravel()
    d = np.zeros_like(u) if dither is None else np.ascontiguousarray(dither, dtype=np.float64).ravel()
    if d.size != u.size:
        raise ConfigError("dither and signal lengths differ")
    st = FeedbackState.zeros(bb, aa) if state is None else state
    if st.e_hist.size != bb.size - 1 or st.s_hist.size != aa.size - 1:
        raise ConfigError("feedback state does not match the filter order")
    ebuf = np.concatenate((st.e_hist, np.zeros(u.size)))
    sbuf = np.concatenate((st.s_hist, np.zeros(u.size)))
    out = np.empty(u.size, dtype=np.int32)
    clipped = _kernel(u, d, bb, aa, ebuf, sbuf, float(qmin), float(qmax), out)
    nb, na = bb.size - 1, aa.size - 1
    new = FeedbackState(ebuf[ebuf.size - nb:].copy() if nb else np.zeros(0),
                        sbuf[sbuf.size - na:].copy() if na else np.zeros(0),
                        st.clipped + int(clipped))
    return out, new


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
