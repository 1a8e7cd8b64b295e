"""A masking model: how loud noise may be at each frequency before the music around it stops
hiding it, frame by frame — and the noise-to-mask ratio (NMR) it gives a residual.

The baseline is ISO/IEC 11172-3's psychoacoustic model 1, vectorized over frames:

1. Frames of about 21 ms (:func:`frame_length` samples: 1024 at 44.1/48 kHz, doubled per
   doubling of the rate), Hann-windowed, hopping by half a frame. Each line's power in dB, with
   a full-scale sine at ``full_scale_spl`` (96 dB, the standard's calibration of 16-bit audio).
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
(the cost stays one small matrix product per frame), thresholds in dB per line at any rate,
and the frame length scaled with the rate (the standard is defined at 32–48 kHz only).

:func:`nmr_frames` compares a residual's power per line with the *reference's* threshold:
per frame, the mean over critical bands of the noise's energy in the band over the masking
threshold there, in dB (0 dB: the noise sits at the edge of audibility on average; PEAQ's
"total NMR" is the mean of these). The threshold is read as the masked energy of a
critical-band-wide noise, as masking thresholds are measured: a band's allowed energy is the
threshold's mean over the band's lines, its noise energy the sum of its lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quanta.audio.weighting import threshold_db

#: the level a full-scale sine is taken to play at (dB SPL), as the standard calibrates 16 bits
FULL_SCALE_SPL = 96.0
#: tonal components stand this far (dB) above their neighbours
TONAL_MARGIN_DB = 7.0
#: the lattice of maskers, in Bark
LATTICE_BARK = 0.5
#: frames processed together (memory: frames × lines × 8 bytes a few times over)
FRAMES_PER_BLOCK = 256


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


def line_power_db(x: np.ndarray, frames: Frames, *, full_scale_spl: float = FULL_SCALE_SPL) -> np.ndarray:
    """Power of each spectral line of each frame of the mono signal ``x`` (full scale ±1), in dB
    with a full-scale sine at ``full_scale_spl``: ``(frames, length // 2 + 1)``."""
    x = np.asarray(x, dtype=np.float64)
    n = frames.length
    need = int(frames.start[-1]) + n
    if x.size < need:
        x = np.concatenate([x, np.zeros(need - x.size)])
    idx = frames.start[:, None] + np.arange(n)[None, :]
    window = np.hanning(n + 2)[1:-1]
    spec = np.fft.rfft(x[idx] * window, axis=1)
    ref = (np.sum(window) / 2) ** 2  # a full-scale sine's peak line
    return full_scale_spl + 10 * np.log10(np.maximum(np.abs(spec) ** 2 / ref, 1e-30))


def _neighbourhood(freqs_hz: np.ndarray) -> np.ndarray:
    """Lines on each side a tonal component must exceed by 7 dB (the standard's ±2/±3/±6 lines
    at 86 Hz per line, kept in hertz)."""
    step = freqs_hz[1] - freqs_hz[0]
    width_hz = np.where(freqs_hz < 5500, 172.0, np.where(freqs_hz < 11000, 258.0, 516.0))
    return np.maximum(2, np.round(width_hz / step)).astype(int)


def _tonal(p_db: np.ndarray, reach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tonal peak mask, mask of lines taken by a tonal component's neighbourhood)."""
    lines = p_db.shape[1]
    pad = int(reach.max())
    padded = np.pad(p_db, ((0, 0), (pad, pad)), constant_values=-np.inf)
    centre = padded[:, pad:pad + lines]
    peak = (centre > padded[:, pad - 1:pad - 1 + lines]) & (centre >= padded[:, pad + 1:pad + 1 + lines])
    for j in range(2, pad + 1):
        active = reach >= j
        for side in (-j, j):
            other = padded[:, pad + side:pad + side + lines]
            peak &= ~active | (centre - other >= TONAL_MARGIN_DB)
    peak[:, 0] = peak[:, -1] = False
    taken = peak.copy()
    for j in range(1, pad + 1):  # a tonal component's neighbourhood is not noise
        active = (reach >= j)[None, :]
        left = np.zeros_like(peak)
        left[:, :-j] = peak[:, j:] & active[:, j:]
        right = np.zeros_like(peak)
        right[:, j:] = peak[:, :-j] & active[:, :-j]
        taken |= left | right
    return peak, taken


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


#: lattice steps a masker reaches (−3 to +8 Bark) and the spreading function's parts there
STEPS = np.arange(int(-3 / LATTICE_BARK), int(8 / LATTICE_BARK))
_A, _B = spreading(STEPS * LATTICE_BARK)
_LN10_10 = np.log(10.0) / 10.0


def _spread(level_db: np.ndarray, index_db: np.ndarray) -> np.ndarray:
    """Power (linear) each lattice point receives from maskers of ``level_db`` (``(frames,
    points)``, −inf where there is none) with masking index ``index_db`` per point: the sum over
    maskers of ``10^((L + index + a(dz) + b(dz)·L) / 10)``. The lattice is uniform, so a and b
    depend on the step between masker and target only: one exponential per step."""
    frames, points = level_db.shape
    lv = np.where(np.isfinite(level_db), level_db, -1e4)  # 1 + b > 0: no masker, no power
    out = np.zeros((frames, points))
    for step, a, b in zip(STEPS, _A, _B, strict=True):
        power = np.exp(_LN10_10 * (lv * (1 + b) + index_db + a))
        if step >= 0:
            out[:, step:] += power[:, :points - step]
        else:
            out[:, :step] += power[:, -step:]
    return out


@dataclass(frozen=True)
class _Lattice:
    """Per rate and frame length: each line's Bark, the runs of lines in each lattice cell and
    each critical band, each band's noise-masker cell, the threshold in quiet per line and per
    cell, and each line's tonal neighbourhood."""

    z_line: np.ndarray
    cell_starts: np.ndarray  # first line of each lattice cell that has lines (z rises with f)
    cell_of_start: np.ndarray  # which cell each of those runs is
    band_starts: np.ndarray  # first line of each critical band
    band_cell: np.ndarray  # the cell of each band's noise masker (its lines' mean Bark)
    z_cell: np.ndarray
    quiet_db: np.ndarray  # threshold in quiet per line (dB SPL)
    quiet_cell_db: np.ndarray
    reach: np.ndarray

    @classmethod
    def of(cls, freqs_hz: np.ndarray) -> _Lattice:
        z = bark(freqs_hz)
        cells = int(np.ceil(z[-1] / LATTICE_BARK)) + 2
        cell = np.round(z / LATTICE_BARK).astype(int)
        band = np.floor(z).astype(int)
        # above 20 kHz nothing is heard: a threshold of 200 dB (Terhardt's formula grows as f⁴)
        quiet = np.where(freqs_hz > 20000, 200.0, np.minimum(threshold_db(np.maximum(freqs_hz, 20.0)), 200.0))
        cell_starts = np.flatnonzero(np.r_[True, np.diff(cell) != 0])
        band_starts = np.flatnonzero(np.r_[True, np.diff(band) != 0])
        centre = np.add.reduceat(z, band_starts) / np.diff(np.r_[band_starts, z.size])
        quiet_cell = np.full(cells, np.inf)
        np.minimum.at(quiet_cell, cell, quiet)
        band_cell = np.round(centre / LATTICE_BARK).astype(int)
        return cls(z, cell_starts, cell[cell_starts], band_starts, band_cell, np.arange(cells) * LATTICE_BARK,
                   quiet, quiet_cell, _neighbourhood(freqs_hz))


def masking_threshold_db(p_db: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """The global masking threshold per line (dB, the scale of ``p_db``) from line powers
    ``p_db`` of shape ``(frames, lines)`` (see the module docstring)."""
    lat = _Lattice.of(freqs_hz)
    out = np.empty_like(p_db)
    for a in range(0, p_db.shape[0], FRAMES_PER_BLOCK):
        out[a:a + FRAMES_PER_BLOCK] = _threshold_block(p_db[a:a + FRAMES_PER_BLOCK], lat)
    return out


def _threshold_block(p_db: np.ndarray, lat: _Lattice) -> np.ndarray:
    power = 10 ** (p_db / 10)
    peak, taken = _tonal(p_db, lat.reach)
    near = power.copy()  # a tonal component's level: the peak and its two neighbours
    near[:, 1:] += power[:, :-1]
    near[:, :-1] += power[:, 1:]
    # sums over runs of lines (reduceat, not a matrix product: a frame's numbers must not depend
    # on how many frames are computed together — the streaming shaper relies on it)
    frames, cells = p_db.shape[0], lat.z_cell.size
    tonal = np.zeros((frames, cells))
    tonal[:, lat.cell_of_start] = np.add.reduceat(np.where(peak, near, 0.0), lat.cell_starts, axis=1)
    noise = np.zeros((frames, cells))
    noise[:, lat.band_cell] = np.add.reduceat(np.where(taken, 0.0, power), lat.band_starts, axis=1)
    with np.errstate(divide="ignore"):
        t_db, n_db = 10 * np.log10(tonal), 10 * np.log10(noise)
    t_db[t_db < lat.quiet_cell_db] = -np.inf  # decimation: maskers below the threshold in quiet go
    n_db[n_db < lat.quiet_cell_db] = -np.inf
    z = lat.z_cell
    masked = _spread(t_db, -6.025 - 0.275 * z) + _spread(n_db, -2.025 - 0.175 * z)
    # back to lines: interpolate the maskers' power over Bark, add the threshold in quiet
    pos = lat.z_line / LATTICE_BARK
    lo = np.minimum(np.floor(pos).astype(int), z.size - 2)
    w = pos - lo
    at_lines = masked[:, lo] * (1 - w) + masked[:, lo + 1] * w
    return 10 * np.log10(at_lines + 10 ** (lat.quiet_db / 10))


def masking_threshold(x: np.ndarray, rate_hz: float, *,
                      full_scale_spl: float = FULL_SCALE_SPL) -> tuple[Frames, np.ndarray]:
    """The mono signal ``x``'s masking threshold: its frames and the threshold per frame and
    line (dB, a full-scale sine at ``full_scale_spl``)."""
    fr = frames_of(len(x), rate_hz)
    return fr, masking_threshold_db(line_power_db(x, fr, full_scale_spl=full_scale_spl), fr.freqs_hz)


def nmr_frames(noise: np.ndarray, reference: np.ndarray, rate_hz: float, *,
               full_scale_spl: float = FULL_SCALE_SPL) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the noise-to-mask ratio (dB) of ``noise`` against the masking threshold of
    ``reference`` (mono arrays of one length, full scale ±1): the mean over critical bands from
    20 Hz to 20 kHz of the noise's energy in the band over the threshold's (its mean over the
    band's lines; see the module docstring). Returns (frame centres in s, NMR in dB)."""
    fr = frames_of(len(reference), rate_hz)
    mask_db = masking_threshold_db(line_power_db(reference, fr, full_scale_spl=full_scale_spl), fr.freqs_hz)
    noise_db = line_power_db(noise, fr, full_scale_spl=full_scale_spl)
    f = fr.freqs_hz
    keep = (f >= 20.0) & (f <= 20000.0)
    band = np.floor(bark(f[keep])).astype(int)
    starts = np.flatnonzero(np.r_[True, np.diff(band) != 0])
    n = np.add.reduceat(10 ** (noise_db[:, keep] / 10), starts, axis=1)
    m = np.add.reduceat(10 ** (mask_db[:, keep] / 10), starts, axis=1) / np.diff(np.r_[starts, band.size])
    ratio = (n / m).mean(axis=1)
    return fr.times_s, 10 * np.log10(np.maximum(ratio, 1e-30))


def nmr_summary(nmr_db: np.ndarray) -> dict:
    """Median and 95th percentile of per-frame NMR (dB) and the share of frames above 0 dB."""
    v = np.asarray(nmr_db, dtype=np.float64)
    return {"nmr_median_db": float(np.median(v)), "nmr_p95_db": float(np.percentile(v, 95)),
            "nmr_frames_above_0db": float(np.mean(v > 0.0)), "nmr_frames": int(v.size)}
