/* Bit tricks the JPEG kernels share (_kernels.pyx, _kernels_avx2.pyx, _scans.pyx). */
#ifndef QUANTA_JPEG_BITS_H
#define QUANTA_JPEG_BITS_H

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bits of a: T.81's SSSS category of |v| is quanta_bit_length(|v|). */
static inline int quanta_bit_length(unsigned long long a) {
    return a ? 64 - __builtin_clzll(a) : 0;
}

/* The position of a's lowest set bit (a != 0). */
static inline int quanta_lowest_bit(unsigned long long a) {
    return __builtin_ctzll(a);
}

/* Four bytes, most significant first (the order JPEG's bit stream goes out in). */
static inline void quanta_store_be32(uint8_t* p, uint32_t w) {
    w = __builtin_bswap32(w);
    memcpy(p, &w, 4);
}

/* Bit k set where |c[k]| > t (0 <= t < 32767), for the 64 coefficients of a block. */
static inline unsigned long long quanta_magnitude_mask(const int16_t* c, int t) {
    unsigned long long m = 0;
#if defined(__SSE2__)
    const __m128i hi = _mm_set1_epi16((short) t), lo = _mm_set1_epi16((short) -t);
    for (int i = 0; i < 64; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i*) (c + i));
        __m128i b = _mm_loadu_si128((const __m128i*) (c + i + 8));
        __m128i ba = _mm_or_si128(_mm_cmpgt_epi16(a, hi), _mm_cmplt_epi16(a, lo));
        __m128i bb = _mm_or_si128(_mm_cmpgt_epi16(b, hi), _mm_cmplt_epi16(b, lo));
        m |= (unsigned long long) (_mm_movemask_epi8(_mm_packs_epi16(ba, bb)) & 0xFFFF) << i;
    }
#else
    for (int k = 0; k < 64; k++)
        m |= (unsigned long long) (c[k] > t || c[k] < -t) << k;
#endif
    return m;
}

#endif

#if defined(__AVX2__)
#include <immintrin.h>
#define QUANTA_DCT_AVX2 1
/* _kernels.pyx's _dct_block with 8 lanes: the same operations on the same values in the same
   order for every coefficient (no fused multiply-adds), so the same bits.

   Rows: each row folded (ev[i] = p[i] + p[7-i] - 256, od[i] = p[i] - p[7-i], exact integers)
   into one register (ev0..ev3, od0..od3); its 8 outputs — the even u from ev, the odd u from
   od, lanes in u order 0 2 4 6 1 3 5 7 — as ((c·x0 + c·x1) + c·x2) + c·x3. Columns: the rows
   above folded lane by lane (one lane per u), each output row again four products added left
   to right, then the lanes put back in natural u order. */
static inline void quanta_dct_avx2(const uint8_t* p, Py_ssize_t stride, const float* c, float* f) {
    __m256 C[4], T[8], ev[4], od[4], x, y0, y1;
    const __m256i rev = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    const __m256i back = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m128i shift = _mm_set1_epi32(256);
    int i, y;
    for (i = 0; i < 4; i++)
        C[i] = _mm256_setr_ps(c[0 * 8 + i], c[2 * 8 + i], c[4 * 8 + i], c[6 * 8 + i],
                              c[1 * 8 + i], c[3 * 8 + i], c[5 * 8 + i], c[7 * 8 + i]);
    for (y = 0; y < 8; y++) {
        __m256i s = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*) (p + y * stride)));
        __m256i r = _mm256_permutevar8x32_epi32(s, rev);
        __m128i e = _mm_sub_epi32(_mm256_castsi256_si128(_mm256_add_epi32(s, r)), shift);
        __m128i o = _mm256_castsi256_si128(_mm256_sub_epi32(s, r));
        x = _mm256_cvtepi32_ps(_mm256_set_m128i(o, e));
        y0 = _mm256_mul_ps(C[0], _mm256_permutevar8x32_ps(x, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)));
        y0 = _mm256_add_ps(y0, _mm256_mul_ps(C[1], _mm256_permutevar8x32_ps(x, _mm256_setr_epi32(1, 1, 1, 1, 5, 5, 5, 5))));
        y0 = _mm256_add_ps(y0, _mm256_mul_ps(C[2], _mm256_permutevar8x32_ps(x, _mm256_setr_epi32(2, 2, 2, 2, 6, 6, 6, 6))));
        T[y] = _mm256_add_ps(y0, _mm256_mul_ps(C[3], _mm256_permutevar8x32_ps(x, _mm256_setr_epi32(3, 3, 3, 3, 7, 7, 7, 7))));
    }
    for (i = 0; i < 4; i++) {
        ev[i] = _mm256_add_ps(T[i], T[7 - i]);
        od[i] = _mm256_sub_ps(T[i], T[7 - i]);
    }
    for (y = 0; y < 8; y += 2) {
        y0 = _mm256_mul_ps(_mm256_set1_ps(c[y * 8]), ev[0]);
        y0 = _mm256_add_ps(y0, _mm256_mul_ps(_mm256_set1_ps(c[y * 8 + 1]), ev[1]));
        y0 = _mm256_add_ps(y0, _mm256_mul_ps(_mm256_set1_ps(c[y * 8 + 2]), ev[2]));
        y0 = _mm256_add_ps(y0, _mm256_mul_ps(_mm256_set1_ps(c[y * 8 + 3]), ev[3]));
        y1 = _mm256_mul_ps(_mm256_set1_ps(c[y * 8 + 8]), od[0]);
        y1 = _mm256_add_ps(y1, _mm256_mul_ps(_mm256_set1_ps(c[y * 8 + 9]), od[1]));
        y1 = _mm256_add_ps(y1, _mm256_mul_ps(_mm256_set1_ps(c[y * 8 + 10]), od[2]));
        y1 = _mm256_add_ps(y1, _mm256_mul_ps(_mm256_set1_ps(c[y * 8 + 11]), od[3]));
        _mm256_storeu_ps(f + y * 8, _mm256_permutevar8x32_ps(y0, back));
        _mm256_storeu_ps(f + y * 8 + 8, _mm256_permutevar8x32_ps(y1, back));
    }
}
#else
#define QUANTA_DCT_AVX2 0
static inline void quanta_dct_avx2(const uint8_t* p, Py_ssize_t stride, const float* c, float* f) {
    (void) p; (void) stride; (void) c; (void) f;
}
#endif
