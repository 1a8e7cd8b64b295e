# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The core's sample-by-sample loops, compiled ahead of time (Cython → C at install).

Each function is the inner loop of one public function and is called only from it:
error feedback (:mod:`quanta.core.feedback`), error diffusion (same), TPDF dither from raw
64-bit words (:mod:`quanta.core.dither`), GPTQ's column blocks (:mod:`quanta.core.hessian`),
the codebook scale search (:mod:`quanta.core.codebook`) and the uniform grid's clipping search
(:mod:`quanta.core.grid`, in ``clip_search.h``). All release the GIL, so callers run them in
parallel threads. Arithmetic is plain IEEE (built with ``-ffp-contract=off``): results are the
same on every machine.
"""

from libc.math cimport fabs, floor, rint
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

import numpy as np

ctypedef fused real_t:
    float
    double

ctypedef fused code_t:
    signed char
    short
    int
    long

cdef extern from "clip_search.h" nogil:
    ctypedef struct qs_grid:
        int symmetric
        float half, qmin, qmax, zdef, tiny, power
        int portable
    void qs_search(const qs_grid* gr, const float* b, Py_ssize_t nb, Py_ssize_t n, const float* w,
                   Py_ssize_t nw, Py_ssize_t k0, const float* lo, const float* hi, const float* ratios,
                   Py_ssize_t nr, float* s_out, float* z_out)

cdef enum:
    BLOCK = 4096  # samples per pass over the small history buffers (kept in L1)


cdef inline double _dot_older(const double* cr, const double* buf, Py_ssize_t n) noexcept nogil:
    """sum_{j=0..n-2} cr[j]·buf[j]: all past terms but the newest, in four partial sums of a
    fixed order (identical results everywhere, while the CPU overlaps the multiply-adds)."""
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef Py_ssize_t j = 0
    while j + 4 <= n - 1:
        s0 += cr[j] * buf[j]
        s1 += cr[j + 1] * buf[j + 1]
        s2 += cr[j + 2] * buf[j + 2]
        s3 += cr[j + 3] * buf[j + 3]
        j += 4
    while j < n - 1:
        s0 += cr[j] * buf[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


cdef inline double _clip(double q, double qmin, double qmax, long* clipped) noexcept nogil:
    """``q`` within ``[qmin, qmax]``, counting a clip (the error fed back stays the rounding's)."""
    if q > qmax:
        clipped[0] += 1
        return qmax
    if q < qmin:
        clipped[0] += 1
        return qmin
    return q


def feedback(const real_t[:] x, double gain, const double[::1] d, const double[:, ::1] br,
             const long long[::1] ends, const double[::1] ar, double[::1] e_hist, double[::1] s_hist,
             double qmin, double qmax, code_t[:] out) -> int:
    """Error-feedback rounding of ``x * gain`` (+ dither ``d``, or none if ``d`` is empty).

    The noise filter's numerator may change along the signal: samples ``ends[s-1] <= i <
    ends[s]`` use ``br[s] = b[1:][::-1]`` of segment ``s`` (one segment: a fixed filter);
    ``ar = a[1:][::-1]`` holds throughout. ``e_hist``/``s_hist`` hold the last errors and shaped
    errors (oldest first) and are updated in place. ``x`` and ``out`` may be strided. Returns
    the number of clipped samples.
    """
    cdef Py_ssize_t nb = br.shape[1], na = ar.shape[0], n = x.shape[0], nseg = br.shape[0]
    cdef Py_ssize_t pos = 0, m, j, i, seg = 0
    cdef bint dithered = d.shape[0] > 0
    cdef long clipped = 0
    cdef double acc, v, q, e
    cdef double* ebuf = <double*> malloc((nb + BLOCK) * sizeof(double))
    cdef double* sbuf = <double*> malloc((na + BLOCK) * sizeof(double))
    if ebuf == NULL or sbuf == NULL:
        free(ebuf)
        free(sbuf)
        raise MemoryError()
    with nogil:
        if nb:
            memcpy(ebuf, &e_hist[0], nb * sizeof(double))
        if na:
            memcpy(sbuf, &s_hist[0], na * sizeof(double))
        while pos < n:
            m = min(<Py_ssize_t> BLOCK, n - pos)
            for j in range(m):
                i = pos + j
                while seg < nseg - 1 and ends[seg] <= i:
                    seg += 1
                acc = 0.0
                if nb:
                    acc = _dot_older(&br[seg, 0], ebuf + j, nb) + br[seg, nb - 1] * ebuf[j + nb - 1]
                if na:
                    acc -= _dot_older(&ar[0], sbuf + j, na) + ar[na - 1] * sbuf[j + na - 1]
                v = x[i] * gain + acc
                q = floor(((v + d[i]) if dithered else v) + 0.5)
                e = q - v
                ebuf[nb + j] = e
                if na:
                    sbuf[na + j] = e + acc
                out[i] = <code_t> _clip(q, qmin, qmax, &clipped)
            if nb:
                memcpy(ebuf, ebuf + m, nb * sizeof(double))
            if na:
                memcpy(sbuf, sbuf + m, na * sizeof(double))
            pos += m
        if nb:
            memcpy(&e_hist[0], ebuf, nb * sizeof(double))
        if na:
            memcpy(&s_hist[0], sbuf, na * sizeof(double))
    free(ebuf)
    free(sbuf)
    return clipped


def diffuse(const double[:, :, ::1] x, double qmin, double qmax, int[:, :, ::1] out) -> None:
    """Floyd–Steinberg error diffusion (7, 3, 5, 1 /16, serpentine scan) of ``x`` (H, W, C)."""
    cdef Py_ssize_t h = x.shape[0], w = x.shape[1], ch = x.shape[2]
    cdef Py_ssize_t i, jj, j, c, step, cur, nxt
    cdef double v, q, e
    cdef double[:, :, ::1] err = np.zeros((2, w + 2, ch))  # two rows, one column margin each side
    with nogil:
        for i in range(h):
            cur = i & 1
            nxt = 1 - cur
            err[nxt, :, :] = 0.0
            step = 1 if cur == 0 else -1
            for jj in range(w):
                j = jj if cur == 0 else w - 1 - jj
                for c in range(ch):
                    v = x[i, j, c] + err[cur, j + 1, c]
                    q = floor(v + 0.5)
                    q = min(max(q, qmin), qmax)
                    e = v - q
                    out[i, j, c] = <int> q
                    err[cur, j + 1 + step, c] += e * (7.0 / 16.0)
                    err[nxt, j + 1 - step, c] += e * (3.0 / 16.0)
                    err[nxt, j + 1, c] += e * (5.0 / 16.0)
                    err[nxt, j + 1 + step, c] += e * (1.0 / 16.0)


def tpdf_from_raw(const unsigned long[::1] raw):
    """TPDF from 64-bit words: the two 32-bit halves are two uniforms on [0, 1), summed and
    centred, in (-1, 1)."""
    cdef Py_ssize_t n = raw.shape[0], i
    out = np.empty(n)
    cdef double[::1] o = out
    cdef unsigned long r
    cdef double scale = 2.0 ** -32, shift = 1.0 - 2.0 ** -32
    with nogil:
        for i in range(n):
            r = raw[i]
            o[i] = (<double> (r & 0xFFFFFFFFUL) + <double> (r >> 32)) * scale - shift
    return out


def gptq_block(double[:, ::1] w, const double[:, ::1] hinv, const double[:, :] scale,
               const double[:, :] zero, double qmin, double qmax, double[:, ::1] codes,
               double[:, ::1] err) -> None:
    """Quantize the columns of ``w`` (out × b) in order, feeding each column's error onto the
    rest of the block through ``hinv``; ``scale``/``zero`` are per column (out × b)."""
    cdef Py_ssize_t out = w.shape[0], b = w.shape[1], i, r, k
    cdef double dd, v, q, e
    with nogil:
        for i in range(b):
            dd = hinv[i, i]
            for r in range(out):
                v = w[r, i]
                q = floor(v / scale[r, i] + zero[r, i] + 0.5)
                q = min(max(q, qmin), qmax)
                codes[r, i] = q
                e = (v - (q - zero[r, i]) * scale[r, i]) / dd
                err[r, i] = e
                for k in range(i + 1, b):
                    w[r, k] -= e * hinv[i, k]


cdef inline bint _counted(Py_ssize_t n) noexcept nogil:
    """Whether a codebook of ``n`` levels finds a value's bracket by counting the levels at or
    below it (no branch to mispredict) rather than by a binary search: up to 16 levels."""
    return 2 < n <= 16


cdef inline Py_ssize_t _nearer(const double *levels, Py_ssize_t lo, double x) noexcept nogil:
    """The nearer of the bracket ``levels[lo] <= x < levels[lo + 1]``'s two levels (ties to the
    larger)."""
    return lo + 1 if x - levels[lo] >= levels[lo + 1] - x else lo


cdef inline Py_ssize_t _nearest(const double[::1] levels, double x) noexcept nogil:
    """Index of the level nearest ``x`` (``levels`` sorted, at least 2; ties to the larger): the
    bracket ``levels[lo] <= x < levels[lo + 1]`` (clamped to the ends) counted (:func:`_counted`)
    or searched — the same ``lo`` either way —, then :func:`_nearer`."""
    cdef Py_ssize_t n = levels.shape[0], lo = 0, hi = n - 1, mid, i
    if _counted(n):
        for i in range(1, n - 1):
            lo += levels[i] <= x
        hi = lo + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if levels[mid] <= x:
            lo = mid
        else:
            hi = mid
    return _nearer(&levels[0], lo, x)


def gptq_block_codebook(double[:, ::1] w, const double[:, ::1] hinv, const double[:, :] scale,
                        const double[::1] levels, double[:, ::1] codes, double[:, ::1] err) -> None:
    """:func:`gptq_block` on a codebook: each value goes to the nearest ``scale · levels[k]``."""
    cdef Py_ssize_t out = w.shape[0], b = w.shape[1], i, r, k, q
    cdef double dd, v, e
    with nogil:
        for i in range(b):
            dd = hinv[i, i]
            for r in range(out):
                v = w[r, i]
                q = _nearest(levels, v / scale[r, i])
                codes[r, i] = q
                e = (v - levels[q] * scale[r, i]) / dd
                err[r, i] = e
                for k in range(i + 1, b):
                    w[r, k] -= e * hinv[i, k]


def codebook_scales(const float[:, ::1] b, const float[:, ::1] wt, const double[::1] levels,
                    double end, double step, long tries):
    """Per block, the least-squares scale of the best of ``2·tries + 1`` trial scales around
    ``peak / end`` (the codebook's largest magnitude on the block's peak)."""
    cdef Py_ssize_t nb = b.shape[0], g = b.shape[1], nl = levels.shape[0], k, j, i
    cdef bint counted = _counted(nl)
    cdef long t
    cdef double peak, best, dd, v, lv, sxl, sll
    cdef float fw
    out = np.ones(nb)
    cdef double[::1] o = out
    # the block's values, weights and weighted values, made once per block (the weighted value
    # a float32 product, as taken per trial before: the scales are bit for bit the same); per
    # trial the scaled values and, for up to 16 levels, each one's bracket counted level by level
    # across the block (a loop the compiler vectorizes; the same index as _nearest's)
    cdef double *x = <double *> malloc(4 * max(g, 1) * sizeof(double))
    cdef double *w = x + g
    cdef double *wx = w + g
    cdef double *vs = wx + g
    cdef long long *cnt = <long long *> malloc(max(g, 1) * sizeof(long long))
    cdef const double *lvp = &levels[0]
    if x == NULL or cnt == NULL:
        free(x)
        free(cnt)
        raise MemoryError()
    with nogil:
        for k in range(nb):
            peak = 0.0
            for j in range(g):
                x[j] = b[k, j]
                w[j] = wt[k, j]
                fw = wt[k, j] * b[k, j]
                wx[j] = fw
                if fabs(x[j]) > fabs(peak):
                    peak = x[j]
            if peak == 0.0:
                continue
            best = -1.0
            o[k] = peak / end
            for t in range(-tries, tries + 1):
                dd = peak / (end + t * step)
                for j in range(g):
                    vs[j] = x[j] / dd
                if counted:
                    for j in range(g):
                        cnt[j] = 0
                    for i in range(1, nl - 1):
                        for j in range(g):
                            cnt[j] += lvp[i] <= vs[j]
                sxl = 0.0
                sll = 0.0
                for j in range(g):
                    v = vs[j]
                    lv = lvp[_nearer(lvp, cnt[j], v) if counted else _nearest(levels, v)]
                    sxl += wx[j] * lv
                    sll += w[j] * lv * lv
                if sll > 0 and sxl != 0 and sxl * sxl / sll > best:
                    best = sxl * sxl / sll
                    o[k] = sxl / sll
    free(x)
    free(cnt)
    return out


cdef inline double _group_error(const float* x, const float* wt, Py_ssize_t n, double s, double z,
                                double qmax) noexcept nogil:
    """(``wt``-weighted, when given) squared error of ``n`` weights rounded to nearest on
    ``s·(q − z)``, q in 0..qmax. The level is clamped before it is rounded (the same codes: the
    bounds are integers), so 1.5·2^52 added and taken away rounds it, ties to even, as ``rint``
    does — inline, where ``rint`` is a call at the baseline instruction set."""
    cdef Py_ssize_t j
    cdef double q, e, inv = 1.0 / s, err = 0.0
    cdef double magic = 6755399441055744.0
    for j in range(n):  # the compiler takes the test of wt out of the loop (-O3 unswitches it)
        q = x[j] * inv + z
        q = 0 if q < 0 else (qmax if q > qmax else q)
        q = (q + magic) - magic
        e = s * (q - z) - x[j]
        err += e * e * (wt[j] if wt != NULL else 1.0)
    return err


def refine_factors(const float[:, ::1] x, const float[:, ::1] wt, const double[::1] d, const double[::1] dm,
                   double[::1] f, double[::1] g, const double[::1] zfix, double lo, double hi, double min_top,
                   double qmax, long reach, double flip) -> None:
    """Per group ``k`` (a row of ``x``): the integer scale factor ``f[k]`` — and with ``min_top``
    the offset factor ``g[k]`` — within ``reach`` steps of its own (and, with ``flip`` > 0, of
    ``−rint(f·flip)``) whose round to nearest on ``s = d[k]·f``, ``z = dm[k]·g / s`` (or
    ``zfix[k]``) has the least (``wt``-weighted, when ``wt`` has columns) squared error; a factor
    stays in ``lo..hi`` and is never 0. ``f`` and ``g`` are updated in place; the first of equal
    errors is kept (starts, then factor steps, then offset steps, each from −reach up)."""
    cdef Py_ssize_t G = x.shape[0], k
    cdef bint weighted = wt.shape[1] == x.shape[1]
    cdef long a, df, dg, nstarts = 2 if flip > 0 else 1, gsteps = reach if min_top > 0 else 0
    cdef double fs, f2, g2, s, z, err, best, bf, bg
    with nogil:
        for k in range(G):
            best = -1.0
            bf = f[k]
            bg = g[k]
            for a in range(nstarts):
                fs = f[k] if a == 0 else -rint(f[k] * flip)
                for df in range(-reach, reach + 1):
                    f2 = fs + df
                    if f2 < lo:
                        f2 = lo
                    elif f2 > hi:
                        f2 = hi
                    if f2 == 0:
                        f2 = f[k]
                    for dg in range(-gsteps, gsteps + 1):
                        g2 = g[k] + dg
                        if g2 < 0:
                            g2 = 0
                        elif g2 > min_top:
                            g2 = min_top
                        s = d[k] * f2
                        z = dm[k] * g2 / s if min_top > 0 else zfix[k]
                        err = _group_error(&x[k, 0], &wt[k, 0] if weighted else NULL, x.shape[1], s, z, qmax)
                        if best < 0 or err < best:
                            best = err
                            bf = f2
                            bg = g2
            f[k] = bf
            g[k] = bg


def clip_search(const float[:, ::1] b, const float[:, ::1] wt, Py_ssize_t k0, const float[::1] lo,
                const float[::1] hi, const float[::1] ratios, bint symmetric, float half, float qmin,
                float qmax, float zdef, float tiny, float power, float[::1] s_out, float[::1] z_out,
                bint portable=False) -> None:
    """Per block (a row of ``b``), the scale and zero point of the clipping ratio whose rounding
    error is least, into ``s_out``/``z_out`` (``clip_search.h``). ``wt``: no rows (unweighted),
    or rows of which block ``k`` uses row ``(k0 + k) % rows``. ``portable``: the plain C path of
    machines without SSE2 (the same results; for the tests)."""
    cdef qs_grid gr
    gr.symmetric, gr.half, gr.qmin, gr.qmax, gr.zdef, gr.tiny, gr.power, gr.portable = \
        symmetric, half, qmin, qmax, zdef, tiny, power, portable
    cdef Py_ssize_t nb = b.shape[0], n = b.shape[1], nw = wt.shape[0]
    if nb == 0 or n == 0 or ratios.shape[0] == 0:
        return
    if lo.shape[0] < nb or hi.shape[0] < nb or s_out.shape[0] < nb or z_out.shape[0] < nb or \
            (nw and wt.shape[1] != n):
        raise ValueError("clip_search: mismatched shapes")
    with nogil:
        qs_search(&gr, &b[0, 0], nb, n, &wt[0, 0] if nw else NULL, nw, k0, &lo[0], &hi[0], &ratios[0],
                  ratios.shape[0], &s_out[0], &z_out[0])


cdef inline int _lattice_point(const float* a, const float* w, double s, Py_ssize_t dim,
                               const float* mids, Py_ssize_t nl, const float[:, ::1] pv,
                               const int[::1] table, const int[::1] cstart, const int[::1] cand,
                               double* err) noexcept nogil:
    """The point of a lattice codebook nearest ``a / s`` (``w``-weighted squared error of
    ``a − s·point``, written to ``err``): each value's nearest level (``mids``: the ``nl − 1``
    midpoints between the levels), and that vector itself when it is a point, else the nearest of
    its listed candidates (``cand[cstart[key]:cstart[key + 1]]``)."""
    cdef Py_ssize_t j, m, c, l
    cdef long key = 0, mult = 1
    cdef int p, best = 0
    cdef double t, e, be = -1.0, dv
    for j in range(dim):
        t = a[j] / s
        l = 0
        for m in range(nl - 1):
            l += mids[m] < t
        key += l * mult
        mult *= nl
    p = table[key]
    if p >= 0:
        e = 0.0
        for j in range(dim):
            dv = a[j] - s * pv[p, j]
            e += w[j] * dv * dv
        err[0] = e
        return p
    for c in range(cstart[key], cstart[key + 1]):
        p = cand[c]
        e = 0.0
        for j in range(dim):
            dv = a[j] - s * pv[p, j]
            e += w[j] * dv * dv
        if be < 0 or e < be:
            be = e
            best = p
    err[0] = be
    return best


def lattice_fit(const float[:, ::1] a, const float[:, ::1] w, const double[::1] scale, const double[::1] ratios,
                const float[::1] mids, const float[:, ::1] pv, const int[::1] table, const int[::1] cstart,
                const int[::1] cand, int[:, ::1] idx, double[::1] s_out, double[::1] e_out) -> None:
    """Per sub-block ``b`` (a row of ``a``, whole vectors of ``pv.shape[1]`` values): with
    ``ratios`` empty, each vector's nearest point (:func:`_lattice_point`) at the scale
    ``scale[b]``; else the scale searched — each ``scale[b] · ratio`` tried, each vector's nearest
    point found, the scale then refitted to those points by least squares, and once more the
    points at that scale — keeping the least (``w``-weighted) squared error. Writes the points
    (``idx``), the scale (``s_out``) and the error (``e_out``). A sub-block whose scale is not
    positive keeps it (its points: those nearest zero at scale 1)."""
    cdef Py_ssize_t S = a.shape[0], n = a.shape[1], dim = pv.shape[1], nv = n // dim
    cdef Py_ssize_t nl = mids.shape[0] + 1, nr = ratios.shape[0], b, r, v, j, it
    cdef double s, num, den, e, e0, best, bs, ge, val
    cdef int p, found
    cdef int* cur = <int*>malloc(nv * sizeof(int))
    if cur == NULL:
        raise MemoryError()
    with nogil:
        for b in range(S):
            e0 = 0.0
            for j in range(n):
                e0 += w[b, j] * a[b, j] * a[b, j]
            if scale[b] <= 0:
                for v in range(nv):
                    idx[b, v] = _lattice_point(&a[b, v * dim], &w[b, v * dim], 1.0, dim, &mids[0], nl, pv,
                                               table, cstart, cand, &ge)
                s_out[b] = scale[b]
                e_out[b] = e0
                continue
            best = 0.0
            found = 0
            bs = scale[b]
            for r in range(nr if nr > 0 else 1):
                s = scale[b] * ratios[r] if nr > 0 else scale[b]
                for it in range(2 if nr > 0 else 1):
                    num = 0.0
                    den = 0.0
                    e = 0.0
                    for v in range(nv):
                        p = _lattice_point(&a[b, v * dim], &w[b, v * dim], s, dim, &mids[0], nl, pv,
                                           table, cstart, cand, &ge)
                        cur[v] = p
                        e += ge
                        for j in range(dim):
                            val = pv[p, j]
                            num += w[b, v * dim + j] * a[b, v * dim + j] * val
                            den += w[b, v * dim + j] * val * val
                    if nr > 0 and den > 0 and num > 0:
                        e = e0 - num * num / den  # the error at the refitted scale, these points
                        if e < 0:  # cancellation: these points fit exactly
                            e = 0.0
                    if found == 0 or e < best:
                        found = 1
                        best = e
                        bs = num / den if nr > 0 and den > 0 and num > 0 else s
                        for v in range(nv):
                            idx[b, v] = cur[v]
                    if nr > 0 and den > 0 and num > 0:
                        s = num / den
                    else:
                        break
            s_out[b] = bs
            e_out[b] = best
    free(cur)
