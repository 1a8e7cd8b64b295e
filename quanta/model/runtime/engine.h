/* The native decoder of Llama-family models (Llama, Mistral within its window, Qwen2, Qwen3,
 * Phi-3) over GGML block formats: weights read in place (a memory-mapped GGUF file, or a quanta
 * folder repacked), activations quantized per 32 values before each product (blocks.h: 8 bits,
 * 16 for the wide() formats and a 5-bit output head), a float32 key/value cache,
 * and every product split by rows over the thread pool (pool.h). The same arithmetic as
 * llama.cpp's graph for these families: RMS norms, rotary embedding (pairs of neighbours for
 * llama/mistral files, whose Q/K rows llama.cpp's converter permuted; halves for qwen), grouped
 * query attention, SiLU-gated MLP. A row's dot product is computed whole by one thread, so the
 * results do not depend on the thread count. */

#ifndef QUANTA_ENGINE_H
#define QUANTA_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "blocks.h"
#include "pool.h"

/* a stored matrix; w16: its products take 16-bit activations (wide(type), or the model asks it) */
typedef struct { int type; const uint8_t *data; int64_t rows, cols, row_bytes; int w16; } mat_t;

enum { M_Q, M_K, M_V, M_O, M_GATE, M_UP, M_DOWN, M_COUNT };
enum { V_ATTN_NORM, V_FFN_NORM, V_Q_NORM, V_K_NORM, V_BQ, V_BK, V_BV, V_COUNT };

typedef struct { mat_t m[M_COUNT]; const float *v[V_COUNT]; } layer_t;

typedef struct {
    int n_layer, n_embd, n_head, n_kv, head_dim, n_ff, n_vocab, max_len, neox, threads, window;
    float eps, scale;
    mat_t embd, output;
    const float *out_norm;
    layer_t *layers;
    int pos;
    float *k_cache, *v_cache, *cos, *sin;
    int cap;  /* tokens the scratch holds */
    float *x, *xn, *q, *k, *v, *att, *g, *u, *scores;
    a8_t *xq;
    a16_t *xq16;
} model_t;

/* ---- products ---- */

static int needs_q8(const mat_t *m) { return m->type != T_F32 && m->type != T_F16; }

typedef struct {
    int n;                      /* matrices */
    const mat_t *m[3];
    float *y[3];                /* (T, rows) each */
    const a8_t *xq; const a16_t *x16; const float *xf;
    const a16b_t *xb;           /* x16 split into bytes, for the 16-bit rows of formats not wide() */
    int T, tiled; int64_t cols;
    /* several tokens: the activations once more, contiguous per token (tiled kernels) */
    const int8_t *xp;           /* (T, cols) codes */
    const float *dx;            /* (T, cols / 32, 8): each chunk's step, 8 times */
    const float *ds;            /* (T, cols / 32, 2): each half's step × sum */
    /* one token or a few (the row kernels): each chunk's step apart, (T, cols / 32) — xd8, xd16
     * for the 8- and 16-bit activations — the 8-bit chunks' step × sum (xs8), and step × each
     * half's sum (xh8, xh16: (T, cols / 32, 2)) */
    const float *xd8, *xs8, *xh8, *xd16, *xh16;
} mm_task_t;

#if defined(__AVX2__)
/* Several tokens at once (prefill): each tile of 16 rows is decoded once (chunk_codes: its cost
 * is shared by every token) into 8-bit codes, a scale vector per chunk (lanes 0-3:
 * the first half's scale, 4-7: the second's) and the offsets; then 2 rows × 4 tokens are
 * multiplied per pass, their partial sums in registers (with AVX-512: two chunks per vector).
 *
 * With VNNI (no 16-bit saturation) the activations are stored plus 128 as unsigned bytes and
 * the weights as signed codes, the formats' fixed offsets (Q4_0's −8, Q5_0's −16, Q3_K's −4,
 * Q6_K's −32) moved into the codes: Σ w (x + 128) − 128 Σ w is the product, and −128 Σ w (per
 * group of 4, the instruction's lanes) is each row chunk's starting value, so a product costs
 * one instruction. Only the formats with minimums (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K, T_QG4, T_QG8)
 * keep an offset term: one float dot product per row and token (minimums · the activations'
 * half sums).
 * Without VNNI the codes stay as stored and signed ones are multiplied by sign. */
#define TILE 16
#if defined(__AVX512VNNI__) || defined(__AVXVNNI__)
#define UNSIGNED_X 1
#else
#define UNSIGNED_X 0
#endif

/* the fixed offset a format's codes carry, in steps (0: none, or minimums kept apart) */
static inline int code_shift(int t) {
    switch (t) {
    case T_Q4_0: return -8;
    case T_Q5_0: return -16;
    case T_Q6_K: return -32;
    case T_Q3_K: return -4;
    default: return 0;
    }
}

typedef struct {
    int8_t *codes;    /* (rows, nc, 32) */
    float *scales;    /* (rows, nc, 8) */
    int32_t *start;   /* (rows, nc, 8): each lane's starting value (VNNI) */
    float *mins;      /* (rows, nc, 2) */
    int sgn, has_mins;
} tile_t;

static void decode_tile(const mat_t *m, int64_t base, int rows, int64_t nc, tile_t *tl) {
    int chunks = block_size(m->type) / 32, bb = block_bytes(m->type), w16 = m->w16;
    /* T_QG8's unsigned byte codes go to int8 shifted by −128, on every build */
    int shift = m->type == T_QG8 ? -128 : UNSIGNED_X ? code_shift(m->type) : 0;
    tl->has_mins = 0;
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = m->data + (base + r) * m->row_bytes;
        for (int64_t c = 0; c < nc; c++) {
            float sc[2], off[2];
            int64_t at = r * nc + c;
            const uint8_t *b = row + (c / chunks) * bb;
            __m256i v;
            tl->sgn = chunk_codes(m->type, b, (int)(c % chunks), &v, sc, off);
            v = _mm256_add_epi8(v, _mm256_set1_epi8((char)shift));  /* byte arithmetic: T_QG8's 0..255 − 128 */
            _mm256_store_si256((__m256i *)(tl->codes + at * 32), v);
#if UNSIGNED_X  /* the start values only the 8-bit unsigned-activation products use: −128 × each 4 codes' sum */
            if (!w16) {
                __m256i fours = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v), _mm256_set1_epi16(1));
                _mm256_store_si256((__m256i *)(tl->start + at * 8), _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(fours, 7)));
            }
#else
            (void)w16;
#endif
            _mm256_store_ps(tl->scales + at * 8, halves(sc[0], sc[1]));
            for (int h = 0; h < 2; h++) {
                tl->mins[at * 2 + h] = off[h] - (float)shift * sc[h];
                tl->has_mins |= tl->mins[at * 2 + h] != 0.0f;
            }
        }
    }
}

static inline __m256i tile_dot(__m256i w, __m256i x, __m256i start, int sgn) {
#if UNSIGNED_X
    (void)sgn;
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(start, x, w);
#else
    return _mm256_dpbusd_avx_epi32(start, x, w);
#endif
#else
    (void)start;
    return sgn ? dot_s8s8(w, x) : dot_u8s8(w, x);
#endif
}

/* rows r, r+1 of the tile × tokens tok..tok+3 */
static inline void tile_2x4(const mm_task_t *t, int64_t nc, const tile_t *tl, int r, int tok, float out[2][4]) {
    int64_t c = 0;
    const int8_t *codes = tl->codes;
    const float *scales = tl->scales;
    const int32_t *start = tl->start;
    __m256 acc[2][4];
    for (int i = 0; i < 2; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    __m512 wide[2][4];
    for (int i = 0; i < 2; i++) for (int j = 0; j < 4; j++) wide[i][j] = _mm512_setzero_ps();
    for (; c + 2 <= nc; c += 2) {  /* unaligned loads: a row of an odd chunk count starts mid-line */
        int64_t a0 = r * nc + c, a1 = (r + 1) * nc + c;
        __m512i w0 = _mm512_loadu_si512((const void *)(codes + a0 * 32));
        __m512i w1 = _mm512_loadu_si512((const void *)(codes + a1 * 32));
        __m512i z0 = _mm512_loadu_si512((const void *)(start + a0 * 8));
        __m512i z1 = _mm512_loadu_si512((const void *)(start + a1 * 8));
        __m512 s0 = _mm512_loadu_ps(scales + a0 * 8), s1 = _mm512_loadu_ps(scales + a1 * 8);
        for (int j = 0; j < 4; j++) {
            __m512i xv = _mm512_loadu_si512((const void *)(t->xp + ((int64_t)(tok + j) * nc + c) * 32));
            __m512 d = _mm512_loadu_ps(t->dx + ((int64_t)(tok + j) * nc + c) * 8);
            __m512i p0 = _mm512_dpbusd_epi32(z0, xv, w0);
            __m512i p1 = _mm512_dpbusd_epi32(z1, xv, w1);
            wide[0][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0), _mm512_mul_ps(s0, d), wide[0][j]);
            wide[1][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1), _mm512_mul_ps(s1, d), wide[1][j]);
        }
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = fold512(wide[i][j]);
#endif
    for (; c < nc; c++) {
        int64_t a0 = r * nc + c, a1 = (r + 1) * nc + c;
        __m256i w0 = _mm256_load_si256((const __m256i *)(codes + a0 * 32));
        __m256i w1 = _mm256_load_si256((const __m256i *)(codes + a1 * 32));
        __m256i z0 = _mm256_load_si256((const __m256i *)(start + a0 * 8));
        __m256i z1 = _mm256_load_si256((const __m256i *)(start + a1 * 8));
        __m256 s0 = _mm256_load_ps(scales + a0 * 8), s1 = _mm256_load_ps(scales + a1 * 8);
        for (int j = 0; j < 4; j++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(t->xp + ((int64_t)(tok + j) * nc + c) * 32));
            __m256 d = _mm256_loadu_ps(t->dx + ((int64_t)(tok + j) * nc + c) * 8);
            acc[0][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tile_dot(w0, xv, z0, tl->sgn)), _mm256_mul_ps(s0, d), acc[0][j]);
            acc[1][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tile_dot(w1, xv, z1, tl->sgn)), _mm256_mul_ps(s1, d), acc[1][j]);
        }
    }
    for (int i = 0; i < 2; i++) for (int j = 0; j < 4; j++) out[i][j] = hsum(acc[i][j]);
}

static float tile_1x1(const mm_task_t *t, int64_t nc, const tile_t *tl, int r, int tok) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t c = 0; c < nc; c++) {
        int64_t at = r * nc + c;
        __m256i w = _mm256_load_si256((const __m256i *)(tl->codes + at * 32));
        __m256i z = _mm256_load_si256((const __m256i *)(tl->start + at * 8));
        __m256i xv = _mm256_loadu_si256((const __m256i *)(t->xp + ((int64_t)tok * nc + c) * 32));
        __m256 d = _mm256_loadu_ps(t->dx + ((int64_t)tok * nc + c) * 8);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tile_dot(w, xv, z, tl->sgn)),
                              _mm256_mul_ps(_mm256_load_ps(tl->scales + at * 8), d), acc);
    }
    return hsum(acc);
}

/* The wide() formats against 16-bit activations, from the same decoded tile: each chunk's codes
 * widened to int16 and multiplied in pairs (madd), the two halves' partial sums interleaved by
 * one horizontal add (lanes 0, 1, 4, 5: the first half; 2, 3, 6, 7: the second) and scaled by the
 * tile's scales permuted to that order. */
static inline __m256 scales16(const float *s8) {  /* (s0 ×4, s1 ×4) → (s0, s0, s1, s1, s0, s0, s1, s1) */
    return _mm256_permutevar8x32_ps(_mm256_load_ps(s8), _mm256_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4));
}

static inline __m256 prod16(__m256i wlo, __m256i whi, const a16_t *x) {
    __m256i p = _mm256_hadd_epi32(_mm256_madd_epi16(wlo, _mm256_loadu_si256((const __m256i *)x->q)),
                                  _mm256_madd_epi16(whi, _mm256_loadu_si256((const __m256i *)(x->q + 16))));
    return _mm256_cvtepi32_ps(p);
}

#if defined(__AVX512BW__) && defined(__AVX512F__)
/* AVX-512: a chunk's 32 products in one multiply (lanes 0-7 the first half's pairs, 8-15 the
 * second's), scaled by (s0 ×8, s1 ×8) */
static void tile16_2x4(const mm_task_t *t, int64_t nc, const tile_t *tl, int r, int tok, float out[2][4]) {
    __m512 acc[2][4];
    const __m512i halves16 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
    for (int i = 0; i < 2; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t c = 0; c < nc; c++) {
        __m512i w[2];
        __m512 s[2];
        for (int i = 0; i < 2; i++) {
            int64_t at = (r + i) * nc + c;
            w[i] = _mm512_cvtepi8_epi16(_mm256_load_si256((const __m256i *)(tl->codes + at * 32)));
            s[i] = _mm512_permutexvar_ps(halves16, _mm512_castps256_ps512(_mm256_load_ps(tl->scales + at * 8)));
        }
        for (int j = 0; j < 4; j++) {
            const a16_t *x = t->x16 + (int64_t)(tok + j) * nc + c;
            __m512i xv = _mm512_loadu_si512((const void *)x->q);
            __m512 d = _mm512_set1_ps(x->d);
            for (int i = 0; i < 2; i++)
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_madd_epi16(w[i], xv)), _mm512_mul_ps(s[i], d), acc[i][j]);
        }
    }
    for (int i = 0; i < 2; i++) for (int j = 0; j < 4; j++) out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
}
#else
static void tile16_2x4(const mm_task_t *t, int64_t nc, const tile_t *tl, int r, int tok, float out[2][4]) {
    __m256 acc[2][4];
    for (int i = 0; i < 2; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t c = 0; c < nc; c++) {
        __m256i wl[2], wh[2];
        __m256 s[2];
        for (int i = 0; i < 2; i++) {
            int64_t at = (r + i) * nc + c;
            __m256i w = _mm256_load_si256((const __m256i *)(tl->codes + at * 32));
            wl[i] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w));
            wh[i] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w, 1));
            s[i] = scales16(tl->scales + at * 8);
        }
        for (int j = 0; j < 4; j++) {
            const a16_t *x = t->x16 + (int64_t)(tok + j) * nc + c;
            __m256 d = _mm256_set1_ps(x->d);
            for (int i = 0; i < 2; i++) acc[i][j] = _mm256_fmadd_ps(prod16(wl[i], wh[i], x), _mm256_mul_ps(s[i], d), acc[i][j]);
        }
    }
    for (int i = 0; i < 2; i++) for (int j = 0; j < 4; j++) out[i][j] = hsum(acc[i][j]);
}
#endif

static float tile16_1x1(const mm_task_t *t, int64_t nc, const tile_t *tl, int r, int tok) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t c = 0; c < nc; c++) {
        int64_t at = r * nc + c;
        __m256i w = _mm256_load_si256((const __m256i *)(tl->codes + at * 32));
        const a16_t *x = t->x16 + (int64_t)tok * nc + c;
        __m256 p = prod16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(w)), _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w, 1)), x);
        acc = _mm256_fmadd_ps(p, _mm256_mul_ps(scales16(tl->scales + at * 8), _mm256_set1_ps(x->d)), acc);
    }
    return hsum(acc);
}

/* the minimums' term of row r and token tok: Σ mins · (step × half sums) */
static inline float mins_term(const mm_task_t *t, const tile_t *tl, int64_t nc, int r, int tok, int w16) {
    if (!tl->has_mins) return 0.0f;
    if (!w16) return vec_dot(tl->mins + r * nc * 2, t->ds + (int64_t)tok * nc * 2, nc * 2);
    const float *m = tl->mins + r * nc * 2;
    const a16_t *x = t->x16 + (int64_t)tok * nc;
    float acc = 0;
    for (int64_t c = 0; c < nc; c++) acc += m[2 * c] * x[c].ds[0] + m[2 * c + 1] * x[c].ds[1];
    return acc;
}

/* Returns -1 (nothing written) when its tile buffers cannot be allocated: the caller takes the
 * row kernels instead. */
static int mm_rows_tiled(const mm_task_t *t, int k, int64_t r0, int64_t r1) {
    const mat_t *m = t->m[k];
    int64_t nc = t->cols / 32;
    int T = t->T;
    tile_t tl;
    tl.codes = (int8_t *)aligned_alloc(64, (size_t)TILE * nc * 32 + 64);
    tl.scales = (float *)aligned_alloc(64, sizeof(float) * TILE * nc * 8 + 64);
    tl.start = (int32_t *)aligned_alloc(64, sizeof(int32_t) * TILE * nc * 8 + 64);
    tl.mins = (float *)malloc(sizeof(float) * TILE * nc * 2);
    if (!tl.codes || !tl.scales || !tl.start || !tl.mins) {
        free(tl.codes); free(tl.scales); free(tl.start); free(tl.mins);
        return -1;
    }
    float *y = t->y[k];
    int w16 = m->w16;
    for (int64_t base = r0; base < r1; base += TILE) {
        int rows = (int)(base + TILE < r1 ? TILE : r1 - base);
        decode_tile(m, base, rows, nc, &tl);
#define MINS(R, TOK) mins_term(t, &tl, nc, R, TOK, w16)
#define ONE(R, TOK) (w16 ? tile16_1x1(t, nc, &tl, R, TOK) : tile_1x1(t, nc, &tl, R, TOK))
        int r = 0;
        for (; r + 2 <= rows; r += 2) {
            int tok = 0;
            for (; tok + 4 <= T; tok += 4) {
                float out[2][4];
                if (w16) tile16_2x4(t, nc, &tl, r, tok, out); else tile_2x4(t, nc, &tl, r, tok, out);
                if (tl.has_mins)
                    for (int i = 0; i < 2; i++)
                        for (int j = 0; j < 4; j++) out[i][j] += MINS(r + i, tok + j);
                float *yb = y + (int64_t)tok * m->rows + base + r;
                for (int j = 0; j < 4; j++) { yb[j * m->rows] = out[0][j]; yb[j * m->rows + 1] = out[1][j]; }
            }
            for (; tok < T; tok++)
                for (int i = 0; i < 2; i++)
                    y[(int64_t)tok * m->rows + base + r + i] = ONE(r + i, tok) + MINS(r + i, tok);
        }
        for (; r < rows; r++)
            for (int tok = 0; tok < T; tok++) y[(int64_t)tok * m->rows + base + r] = ONE(r, tok) + MINS(r, tok);
#undef MINS
#undef ONE
    }
    free(tl.codes); free(tl.scales); free(tl.start); free(tl.mins);
    return 0;
}
#endif

static void mm_rows(const mm_task_t *t, int k, int64_t r0, int64_t r1) {
    const mat_t *m = t->m[k];
    int64_t nb = t->cols / 32;
#if defined(__AVX2__)
    if (t->tiled && needs_q8(m) && (m->w16 || t->xp) && mm_rows_tiled(t, k, r0, r1) == 0) return;
#endif
    for (int64_t base = r0; base < r1; base += 16) {
        int64_t end = base + 16 < r1 ? base + 16 : r1;
        for (int tok = 0; tok < t->T; tok++) {
            const a8_t *xq = t->xq ? t->xq + tok * nb : NULL;
            const a16_t *x16 = t->x16 ? t->x16 + tok * nb : NULL;
            const a16b_t *xb = t->xb ? t->xb + tok * nb : NULL;
            const float *xf = t->xf + tok * t->cols;
            float *y = t->y[k] + (int64_t)tok * m->rows;
#if defined(__AVX2__)
            xsteps_t xr = m->w16 ? (xsteps_t){t->xd16, NULL, t->xh16, xb} : (xsteps_t){t->xd8, t->xs8, t->xh8, NULL};
            if (kquant_takes(m->type, m->w16) && xr.d && (xr.b || !m->w16)) {  /* the K-quants' super-block kernels */
                xr.d += tok * nb;
                xr.h += 2 * tok * nb;
                if (xr.s) xr.s += tok * nb;
                for (int64_t r = base; r < end; r++) y[r] = kquant_row(m->type, m->data + r * m->row_bytes, xq, xr, nb);
                continue;
            }
#endif
            for (int64_t r = base; r < end; r++)
                y[r] = dot_row(m->type, m->w16, m->data + r * m->row_bytes, xq, x16, xb, xf, t->cols);
        }
    }
}

static void mm_worker(void *ctx, int ith, int nth) {
    const mm_task_t *t = (const mm_task_t *)ctx;
    int64_t total = 0;
    for (int k = 0; k < t->n; k++) total += t->m[k]->rows;
    /* rows split in runs of 16 (whole cache lines of the output for one token) */
    int64_t units = (total + 15) / 16, u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
    int64_t a = u0 * 16, b = u1 * 16 < total ? u1 * 16 : total, off = 0;
    for (int k = 0; k < t->n && a < b; k++) {
        int64_t rows = t->m[k]->rows;
        int64_t lo = a > off ? a - off : 0, hi = b - off < rows ? b - off : rows;
        if (lo < hi) mm_rows(t, k, lo, hi);
        off += rows;
    }
}


typedef struct {
    const float *x; a8_t *out; int64_t cols; int T; int8_t *xp; float *dx, *ds; a16_t *out16;
    float *xd8, *xs8, *xh8, *xd16, *xh16;  /* the steps and sums apart (mm_task_t), when given */
} q8_task_t;

/* nc chunks' steps (d) and each half's step × sum (ds[0], ds[1]) into xd and xh, and into xs their
 * total when given: h, the first chunk's d, the chunks `stride` floats apart (a8_t and a16_t open
 * alike: d, ds[2]) */
static void steps_apart(const float *h, int64_t stride, int64_t nc, float *xd, float *xh, float *xs) {
    for (int64_t c = 0; c < nc; c++, h += stride) {
        xd[c] = h[0];
        xh[2 * c] = h[1];
        xh[2 * c + 1] = h[2];
        if (xs) xs[c] = h[1] + h[2];
    }
}

_Static_assert(offsetof(a8_t, ds) == sizeof(float) && offsetof(a16_t, ds) == sizeof(float) &&
               sizeof(a8_t) % sizeof(float) == 0 && sizeof(a16_t) % sizeof(float) == 0,
               "steps_apart reads d, ds[2] at the head of each record");

static void q8_worker(void *ctx, int ith, int nth) {
    const q8_task_t *t = (const q8_task_t *)ctx;
    int64_t nc = t->cols / 32;
    for (int tok = ith; tok < t->T; tok += nth) {
        if (t->out16) {
            a16_t *a = t->out16 + tok * nc;
            quantize_activations16(t->x + (int64_t)tok * t->cols, a, t->cols);
            if (t->xd16)
                steps_apart(&a[0].d, sizeof(a16_t) / sizeof(float), nc, t->xd16 + tok * nc, t->xh16 + 2 * tok * nc, NULL);
        }
        if (!t->out) continue;
        a8_t *a = t->out + tok * nc;
        quantize_activations(t->x + (int64_t)tok * t->cols, a, t->cols);
        if (t->xd8)
            steps_apart(&a[0].d, sizeof(a8_t) / sizeof(float), nc, t->xd8 + tok * nc, t->xh8 + 2 * tok * nc,
                        t->xs8 + tok * nc);
        if (!t->xp) continue;
        for (int64_t c = 0; c < nc; c++) {
            int8_t *xp = t->xp + ((int64_t)tok * nc + c) * 32;
#if defined(__AVX512VNNI__) || defined(__AVXVNNI__)
            for (int i = 0; i < 32; i++) xp[i] = (int8_t)(uint8_t)(a[c].q[i] + 128);  /* unsigned, see the tiles */
#else
            memcpy(xp, a[c].q, 32);
#endif
            for (int i = 0; i < 8; i++) t->dx[((int64_t)tok * nc + c) * 8 + i] = a[c].d;
            t->ds[((int64_t)tok * nc + c) * 2] = a[c].ds[0];
            t->ds[((int64_t)tok * nc + c) * 2 + 1] = a[c].ds[1];
        }
    }
}

/* y_k = x · m_k^T for up to three matrices of the same width (one dispatch); the activations
 * quantized into scratch (8 bits) and scratch16 (16 bits) as the matrices' formats ask. */
static void matmul(int n, const mat_t **m, float **y, const float *x, a8_t *scratch, a16_t *scratch16, int T) {
    mm_task_t t = {0};
    t.n = n; t.xf = x; t.T = T; t.cols = m[0]->cols;
#if defined(__AVX2__)
    t.tiled = T >= 4;
#endif
    for (int k = 0; k < n; k++) { t.m[k] = m[k]; t.y[k] = y[k]; }
    int q8 = 0, q16 = 0, split = 0;
    for (int k = 0; k < n; k++) {
        q8 |= needs_q8(m[k]) && !m[k]->w16;
        q16 |= needs_q8(m[k]) && m[k]->w16;
        /* the 16-bit activations split into bytes: for the formats not wide(), and Q6_K's super-blocks */
        split |= needs_q8(m[k]) && m[k]->w16 && (!wide(m[k]->type) || m[k]->type == T_Q6_K);
    }
    a16b_t *xb = NULL;
    int8_t *xp = NULL;
    float *dx = NULL, *ds = NULL, *steps = NULL;
    if (q8 || q16) {
        q8_task_t q = {x, q8 ? scratch : NULL, t.cols, T, NULL, NULL, NULL, q16 ? scratch16 : NULL, NULL, NULL, NULL, NULL, NULL};
#if defined(__AVX2__)
        int64_t nc = t.cols / 32;
        /* the super-block kernels' steps apart, for the row kernels (fewer than 4 tokens: the
         * tiles take the rest); without memory the rows take dot_row */
        if (T < 4 && (steps = (float *)malloc(sizeof(float) * 7 * T * nc)) != NULL) {
            if (q8) { q.xd8 = steps; q.xs8 = steps + T * nc; q.xh8 = steps + 2 * T * nc; }
            if (q16) { q.xd16 = steps + 4 * T * nc; q.xh16 = steps + 5 * T * nc; }
        }
        if (T >= 4 && q8) {  /* the tiled kernels' contiguous copies */
            xp = (int8_t *)malloc((size_t)T * t.cols + 64);
            dx = (float *)malloc(sizeof(float) * T * nc * 8 + 64);
            ds = (float *)malloc(sizeof(float) * T * nc * 2);
            if (xp && dx && ds) { q.xp = xp; q.dx = dx; q.ds = ds; }
        }
#endif
        if (T > 1) pool_run(q8_worker, &q); else q8_worker(&q, 0, 1);
        t.xq = q.out; t.x16 = q.out16; t.xp = q.xp; t.dx = q.dx; t.ds = q.ds;
        t.xd8 = q.xd8; t.xs8 = q.xs8; t.xh8 = q.xh8; t.xd16 = q.xd16; t.xh16 = q.xh16;
        /* the row kernels' byte split (the tiles, T >= 4, read x16 itself); without memory the
         * rows take the int16 products */
        if (split && T < 4 && (xb = (a16b_t *)malloc(sizeof(a16b_t) * T * (t.cols / 32))) != NULL) {
            split_activations16(t.x16, xb, T * (t.cols / 32));
            t.xb = xb;
        }
    }
    pool_run(mm_worker, &t);
    free(xp); free(dx); free(ds); free(xb); free(steps);
}

/* ---- the model ---- */

static void rms_norm(const float *x, const float *w, float *out, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

static void rope(model_t *md, float *v, int pos) {
    int half = md->head_dim / 2;
    const float *c = md->cos + (int64_t)pos * half, *s = md->sin + (int64_t)pos * half;
    for (int i = 0; i < half; i++) {
        int a = md->neox ? i : 2 * i, b = md->neox ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * c[i] - x1 * s[i];
        v[b] = x0 * s[i] + x1 * c[i];
    }
}

#if defined(__AVX2__)
/* out[0..3] = q · rows[0..3] (rows of n floats, n a multiple of 8): four sums side by side —
 * two running sums per row, so that the adds' latency is hidden — reduced together. (Named
 * registers, not arrays: an array of vectors is zeroed through memory on every call.) */
static inline void dot4(const float *q, const float *rows, int n, float *out) {
    const float *r0 = rows, *r1 = rows + n, *r2 = rows + 2 * n, *r3 = rows + 3 * n;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int i = 0;
#if defined(__AVX512F__)
    if (n % 32 == 0) {  /* 16 floats per multiply */
        __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, d0 = c0, d1 = c0, d2 = c0, d3 = c0;
        for (; i < n; i += 32) {
            __m512 q0 = _mm512_loadu_ps(q + i), q1 = _mm512_loadu_ps(q + i + 16);
            c0 = _mm512_fmadd_ps(q0, _mm512_loadu_ps(r0 + i), c0); d0 = _mm512_fmadd_ps(q1, _mm512_loadu_ps(r0 + i + 16), d0);
            c1 = _mm512_fmadd_ps(q0, _mm512_loadu_ps(r1 + i), c1); d1 = _mm512_fmadd_ps(q1, _mm512_loadu_ps(r1 + i + 16), d1);
            c2 = _mm512_fmadd_ps(q0, _mm512_loadu_ps(r2 + i), c2); d2 = _mm512_fmadd_ps(q1, _mm512_loadu_ps(r2 + i + 16), d2);
            c3 = _mm512_fmadd_ps(q0, _mm512_loadu_ps(r3 + i), c3); d3 = _mm512_fmadd_ps(q1, _mm512_loadu_ps(r3 + i + 16), d3);
        }
        a0 = fold512(_mm512_add_ps(c0, d0)); a1 = fold512(_mm512_add_ps(c1, d1));
        a2 = fold512(_mm512_add_ps(c2, d2)); a3 = fold512(_mm512_add_ps(c3, d3));
    }
#endif
    for (; i + 16 <= n; i += 16) {
        __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
        a0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r0 + i), a0); b0 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(r0 + i + 8), b0);
        a1 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r1 + i), a1); b1 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(r1 + i + 8), b1);
        a2 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r2 + i), a2); b2 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(r2 + i + 8), b2);
        a3 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r3 + i), a3); b3 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(r3 + i + 8), b3);
    }
    for (; i < n; i += 8) {
        __m256 q0 = _mm256_loadu_ps(q + i);
        a0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r0 + i), a0); a1 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r1 + i), a1);
        a2 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r2 + i), a2); a3 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r3 + i), a3);
    }
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(_mm256_add_ps(a0, b0), _mm256_add_ps(a1, b1)),
                              _mm256_hadd_ps(_mm256_add_ps(a2, b2), _mm256_add_ps(a3, b3)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}
#endif

/* out (n floats) = Σ_s w[s] · rows[s] (rows of n floats): eight outputs at a time held in a
 * register over every row, not stored and reloaded per row. */
static void weighted_rows(float *out, const float *w, const float *rows, int count, int n) {
    int i = 0;
#if defined(__AVX512F__)
    for (; i + 64 <= n; i += 64) {  /* 64 outputs in 4 registers; two sets for even and odd rows */
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int s = 0;
        for (; s + 2 <= count; s += 2) {
            __m512 w0 = _mm512_set1_ps(w[s]), w1 = _mm512_set1_ps(w[s + 1]);
            const float *r0 = rows + (int64_t)s * n + i, *r1 = r0 + n;
            a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0), a0); b0 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(r1), b0);
            a1 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0 + 16), a1); b1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(r1 + 16), b1);
            a2 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0 + 32), a2); b2 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(r1 + 32), b2);
            a3 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0 + 48), a3); b3 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(r1 + 48), b3);
        }
        if (s < count) {
            __m512 w0 = _mm512_set1_ps(w[s]);
            const float *r0 = rows + (int64_t)s * n + i;
            a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0), a0); a1 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0 + 16), a1);
            a2 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0 + 32), a2); a3 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0 + 48), a3);
        }
        _mm512_storeu_ps(out + i, _mm512_add_ps(a0, b0)); _mm512_storeu_ps(out + i + 16, _mm512_add_ps(a1, b1));
        _mm512_storeu_ps(out + i + 32, _mm512_add_ps(a2, b2)); _mm512_storeu_ps(out + i + 48, _mm512_add_ps(a3, b3));
    }
#endif
#if defined(__AVX2__)
    for (; i + 64 <= n; i += 64) {  /* eight independent sums: the adds' latency hidden */
        __m256 a[8];
        for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
        for (int s = 0; s < count; s++) {
            __m256 ws = _mm256_broadcast_ss(w + s);
            const float *row = rows + (int64_t)s * n + i;
            for (int k = 0; k < 8; k++) a[k] = _mm256_fmadd_ps(ws, _mm256_loadu_ps(row + 8 * k), a[k]);
        }
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(out + i + 8 * k, a[k]);
    }
    for (; i + 16 <= n; i += 16) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int s = 0; s < count; s++) {
            __m256 ws = _mm256_broadcast_ss(w + s);
            a0 = _mm256_fmadd_ps(ws, _mm256_loadu_ps(rows + (int64_t)s * n + i), a0);
            a1 = _mm256_fmadd_ps(ws, _mm256_loadu_ps(rows + (int64_t)s * n + i + 8), a1);
        }
        _mm256_storeu_ps(out + i, a0);
        _mm256_storeu_ps(out + i + 8, a1);
    }
#endif
    for (int k = i; k < n; k++) out[k] = 0;
    for (int s = 0; s < count; s++) vec_axpy(out + i, w[s], rows + (int64_t)s * n + i, n - i);
}

typedef struct { model_t *md; int layer, T; } att_task_t;

#define ATT_BLOCK 4  /* query tokens of one head taken together (prefill) */

#if defined(__AVX512F__)
/* out_i (64 floats) = Σ_s w_i[s] · rows[s] for four queries at once: each row loaded once */
static void weighted_rows4_64(float **out, const float *w, int64_t wstride, const float *rows, int count) {
    /* named registers (an array of vectors is kept in memory) */
#define ROW_DECL(I) __m512 a##I##0 = _mm512_setzero_ps(), a##I##1 = a##I##0, a##I##2 = a##I##0, a##I##3 = a##I##0
#define ROW_FMA(I) do { __m512 wi = _mm512_set1_ps(w[I * wstride + s]);                      \
        a##I##0 = _mm512_fmadd_ps(wi, r0, a##I##0); a##I##1 = _mm512_fmadd_ps(wi, r1, a##I##1); \
        a##I##2 = _mm512_fmadd_ps(wi, r2, a##I##2); a##I##3 = _mm512_fmadd_ps(wi, r3, a##I##3); } while (0)
#define ROW_STORE(I) do { _mm512_storeu_ps(out[I], a##I##0); _mm512_storeu_ps(out[I] + 16, a##I##1);  \
        _mm512_storeu_ps(out[I] + 32, a##I##2); _mm512_storeu_ps(out[I] + 48, a##I##3); } while (0)
    ROW_DECL(0); ROW_DECL(1); ROW_DECL(2); ROW_DECL(3);
    for (int s = 0; s < count; s++) {
        const float *r = rows + (int64_t)s * 64;
        __m512 r0 = _mm512_loadu_ps(r), r1 = _mm512_loadu_ps(r + 16), r2 = _mm512_loadu_ps(r + 32), r3 = _mm512_loadu_ps(r + 48);
        ROW_FMA(0); ROW_FMA(1); ROW_FMA(2); ROW_FMA(3);
    }
    ROW_STORE(0); ROW_STORE(1); ROW_STORE(2); ROW_STORE(3);
#undef ROW_DECL
#undef ROW_FMA
#undef ROW_STORE
}
#endif

/* Queries tok0 .. tok0+nq−1 of head h: their keys' scores side by side (each block of 4 keys
 * read from the cache once for all of them, then from L1), each query's softmax over its own
 * range (causal, and its window), the weights outside it zero, the values summed once per row. */
static void att_block(const att_task_t *t, int tok0, int nq, int h, float *scores) {
    model_t *md = t->md;
    int hd = md->head_dim, group = md->n_head / md->n_kv, qd = md->n_head * hd, kvh = h / group;
    int64_t ml = md->max_len;
    const float *kc = md->k_cache + (((int64_t)t->layer * md->n_kv + kvh) * ml) * hd;
    const float *vc = md->v_cache + (((int64_t)t->layer * md->n_kv + kvh) * ml) * hd;
    const float *q[ATT_BLOCK];
    float *out[ATT_BLOCK];
    int len[ATT_BLOCK], first[ATT_BLOCK];
    for (int i = 0; i < nq; i++) {
        len[i] = md->pos + tok0 + i + 1;
        first[i] = md->window > 0 && len[i] > md->window ? len[i] - md->window : 0;  /* a sliding window */
        q[i] = md->q + (int64_t)(tok0 + i) * qd + h * hd;
        out[i] = md->att + (int64_t)(tok0 + i) * qd + h * hd;
    }
    int lo = first[0], hi = len[nq - 1], s = lo;
#if defined(__AVX2__)
    if (hd % 8 == 0)
        for (; s + 4 <= hi; s += 4)
            for (int i = 0; i < nq; i++) dot4(q[i], kc + (int64_t)s * hd, hd, scores + i * ml + s);
#endif
    for (; s < hi; s++)
        for (int i = 0; i < nq; i++) scores[i * ml + s] = vec_dot(q[i], kc + (int64_t)s * hd, hd);
    for (int i = 0; i < nq; i++) {
        float *row = scores + i * ml;
        float mx = scale_max(row + first[i], len[i] - first[i], md->scale);
        float sum = exp_shifted(row + first[i], len[i] - first[i], mx);
        vec_scale(row + first[i], len[i] - first[i], 1.0f / sum);
        for (int k = lo; k < first[i]; k++) row[k] = 0;
        for (int k = len[i]; k < hi; k++) row[k] = 0;
    }
#if defined(__AVX512F__)
    if (nq == 4 && hd == 64) { weighted_rows4_64(out, scores + lo, ml, vc + (int64_t)lo * hd, hi - lo); return; }
#endif
    for (int i = 0; i < nq; i++)
        weighted_rows(out[i], scores + i * ml + first[i], vc + (int64_t)first[i] * hd, len[i] - first[i], hd);
}

static void att_worker(void *ctx, int ith, int nth) {
    att_task_t *t = (att_task_t *)ctx;
    model_t *md = t->md;
    float *scores = md->scores + (int64_t)ith * md->max_len * ATT_BLOCK;
    int blocks = (t->T + ATT_BLOCK - 1) / ATT_BLOCK;
    for (int item = ith; item < blocks * md->n_head; item += nth) {
        int b = item / md->n_head, h = item % md->n_head, tok0 = b * ATT_BLOCK;
        att_block(t, tok0, t->T - tok0 < ATT_BLOCK ? t->T - tok0 : ATT_BLOCK, h, scores);
    }
}

static void model_free(model_t *md) {
    if (!md) return;
    free(md->layers); free(md->k_cache); free(md->v_cache); free(md->cos); free(md->sin);
    free(md->x); free(md->xn); free(md->q); free(md->k); free(md->v); free(md->att);
    free(md->g); free(md->u); free(md->scores); free(md->xq); free(md->xq16);
    free(md);
}

/* ints: n_layer, n_embd, n_head, n_kv, head_dim, n_ff, n_vocab, max_len, neox, threads, sliding window
 * (0: none);
 * floats: eps, attention scale, rotary attention factor; inv_freq: head_dim/2 frequencies. */
static model_t *model_new(const int *ints, const float *floats, const float *inv_freq) {
    model_t *md = (model_t *)calloc(1, sizeof(model_t));
    if (!md) return NULL;
    md->n_layer = ints[0]; md->n_embd = ints[1]; md->n_head = ints[2]; md->n_kv = ints[3];
    md->head_dim = ints[4]; md->n_ff = ints[5]; md->n_vocab = ints[6]; md->max_len = ints[7];
    md->neox = ints[8]; md->window = ints[10];
    int threads = md->threads = pool_start(ints[9]);
    md->eps = floats[0]; md->scale = floats[1];
    int half = md->head_dim / 2;
    int64_t kv = (int64_t)md->n_layer * md->n_kv * md->max_len * md->head_dim;
    md->layers = (layer_t *)calloc(md->n_layer, sizeof(layer_t));
    md->k_cache = (float *)calloc(kv, sizeof(float));
    md->v_cache = (float *)calloc(kv, sizeof(float));
    md->cos = (float *)malloc(sizeof(float) * md->max_len * half);
    md->sin = (float *)malloc(sizeof(float) * md->max_len * half);
    md->scores = (float *)malloc(sizeof(float) * md->max_len * threads * ATT_BLOCK);
    if (!md->layers || !md->k_cache || !md->v_cache || !md->cos || !md->sin || !md->scores) {
        model_free(md); return NULL;
    }
    for (int p = 0; p < md->max_len; p++)
        for (int i = 0; i < half; i++) {
            float a = (float)p * inv_freq[i];
            md->cos[(int64_t)p * half + i] = cosf(a) * floats[2];
            md->sin[(int64_t)p * half + i] = sinf(a) * floats[2];
        }
    return md;
}

static int reserve(model_t *md, int T) {
    if (T <= md->cap) return 0;
    int64_t e = md->n_embd, qd = (int64_t)md->n_head * md->head_dim, kd = (int64_t)md->n_kv * md->head_dim;
    int64_t f = md->n_ff, widest = e > f ? e : f;
    widest = widest > qd ? widest : qd;
    float **bufs[] = {&md->x, &md->xn, &md->q, &md->k, &md->v, &md->att, &md->g, &md->u};
    int64_t sizes[] = {e, widest, qd, kd, kd, qd, f, f};
    for (int i = 0; i < 8; i++) {
        float *p = (float *)realloc(*bufs[i], sizeof(float) * sizes[i] * T);
        if (!p) return -1;
        *bufs[i] = p;
    }
    a8_t *q = (a8_t *)realloc(md->xq, sizeof(a8_t) * (widest / 32 + 1) * T);
    if (!q) return -1;
    md->xq = q;
    a16_t *q16 = (a16_t *)realloc(md->xq16, sizeof(a16_t) * (widest / 32 + 1) * T);
    if (!q16) return -1;
    md->xq16 = q16;
    md->cap = T;
    return 0;
}

static void add_bias(float *y, const float *b, int T, int64_t n) {
    if (!b) return;
    for (int t = 0; t < T; t++) for (int64_t i = 0; i < n; i++) y[t * n + i] += b[i];
}

static void attention_inputs(model_t *md, const layer_t *L, int l, int T) {
    int hd = md->head_dim;
    int64_t qd = (int64_t)md->n_head * hd, kd = (int64_t)md->n_kv * hd;
    add_bias(md->q, L->v[V_BQ], T, qd); add_bias(md->k, L->v[V_BK], T, kd); add_bias(md->v, L->v[V_BV], T, kd);
    for (int t = 0; t < T; t++) {
        int p = md->pos + t;
        for (int h = 0; h < md->n_head; h++) {
            float *qh = md->q + t * qd + (int64_t)h * hd;
            if (L->v[V_Q_NORM]) rms_norm(qh, L->v[V_Q_NORM], qh, hd, md->eps);
            rope(md, qh, p);
        }
        for (int h = 0; h < md->n_kv; h++) {
            float *kh = md->k + t * kd + (int64_t)h * hd;
            if (L->v[V_K_NORM]) rms_norm(kh, L->v[V_K_NORM], kh, hd, md->eps);
            rope(md, kh, p);
            int64_t at = (((int64_t)l * md->n_kv + h) * md->max_len + p) * hd;
            memcpy(md->k_cache + at, kh, sizeof(float) * hd);
            memcpy(md->v_cache + at, md->v + t * kd + (int64_t)h * hd, sizeof(float) * hd);
        }
    }
}

static void block(model_t *md, int l, int T) {
    const layer_t *L = md->layers + l;
    int64_t e = md->n_embd, f = md->n_ff;
    for (int t = 0; t < T; t++) rms_norm(md->x + t * e, L->v[V_ATTN_NORM], md->xn + t * e, e, md->eps);
    const mat_t *qkv[3] = {&L->m[M_Q], &L->m[M_K], &L->m[M_V]};
    float *outs[3] = {md->q, md->k, md->v};
    matmul(3, qkv, outs, md->xn, md->xq, md->xq16, T);
    attention_inputs(md, L, l, T);
    att_task_t at = {md, l, T};
    pool_run(att_worker, &at);
    const mat_t *o[1] = {&L->m[M_O]};
    float *xo[1] = {md->xn};
    matmul(1, o, xo, md->att, md->xq, md->xq16, T);
    for (int64_t i = 0; i < T * e; i++) md->x[i] += md->xn[i];
    for (int t = 0; t < T; t++) rms_norm(md->x + t * e, L->v[V_FFN_NORM], md->xn + t * e, e, md->eps);
    const mat_t *gu[2] = {&L->m[M_GATE], &L->m[M_UP]};
    float *gus[2] = {md->g, md->u};
    matmul(2, gu, gus, md->xn, md->xq, md->xq16, T);
    silu_mul(md->g, md->u, T * f);
    const mat_t *dn[1] = {&L->m[M_DOWN]};
    float *xd[1] = {md->xn};
    matmul(1, dn, xd, md->g, md->xq, md->xq16, T);
    for (int64_t i = 0; i < T * e; i++) md->x[i] += md->xn[i];
}

/* Run T tokens after what the cache holds; the logits of the last (all = 0) or of every token
 * (all = 1) into out. Returns 0, or -1 when the cache is full or memory runs out. */
static int model_forward(model_t *md, const int32_t *ids, int T, int all, float *out) {
    if (T < 1 || md->pos + T > md->max_len) return -1;
    if (reserve(md, T) != 0) return -1;
    pool_start(md->threads);  /* the pool is shared: another model may have resized it */
    int64_t e = md->n_embd;
    for (int t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= md->n_vocab) return -2;
        dequantize_row(md->embd.type, md->embd.data + (int64_t)ids[t] * md->embd.row_bytes, md->x + t * e, e);
    }
    for (int l = 0; l < md->n_layer; l++) block(md, l, T);
    int first = all ? 0 : T - 1, n = T - first;
    for (int t = 0; t < n; t++) rms_norm(md->x + (first + t) * e, md->out_norm, md->xn + t * e, e, md->eps);
    const mat_t *h[1] = {&md->output};
    float *y[1] = {out};
    matmul(1, h, y, md->xn, md->xq, md->xq16, n);
    md->pos += T;
    return 0;
}

/* One matrix times T rows of x (tests, and any caller with a single product); w16: 16-bit
 * activations whatever the format. */
static int matmul_rows(int type, const uint8_t *data, int64_t rows, int64_t cols, int64_t row_bytes,
                       const float *x, int T, float *y, int w16) {
    mat_t m = {type, data, rows, cols, row_bytes, w16 || wide(type)};
    const mat_t *ms[1] = {&m};
    float *ys[1] = {y};
    a8_t *scratch = (a8_t *)malloc(sizeof(a8_t) * (cols / 32 + 1) * (T > 0 ? T : 1));
    a16_t *scratch16 = (a16_t *)malloc(sizeof(a16_t) * (cols / 32 + 1) * (T > 0 ? T : 1));
    if (!scratch || !scratch16) { free(scratch); free(scratch16); return -1; }
    matmul(1, ms, ys, x, scratch, scratch16, T);
    free(scratch); free(scratch16);
    return 0;
}

#endif
