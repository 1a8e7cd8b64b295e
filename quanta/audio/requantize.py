"""Requantize audio to any bit depth (1–24) with dither and noise shaping, in streams.

Full scale: float 1.0 ↔ ``2**(bits-1)`` codes; codes span ``[-2**(bits-1), 2**(bits-1)-1]``
(the negative extreme is usable). Out-of-range samples clip and are counted per channel.

Each channel is an independent stream (its own dither generator and filter state), so channels
run in parallel threads (the numba kernel releases the GIL) and a file processed in chunks gives
exactly the bytes of the file processed whole with the same seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quanta.audio import io
from quanta.audio.shaping import ShapingFilter, predicted, select
from quanta.core.dither import KINDS, DitherSource
from quanta.core.feedback import FeedbackState, error_feedback_quantize
from quanta.errors import ConfigError, InputError

DEFAULT_CHUNK = 1 << 18  # frames per chunk: ~5.5 s at 48 kHz


def check_bits(bits: int) -> int:
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 24:
        raise ConfigError(f"bit depth must be an integer in 1..24, got {bits!r}")
    return int(bits)


def fits_grid(x: np.ndarray, bits: int) -> bool:
    """True when every sample already lies on the ``bits``-bit grid (and inside its range)."""
    y = x * float(1 << (bits - 1))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return bool(np.array_equal(y, np.rint(y)) and (y.size == 0 or (y.min() >= lo and y.max() <= hi)))


@dataclass
class Requantizer:
    """Streaming requantizer: call :meth:`process` on consecutive chunks of one signal."""

    bits: int
    channels: int
    rate_hz: float
    dither: str = "tpdf"
    shape: str | ShapingFilter | None = "auto"
    seed: int = 0
    threads: int | None = None
    filter: ShapingFilter | None = field(init=False)

    def __post_init__(self) -> None:
        self.bits = check_bits(self.bits)
        if self.dither not in KINDS:
            raise ConfigError(f"unknown dither {self.dither!r} (choose from {', '.join(KINDS)})")
        if self.channels < 1:
            raise ConfigError("need at least one channel")
        self.filter = select(self.shape, self.rate_hz, self.bits)
        b = np.array(self.filter.b if self.filter else (1.0,))
        a = np.array(self.filter.a if self.filter else (1.0,))
        self._b, self._a = b, a
        self._dither = DitherSource(self.dither, self.channels, seed=self.seed)
        self._states = [FeedbackState.zeros(b, a) for _ in range(self.channels)]
        self._scale = float(1 << (self.bits - 1))
        self._qmin, self._qmax = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        workers = self.threads or min(self.channels, _cpus())
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None

    @property
    def clipped(self) -> list[int]:
        """Clipped samples so far, per channel."""
        return [s.clipped for s in self._states]

    def _channel(self, x: np.ndarray, c: int, out: np.ndarray) -> None:
        d = None if self.dither == "none" else self._dither.draw_channel(c, x.shape[0])
        _, self._states[c] = error_feedback_quantize(
            x[:, c], gain=self._scale, b=self._b, a=self._a, qmin=self._qmin, qmax=self._qmax,
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
        if self._pool is None:
            for c in range(self.channels):
                self._channel(x, c, out)
        else:
            list(self._pool.map(lambda c: self._channel(x, c, out), range(self.channels)))
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _cpus() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else
               (os.cpu_count() or 1))


def requantize(x: np.ndarray, bits: int, rate_hz: float, *, dither: str = "tpdf",
               shape: str | ShapingFilter | None = "auto", seed: int = 0) -> np.ndarray:
    """Requantize a whole float array ``(frames[, channels])`` to integer codes (int32)."""
    x = np.asarray(x, dtype=np.float64)
    two_d = x if x.ndim == 2 else x[:, None]
    rq = Requantizer(bits, two_d.shape[1], rate_hz, dither=dither, shape=shape, seed=seed)
    try:
        out = rq.process(two_d)
    finally:
        rq.close()
    return out if x.ndim == 2 else out[:, 0]


def requantize_file(
    src: Path | str,
    dst: Path | str,
    bits: int,
    *,
    dither: str = "tpdf",
    shape: str | ShapingFilter | None = "auto",
    seed: int = 0,
    force_dither: bool = False,
    chunk_frames: int = DEFAULT_CHUNK,
    out_format: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Requantize ``src`` into ``dst`` (written in place: callers wanting atomicity pass a
    temporary path and ``out_format``). Returns a report (dict).

    When every input sample already lies on the target grid (a 24-bit file holding 16-bit
    audio, say) the codes are copied exactly unless ``force_dither``.
    """
    bits = check_bits(bits)
    if chunk_frames < 1:
        raise ConfigError("chunk size must be positive")
    inf = io.info(src)
    if inf.frames == 0:
        raise InputError(f"{src}: no audio frames")
    fmt = out_format or io.format_for(dst)
    exact = False
    if not force_dither:
        exact = all(fits_grid(x, bits) for x in io.blocks(src, chunk_frames))
    rq = None if exact else Requantizer(bits, inf.channels, inf.rate_hz, dither=dither,
                                        shape=shape, seed=seed)
    t0 = time.perf_counter()
    peak = 0.0
    try:
        with io.CodeWriter(dst, rate_hz=inf.rate_hz, channels=inf.channels, bits=bits, fmt=fmt,
                           metadata=inf.metadata) as w:
            for x in io.prefetch(io.blocks(src, chunk_frames)):
                peak = max(peak, float(np.max(np.abs(x))))
                codes = np.rint(x * float(1 << (bits - 1))).astype(np.int32) if exact \
                    else rq.process(x)
                w.write(codes)
                if progress:
                    progress(x.shape[0])
    finally:
        if rq is not None:
            rq.close()
    flt = None if rq is None else rq.filter
    report = {
        "input": str(src), "output": str(dst), "rate_hz": inf.rate_hz, "channels": inf.channels,
        "frames": inf.frames, "seconds": inf.seconds, "input_subtype": inf.subtype,
        "bits": bits, "exact_copy": exact,
        "dither": "none" if exact else dither,
        "shape": "none" if flt is None else flt.name,
        "filter_order": 0 if flt is None else flt.order,
        "clipped": [0] * inf.channels if rq is None else rq.clipped,
        "input_peak_dbfs": 20 * np.log10(peak) if peak > 0 else -np.inf,
        "wall_s": time.perf_counter() - t0,
    }
    if flt is not None:
        report["predicted_vs_unshaped_db"] = predicted(flt, inf.rate_hz)
    return report
