"""Requantize audio to any bit depth (1–24) with dither and noise shaping, in streams.

Full scale: float 1.0 ↔ ``2**(bits-1)`` codes; codes span ``[-2**(bits-1), 2**(bits-1)-1]``
(the negative extreme is usable). Out-of-range samples clip and are counted per channel.

Each channel is an independent stream (its own dither generator and filter state), so channels
run in parallel threads (the compiled kernel releases the GIL) and a file processed in chunks gives
exactly the bytes of the file processed whole with the same seed.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quanta.audio import io
from quanta.audio.adaptive import ADAPTIVE, AdaptiveShaper
from quanta.audio.levels import check_bits, codes_per_unit, fits_grid, full_scale
from quanta.audio.shaping import ShapingFilter, predicted, select
from quanta.core.dither import DitherKind, DitherSource
from quanta.core.feedback import FeedbackState, error_feedback_quantize, error_feedback_segments
from quanta.core.measures import db_amplitude
from quanta.errors import ConfigError, InputError
from quanta.progress import Progress
from quanta.reports import Report, fmt
from quanta.threads import threads

DEFAULT_CHUNK = 1 << 18  # frames per chunk: ~5.5 s at 48 kHz

__all__ = ["DEFAULT_CHUNK", "RequantizeReport", "Requantizer", "check_bits", "fits_grid",
           "requantize", "requantize_file"]


@dataclass
class Requantizer:
    """Streaming requantizer: call :meth:`process` on consecutive chunks of one signal."""

    bits: int
    channels: int
    rate_hz: float
    dither: DitherKind = "tpdf"
    shaper: str | ShapingFilter | None = "auto"
    seed: int = 0
    threads: int | None = None
    shaping_filter: ShapingFilter | None = field(init=False)

    def __post_init__(self) -> None:
        self.bits = check_bits(self.bits)
        if self.channels < 1:
            raise ConfigError("need at least one channel")
        self._dither = DitherSource(self.dither, self.channels, seed=self.seed)  # validates
        #: per channel, the masking-driven shapers of ``shaper="adaptive"`` (:mod:`quanta.audio.adaptive`)
        self.adaptive = [AdaptiveShaper(self.rate_hz, self.bits) for _ in range(self.channels)] \
            if self.shaper == ADAPTIVE else None
        #: the fixed filter (None: no shaping, or the adaptive shapers)
        self.shaping_filter = None if self.adaptive else select(self.shaper, self.rate_hz, self.bits)
        flt = self.shaping_filter
        if self.adaptive:  # an FIR of the adaptive order, no poles
            self._b, self._a = np.zeros(self.adaptive[0].order + 1), np.array([1.0])
        else:
            self._b, self._a = np.array(flt.b if flt else (1.0,)), np.array(flt.a if flt else (1.0,))
        self._states = [FeedbackState.zeros(self._b, self._a) for _ in range(self.channels)]
        grid = full_scale(self.bits).grid
        self._gain = codes_per_unit(self.bits)
        self._qmin, self._qmax = grid.qmin, grid.qmax
        workers = self.threads or min(self.channels, threads())
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None

    @property
    def clipped(self) -> list[int]:
        """Clipped samples so far, per channel."""
        return [s.clipped for s in self._states]

    def _channel(self, x: np.ndarray, c: int, out: np.ndarray) -> None:
        d = None if self.dither == "none" else self._dither.draw_channel(c, x.shape[0])
        if self.adaptive:
            taps, ends = self.adaptive[c].plan(x[:, c])
            self._states[c] = error_feedback_segments(
                x[:, c], taps, ends, gain=self._gain, qmin=self._qmin, qmax=self._qmax, dither=d,
                state=self._states[c], out=out[:, c])
            return
        _, self._states[c] = error_feedback_quantize(
            x[:, c], gain=self._gain, b=self._b, a=self._a, qmin=self._qmin, qmax=self._qmax,
            dither=d, state=self._states[c], out=out[:, c])

    def process(self, x: np.ndarray) -> np.ndarray:
        """Codes (int32, ``(frames, channels)``) for the next chunk of float samples."""
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise ConfigError(f"expected {self.channels} channels, got {x.shape[1]}")
        if not np.isfinite(x).all():
            raise InputError("non-finite sample (NaN or Inf) in the input")
        out = np.empty(x.shape, dtype=np.int32 if self.bits > 16 else np.int16)
        if x.shape[0] == 0:
            return out
        if self._pool is None:
            for c in range(self.channels):
                self._channel(x, c, out)
        else:
            list(self._pool.map(lambda c: self._channel(x, c, out), range(self.channels)))
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()



def requantize(x: np.ndarray, bits: int, rate_hz: float, *, dither: str = "tpdf",
               shape: str | ShapingFilter | None = "auto", seed: int = 0) -> np.ndarray:
    """Requantize a whole float array ``(frames[, channels])`` to integer codes (int32)."""
    x = np.asarray(x, dtype=np.float64)
    two_d = x if x.ndim == 2 else x[:, None]
    rq = Requantizer(bits, two_d.shape[1], rate_hz, dither=dither, shaper=shape, seed=seed)
    try:
        out = rq.process(two_d)
    finally:
        rq.close()
    return out if x.ndim == 2 else out[:, 0]


@dataclass(frozen=True)
class RequantizeReport(Report):
    """What :func:`requantize_file` did: the input, the method, clipping, levels (dBFS), time."""

    input: str
    output: str
    rate_hz: int
    channels: int
    frames: int
    seconds: float
    input_subtype: str
    bits: int
    exact_copy: bool
    dither: str
    shape: str
    filter_order: int
    clipped: list[int]
    input_peak_dbfs: float
    wall_s: float
    predicted_vs_unshaped_db: dict | None = None

    def rows(self) -> list[tuple[str, str]]:
        rows = [("input", f"{self.input} ({self.input_subtype}, {self.rate_hz} Hz, "
                 f"{self.channels} ch, {self.seconds:.2f} s)"),
                ("output", f"{self.output} ({self.bits} bits)")]
        if self.exact_copy:
            rows.append(("method", f"exact copy: the input already fits {self.bits} bits "
                         "(--force-dither to dither anyway)"))
        else:
            rows += [("dither", self.dither), ("noise shaping", f"{self.shape} (order {self.filter_order})")]
        if self.predicted_vs_unshaped_db:
            p = self.predicted_vs_unshaped_db
            rows.append(("predicted vs unshaped", f"threshold-weighted {p['threshold_db']:+.1f} dB, "
                         f"total {p['total_db']:+.1f} dB, peak gain {p['peak_db']:+.1f} dB"))
        rows += [("clipped samples", fmt(self.clipped)),
                 ("input peak", f"{fmt(self.input_peak_dbfs)} dBFS"),
                 ("time", f"{self.wall_s:.2f} s ({self.seconds / max(self.wall_s, 1e-9):.0f}× real time)")]
        return rows


def requantize_file(
    src: Path | str,
    dst: Path | str,
    bits: int = 16,
    *,
    dither: DitherKind = "tpdf",
    shape: str | ShapingFilter | None = "auto",
    seed: int = 0,
    force_dither: bool = False,
    chunk_frames: int = DEFAULT_CHUNK,
    out_format: str | None = None,
    progress: Progress | None = None,
) -> RequantizeReport:
    """Requantize ``src`` into ``dst``, written in place (:meth:`quanta.media.Medium.write` wraps
    it in an atomic write). ``progress(frames_done, frames_total)``.

    When every input sample already lies on the target grid (a 24-bit file holding 16-bit
    audio, say) the codes are copied exactly unless ``force_dither``.
    """
    bits = check_bits(bits)
    if chunk_frames < 1:
        raise ConfigError("chunk size must be positive")
    src_info = io.info(src)
    if src_info.frames == 0:
        raise InputError(f"{src}: no audio frames")
    fmt_out = out_format or io.format_for(dst)
    exact = not force_dither and all(fits_grid(x, bits) for x in io.blocks(src, chunk_frames))
    rq = None if exact else Requantizer(bits, src_info.channels, src_info.rate_hz, dither=dither,
                                        shaper=shape, seed=seed)
    t0 = time.perf_counter()
    try:
        peak = _stream(src, dst, src_info, bits, fmt_out, rq, chunk_frames, progress)
    finally:
        if rq is not None:
            rq.close()
    if fmt_out == "FLAC" and src_info.format == "FLAC":
        from quanta.audio.flac_meta import copy_tags

        copy_tags(src, dst)
    shape, order, prediction = _shaping(rq, src_info.rate_hz)
    return RequantizeReport(
        input=str(src), output=str(dst), rate_hz=src_info.rate_hz, channels=src_info.channels,
        frames=src_info.frames, seconds=src_info.seconds, input_subtype=src_info.subtype, bits=bits,
        exact_copy=exact, dither="none" if exact else dither, shape=shape, filter_order=order,
        clipped=[0] * src_info.channels if rq is None else rq.clipped,
        input_peak_dbfs=db_amplitude(peak), wall_s=time.perf_counter() - t0,
        predicted_vs_unshaped_db=prediction)


def _shaping(rq: Requantizer | None, rate_hz: float) -> tuple[str, int, dict | None]:
    """The report's noise shaping: its name, its order and the predicted gains of a fixed filter
    (an adaptive one changes every hop: no prediction)."""
    if rq is not None and rq.adaptive:
        s = rq.adaptive[0]
        return f"{ADAPTIVE} (masking-driven, every {s.hop} samples)", s.order, None
    flt = None if rq is None else rq.shaping_filter
    if flt is None:
        return "none", 0, None
    return flt.name, flt.order, predicted(flt, rate_hz)


def _stream(src: Path | str, dst: Path | str, src_info: io.AudioInfo, bits: int, fmt_out: str,
            rq: Requantizer | None, chunk_frames: int, progress: Progress | None) -> float:
    """Read, requantize (or copy exactly when ``rq`` is None) and write; returns the input peak."""
    peak, done = 0.0, 0
    gain = codes_per_unit(bits)
    with io.CodeWriter(dst, rate_hz=src_info.rate_hz, channels=src_info.channels, bits=bits,
                       fmt=fmt_out, metadata=src_info.metadata) as w:
        for x in io.prefetch(io.blocks(src, chunk_frames)):
            peak = max(peak, float(np.max(np.abs(x))))
            w.write(np.rint(x * gain).astype(np.int32) if rq is None else rq.process(x))
            done += x.shape[0]
            if progress:
                progress(done, src_info.frames)
    return peak
