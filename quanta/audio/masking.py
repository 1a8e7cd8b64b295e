"""A masking model: how loud noise may be at each frequency before the music around it stops
hiding it, frame by frame — and the noise-to-mask ratio (NMR) it gives a residual.

The baseline is ISO/IEC 11172-3's psychoacoustic model 1, frame by frame in a compiled loop
(:mod:`quanta.audio._kernels`; its first, whole-array numpy form is the tests' oracle):

1. Frames of about 21 ms (:func:`frame_length` samples: 1024 at 44.1/48 kHz, doubled per
   doubling of the rate), Hann-windowed, hopping by half a frame. Each line's power, with a
   full-scale sine at ``full_scale_spl`` (96 dB SPL, the standard's calibration of 16 bits).
2. Tonal components: local maxima that stand at least 7 dB above their neighbours within ±172,
   ±258 or ±516 Hz (below 5.5 kHz, to 11 kHz, above; the standard's ±2, ±3, ±6 lines of a
   512-point FFT at 44.1 kHz, kept in hertz at every rate); their level is the power sum of the
   peak and its two neighbours. Noise maskers: the power of every other line, summed per critical
   band (one Bark wide).
3. Maskers below the threshold in quiet are dropped; the rest are gathered on a lattice of half
   a Bark (the standard's decimation keeps one masker per 0.5 Bark).
4. Each masker spreads over the Bark scale with the standard's level-dependent spreading
   function (slopes of 17 dB/Bark below, and 17 − 0.15·L dB/Bark above it, from −3 to +8
   Bark) and its masking index (tonal −6.025 − 0.275·z dB, noise −2.025 − 0.175·z dB).
5. The global threshold is the power sum of every masker's threshold and of the threshold in
   quiet (Terhardt's, :func:`quanta.audio.weighting.threshold_db`), interpolated back to lines.

Where this departs from the standard: maskers on a fixed half-Bark lattice rather than a list
(each masker spreads over at most 22 lattice points, with one power of its level per slope of
the spreading function), thresholds per line at any rate, and the frame length scaled with the
rate (the standard is defined at 32–48 kHz only). Levels stay linear powers throughout (a
tonal peak's 7 dB is a power ratio of 10^0.7), so a frame costs no logarithms but the
maskers'; the threshold is about 5 µs per 1024-sample frame on one core.

:func:`nmr_frames` compares a residual's power per line with the *reference's* threshold:
per frame, the mean over critical bands of the noise's energy in the band over the masking
threshold there, in dB (0 dB: the noise sits at the edge of audibility on average; PEAQ's
"total NMR" is the mean of these). The threshold is read as the masked energy of a
critical-band-wide noise, as masking thresholds are measured: a band's allowed energy is the
threshold's mean over the band's lines, its noise energy the sum of its lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from quanta.audio import _kernels
from quanta.audio.weighting import threshold_db

#: the level a full-scale sine is taken to play at (dB SPL), as the standard calibrates 16 bits
FULL_SCALE_SPL = 96.0
#: tonal components stand this far (dB) above their neighbours
TONAL_MARGIN_DB = 7.0
#: the lattice of maskers, in Bark
LATTICE_BARK = 0.5


def bark(freq_hz: np.ndarray | float) -> np.ndarray:
    """Critical-band rate in Bark (Zwicker and Terhardt, 1980)."""
    f = np.asarray(freq_hz, dtype=np.float64)
    return 13.0 * np.arctan(0.00076 * f) + 3.5 * np.arctan((f / 7500.0) ** 2)


def frame_length(rate_hz: float) -> int:
    """Samples per frame: 1024 at 44.1 and 48 kHz (21–23 ms), a power of two scaled with the rate."""
    return int(1024 * 2 ** max(0, round(np.log2(rate_hz / 48000.0))))


@dataclass(frozen=True)
class Frames:
    """A signal cut into analysis frames: ``start`` (sample index of each frame's first sample),
    ``length`` and ``hop`` in samples, the rate in Hz; :attr:`times_s` the frames' centres."""

    start: np.ndarray
    length: int
    hop: int
    rate_hz: float

    @property
    def times_s(self) -> np.ndarray:
        return (self.start + self.length / 2) / self.rate_hz

    @property
    def freqs_hz(self) -> np.ndarray:
        return np.fft.rfftfreq(self.length, 1.0 / self.rate_hz)


def frames_of(n_samples: int, rate_hz: float) -> Frames:
    """Half-overlapping frames covering ``n_samples`` (the last one zero-padded)."""
    n = frame_length(rate_hz)
    hop = n // 2
    count = max(1, -(-max(n_samples - n, 0) // hop) + 1)
    return Frames(np.arange(count) * hop, n, hop, float(rate_hz))


def line_power(x: np.ndarray, frames: Frames, *, full_scale_spl: float = FULL_SCALE_SPL) -> np.ndarray:
    """Power of each spectral line of each frame of the mono signal ``x`` (full scale ±1), linear,
    a full-scale sine's line at ``10^(full_scale_spl / 10)``: ``(frames, length // 2 + 1)``; at
    least ``10^((full_scale_spl − 300) / 10)`` (−300 dB), so that every line has a level."""
    x = np.asarray(x, dtype=np.float64)
    n = frames.length
    need = int(frames.start[-1]) + n
    if x.size < need:
        x = np.concatenate([x, np.zeros(need - x.size)])
    views = np.lib.stride_tricks.sliding_window_view(x[:need], n)
    first, count = int(frames.start[0]), frames.start.size
    uniform = np.array_equal(frames.start, first + frames.hop * np.arange(count))
    windows = views[first::frames.hop][:count] if uniform else views[frames.start]
    window = np.hanning(n + 2)[1:-1]
    spec = np.fft.rfft(windows * window, axis=1)
    ref = (np.sum(window) / 2) ** 2  # a full-scale sine's peak line
    power = np.empty(spec.shape)
    _kernels.powers(spec.view(np.float64), 10 ** (full_scale_spl / 10) / ref, 1e-30 * ref, power)
    return power


def line_power_db(x: np.ndarray, frames: Frames, *, full_scale_spl: float = FULL_SCALE_SPL) -> np.ndarray:
    """:func:`line_power` in dB (a full-scale sine at ``full_scale_spl``)."""
    return 10 * np.log10(line_power(x, frames, full_scale_spl=full_scale_spl))


def _neighbourhood(freqs_hz: np.ndarray) -> np.ndarray:
    """Lines on each side a tonal component must exceed by 7 dB (the standard's ±2/±3/±6 lines
    at 86 Hz per line, kept in hertz)."""
    step = freqs_hz[1] - freqs_hz[0]
    width_hz = np.where(freqs_hz < 5500, 172.0, np.where(freqs_hz < 11000, 258.0, 516.0))
    return np.maximum(2, np.round(width_hz / step)).astype(int)


def spreading(dz: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """The standard's spreading function split as ``sf(dz, L) = a(dz) + b(dz)·L`` (dz: target
    minus masker, Bark; L: the masker's level, dB; ``a`` is −inf where it does not reach, outside
    −3 ≤ dz < 8).

    ``−3 ≤ dz < −1: 17·dz − 0.4·L + 11``; ``−1 ≤ dz < 0: (0.4·L + 6)·dz``; ``0 ≤ dz < 1: −17·dz``;
    ``1 ≤ dz < 8: −(dz − 1)·(17 − 0.15·L) − 17``."""
    dz = np.asarray(dz, dtype=np.float64)
    r1, r2, r3, r4 = (dz >= -3) & (dz < -1), (dz >= -1) & (dz < 0), (dz >= 0) & (dz < 1), (dz >= 1) & (dz < 8)
    a = np.select([r1, r2, r3, r4], [17 * dz + 11, 6 * dz, -17 * dz, -17 * dz], -np.inf)
    b = np.select([r1, r2, r4], [np.full_like(dz, -0.4), 0.4 * dz, 0.15 * (dz - 1)], 0.0)
    return a, b


#: lattice steps a masker reaches (−3 to +7.5 Bark) and the spreading function's parts there
STEPS = np.arange(int(-3 / LATTICE_BARK), int(8 / LATTICE_BARK))
_A, _B = spreading(STEPS * LATTICE_BARK)


@dataclass(frozen=True)
class Lattice:
    """Per rate and frame length: each line's Bark, lattice cell and critical band, the runs of
    lines in each cell and band, each band's noise-masker cell (its lines' mean Bark), the
    threshold in quiet per line and per cell (dB SPL; above 20 kHz 200 dB: nothing is heard),
    each line's tonal neighbourhood, and each line's place between two cells."""

    z_line: np.ndarray
    cell: np.ndarray
    band: np.ndarray  # each line's critical band, counted from 0 without gaps
    cell_starts: np.ndarray  # first line of each lattice cell that has lines (z rises with f)
    band_starts: np.ndarray  # first line of each critical band
    band_cell: np.ndarray
    z_cell: np.ndarray
    quiet_db: np.ndarray
    quiet_cell_db: np.ndarray
    reach: np.ndarray

    @classmethod
    def of(cls, freqs_hz: np.ndarray) -> Lattice:
        z = bark(freqs_hz)
        cells = int(np.ceil(z[-1] / LATTICE_BARK)) + 2
        cell = np.round(z / LATTICE_BARK).astype(int)
        band_no = np.floor(z).astype(int)
        quiet = np.where(freqs_hz > 20000, 200.0, np.minimum(threshold_db(np.maximum(freqs_hz, 20.0)), 200.0))
        cell_starts = np.flatnonzero(np.r_[True, np.diff(cell) != 0])
        band_starts = np.flatnonzero(np.r_[True, np.diff(band_no) != 0])
        band = np.cumsum(np.r_[True, np.diff(band_no) != 0]) - 1
        centre = np.add.reduceat(z, band_starts) / np.diff(np.r_[band_starts, z.size])
        quiet_cell = np.full(cells, np.inf)
        np.minimum.at(quiet_cell, cell, quiet)
        return cls(z, cell, band, cell_starts, band_starts, np.round(centre / LATTICE_BARK).astype(int),
                   np.arange(cells) * LATTICE_BARK, quiet, quiet_cell, _neighbourhood(freqs_hz))

    def interpolation(self) -> tuple[np.ndarray, np.ndarray]:
        """Each line's lower lattice cell and its weight towards the next (linear in Bark)."""
        pos = self.z_line / LATTICE_BARK
        lo = np.minimum(np.floor(pos).astype(int), self.z_cell.size - 2)
        return lo, pos - lo


@lru_cache(maxsize=8)
def _kernel_tables(length: int, rate_hz: float) -> tuple:
    """The arguments of the compiled model-1 loop for frames of ``length`` at ``rate_hz``."""
    lat = Lattice.of(np.fft.rfftfreq(length, 1.0 / rate_hz))
    lo, w = lat.interpolation()
    z, i32 = lat.z_cell, np.int32
    with np.errstate(over="ignore"):
        quiet_cell = 10 ** (lat.quiet_cell_db / 10)
    return (lat.cell.astype(i32), lat.band.astype(i32), lat.reach.astype(i32), 10 ** (lat.quiet_db / 10),
            quiet_cell, lat.band_cell.astype(i32), 10 ** ((-6.025 - 0.275 * z) / 10),
            10 ** ((-2.025 - 0.175 * z) / 10), 10 ** (_A / 10), lo.astype(i32), w,
            10 ** (TONAL_MARGIN_DB / 10))


def threshold_power(power: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """The global masking threshold per line (linear, the scale of ``power``) from line powers
    ``power`` of shape ``(frames, lines)`` (see the module docstring; compiled, one frame at a
    time: a frame's threshold does not depend on the frames computed with it)."""
    power = np.ascontiguousarray(power, dtype=np.float64)
    length = 2 * (power.shape[1] - 1)
    out = np.empty_like(power)
    _kernels.threshold(power, *_kernel_tables(length, round(float(freqs_hz[1]) * length, 6)), out)
    return out


def masking_threshold_db(p_db: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """:func:`threshold_power` in dB, from line powers in dB."""
    return 10 * np.log10(threshold_power(10 ** (np.asarray(p_db) / 10), freqs_hz))


def masking_threshold(x: np.ndarray, rate_hz: float, *,
                      full_scale_spl: float = FULL_SCALE_SPL) -> tuple[Frames, np.ndarray]:
    """The mono signal ``x``'s masking threshold: its frames and the threshold per frame and
    line (dB, a full-scale sine at ``full_scale_spl``)."""
    fr = frames_of(len(x), rate_hz)
    return fr, 10 * np.log10(threshold_power(line_power(x, fr, full_scale_spl=full_scale_spl), fr.freqs_hz))


def nmr_frames(noise: np.ndarray, reference: np.ndarray, rate_hz: float, *,
               full_scale_spl: float = FULL_SCALE_SPL) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the noise-to-mask ratio (dB) of ``noise`` against the masking threshold of
    ``reference`` (mono arrays of one length, full scale ±1): the mean over critical bands from
    20 Hz to 20 kHz of the noise's energy in the band over the threshold's (its mean over the
    band's lines; see the module docstring). Returns (frame centres in s, NMR in dB)."""
    fr = frames_of(len(reference), rate_hz)
    mask = threshold_power(line_power(reference, fr, full_scale_spl=full_scale_spl), fr.freqs_hz)
    noise_p = line_power(noise, fr, full_scale_spl=full_scale_spl)
    f = fr.freqs_hz
    keep = (f >= 20.0) & (f <= 20000.0)
    band = np.floor(bark(f[keep])).astype(int)
    starts = np.flatnonzero(np.r_[True, np.diff(band) != 0])
    n = np.add.reduceat(noise_p[:, keep], starts, axis=1)
    m = np.add.reduceat(mask[:, keep], starts, axis=1) / np.diff(np.r_[starts, band.size])
    ratio = (n / m).mean(axis=1)
    return fr.times_s, 10 * np.log10(np.maximum(ratio, 1e-30))


def nmr_summary(nmr_db: np.ndarray) -> dict:
    """Median and 95th percentile of per-frame NMR (dB) and the share of frames above 0 dB."""
    v = np.asarray(nmr_db, dtype=np.float64)
    return {"nmr_median_db": float(np.median(v)), "nmr_p95_db": float(np.percentile(v, 95)),
            "nmr_frames_above_0db": float(np.mean(v > 0.0)), "nmr_frames": int(v.size)}
