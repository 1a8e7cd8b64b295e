"""Measure audio: levels, clipping, effective depth, and the residual against a reference.

Levels are in dB re full-scale amplitude: a signal of RMS ``r`` has level ``20·log10(r)``
(a full-scale sine is −3.01 dB). Weighted residual levels integrate the residual's power
spectrum times a weighting (:mod:`quanta.audio.weighting`) over 20 Hz–20 kHz; the unweighted
total covers the whole band. Against a reference, the residual's noise-to-mask ratio per frame
(:mod:`quanta.audio.masking`: the masking threshold of the *reference*, never of the file
measured), the worst channel of each frame counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quanta.audio import io
from quanta.audio.levels import clip_top, codes_per_unit, effective_bits
from quanta.audio.masking import nmr_frames, nmr_summary
from quanta.audio.weighting import WEIGHTINGS
from quanta.core.dither import total_error_variance_lsb2
from quanta.core.measures import db_amplitude
from quanta.core.measures import db_power as _db
from quanta.errors import InputError
from quanta.progress import Progress
from quanta.reports import Report, fmt, private

SEGMENT = 8192  # samples per spectral segment (5.9 Hz bins at 48 kHz)
BAND = (20.0, 20000.0)


class SpectrumMeter:
    """Accumulates the power spectrum of a (multi-channel) stream, chunk by chunk.

    Hann-windowed, non-overlapping segments of :data:`SEGMENT` samples, averaged over segments
    and channels; ``spectrum()`` is one-sided and sums to the mean square.
    """

    def __init__(self, rate_hz: float, segment: int = SEGMENT) -> None:
        self.rate_hz = float(rate_hz)
        self.segment = segment
        self.window = np.hanning(segment + 2)[1:-1]
        self._acc = np.zeros(segment // 2 + 1)
        self._count = 0
        self._rest: np.ndarray | None = None
        self.sum_sq = 0.0
        self.n = 0
        self.peak = 0.0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        if x.size == 0:
            return
        self.sum_sq += float(np.sum(x * x))
        self.n += x.size
        self.peak = max(self.peak, float(np.max(np.abs(x))))
        if self._rest is not None and self._rest.size:
            x = np.concatenate([self._rest, x])
        full = (x.shape[0] // self.segment) * self.segment
        if full:
            segs = x[:full].reshape(-1, self.segment, x.shape[1]).transpose(0, 2, 1)
            spec = np.abs(np.fft.rfft(segs * self.window, axis=-1)) ** 2
            self._acc += spec.sum(axis=(0, 1))
            self._count += spec.shape[0] * spec.shape[1]
        self._rest = x[full:].copy()

    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """Frequencies (Hz) and power per bin (one-sided; sums to the mean square)."""
        f = np.fft.rfftfreq(self.segment, 1 / self.rate_hz)
        if self._count == 0:  # too short for one segment: no spectrum (levels say NaN/None)
            return f, np.zeros_like(f)
        p = self._acc / self._count / (self.segment * np.sum(self.window**2))
        p[1:-1] *= 2
        return f, p

    def mean_square(self) -> float:
        return self.sum_sq / self.n if self.n else 0.0

    def levels(self) -> dict:
        """Residual levels in dB: unweighted (whole band and 20 Hz–20 kHz) and weighted."""
        f, p = self.spectrum()
        band = (f >= BAND[0]) & (f <= BAND[1])
        out = {"unweighted_db": _db(self.mean_square()),
               "unweighted_band_db": _db(float(np.sum(p[band]))) if self._count else math.nan}
        for name, fn in WEIGHTINGS.items():
            if fn is None:
                continue
            w = 10 ** (fn(f[band]) / 10)
            out[f"{name}_db"] = _db(float(np.sum(p[band] * w))) if self._count else math.nan
        out["peak_db"] = db_amplitude(self.peak)
        return out


def channel_stats(x: np.ndarray, bits: int | None = None) -> list[dict]:
    """Per channel: peak and RMS (dBFS), DC offset, clip count, effective bit depth.

    Clips are samples at the extreme codes of ``bits`` (or at |x| ≥ 1 for float data).
    """
    x = x[:, None] if x.ndim == 1 else x
    out = []
    for c in range(x.shape[1]):
        col = x[:, c]
        peak = float(np.max(np.abs(col))) if col.size else 0.0
        rms = float(np.sqrt(np.mean(col * col))) if col.size else 0.0
        if bits:
            clips = int(np.sum((col >= clip_top(bits)) | (col <= -1.0)))
        else:
            clips = int(np.sum(np.abs(col) >= 1.0))
        out.append({"peak_dbfs": db_amplitude(peak), "rms_dbfs": db_amplitude(rms),
                    "dc": float(np.mean(col)) if col.size else 0.0, "clips": clips,
                    "effective_bits": effective_bits(col)})
    return out


def _paired(test: Path, ref: Path, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    it_t, it_r = io.blocks(test, chunk), io.blocks(ref, chunk)
    for xt in it_t:
        xr = next(it_r, None)
        if xr is None or xr.shape != xt.shape:
            raise InputError(f"{test} and {ref} differ in length or channels")
        yield xt, xr
    if next(it_r, None) is not None:
        raise InputError(f"{test} and {ref} differ in length")


@dataclass(frozen=True)
class AnalysisReport(Report):
    """Levels of a file (dBFS, per channel) and, against a reference, of the residual (dB re
    full-scale amplitude); ``meter`` keeps the residual's spectrum for a plot."""

    file: str
    rate_hz: int
    channels: int
    frames: int
    seconds: float
    subtype: str
    channels_stats: list[dict]
    residual: dict | None = None
    dynamic_range: dict | None = None
    meter: SpectrumMeter | None = private(default=None)  # noqa: RUF009 (a field spec)
    #: per-frame NMR: (frame centres in s, dB), for a plot over time
    nmr_series: tuple | None = private(default=None)

    def rows(self) -> list[tuple[str, str]]:
        rows = [("file", f"{self.file}: {self.rate_hz} Hz, {self.channels} ch, "
                 f"{self.seconds:.2f} s, {self.subtype}")]
        for i, c in enumerate(self.channels_stats):
            rows.append((f"channel {i}", f"peak {fmt(c['peak_dbfs'])} dBFS, RMS {fmt(c['rms_dbfs'])} "
                         f"dBFS, DC {c['dc']:.2e}, clips {c['clips']}, effective bits "
                         f"{c['effective_bits'] or 'float'}"))
        labels = {"threshold_db": "residual, threshold-weighted 20 Hz–20 kHz",
                  "unweighted_db": "residual, unweighted whole band",
                  "unweighted_band_db": "residual, unweighted 20 Hz–20 kHz",
                  "a_db": "residual, A-weighted", "itu468_db": "residual, ITU-R 468-weighted",
                  "peak_db": "residual peak", "snr_db": "SNR"}
        for k, label in labels.items():
            if self.residual and k in self.residual:
                rows.append((label, f"{fmt(self.residual[k])} dB"))
        if self.residual and "nmr_median_db" in self.residual:
            r = self.residual
            rows.append(("noise-to-mask ratio", f"median {fmt(r['nmr_median_db'])} dB, 95th percentile "
                         f"{fmt(r['nmr_p95_db'])} dB, {100 * r['nmr_frames_above_0db']:.1f} % of "
                         f"{r['nmr_frames']} frames above 0 dB"))
        if self.dynamic_range:
            d = self.dynamic_range
            rows.append(("AES17 dynamic range", f"{d['dynamic_range_db']:.2f} dB unweighted, "
                         f"{d['dynamic_range_a_db']:.2f} dB A-weighted ({d['bits']} bits, dither "
                         f"{d['dither']}, shaping {d['shape']})"))
        return rows


def analyze_file(path: Path | str, reference: Path | str | None = None, *,
                 chunk_frames: int = 1 << 18, dynamic_range_bits: int | None = None,
                 dither: str = "tpdf", shape: str | None = "none",
                 progress: Progress | None = None) -> AnalysisReport:
    """Report on a file; with ``reference``, the residual ``file − reference`` too; with
    ``dynamic_range_bits``, the AES17 dynamic range of that depth and method at the file's rate.
    ``progress(frames_done, frames_total)`` over both passes."""
    src_info = io.info(path)
    total = src_info.frames * (2 if reference is not None else 1)
    tick = (lambda done: progress(done, total)) if progress else (lambda done: None)
    x, _ = io.read(path)
    tick(src_info.frames)
    residual, meter, series = None, None, None
    if reference is not None:
        meter, residual, ref = _residual(Path(path), Path(reference), src_info, chunk_frames,
                                         lambda done: tick(src_info.frames + done))
        series = nmr(x, ref, src_info.rate_hz)
        residual.update(nmr_summary(series[1]))
    dr = None if dynamic_range_bits is None else dynamic_range_db(
        dynamic_range_bits, dither=dither, shape=shape, rate_hz=src_info.rate_hz)
    return AnalysisReport(str(path), src_info.rate_hz, src_info.channels, src_info.frames,
                          src_info.seconds, src_info.subtype, channel_stats(x, src_info.bits),
                          residual, dr, meter, series)


def nmr(x: np.ndarray, reference: np.ndarray, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the noise-to-mask ratio (dB) of ``x − reference`` against the reference's
    masking threshold (:func:`quanta.audio.masking.nmr_frames`), the worst channel of each
    frame: (frame centres in s, NMR in dB)."""
    x = x[:, None] if x.ndim == 1 else x
    reference = reference[:, None] if reference.ndim == 1 else reference
    per_channel = [nmr_frames(x[:, c] - reference[:, c], reference[:, c], rate_hz)
                   for c in range(x.shape[1])]
    return per_channel[0][0], np.max([v for _, v in per_channel], axis=0)


def plot_nmr(series: tuple[np.ndarray, np.ndarray], out: Path, *, title: str = "") -> None:
    """Per-frame noise-to-mask ratio over time, as PNG (:func:`quanta.render.plots.rd_plot`)."""
    from quanta.render.plots import Series, rd_plot

    times, values = series
    rd_plot([Series("NMR per frame (worst channel)", times, values, "quanta"),
             Series("0 dB: the edge of audibility", [times[0], times[-1]], [0.0, 0.0], "reference")],
            xlabel="time (s)", ylabel="noise-to-mask ratio (dB)", title=title or "noise-to-mask ratio",
            png=out)


def _residual(path: Path, reference: Path, src_info: io.AudioInfo, chunk_frames: int,
              tick: Callable[[int], None]) -> tuple[SpectrumMeter, dict, np.ndarray]:
    """The residual's spectrum and levels, and the reference's samples (read once, kept for the
    noise-to-mask ratio, which needs them whole as the file measured is already)."""
    ref_info = io.info(reference)
    if (ref_info.rate_hz, ref_info.channels, ref_info.frames) != \
            (src_info.rate_hz, src_info.channels, src_info.frames):
        raise InputError(f"{path} and {reference} differ in rate, channels or length")
    res, sig = SpectrumMeter(src_info.rate_hz), SpectrumMeter(src_info.rate_hz)
    done, blocks = 0, []
    for xt, xr in _paired(path, reference, chunk_frames):
        res.add(xt - xr)
        sig.add(xr)
        blocks.append(xr)
        done += xt.shape[0]
        tick(done)
    lv = res.levels()
    lv["snr_db"] = _db(sig.mean_square()) - lv["unweighted_db"]
    ref = np.concatenate(blocks) if blocks else np.zeros((0, ref_info.channels))
    return res, lv, ref.astype(np.float64)


def residual_levels(x: np.ndarray, ref: np.ndarray, rate_hz: float) -> dict:
    """Residual levels (dB) of arrays ``x − ref``; see :meth:`SpectrumMeter.levels`."""
    m = SpectrumMeter(rate_hz)
    m.add(np.asarray(x, dtype=np.float64) - np.asarray(ref, dtype=np.float64))
    return m.levels()


def dynamic_range_db(bits: int, *, dither: str = "tpdf", shape: str | None = "none",
                     rate_hz: float = 48000.0, seconds: float = 4.0, seed: int = 0) -> dict:
    """AES17-style dynamic range (dB) of requantizing to ``bits`` with a method.

    A 997 Hz tone at −60 dBFS is requantized; the tone is notched out (least-squares fit of the
    997 Hz sinusoid and DC, removed); the remainder's level over 20 Hz–20 kHz (THD+N) is read
    unweighted and A-weighted, and +60 dB gives the dynamic range: ``10·log10(0.5 / P)``
    relative to a full-scale sine.
    """
    from quanta.audio.requantize import requantize

    n = int(seconds * rate_hz)
    t = np.arange(n) / rate_hz
    amp = 10 ** (-60 / 20)
    x = amp * np.sin(2 * np.pi * 997.0 * t)
    y = requantize(x, bits, rate_hz, dither=dither, shape=shape, seed=seed) / codes_per_unit(bits)
    basis = np.stack([np.sin(2 * np.pi * 997.0 * t), np.cos(2 * np.pi * 997.0 * t), np.ones(n)], 1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    m = SpectrumMeter(rate_hz)
    m.add(y - basis @ coef)
    lv = m.levels()
    full_scale = _db(0.5)
    return {"bits": bits, "dither": dither, "shape": shape or "none", "rate_hz": rate_hz,
            "dynamic_range_db": full_scale - lv["unweighted_band_db"],
            "dynamic_range_a_db": full_scale - lv["a_db"]}


def theory_dynamic_range_db(bits: int, dither: str, rate_hz: float = 48000.0) -> float:
    """Dynamic range (dB, 20 Hz–20 kHz, unshaped) from the noise power of the method:
    Δ²/12 for rounding, Δ²/6 for RPDF, Δ²/4 for TPDF, spread evenly up to ``rate_hz / 2``."""
    step = 1.0 / codes_per_unit(bits)
    var = total_error_variance_lsb2(dither) * step * step
    band = (min(BAND[1], rate_hz / 2) - BAND[0]) / (rate_hz / 2)
    return _db(0.5) - _db(var * band)


def plot_spectrum(meter: SpectrumMeter, out: Path, *, title: str = "") -> None:
    """Residual spectrum (dB per Hz) against the hearing-threshold curve's shape (aligned at
    1 kHz), as PNG (:func:`quanta.render.plots.spectrum_plot`)."""
    from quanta.audio.weighting import threshold_weighting_db
    from quanta.render.plots import Series, spectrum_plot

    f, p = meter.spectrum()
    df = f[1] - f[0]
    keep = f > 0
    ref = 10 * np.log10(np.maximum(np.median(p[keep & (f > 900) & (f < 1100)] / df), 1e-30))
    spectrum_plot([Series("residual (dB re FS² per Hz)", f[keep],
                          10 * np.log10(np.maximum(p[keep] / df, 1e-30)), "quanta")],
                  Series("hearing threshold (shape, aligned at 1 kHz)", f[keep],
                         ref - threshold_weighting_db(f[keep]), "reference"),
                  title=title or "residual spectrum", rate_hz=meter.rate_hz, png=out)
