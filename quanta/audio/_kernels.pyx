# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The masking model's and the adaptive shaper's per-frame loops, compiled ahead of time.

Each function is the inner loop of one public function and is called only from it:
:func:`quanta.audio.masking.masking_threshold_db` (psychoacoustic model 1, frame by frame) and
:func:`quanta.audio.adaptive.design` (one noise filter per frame). Frames are independent: a
frame's numbers never depend on how many frames are computed together (the streaming shaper
relies on it). Both release the GIL, so callers run channels in parallel threads. Plain IEEE
double (built with ``-ffp-contract=off``): the same results on every machine.
"""

from libc.math cimport exp, log, log10, pow
from libc.stdlib cimport malloc, free

import numpy as np

#: the adaptive design's search stops within this much (dB) under the total-gain bound …
cdef double TOTAL_TOL_DB = 0.05
#: … or when μ is bracketed within this many decades
cdef double MU_TOL = 0.01

cdef enum:
    STEP_LO = -6  # the spreading function reaches from -3 Bark (6 half-Bark lattice steps) …
    STEP_HI = 15  # … to +7.5 Bark


def step_up(const double[:, ::1] k, double[:, ::1] out):
    """Per row, the monic filter ``out`` (``order + 1``) of the reflection coefficients ``k``
    (``order``): ``a ← a + k_m · reversed(a)``, order by order."""
    cdef Py_ssize_t rows = k.shape[0], order = k.shape[1], r, m, i
    cdef double ai, aj, km
    if out.shape[0] != rows or out.shape[1] != order + 1:
        raise ValueError("step_up: shapes disagree")
    with nogil:
        for r in range(rows):
            out[r, 0] = 1.0
            for i in range(1, order + 1):
                out[r, i] = 0.0
            for m in range(1, order + 1):
                km = k[r, m - 1]
                for i in range(m // 2 + 1):  # a[i] and a[m - i] together (the middle once)
                    ai = out[r, i]
                    aj = out[r, m - i]
                    out[r, i] = ai + km * aj
                    if i != m - i:
                        out[r, m - i] = aj + km * ai


def powers(const double[:, ::1] spec, double scale, double floor, double[:, ::1] out):
    """``out[f, i] = max(re² + im², floor) · scale`` for the complex lines ``spec[f, 2i], spec[f, 2i + 1]``
    (a complex spectrum viewed as pairs of doubles)."""
    cdef Py_ssize_t frames = spec.shape[0], lines = out.shape[1], f, i
    cdef double re, im, p
    if spec.shape[1] != 2 * lines or out.shape[0] != frames:
        raise ValueError("powers: shapes disagree")
    with nogil:
        for f in range(frames):
            for i in range(lines):
                re = spec[f, 2 * i]
                im = spec[f, 2 * i + 1]
                p = re * re + im * im
                out[f, i] = (p if p > floor else floor) * scale


def threshold(const double[:, ::1] power, const int[::1] cell, const int[::1] band,
              const int[::1] reach, const double[::1] quiet_line, const double[::1] quiet_cell,
              const int[::1] band_cell, const double[::1] tonal_index, const double[::1] noise_index,
              const double[::1] spread_a, const int[::1] lo, const double[::1] w,
              double tonal_ratio, double[:, ::1] out):
    """Per frame (rows of ``power``: linear line powers), the global masking threshold per line
    (linear, the same scale) into ``out``. ``cell``/``band``: each line's half-Bark lattice cell
    and critical band; ``reach``: lines a tonal peak must exceed on each side; ``quiet_*``: the
    threshold in quiet per line and per cell (linear); ``band_cell``: each band's noise-masker
    cell; ``*_index``: the masking index per masker cell (linear factor); ``spread_a``: the
    spreading function's level-independent part per step (linear, steps ``-6 … 15``); ``lo``,
    ``w``: each line's lattice interpolation; ``tonal_ratio``: a peak's margin (10^0.7)."""
    cdef Py_ssize_t frames = power.shape[0], lines = power.shape[1], cells = quiet_cell.shape[0]
    cdef Py_ssize_t bands = band_cell.shape[0]
    if out.shape[0] != frames or out.shape[1] != lines:
        raise ValueError("out must be (frames, lines)")
    if not (cell.shape[0] == band.shape[0] == reach.shape[0] == quiet_line.shape[0] == lo.shape[0]
            == w.shape[0] == lines) or tonal_index.shape[0] != cells or noise_index.shape[0] != cells \
            or spread_a.shape[0] != STEP_HI - STEP_LO + 1:
        raise ValueError("threshold: the tables do not fit the frames' lines")
    cdef double* scratch = <double*> malloc((3 * cells + bands + lines) * sizeof(double))
    if scratch == NULL:
        raise MemoryError()
    cdef Py_ssize_t f
    try:
        with nogil:
            for f in range(frames):
                _frame_threshold(&power[f, 0], lines, cells, bands, &cell[0], &band[0], &reach[0],
                                 &quiet_line[0], &quiet_cell[0], &band_cell[0], &tonal_index[0],
                                 &noise_index[0], &spread_a[0], &lo[0], &w[0], tonal_ratio,
                                 scratch, &out[f, 0])
    finally:
        free(scratch)


cdef inline void _spread_one(double p, Py_ssize_t m, Py_ssize_t cells, double index,
                             const double* spread_a, double* masked) noexcept nogil:
    """Add a masker of power ``p`` at cell ``m`` to every cell it reaches:
    ``p^(1+b(dz)) · 10^(a(dz)/10) · index`` with the standard's slopes — ``b = −0.4`` from −3 to
    −1 Bark, ``0.4·dz`` from −1 to 0, ``0`` from 0 to 1, ``0.15·(dz − 1)`` above (one power of
    ``p`` per slope, then products)."""
    cdef double lp = log(p)
    cdef double low = exp(0.6 * lp)  # p^(1 - 0.4)
    cdef double q = exp(0.075 * lp)  # p^0.075: one half-Bark step of the upper slope
    cdef double v, up = p
    cdef Py_ssize_t s, t
    for s in range(STEP_LO, STEP_HI + 1):
        t = m + s
        if s <= -2:
            v = low
        elif s == -1:
            v = exp(0.8 * lp)  # p^(1 - 0.2)
        elif s <= 2:
            v = p
        else:
            up = up * q
            v = up
        if 0 <= t < cells:
            masked[t] += v * spread_a[s - STEP_LO] * index


cdef void _frame_threshold(const double* P, Py_ssize_t lines, Py_ssize_t cells, Py_ssize_t bands,
                           const int* cell, const int* band, const int* reach,
                           const double* quiet_line, const double* quiet_cell, const int* band_cell,
                           const double* tonal_index, const double* noise_index,
                           const double* spread_a, const int* lo, const double* w,
                           double tonal_ratio, double* scratch, double* out) noexcept nogil:
    cdef double* tonal = scratch
    cdef double* noise = scratch + cells
    cdef double* masked = scratch + 2 * cells
    cdef double* bandsum = scratch + 3 * cells
    cdef double* taken = scratch + 3 * cells + bands
    cdef Py_ssize_t i, j, r, c
    cdef double p
    cdef bint ok
    for c in range(cells):
        tonal[c] = 0.0
        noise[c] = 0.0
        masked[c] = 0.0
    for c in range(bands):
        bandsum[c] = 0.0
    for i in range(lines):
        taken[i] = 0.0
    # tonal components: local maxima standing tonal_ratio above the lines within their reach
    for i in range(1, lines - 1):
        p = P[i]
        if not (p > P[i - 1] and p >= P[i + 1]):
            continue
        r = reach[i]
        ok = True
        for j in range(2, r + 1):
            if (i - j >= 0 and p < P[i - j] * tonal_ratio) or (i + j < lines and p < P[i + j] * tonal_ratio):
                ok = False
                break
        if not ok:
            continue
        tonal[cell[i]] += (P[i] + P[i - 1]) + P[i + 1]
        for j in range(max(0, i - r), min(lines, i + r + 1)):
            taken[j] = 1.0
    # noise maskers: every other line's power, per critical band
    for i in range(lines):
        if taken[i] == 0.0:
            bandsum[band[i]] += P[i]
    for c in range(bands):
        noise[band_cell[c]] += bandsum[c]
    # maskers under the threshold in quiet are dropped; the rest spread over the lattice
    for c in range(cells):
        if tonal[c] > 0.0 and tonal[c] >= quiet_cell[c]:
            _spread_one(tonal[c], c, cells, tonal_index[c], spread_a, masked)
        if noise[c] > 0.0 and noise[c] >= quiet_cell[c]:
            _spread_one(noise[c], c, cells, noise_index[c], spread_a, masked)
    # back to lines, plus the threshold in quiet
    for i in range(lines):
        out[i] = (masked[lo[i]] * (1.0 - w[i]) + masked[lo[i] + 1] * w[i]) + quiet_line[i]


cdef double _levinson(const double* r, double r0, Py_ssize_t order, double* a, double* k,
                      double* tmp) noexcept nogil:
    """Levinson–Durbin on the autocorrelation ``r0, r[1] … r[order]``: the monic filter ``a``
    (``order + 1``), reflection coefficients ``k``; returns ``Σ a²`` (the filter's mean power
    gain over the circle, by Parseval)."""
    cdef Py_ssize_t m, i
    cdef double acc, km, err = r0, total = 1.0
    a[0] = 1.0
    for i in range(1, order + 1):
        a[i] = 0.0
    cdef double s0, s1, s2, s3
    for m in range(1, order + 1):
        s0 = s1 = s2 = s3 = 0.0  # four partial sums in a fixed order: the same result everywhere
        i = 0
        while i + 4 <= m:
            s0 += a[i] * r[m - i]
            s1 += a[i + 1] * r[m - i - 1]
            s2 += a[i + 2] * r[m - i - 2]
            s3 += a[i + 3] * r[m - i - 3]
            i += 4
        while i < m:
            s0 += a[i] * r[m - i]
            i += 1
        acc = (s0 + s1) + (s2 + s3)
        km = -acc / err
        for i in range(m + 1):
            tmp[i] = a[i] + km * a[m - i]
        for i in range(m + 1):
            a[i] = tmp[i]
        err = err * (1.0 - km * km)
        k[m - 1] = km
    total = 0.0
    for i in range(order + 1):
        total += a[i] * a[i]
    return total


cdef double _peak(const double* a, Py_ssize_t order, const double* cos_grid, Py_ssize_t points,
                  double* c, double* v) noexcept nogil:
    """max over the grid of ``|A(ω)|² = c₀ + 2 Σ c_m cos(mω)`` (``c``: ``a``'s autocorrelation;
    ``cos_grid[m, g] = cos(m ω_g)``; ``v``: room for ``points`` values)."""
    cdef Py_ssize_t m, i, g
    cdef double acc, cm, best = 0.0
    for m in range(order + 1):
        acc = 0.0
        for i in range(order + 1 - m):
            acc += a[i] * a[i + m]
        c[m] = acc
    for g in range(points):
        v[g] = c[0]
    for m in range(1, order + 1):  # lag by lag: every grid point's sum is independent (vectorized)
        cm = 2.0 * c[m]
        for g in range(points):
            v[g] += cm * cos_grid[m * points + g]
    for g in range(points):
        if v[g] > best:
            best = v[g]
    return best


def design(const double[:, ::1] thr, const double[:, ::1] cos_lines, Py_ssize_t first, Py_ssize_t last,
           double white, const double[:, ::1] cos_grid, double max_total, double max_peak,
           double log_mu_lo, double log_mu_hi, int steps, double[:, ::1] out):
    """Per frame, the reflection coefficients of the monic minimum-phase FIR ``A`` minimising
    ``Σ_f |A(f)|² · (W(f) + μ)`` over lines ``first … last - 1``, with ``W = min T / T`` (``thr``:
    the threshold ``T`` per line, linear), for the smallest ``μ`` (searched on
    ``log10 μ`` in ``[log_mu_lo, log_mu_hi]``, at most ``2 · steps`` filters) whose filter keeps
    ``Σ a² ≤ max_total`` and ``max |A|² ≤ max_peak`` (on the ``cos_grid`` frequencies:
    ``cos_grid[m, g] = cos(m ω_g)``). ``cos_lines[f, k] = cos(2π f k / n)``; ``white``: the
    white weighting's autocorrelation at lag 0 (``n / 2``)."""
    cdef Py_ssize_t frames = thr.shape[0], order = out.shape[1], points = cos_grid.shape[1]
    if cos_lines.shape[1] != order + 1 or cos_grid.shape[0] != order + 1 or out.shape[0] != frames \
            or not 0 <= first < last <= min(thr.shape[1], cos_lines.shape[0]):
        raise ValueError("design: shapes disagree")
    cdef double* buf = <double*> malloc((7 * (order + 1) + cos_grid.shape[1]) * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    cdef Py_ssize_t fr
    try:
        with nogil:
            for fr in range(frames):
                _design_frame(&thr[fr, 0], &cos_lines[0, 0], cos_lines.shape[0], first, last, white,
                              &cos_grid[0, 0], points, order, max_total, max_peak, log_mu_lo,
                              log_mu_hi, steps, buf, &out[fr, 0])
    finally:
        free(buf)


cdef void _design_frame(const double* thr, const double* cos_lines, Py_ssize_t lines,
                        Py_ssize_t first,
                        Py_ssize_t last, double white, const double* cos_grid, Py_ssize_t points,
                        Py_ssize_t order, double max_total, double max_peak, double lo, double hi,
                        int steps, double* buf, double* out) noexcept nogil:
    cdef Py_ssize_t n1 = order + 1
    cdef double* r = buf
    cdef double* a = buf + n1
    cdef double* k = buf + 2 * n1
    cdef double* tmp = buf + 3 * n1
    cdef double* c = buf + 4 * n1
    cdef double* best_k = buf + 5 * n1
    cdef double* best_a = buf + 6 * n1
    cdef double* pv = buf + 7 * n1
    cdef Py_ssize_t f, m
    cdef double tmin = thr[first], acc
    for f in range(first, last):
        if thr[f] < tmin:
            tmin = thr[f]
    for m in range(n1):
        r[m] = 0.0
    for f in range(first, last):  # line by line: every lag's sum is independent (vectorized)
        acc = tmin / thr[f]
        for m in range(n1):
            r[m] += acc * cos_lines[f * n1 + m]
    # the least regularised filter, when it is within both bounds
    cdef double total_lo = _levinson(r, r[0] + pow(10.0, lo) * white, order, a, k, tmp)
    if total_lo <= max_total and _peak(a, order, cos_grid, points, c, pv) <= max_peak:
        for m in range(order):
            out[m] = k[m]
        return
    # the nearly white filter at ``hi`` is within both bounds; search the total gain alone
    # (Σ a²: cheap), check the peak once at the end, and where it binds bisect again from there
    # up to ``hi`` checking both
    cdef double total_hi = _levinson(r, r[0] + pow(10.0, hi) * white, order, best_a, best_k, tmp)
    cdef double found = lo  # the total gain is within its bound from lo on …
    if total_lo > max_total:  # … or from where the search finds it
        found = _search_total(r, white, order, lo, hi, total_lo, total_hi, max_total, steps,
                              a, k, tmp, best_a, best_k)
    else:
        _levinson(r, r[0] + pow(10.0, lo) * white, order, best_a, best_k, tmp)
    if _peak(best_a, order, cos_grid, points, c, pv) > max_peak:
        _levinson(r, r[0] + pow(10.0, hi) * white, order, best_a, best_k, tmp)
        _bisect(r, white, order, found, hi, steps, max_total, max_peak, cos_grid, points,
                a, k, tmp, c, pv, best_a, best_k)
    for m in range(order):
        out[m] = best_k[m]


cdef double _search_total(const double* r, double white, Py_ssize_t order, double lo, double hi,
                          double total_lo, double total_hi, double max_total, int steps, double* a,
                          double* k, double* tmp, double* best_a, double* best_k) noexcept nogil:
    """The smallest ``log10 μ`` in ``[lo, hi]`` whose filter's total gain is within ``max_total``
    (``lo`` is not, ``hi`` is; its filter in ``best_*``), to :data:`TOTAL_TOL_DB` below the
    bound or a bracket of :data:`MU_TOL` decades: regula falsi on the gain in dB (the Illinois
    variant; the gain falls smoothly with μ), at most ``2 · steps`` filters. The filter found is
    left in ``best_*``; returns its ``log10 μ``."""
    cdef double f_lo = 10.0 * log10(total_lo / max_total), f_hi = 10.0 * log10(total_hi / max_total)
    cdef double x, fx
    cdef int s, side = 0
    cdef Py_ssize_t m
    for s in range(2 * steps):
        if hi - lo < MU_TOL:
            break
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        if not (lo < x < hi):
            x = (lo + hi) / 2.0
        fx = 10.0 * log10(_levinson(r, r[0] + pow(10.0, x) * white, order, a, k, tmp) / max_total)
        if fx <= 0.0:
            hi, f_hi = x, fx
            for m in range(order + 1):
                best_a[m] = a[m]
            for m in range(order):
                best_k[m] = k[m]
            if fx > -TOTAL_TOL_DB:
                break
            if side == 1:
                f_lo = f_lo / 2.0
            side = 1
        else:
            lo, f_lo = x, fx
            if side == -1:
                f_hi = f_hi / 2.0
            side = -1
    return hi


cdef double _bisect(const double* r, double white, Py_ssize_t order, double lo, double hi, int steps,
                    double max_total, double max_peak, const double* cos_grid, Py_ssize_t points,
                    double* a, double* k, double* tmp, double* c, double* pv, double* best_a,
                    double* best_k) noexcept nogil:
    """Bisection on ``log10 μ`` in ``[lo, hi]`` (``hi`` within the bounds, its filter in
    ``best_*``): the smallest ``μ`` found within ``max_total`` (and ``max_peak`` when it is not
    negative); its filter left in ``best_*``. Returns that ``log10 μ``."""
    cdef Py_ssize_t s, m
    cdef double mid
    cdef bint ok
    for s in range(steps):
        mid = (lo + hi) / 2.0
        ok = _levinson(r, r[0] + pow(10.0, mid) * white, order, a, k, tmp) <= max_total
        if ok and max_peak >= 0.0:
            ok = _peak(a, order, cos_grid, points, c, pv) <= max_peak
        if ok:
            hi = mid
            for m in range(order + 1):
                best_a[m] = a[m]
            for m in range(order):
                best_k[m] = k[m]
        else:
            lo = mid
    return hi
