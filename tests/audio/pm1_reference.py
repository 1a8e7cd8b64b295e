"""Psychoacoustic model 1 in plain numpy, the oracle of the compiled one
(:func:`quanta.audio.masking.threshold_power`): the module's first implementation, kept here
as written (whole arrays of frames, levels in dB) so that the compiled loop is checked against
an independent transliteration of the standard."""

import numpy as np

from quanta.audio.masking import LATTICE_BARK, STEPS, TONAL_MARGIN_DB, Lattice, spreading

_A, _B = spreading(STEPS * LATTICE_BARK)
_LN10_10 = np.log(10.0) / 10.0


def threshold_db(p_db: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """The masking threshold per line (dB) of line powers ``p_db`` (``(frames, lines)``)."""
    return _threshold_block(p_db, Lattice.of(freqs_hz))


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


def _threshold_block(p_db: np.ndarray, lat: Lattice) -> np.ndarray:
    power = 10 ** (p_db / 10)
    peak, taken = _tonal(p_db, lat.reach)
    near = power.copy()  # a tonal component's level: the peak and its two neighbours
    near[:, 1:] += power[:, :-1]
    near[:, :-1] += power[:, 1:]
    # sums over runs of lines (reduceat, not a matrix product: a frame's numbers must not depend
    # on how many frames are computed together — the streaming shaper relies on it)
    frames, cells = p_db.shape[0], lat.z_cell.size
    tonal = np.zeros((frames, cells))
    tonal[:, lat.cell[lat.cell_starts]] = np.add.reduceat(np.where(peak, near, 0.0), lat.cell_starts, axis=1)
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
