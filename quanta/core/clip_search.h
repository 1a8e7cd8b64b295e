/* The clipping search of quanta.core.grid.choose_qparams(method="mse"), compiled.

   For each block (a row of b: one group, channel or tensor) and each clipping ratio r, the grid
   is fitted to [r·lo, r·hi] exactly as quanta.core.grid._fit fits it, the block is rounded to
   nearest on that grid exactly as _fake_blocks rounds it, and the block keeps the ratio whose
   (weighted) error sum(w·|err|^power) is least — the first of equal errors. Every step is the
   float32 arithmetic of the numpy/torch code, in the same order, but for the error's sum: eight
   float32 partial sums added in double (the vectorized code's sum has an order of its own), so
   a block whose two best ratios are within float32 rounding of each other may keep the other one.

   Eight weights at a time in SSE2 (x86-64's baseline: no dispatch needed; round to nearest even
   without SSE4.1's roundps, by the 2^23 trick); plain C elsewhere, with the same sums. */
#ifndef QUANTA_CLIP_SEARCH_H
#define QUANTA_CLIP_SEARCH_H

#include <math.h>
#include <stddef.h>

#define QS_LANES 8

/* rint(v) (ties to even, the default rounding mode) for every float32: below 2^23 in size the
   sum with ±2^23 drops the fraction; from 2^23 up every float32 is an integer already. */
static inline float qs_rint(float v) {
    float m = v < 0.0f ? -8388608.0f : 8388608.0f;
    float r = (v + m) - m;
    return fabsf(v) < 8388608.0f ? r : v;
}

typedef struct {
    int symmetric;
    float half;     /* a symmetric grid's top: 2^(bits-1) − 1 */
    float qmin, qmax;
    float zdef;     /* a symmetric grid's zero point */
    float tiny;     /* the smallest normal float32: no scale falls below it */
    float power;    /* the error's exponent (2: squared) */
    int portable;   /* 1: the plain C path even where SSE2 is there (the tests compare the two) */
} qs_grid;

/* quanta.core.grid._fit for one block. */
static inline void qs_fit(const qs_grid *gr, float lo, float hi, float *s, float *z) {
    if (gr->symmetric) {
        float amax = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
        float sc = amax / gr->half;
        *s = amax > 0.0f ? (sc < gr->tiny ? gr->tiny : sc) : 1.0f;
        *z = gr->zdef;
        return;
    }
    float span = hi - lo, mag = fabsf(lo);
    float fallback = mag > 0.0f ? (mag < gr->tiny ? gr->tiny : mag) : 1.0f;
    float sc = span / (gr->qmax - gr->qmin);
    *s = span > 0.0f ? (sc < gr->tiny ? gr->tiny : sc) : fallback;
    *z = gr->qmin - qs_rint(lo / *s);
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* The squared error of eight weights (two SSE registers: lanes j ≡ 0..7 mod 8) into a0, a1.
   The level is clamped before it is rounded — the same codes, as the bounds are integers —, so
   that it is below 2^22 in size and 1.5·2^23 added and taken away rounds it (ties to even). */
static inline void qs_sq8(const float *x, const float *w, __m128 vs, __m128 vz, __m128 lo, __m128 hi,
                          __m128 *a0, __m128 *a1) {
    const __m128 magic = _mm_set1_ps(12582912.0f);
    __m128 x0 = _mm_loadu_ps(x), x1 = _mm_loadu_ps(x + 4);
    /* max(lo, v), min(hi, v): a NaN level stays NaN, as in the vectorized code */
    __m128 q0 = _mm_min_ps(hi, _mm_max_ps(lo, _mm_add_ps(_mm_div_ps(x0, vs), vz)));
    __m128 q1 = _mm_min_ps(hi, _mm_max_ps(lo, _mm_add_ps(_mm_div_ps(x1, vs), vz)));
    q0 = _mm_sub_ps(_mm_add_ps(q0, magic), magic);
    q1 = _mm_sub_ps(_mm_add_ps(q1, magic), magic);
    __m128 e0 = _mm_sub_ps(_mm_mul_ps(_mm_sub_ps(q0, vz), vs), x0);
    __m128 e1 = _mm_sub_ps(_mm_mul_ps(_mm_sub_ps(q1, vz), vs), x1);
    e0 = _mm_mul_ps(e0, e0);
    e1 = _mm_mul_ps(e1, e1);
    if (w) {
        e0 = _mm_mul_ps(e0, _mm_loadu_ps(w));
        e1 = _mm_mul_ps(e1, _mm_loadu_ps(w + 4));
    }
    *a0 = _mm_add_ps(*a0, e0);
    *a1 = _mm_add_ps(*a1, e1);
}
#endif

/* sum(w·|err|^power) over the n weights of one block rounded on s·(q − z); w may be NULL. */
static inline double qs_error(const qs_grid *gr, const float *x, const float *w, ptrdiff_t n, float s,
                              float z) {
    float acc[QS_LANES] = {0};
    const float qmin = gr->qmin, qmax = gr->qmax;
    ptrdiff_t j = 0, l;
#if defined(__SSE2__)
    if (!gr->portable && gr->power == 2.0f && qmin >= -4194304.0f && qmax <= 4194304.0f) {
        const __m128 vs = _mm_set1_ps(s), vz = _mm_set1_ps(z), lo = _mm_set1_ps(qmin), hi = _mm_set1_ps(qmax);
        __m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps();
        for (; j + QS_LANES <= n; j += QS_LANES)
            qs_sq8(x + j, w ? w + j : NULL, vs, vz, lo, hi, &a0, &a1);
        _mm_storeu_ps(acc, a0);
        _mm_storeu_ps(acc + 4, a1);
    }
#endif
    for (; j < n; j++) {
        float q = qs_rint(x[j] / s + z);
        q = q < qmin ? qmin : (q > qmax ? qmax : q);
        float e = (q - z) * s - x[j];
        float t = gr->power == 2.0f ? e * e : powf(fabsf(e), gr->power);
        acc[j % QS_LANES] += w ? t * w[j] : t;
    }
    double err = 0.0;
    for (l = 0; l < QS_LANES; l++)
        err += acc[l];
    return err;
}

#if defined(__SSE2__)
static inline __m128 qs_select4(__m128 m, __m128 a, __m128 b) {
    return _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b));
}

/* qs_fit for four ratios at once: the same float32 operations lane by lane. */
static inline void qs_fit4(const qs_grid *gr, float lo, float hi, const float *ratios, float *s, float *z) {
    const __m128 r = _mm_loadu_ps(ratios), zero = _mm_setzero_ps(), one = _mm_set1_ps(1.0f);
    const __m128 tiny = _mm_set1_ps(gr->tiny), sign = _mm_set1_ps(-0.0f), big = _mm_set1_ps(8388608.0f);
    __m128 l = _mm_mul_ps(_mm_set1_ps(lo), r), h = _mm_mul_ps(_mm_set1_ps(hi), r), sc, v, m, q;
    __m128 al = _mm_andnot_ps(sign, l), ah = _mm_andnot_ps(sign, h);
    if (gr->symmetric) {
        __m128 amax = qs_select4(_mm_cmpgt_ps(al, ah), al, ah);
        sc = _mm_div_ps(amax, _mm_set1_ps(gr->half));
        /* max(tiny, sc): a NaN stays NaN, as "sc < tiny ? tiny : sc" keeps it */
        _mm_storeu_ps(s, qs_select4(_mm_cmpgt_ps(amax, zero), _mm_max_ps(tiny, sc), one));
        _mm_storeu_ps(z, _mm_set1_ps(gr->zdef));
        return;
    }
    __m128 span = _mm_sub_ps(h, l);
    __m128 fallback = qs_select4(_mm_cmpgt_ps(al, zero), _mm_max_ps(tiny, al), one);
    sc = _mm_div_ps(span, _mm_set1_ps(gr->qmax - gr->qmin));
    sc = qs_select4(_mm_cmpgt_ps(span, zero), _mm_max_ps(tiny, sc), fallback);
    v = _mm_div_ps(l, sc);  /* qs_rint(v), four at once */
    m = _mm_or_ps(_mm_and_ps(v, sign), big);
    q = qs_select4(_mm_cmplt_ps(_mm_andnot_ps(sign, v), big), _mm_sub_ps(_mm_add_ps(v, m), m), v);
    _mm_storeu_ps(s, sc);
    _mm_storeu_ps(z, _mm_sub_ps(_mm_set1_ps(gr->qmin), q));
}
#endif

/* Blocks [0, nb) of b (n weights each, one after another): the best ratio's scale and zero
   point into s_out, z_out. w: NULL, or weight rows (n each) of which block k uses row
   (k0 + k) % nw — the same row for every block of one group column when the weights are a
   row vector broadcast over a matrix. */
static void qs_search(const qs_grid *gr, const float *b, ptrdiff_t nb, ptrdiff_t n, const float *w,
                      ptrdiff_t nw, ptrdiff_t k0, const float *lo, const float *hi, const float *ratios,
                      ptrdiff_t nr, float *s_out, float *z_out) {
#if defined(__SSE2__)
    float fs[4], fz[4];
    const ptrdiff_t nr4 = gr->portable ? 0 : nr - nr % 4;
#endif
    for (ptrdiff_t k = 0; k < nb; k++) {
        const float *x = b + k * n;
        const float *wk = w ? w + ((k0 + k) % nw) * n : NULL;
        double best = 0.0;
        float bs = 1.0f, bz = 0.0f;
        for (ptrdiff_t r = 0; r < nr; r++) {
            float s, z;
#if defined(__SSE2__)
            if (r < nr4) {  /* four ratios' grids at once, then their errors one by one */
                if (r % 4 == 0)
                    qs_fit4(gr, lo[k], hi[k], ratios + r, fs, fz);
                s = fs[r % 4];
                z = fz[r % 4];
            } else
#endif
                qs_fit(gr, lo[k] * ratios[r], hi[k] * ratios[r], &s, &z);
            double err = qs_error(gr, x, wk, n, s, z);
            if (r == 0 || err < best) {
                best = err;
                bs = s;
                bz = z;
            }
        }
        s_out[k] = bs;
        z_out[k] = bz;
    }
}

#endif
