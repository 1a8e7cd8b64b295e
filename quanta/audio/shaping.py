"""Noise-shaping filters: the classic published ones, and ones designed for any sample rate.

A filter is a noise transfer function ``H(z) = B(z)/A(z)`` (``b[0] = a[0] = 1``): the
requantization error ends up with the spectrum ``|H(f)|²`` (see :mod:`quanta.core.feedback`).

Classic filters (coefficients as published; SoX ships the same set, with sign convention
``H = 1 - Σ c_k z^-k``): Lipshitz et al. (1991), Wannamaker's F-weighted, modified and improved
E-weighted (1992), Gesemann's IIR designs, and the Shibata family. Each is valid within 5% of its
native rate.

Designed filters (:func:`design`): the monic FIR ``H`` of a chosen order minimising the
hearing-threshold-weighted noise power over 20 Hz–20 kHz plus ``μ`` times the total noise power.
That is a linear-prediction problem: ``H`` is the prediction-error filter of the "spectrum"
``w(f) + μ`` (Levinson–Durbin), hence minimum phase. ``μ`` is the smallest value that keeps the
total noise gain and the peak of ``|H|²`` under their bounds, so headroom stays predictable.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from quanta.audio.weighting import threshold_weighting_db
from quanta.core.feedback import noise_gain_db
from quanta.errors import ConfigError


@dataclass(frozen=True)
class ShapingFilter:
    """A noise transfer function ``B/A`` for one sample rate (Hz)."""

    name: str
    rate_hz: float
    b: tuple[float, ...]
    a: tuple[float, ...] = (1.0,)

    @property
    def order(self) -> int:
        return max(len(self.b), len(self.a)) - 1

    def response(self, freq_hz: np.ndarray, rate_hz: float | None = None) -> np.ndarray:
        """``|H(f)|²`` (power gain) at ``freq_hz`` for a stream at ``rate_hz``."""
        fs = rate_hz or self.rate_hz
        z = np.exp(-2j * np.pi * np.asarray(freq_hz, dtype=np.float64) / fs)
        num = np.polyval(np.array(self.b)[::-1], z)
        den = np.polyval(np.array(self.a)[::-1], z)
        return np.abs(num / den) ** 2


def _sox_fir(name: str, rate: float, c: list[float]) -> ShapingFilter:
    return ShapingFilter(name, rate, tuple([1.0] + [-v for v in c]))


def _sox_iir(name: str, rate: float, c: list[float]) -> ShapingFilter:
    n = len(c) // 2
    num, den = c[:n], c[n:]
    a = [1.0, *den]
    b = [1.0] + [den[k] - num[k] for k in range(n)]
    return ShapingFilter(name, rate, tuple(b), tuple(a))


# Published coefficients (as in SoX's dither effect: c_k with H = 1 - Σ c_k z^-k).
CLASSIC: list[ShapingFilter] = [
    _sox_fir("lipshitz", 44100, [2.033, -2.165, 1.959, -1.590, .6149]),
    _sox_fir("f-weighted", 46000, [2.412, -3.370, 3.937, -4.174, 3.353, -2.205, 1.281, -.569,
                                   .0847]),
    _sox_fir("modified-e-weighted", 46000, [1.662, -1.263, .4827, -.2913, .1268, -.1124, .03252,
                                            -.01265, -.03524]),
    _sox_fir("improved-e-weighted", 46000, [2.847, -4.685, 6.214, -7.184, 6.639, -5.032, 3.263,
                                            -1.632, .4191]),
    _sox_iir("gesemann", 48000, [2.2374, -.7339, -.1251, -.6033, .903, .0116, -.5853, -.2571]),
    _sox_iir("gesemann", 44100, [2.2061, -.4706, -.2534, -.6214, 1.0587, .0676, -.6054, -.2738]),
    _sox_fir("shibata", 48000, [
        2.8720729351043701172, -5.0413231849670410156, 6.2442994117736816406,
        -5.8483986854553222656, 3.7067542076110839844, -1.0495119094848632812,
        -1.1830236911773681641, 2.1126792430877685547, -1.9094531536102294922,
        0.99913084506988525391, -0.17090806365013122559, -0.32615602016448974609,
        0.39127644896507263184, -0.26876461505889892578, 0.097676105797290802002,
        -0.023473845794796943665]),
    _sox_fir("shibata", 44100, [
        2.6773197650909423828, -4.8308925628662109375, 6.570110321044921875,
        -7.4572014808654785156, 6.7263274192810058594, -4.8481650352478027344,
        2.0412089824676513672, 0.7006359100341796875, -2.9537565708160400391,
        4.0800385475158691406, -4.1845216751098632812, 3.3311812877655029297,
        -2.1179926395416259766, 0.879302978515625, -0.031759146600961685181,
        -0.42382788658142089844, 0.47882103919982910156, -0.35490813851356506348,
        0.17496839165687561035, -0.060908168554306030273]),
    _sox_fir("shibata", 37800, [
        1.6335992813110351562, -2.2615492343902587891, 2.4077029228210449219,
        -2.6341717243194580078, 2.1440362930297851562, -1.8153258562088012695,
        1.0816224813461303711, -0.70302653312683105469, 0.15991993248462677002,
        0.041549518704414367676, -0.29416576027870178223, 0.2518316805362701416,
        -0.27766478061676025391, 0.15785403549671173096, -0.10165894031524658203,
        0.016833892092108726501]),
    _sox_fir("shibata", 32000, [
        0.82901298999786376953, -0.98922657966613769531, 0.59825712442398071289,
        -1.0028809309005737305, 0.59938216209411621094, -0.79502451419830322266,
        0.42723315954208374023, -0.54492527246475219727, 0.30792605876922607422,
        -0.36871799826622009277, 0.18792048096656799316, -0.2261127084493637085,
        0.10573341697454452515, -0.11435490846633911133, 0.038800679147243499756,
        -0.040842197835445404053]),
    _sox_fir("shibata", 22050, [
        0.065229974687099456787, -0.54981261491775512695, -0.40278548002243041992,
        -0.31783768534660339355, -0.28201797604560852051, -0.16985194385051727295,
        -0.15433363616466522217, -0.12507140636444091797, -0.08903945237398147583,
        -0.064410120248794555664, -0.047146003693342208862, -0.032805237919092178345,
        -0.028495194390416145325, -0.011695005930960178375, -0.011831838637590408325]),
    _sox_fir("low-shibata", 48000, [
        2.3925774097442626953, -3.4350297451019287109, 3.1853709220886230469,
        -1.8117271661758422852, -0.20124770700931549072, 1.4759907722473144531,
        -1.7210904359817504883, 0.97746700048446655273, -0.13790138065814971924,
        -0.38185903429985046387, 0.27421241998672485352, 0.066584214568138122559,
        -0.35223302245140075684, 0.37672343850135803223, -0.23964276909828186035,
        0.068674825131893157959]),
    _sox_fir("low-shibata", 44100, [
        2.0833916664123535156, -3.0418450832366943359, 3.2047898769378662109,
        -2.7571926116943359375, 1.4978630542755126953, -0.3427594602108001709,
        -0.71733748912811279297, 1.0737057924270629883, -1.0225815773010253906,
        0.56649994850158691406, -0.20968692004680633545, -0.065378531813621520996,
        0.10322438180446624756, -0.067442022264003753662, -0.00495197344571352005]),
    _sox_fir("high-shibata", 44100, [
        3.0259189605712890625, -6.0268716812133789062, 9.195003509521484375,
        -11.824929237365722656, 12.767142295837402344, -11.917946815490722656,
        9.1739168167114257812, -5.3712320327758789062, 1.1393624544143676758,
        2.4484779834747314453, -4.9719839096069335938, 6.0392003059387207031,
        -5.9359521865844726562, 4.903278350830078125, -3.5527443885803222656,
        2.1909697055816650391, -1.1672389507293701172, 0.4903914332389831543,
        -0.16519790887832641602, 0.023217858746647834778]),
]
CLASSIC_NAMES = tuple(dict.fromkeys(f.name for f in CLASSIC))


RATE_TOLERANCE = 0.05  # a classic filter serves rates within 5 % of its native rate (as SoX)


def usable_at(flt: ShapingFilter, rate_hz: float) -> bool:
    """Whether the classic filter ``flt`` applies at ``rate_hz``."""
    return abs(rate_hz - flt.rate_hz) / flt.rate_hz <= RATE_TOLERANCE


def classic(name: str, rate_hz: float) -> ShapingFilter:
    """The classic filter ``name`` for ``rate_hz`` (within 5% of its native rate)."""
    for f in CLASSIC:
        if f.name == name and usable_at(f, rate_hz):
            return f
    rates = sorted({int(f.rate_hz) for f in CLASSIC if f.name == name})
    if not rates:
        raise ConfigError(f"unknown noise-shaping filter {name!r}")
    raise ConfigError(f"filter {name!r} exists only for {', '.join(map(str, rates))} Hz "
                      f"(±5%), not {rate_hz:g} Hz; use --shape auto")


# --------------------------------------------------------------------------- design

_GRID = 8192  # frequency points over [0, fs/2]


def band_weight(rate_hz: float, lo_hz: float = 20.0, hi_hz: float = 20000.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) over [0, fs/2] and the threshold power weight, zero outside the band."""
    f = np.linspace(0.0, rate_hz / 2, _GRID + 1)
    w = 10 ** (threshold_weighting_db(f) / 10)
    w[(f < lo_hz) | (f > hi_hz)] = 0.0
    return f, w


def predicted(flt: ShapingFilter, rate_hz: float | None = None) -> dict:
    """Predicted noise of ``flt`` relative to flat (unshaped) noise of the same source, in dB.

    ``threshold_db``: threshold-weighted power over 20 Hz–20 kHz; ``total_db``: unweighted power
    over the whole band (the white-noise gain); ``peak_db``: the maximum of ``|H|²``.
    """
    fs = rate_hz or flt.rate_hz
    f, w = band_weight(fs)
    h = flt.response(f, fs)
    return {"threshold_db": float(10 * np.log10(np.sum(h * w) / np.sum(w))),
            "total_db": float(10 * np.log10(np.mean(h))),
            "peak_db": float(10 * np.log10(np.max(h)))}


def _autocorrelation(w: np.ndarray, f: np.ndarray, fs: float, order: int) -> np.ndarray:
    trap = np.ones_like(w)
    trap[0] = trap[-1] = 0.5
    return (w * trap) @ np.cos(2 * np.pi * np.outer(f, np.arange(order + 1)) / fs)


def _prediction_error_filter(r: np.ndarray) -> np.ndarray:
    """Levinson–Durbin: the monic minimum-phase ``A`` minimising ``∫ |A|² S`` for the
    autocorrelation ``r`` of ``S``."""
    a = np.zeros(r.size)
    a[0] = 1.0
    err = r[0]
    for m in range(1, r.size):
        k = -np.dot(a[:m], r[m:0:-1]) / err
        a[: m + 1] = a[: m + 1] + k * a[: m + 1][::-1]
        err *= 1.0 - k * k
    return a


def default_order(rate_hz: float) -> int:
    """Filter order used by ``--shape auto``: 12 up to 50 kHz (within 0.4 dB of order 16 there,
    25% faster), 24 above."""
    return 12 if rate_hz <= 50_000 else 24


def default_total_gain_db(rate_hz: float) -> float:
    """Default bound on the shaped noise's total power gain (dB).

    20 dB from 46 kHz up. Below, the only room for noise is the 15–20 kHz region, so 24 dB is
    allowed (SoX's Shibata filters at 44.1 kHz take 24–29 dB).
    """
    return 20.0 if rate_hz >= 46_000 else 24.0


def design(rate_hz: float, *, order: int | None = None, max_total_gain_db: float | None = None,
           max_peak_gain_db: float = 30.0) -> ShapingFilter:
    """Design a minimum-phase noise-shaping FIR for ``rate_hz`` (8 kHz–384 kHz, or any).

    order: taps after the leading 1 (default :func:`default_order`).
    max_total_gain_db: bound on the white-noise power gain ``mean |H|²`` (dB; default
    :func:`default_total_gain_db`).
    max_peak_gain_db: bound on ``max |H|²`` (dB): headroom the shaped noise may take.
    """
    total = default_total_gain_db(rate_hz) if max_total_gain_db is None else max_total_gain_db
    return _design(float(rate_hz), default_order(rate_hz) if order is None else int(order),
                   float(total), float(max_peak_gain_db))


@lru_cache(maxsize=64)
def _design(fs: float, order: int, max_total: float, max_peak: float) -> ShapingFilter:
    if not 1000 <= fs <= 1_000_000:
        raise ConfigError(f"sample rate {fs:g} Hz is outside 1 kHz–1 MHz")
    if not 1 <= order <= 64:
        raise ConfigError(f"filter order must be 1..64, got {order}")
    if max_total <= 0 or max_peak <= 0:
        raise ConfigError("noise gain bounds must be positive (dB)")
    f, w = band_weight(fs)
    if not np.any(w > 0):
        return ShapingFilter("none", fs, (1.0,))
    w = w / np.max(w)
    r_w = _autocorrelation(w, f, fs, order)
    r_1 = _autocorrelation(np.ones_like(w), f, fs, order)

    def make(mu: float) -> tuple[np.ndarray, bool]:
        b = _prediction_error_filter(r_w + mu * r_1)
        total, peak = noise_gain_db(b, n_fft=_GRID)  # |H|² on the same grid as f
        return b, total <= max_total and peak <= max_peak

    lo, hi = -12.0, 2.0  # log10 μ: search for the smallest μ meeting both bounds
    b_hi, ok = make(10**hi)
    if not ok:
        raise ConfigError("noise gain bounds too tight for any shaping filter")
    b_lo, ok = make(10**lo)
    if ok:
        return ShapingFilter(f"designed-{order}", fs, tuple(b_lo))
    for _ in range(40):
        mid = (lo + hi) / 2
        b_mid, ok = make(10**mid)
        if ok:
            hi, b_hi = mid, b_mid
        else:
            lo = mid
    return ShapingFilter(f"designed-{order}", fs, tuple(b_hi))


def select(shape: str | ShapingFilter | None, rate_hz: float, bits: int) -> ShapingFilter | None:
    """The filter that ``--shape`` names for this rate and depth (``None``: no shaping).

    "auto": a designed filter for ``rate_hz`` at 16 bits and below, none above (the noise is
    already far below audibility). "none": no shaping. Otherwise a classic filter's name.
    """
    if shape is None or isinstance(shape, ShapingFilter):
        return shape
    if shape == "none":
        return None
    if shape == "auto":
        return design(rate_hz) if bits <= 16 else None
    if shape.startswith("designed"):
        order = shape.split("-", 1)[1] if "-" in shape else None
        if order is not None and not order.isdigit():
            raise ConfigError(f"bad filter name {shape!r} (designed or designed-ORDER)")
        return design(rate_hz, order=int(order) if order else None)
    return classic(shape, rate_hz)


def filters_at(rate_hz: float) -> list[dict]:
    """Every filter usable at ``rate_hz`` (the designed one first) with its predicted noise
    relative to unshaped TPDF (dB)."""
    flts = [design(rate_hz)] + [f for f in CLASSIC if usable_at(f, rate_hz)]
    return [{"name": f.name, "order": f.order, "native_rate_hz": f.rate_hz, **predicted(f, rate_hz)}
            for f in flts]
