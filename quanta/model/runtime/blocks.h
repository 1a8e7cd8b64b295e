/* GGML block formats (and quanta's own T_QG4/T_QG8): dot products of a weight row stored in a
 * block format with a row of activations quantized per 32 values — to 8 bits, or to 16 for the
 * formats wide() names (quanta.model.runtime._native).
 *
 * Every format is read 32 weights at a time ("a chunk"): its integer codes q[32] and, for each
 * half of 16, a float scale and a float offset, so that weight i = scale * q[i] + offset. With
 * the activations a[i] = d * x[i] (x int8, one float d per chunk, and the integer sums of x per
 * half kept beside them), a chunk's dot product is
 *     d * (scale0 * sum_{i<16} q[i] x[i] + scale1 * sum_{i>=16} q[i] x[i] + off0 * s0 + off1 * s1)
 * — the integer part exact, so each format needs only its decoder. Codes are unsigned (up to 63;
 * T_QG8's up to 255) except Q8_0's, the IQ4 lookups' and the lattice types', which are signed.
 *
 * Layouts are ggml's (ggml-common.h), little-endian; each is checked against the gguf package's
 * dequantizer by the tests. Built four times (portable, AVX2+FMA, +AVX-VNNI, +AVX-512 VNNI);
 * quanta.model.runtime._dispatch picks one at run time. */

#ifndef QUANTA_BLOCKS_H
#define QUANTA_BLOCKS_H

#include <stdint.h>
#include <string.h>
#include <math.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

/* ggml's type numbers */
enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8,
       T_Q2_K = 10, T_Q3_K = 11, T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_IQ4_NL = 20,
       T_IQ4_XS = 23, T_IQ2_XXS = 16, T_IQ2_XS = 17, T_IQ3_XXS = 18, T_IQ3_S = 21, T_IQ2_S = 22,
       /* quanta's own grids, repacked from a quanta folder when it is loaded (in memory only, no
        * GGML number): 32 weights per block, a float16 step d, a float32 offset m (d times minus
        * the zero point: exact in float32, a product of two float16 values) and the codes —
        * T_QG4: 16 bytes of nibbles as Q4_1 (up to 4 bits), T_QG8: 32 bytes (up to 8 bits), the
        * codes unsigned — weight = d·q + m */
       T_QG4 = 64, T_QG8 = 65 };

/* One chunk of activations: 32 int8 values, their scale d, d times the sum of each half's
 * values (the offsets' terms), and the sums of each 4 consecutive values (the lanes of a SIMD
 * product: a format's fixed offset, Q4_0's −8 or Q5_0's −16, is then one integer subtraction
 * per chunk, not a float term). */
typedef struct { float d, ds[2], pad; int8_t q[32]; int32_t xs[8]; } a8_t;

/* The same at 16 bits (step max|x| / 32767): the activations of the formats whose own steps are
 * as fine as 8-bit activations' or finer (wide(): 6 bits and more), where rounding x to 8 bits
 * would cost as much accuracy as the format itself, and of a 5-bit output head (engine.h's
 * mat_t.w16). Products with int16 pairs (madd), or — codes below 64, a16b_t — as two byte products,
 * w·q = 256·(w·hi) + lo·w exactly. */
typedef struct { float d, ds[2], pad; int16_t q[32]; } a16_t;

/* A chunk's 16-bit codes split into bytes, q = 256·hi + lo (hi signed, lo unsigned), for the row
 * kernels of formats that are not wide() (a 5-bit head): kept apart from a16_t, which the prefill
 * tiles stream for every token. */
typedef struct { int8_t hi[32]; uint8_t lo[32]; } a16b_t;

static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) { bits = sign; }
        else { float f = (float)man * (1.0f / 16777216.0f); memcpy(&bits, &f, 4); bits |= sign; }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f; memcpy(&f, &bits, 4); return f;
}

#if defined(__F16C__)
static inline float rd16(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return _cvtsh_ss(h); }
#else
static inline float rd16(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return f16_to_f32(h); }
#endif

static inline float rd32(const uint8_t *p) { float f; memcpy(&f, p, 4); return f; }
static inline uint32_t rd_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static const int8_t IQ4_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* The lattice types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S): each vector of 8 (IQ2) or 4 (IQ3)
 * magnitudes is a point of a grid of 256 to 1024, its index stored; each weight's sign apart (a
 * byte of 8 signs, or 7 bits and an even count of negatives). The grids are the gguf package's
 * tables (llama.cpp's own), loaded at run time by set_grid (quanta.model.runtime.native); a type
 * reads as unsupported (block_size 0) until its grid is loaded. Codes: the grid's magnitudes
 * (at most 62) with their signs; one scale per sub-block of 32 or 16, no offset. */
#define LATTICE_TYPES 5
static uint8_t GRID_IQ2_XXS[256 * 8], GRID_IQ2_XS[512 * 8], GRID_IQ2_S[1024 * 8], GRID_IQ3_XXS[256 * 4],
    GRID_IQ3_S[512 * 4];
static int grid_ready[LATTICE_TYPES];

/* the sign byte of 7 stored bits: the eighth makes the count of negatives even (a table of
 * 128, filled by that rule when a grid is loaded) */
static uint8_t EVEN_SIGNS[128];

static inline uint32_t even_signs(uint32_t s7) { return EVEN_SIGNS[s7 & 127]; }

/* a lattice type's slot (0-4), its grid, its points and their magnitudes per point; -1 for
 * another type */
static int lattice_slot(int t, uint8_t **grid, int *points, int *dim) {
    switch (t) {
    case T_IQ2_XXS: *grid = GRID_IQ2_XXS; *points = 256; *dim = 8; return 0;
    case T_IQ2_XS: *grid = GRID_IQ2_XS; *points = 512; *dim = 8; return 1;
    case T_IQ2_S: *grid = GRID_IQ2_S; *points = 1024; *dim = 8; return 2;
    case T_IQ3_XXS: *grid = GRID_IQ3_XXS; *points = 256; *dim = 4; return 3;
    case T_IQ3_S: *grid = GRID_IQ3_S; *points = 512; *dim = 4; return 4;
    default: return -1;
    }
}

/* Load type t's grid: n points of dim magnitudes each, row by row. 0 on success, -1 when t is
 * not a lattice type or the shape is not its grid's. Called before any product reads t. */
static int set_grid(int t, const uint8_t *values, int64_t n, int dim) {
    uint8_t *grid;
    int points, d, slot = lattice_slot(t, &grid, &points, &d);
    if (slot < 0 || n != points || dim != d) return -1;
    if (grid_ready[slot]) return 0;  /* loaded once: products may be reading it */
    memcpy(grid, values, (size_t)points * (size_t)d);
    for (uint32_t i = 0; i < 128; i++) {  /* the same bytes each time */
        uint32_t p = i ^ (i >> 4);
        p ^= p >> 2;
        p ^= p >> 1;
        EVEN_SIGNS[i] = (uint8_t)(i | ((p & 1) << 7));
    }
    grid_ready[slot] = 1;
    return 0;
}

static int lattice_ready(int t) {
    uint8_t *grid;
    int points, dim, slot = lattice_slot(t, &grid, &points, &dim);
    return slot >= 0 && grid_ready[slot];
}

/* a grid point's magnitudes as the bytes of a 64-bit word: an IQ2 point, or two IQ3 points */
static inline uint64_t grid8(const uint8_t *grid, int i) { uint64_t v; memcpy(&v, grid + 8 * i, 8); return v; }
static inline uint64_t grid4x2(const uint8_t *grid, int i, int k) {
    uint32_t a, b;
    memcpy(&a, grid + 4 * i, 4);
    memcpy(&b, grid + 4 * k, 4);
    return (uint64_t)a | ((uint64_t)b << 32);
}

/* Chunk j (32 weights) of the lattice block at b: its 32 magnitudes (grid bytes, weight 8l + k
 * in byte k of g[l]), its sign bits in *neg (bit i: weight i negative), per half its scale —
 * ggml's expressions, so each weight is sc · q exactly as ggml's dequantizer computes it.
 * Inlined where t is a constant (the product loops): the switch folds away. */
static inline __attribute__((always_inline)) void lattice_chunk(int t, const uint8_t *b, int j, uint64_t g[4],
                                                                uint32_t *neg, float sc[2]) {
    float d = rd16(b);
    uint32_t n = 0;
    int l;
    switch (t) {
    case T_IQ2_XXS: {  /* 8 bytes per chunk: 4 point indices, then 4 × 7 sign bits and the factor */
        const uint8_t *p = b + 2 + 8 * j;
        uint32_t s = rd_u32(p + 4);
        sc[0] = sc[1] = d * (0.5f + (float)(s >> 28)) * 0.25f;
        for (l = 0; l < 4; l++) {
            g[l] = grid8(GRID_IQ2_XXS, p[l]);
            n |= even_signs((s >> (7 * l)) & 127) << (8 * l);
        }
        break;
    }
    case T_IQ2_XS: {  /* 4 × 16 bits: a 9-bit index and 7 sign bits; a factor per 16 */
        const uint8_t *p = b + 2 + 8 * j, f = b[66 + j];
        sc[0] = d * (0.5f + (float)(f & 15)) * 0.25f;
        sc[1] = d * (0.5f + (float)(f >> 4)) * 0.25f;
        for (l = 0; l < 4; l++) {
            uint32_t v = (uint32_t)p[2 * l] | ((uint32_t)p[2 * l + 1] << 8);
            g[l] = grid8(GRID_IQ2_XS, (int)(v & 511));
            n |= even_signs(v >> 9) << (8 * l);
        }
        break;
    }
    case T_IQ2_S: {  /* 4 low index bytes, 2 high bits each in qh, 4 sign bytes; a factor per 16 */
        const uint8_t *qs = b + 2 + 4 * j, h = b[66 + j], f = b[74 + j];
        sc[0] = d * (0.5f + (float)(f & 15)) * 0.25f;
        sc[1] = d * (0.5f + (float)(f >> 4)) * 0.25f;
        for (l = 0; l < 4; l++) g[l] = grid8(GRID_IQ2_S, qs[l] | ((h << (8 - 2 * l)) & 0x300));
        n = rd_u32(b + 34 + 4 * j);
        break;
    }
    case T_IQ3_XXS: {  /* 8 index bytes; then per chunk 4 × 7 sign bits and the factor */
        const uint8_t *qs = b + 2 + 8 * j;
        uint32_t s = rd_u32(b + 66 + 4 * j);
        sc[0] = sc[1] = d * (0.5f + (float)(s >> 28)) * 0.5f;
        for (l = 0; l < 4; l++) {
            g[l] = grid4x2(GRID_IQ3_XXS, qs[2 * l], qs[2 * l + 1]);
            n |= even_signs((s >> (7 * l)) & 127) << (8 * l);
        }
        break;
    }
    case T_IQ3_S: {  /* 8 low index bytes, a ninth bit each in qh, 4 sign bytes; factors by nibble */
        const uint8_t *qs = b + 2 + 8 * j, h = b[66 + j];
        sc[0] = sc[1] = d * (float)(1 + 2 * ((b[106 + j / 2] >> (4 * (j & 1))) & 15));
        for (l = 0; l < 4; l++)
            g[l] = grid4x2(GRID_IQ3_S, qs[2 * l] | ((h << (8 - 2 * l)) & 256), qs[2 * l + 1] | ((h << (7 - 2 * l)) & 256));
        n = rd_u32(b + 74 + 4 * j);
        break;
    }
    default:
        sc[0] = sc[1] = 0;
        g[0] = g[1] = g[2] = g[3] = 0;
    }
    *neg = n;
}

/* Formats multiplied against 16-bit activations (a16_t): Q8_0, Q6_K and quanta's T_QG8 (its
 * 5-8-bit grids). The criterion: rounding the activations to 8 bits adds noise of variance
 * ~ (max|x|/127)²/12 per input, against the weights' own ~ (step_w)²/12 — comparable at 6 bits
 * and more (measured: 8-bit activations more than double Q8_0's KL divergence), negligible at
 * 4 bits (about 1-3 %). The output head, whose products are the logits, takes 16 bits from 5
 * bits up (engine.h's mat_t.w16, native.py's HEAD16_TYPES; measured: 3.9 of the 6.9 % that
 * 8-bit activations added to a Q5_1-headed file's KL divergence). */
static inline int wide(int t) { return t == T_Q8_0 || t == T_Q6_K || t == T_QG8; }

/* bytes of one block and weights per block */
static int block_bytes(int t) {
    switch (t) {
    case T_F32: return 4; case T_F16: return 2;
    case T_Q4_0: return 18; case T_Q4_1: return 20; case T_Q5_0: return 22; case T_Q5_1: return 24;
    case T_Q8_0: return 34; case T_IQ4_NL: return 18;
    case T_Q2_K: return 84; case T_Q3_K: return 110; case T_Q4_K: return 144; case T_Q5_K: return 176;
    case T_Q6_K: return 210; case T_IQ4_XS: return 136;
    case T_QG4: return 22; case T_QG8: return 38;
    case T_IQ2_XXS: return 66; case T_IQ2_XS: return 74; case T_IQ2_S: return 82;
    case T_IQ3_XXS: return 98; case T_IQ3_S: return 110;
    default: return 0;
    }
}

static int block_size(int t) {
    switch (t) {
    case T_F32: case T_F16: return 1;
    case T_Q4_0: case T_Q4_1: case T_Q5_0: case T_Q5_1: case T_Q8_0: case T_IQ4_NL: return 32;
    case T_QG4: case T_QG8: return 32;
    case T_Q2_K: case T_Q3_K: case T_Q4_K: case T_Q5_K: case T_Q6_K: case T_IQ4_XS: return 256;
    case T_IQ2_XXS: case T_IQ2_XS: case T_IQ2_S: case T_IQ3_XXS: case T_IQ3_S: return lattice_ready(t) ? 256 : 0;
    default: return 0;
    }
}

static inline void k4_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) { *sc = q[j] & 63; *m = q[j + 4] & 63; }
    else { *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

/* IQ4_XS chunk j of the block at b: its step and its 16 bytes of nibbles */
static inline void iq4xs_chunk(const uint8_t *b, int j, float *d, const uint8_t **qs) {
    uint16_t sh; memcpy(&sh, b + 2, 2);
    int ls = ((b[4 + j / 2] >> (4 * (j % 2))) & 15) | (((sh >> (2 * j)) & 3) << 4);
    *d = rd16(b) * (float)(ls - 32);
    *qs = b + 8 + 16 * j;
}

/* Q3_K's scale i (0-15) of the 12 bytes at s: 4 low bits, then 2 high bits, minus 32 */
static inline int q3k_scale(const uint8_t *s, int i) {
    int low = i < 8 ? s[i] & 0xF : s[i - 8] >> 4;
    return (low | (((s[8 + (i & 3)] >> (2 * (i >> 2))) & 3) << 4)) - 32;
}

/* The scalar decoder of chunk j of the block at b: codes q (int, unsigned or signed), and per
 * half a scale and an offset. Returns 1 when the codes are signed. */
static inline int decode_chunk(int t, const uint8_t *b, int j, int q[32], float sc[2], float off[2]) {
    int i;
    switch (t) {
    case T_Q4_0: case T_Q4_1: case T_QG4: case T_IQ4_NL: {
        const uint8_t *qs = b + (t == T_Q4_1 ? 4 : t == T_QG4 ? 6 : 2);
        float d = rd16(b);
        for (i = 0; i < 16; i++) { q[i] = qs[i] & 15; q[i + 16] = qs[i] >> 4; }
        sc[0] = sc[1] = d;
        if (t == T_IQ4_NL) { for (i = 0; i < 32; i++) q[i] = IQ4_VALUES[q[i]]; off[0] = off[1] = 0; return 1; }
        off[0] = off[1] = t == T_Q4_0 ? -8.0f * d : t == T_Q4_1 ? rd16(b + 2) : rd32(b + 2);
        return 0;
    }
    case T_Q5_0: case T_Q5_1: {
        int first = t == T_Q5_1 ? 4 : 2;
        uint32_t qh; memcpy(&qh, b + first, 4);
        const uint8_t *qs = b + first + 4;
        float d = rd16(b);
        for (i = 0; i < 16; i++) {
            q[i] = (qs[i] & 15) | (((qh >> i) & 1) << 4);
            q[i + 16] = (qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4);
        }
        sc[0] = sc[1] = d;
        off[0] = off[1] = t == T_Q5_0 ? -16.0f * d : rd16(b + 2);
        return 0;
    }
    case T_Q8_0: {
        const int8_t *qs = (const int8_t *)(b + 2);
        for (i = 0; i < 32; i++) q[i] = qs[i];
        sc[0] = sc[1] = rd16(b); off[0] = off[1] = 0;
        return 1;
    }
    case T_QG8: {
        for (i = 0; i < 32; i++) q[i] = b[6 + i];
        sc[0] = sc[1] = rd16(b); off[0] = off[1] = rd32(b + 2);
        return 0;
    }
    case T_Q4_K: case T_Q5_K: {
        int s, m;
        float d = rd16(b), dmin = rd16(b + 2);
        k4_scale_min(j, b + 4, &s, &m);
        const uint8_t *qs = b + (t == T_Q4_K ? 16 : 48) + 32 * (j / 2);
        int shift = 4 * (j & 1);
        for (i = 0; i < 32; i++) q[i] = (qs[i] >> shift) & 15;
        if (t == T_Q5_K) { const uint8_t *qh = b + 16; for (i = 0; i < 32; i++) q[i] |= ((qh[i] >> j) & 1) << 4; }
        sc[0] = sc[1] = d * (float)s; off[0] = off[1] = -dmin * (float)m;
        return 0;
    }
    case T_Q6_K: {
        const uint8_t *ql = b + 64 * (j / 4), *qh = b + 128 + 32 * (j / 4);
        const int8_t *scales = (const int8_t *)(b + 192) + 8 * (j / 4);
        int k = j % 4, lo = (k & 1) * 32, shift = 4 * (k >> 1), hs = 2 * k;
        float d = rd16(b + 208);
        for (i = 0; i < 32; i++) q[i] = ((ql[lo + i] >> shift) & 15) | (((qh[i] >> hs) & 3) << 4);
        sc[0] = d * (float)scales[2 * k]; sc[1] = d * (float)scales[2 * k + 1];
        off[0] = -32.0f * sc[0]; off[1] = -32.0f * sc[1];
        return 0;
    }
    case T_Q3_K: {
        float d = rd16(b + 108);
        const uint8_t *hm = b, *qs = b + 32 + 32 * (j / 4);
        int k = j % 4, shift = 2 * k, m = 1 << j;
        for (i = 0; i < 32; i++) q[i] = ((qs[i] >> shift) & 3) | ((hm[i] & m) ? 4 : 0);
        sc[0] = d * (float)q3k_scale(b + 96, 2 * j); sc[1] = d * (float)q3k_scale(b + 96, 2 * j + 1);
        off[0] = -4.0f * sc[0]; off[1] = -4.0f * sc[1];
        return 0;
    }
    case T_Q2_K: {
        const uint8_t *scales = b, *qs = b + 16 + 32 * (j / 4);
        float d = rd16(b + 80), dmin = rd16(b + 82);
        int shift = 2 * (j % 4);
        for (i = 0; i < 32; i++) q[i] = (qs[i] >> shift) & 3;
        for (i = 0; i < 2; i++) {
            uint8_t s = scales[2 * j + i];
            sc[i] = d * (float)(s & 15); off[i] = -dmin * (float)(s >> 4);
        }
        return 0;
    }
    case T_IQ4_XS: {
        float d;
        const uint8_t *qs;
        iq4xs_chunk(b, j, &d, &qs);
        for (i = 0; i < 16; i++) { q[i] = IQ4_VALUES[qs[i] & 15]; q[i + 16] = IQ4_VALUES[qs[i] >> 4]; }
        sc[0] = sc[1] = d; off[0] = off[1] = 0;
        return 1;
    }
    case T_IQ2_XXS: case T_IQ2_XS: case T_IQ2_S: case T_IQ3_XXS: case T_IQ3_S: {
        uint64_t g[4];
        uint32_t neg;
        lattice_chunk(t, b, j, g, &neg, sc);
        for (i = 0; i < 32; i++) {
            int v = (int)((g[i >> 3] >> (8 * (i & 7))) & 255);
            q[i] = (neg >> i) & 1 ? -v : v;
        }
        off[0] = off[1] = 0;
        return 1;
    }
    default:
        return 0;
    }
}

/* One row of n weights (n a multiple of the type's block size) as floats. */
static void dequantize_row(int t, const uint8_t *row, float *out, int64_t n) {
    if (t == T_F32) { memcpy(out, row, (size_t)n * 4); return; }
    if (t == T_F16) { for (int64_t i = 0; i < n; i++) out[i] = rd16(row + 2 * i); return; }
    int bs = block_size(t), bb = block_bytes(t), chunks = bs / 32, q[32];
    float sc[2], off[2];
    for (int64_t c = 0; c < n / 32; c++) {
        const uint8_t *b = row + (c / chunks) * bb;
        decode_chunk(t, b, (int)(c % chunks), q, sc, off);
        for (int i = 0; i < 32; i++) out[32 * c + i] = sc[i >> 4] * (float)q[i] + off[i >> 4];
    }
}

static inline float amax32(const float *v) {  /* max |v[i]| over 32 floats */
#if defined(__AVX2__)
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(v)), _mm256_andnot_ps(sign, _mm256_loadu_ps(v + 8))),
                             _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(v + 16)), _mm256_andnot_ps(sign, _mm256_loadu_ps(v + 24))));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    return _mm_cvtss_f32(m4);
#else
    float amax = 0;
    for (int i = 0; i < 32; i++) { float a = fabsf(v[i]); amax = a > amax ? a : amax; }
    return amax;
#endif
}

/* x (n floats, n a multiple of 32) → n/32 chunks of 16-bit codes (nearest, ties to even). */
static void quantize_activations16(const float *x, a16_t *out, int64_t n) {
    for (int64_t c = 0; c < n / 32; c++) {
        const float *v = x + 32 * c;
        float d = amax32(v) / 32767.0f, inv = d > 0 ? 1.0f / d : 0.0f;
        int s0 = 0, s1 = 0;
#if defined(__AVX2__)
        __m256 iv = _mm256_set1_ps(inv);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v), iv));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + 8), iv));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + 16), iv));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + 24), iv));
        /* packs works within 128-bit lanes: restore the order with a 64-bit permute */
        _mm256_storeu_si256((__m256i *)out[c].q, _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xD8));
        _mm256_storeu_si256((__m256i *)(out[c].q + 16), _mm256_permute4x64_epi64(_mm256_packs_epi32(i2, i3), 0xD8));
        for (int i = 0; i < 16; i++) { s0 += out[c].q[i]; s1 += out[c].q[i + 16]; }
#else
        for (int i = 0; i < 32; i++) {
            int r = (int)lrintf(v[i] * inv);
            out[c].q[i] = (int16_t)r;
            if (i < 16) s0 += r; else s1 += r;
        }
#endif
        out[c].d = d; out[c].ds[0] = d * (float)s0; out[c].ds[1] = d * (float)s1; out[c].pad = 0;
    }
}

/* nc chunks of 16-bit codes → their bytes (a16b_t) */
static void split_activations16(const a16_t *x, a16b_t *out, int64_t nc) {
    for (int64_t c = 0; c < nc; c++)
        for (int i = 0; i < 32; i++) {
            out[c].hi[i] = (int8_t)(x[c].q[i] >> 8);  /* arithmetic shift: floor(q / 256) */
            out[c].lo[i] = (uint8_t)(x[c].q[i] & 255);
        }
}

/* x (n floats, n a multiple of 32) → n/32 chunks (nearest, ties to even: the same codes on
 * every path). */
static void quantize_activations(const float *x, a8_t *out, int64_t n) {
#if defined(__AVX2__)
    for (int64_t c = 0; c < n / 32; c++) {
        const float *v = x + 32 * c;
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), v2 = _mm256_loadu_ps(v + 16),
               v3 = _mm256_loadu_ps(v + 24);
        float amax = amax32(v);
        float d = amax / 127.0f, inv = d > 0 ? 1.0f / d : 0.0f;
        __m256 iv = _mm256_set1_ps(inv);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, iv)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, iv));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, iv)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, iv));
        /* the halves' sums */
        __m256i h0 = _mm256_add_epi32(i0, i1), h1 = _mm256_add_epi32(i2, i3);
        __m128i a0 = _mm_add_epi32(_mm256_castsi256_si128(h0), _mm256_extracti128_si256(h0, 1));
        __m128i a1 = _mm_add_epi32(_mm256_castsi256_si128(h1), _mm256_extracti128_si256(h1, 1));
        a0 = _mm_hadd_epi32(a0, a1);
        a0 = _mm_hadd_epi32(a0, a0);
        int s0 = _mm_cvtsi128_si32(a0), s1 = _mm_extract_epi32(a0, 1);
        /* 32 int32 → 32 int8 in order (packs work within 128-bit lanes: undo with a permute) */
        __m256i p16a = _mm256_packs_epi32(i0, i1), p16b = _mm256_packs_epi32(i2, i3);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[c].q, p8);
        /* the sums of 4: (1 · x) in pairs, then pairs of pairs */
        __m256i fours = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), p8), _mm256_set1_epi16(1));
        _mm256_storeu_si256((__m256i *)out[c].xs, fours);
        out[c].d = d; out[c].ds[0] = d * (float)s0; out[c].ds[1] = d * (float)s1; out[c].pad = 0;
    }
    return;
#endif
    for (int64_t c = 0; c < n / 32; c++) {
        const float *v = x + 32 * c;
        float d = amax32(v) / 127.0f, inv = d > 0 ? 1.0f / d : 0.0f;
        int s0 = 0, s1 = 0;
        for (int i = 0; i < 32; i++) {
            int r = (int)lrintf(v[i] * inv);
            out[c].q[i] = (int8_t)r;
            if (i < 16) s0 += r; else s1 += r;
        }
        for (int k = 0; k < 8; k++) out[c].xs[k] = out[c].q[4 * k] + out[c].q[4 * k + 1] + out[c].q[4 * k + 2] + out[c].q[4 * k + 3];
        out[c].d = d; out[c].ds[0] = d * (float)s0; out[c].ds[1] = d * (float)s1; out[c].pad = 0;
    }
}

/* ---- dot products: portable ---- */

/* against 8-bit activations (x8), or 16-bit ones (x16, the wide() formats) */
static float dot_portable(int t, const uint8_t *row, const a8_t *x8, const a16_t *x16, int64_t n) {
    int bs = block_size(t), bb = block_bytes(t), chunks = bs / 32, q[32], a[32];
    float sc[2], off[2], acc = 0;
    for (int64_t c = 0; c < n / 32; c++) {
        decode_chunk(t, row + (c / chunks) * bb, (int)(c % chunks), q, sc, off);
        for (int i = 0; i < 32; i++) a[i] = x16 ? x16[c].q[i] : x8[c].q[i];
        float d = x16 ? x16[c].d : x8[c].d;
        const float *ds = x16 ? x16[c].ds : x8[c].ds;
        int64_t p0 = 0, p1 = 0;
        for (int i = 0; i < 16; i++) p0 += q[i] * a[i];
        for (int i = 16; i < 32; i++) p1 += q[i] * a[i];
        acc += d * (sc[0] * (float)p0 + sc[1] * (float)p1) + off[0] * ds[0] + off[1] * ds[1];
    }
    return acc;
}

#if defined(__AVX2__)
/* ---- dot products: AVX2 ---- */

static inline __m256i dot_u8s8(__m256i u, __m256i s) {  /* 8 int32 sums of 4 products each */
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

static inline __m256i dot_s8s8(__m256i q, __m256i s) {
    return dot_u8s8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(s, q));
}

static inline __m256i nibbles16(const uint8_t *qs) {  /* low nibbles of 16 bytes, then the high */
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(both, _mm256_set1_epi8(15));
}

static inline __m256i bit_mask(uint32_t bits) {  /* byte i = 0xFF where bit i is set, else 0 */
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    return _mm256_movm_epi8((__mmask32)bits);
#else
    __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                     0x0101010101010101LL, 0x0000000000000000LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    __m256i mask = _mm256_set1_epi64x((long long)0x7fbfdfeff7fbfdfeULL);
    v = _mm256_or_si256(v, mask);
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
#endif
}

static inline __m256i bits_to_bytes(uint32_t bits) {  /* byte i = 0x10 where bit i is set */
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    return _mm256_maskz_mov_epi8((__mmask32)bits, _mm256_set1_epi8(0x10));  /* the bits are a byte mask */
#else
    return _mm256_and_si256(bit_mask(bits), _mm256_set1_epi8(0x10));
#endif
}

static inline __m256 halves(float a, float b) { return _mm256_set_m128(_mm_set1_ps(b), _mm_set1_ps(a)); }

#if defined(__AVX512F__)
static inline __m256 fold512(__m512 v) {  /* the two 256-bit halves added */
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
#endif

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* bytes negated where the mask's are 0xFF: (v ^ m) − m */
static inline __m256i flip_signs(__m256i v, __m256i m) { return _mm256_sub_epi8(_mm256_xor_si256(v, m), m); }

/* lattice_chunk in vectors: the 32 magnitudes, and in *neg 0xFF for each negative weight */
static inline __attribute__((always_inline)) __m256i lattice_vectors(int t, const uint8_t *b, int j, __m256i *neg,
                                                                     float sc[2]) {
    uint64_t g[4];
    uint32_t n;
    lattice_chunk(t, b, j, g, &n, sc);
    *neg = bit_mask(n);
    return _mm256_set_epi64x((long long)g[3], (long long)g[2], (long long)g[1], (long long)g[0]);
}

/* decode_chunk in SIMD: chunk j of the block at b as 32 byte codes, per half a scale and an
 * offset (the same values as decode_chunk's); returns 1 for signed codes, 0 for unsigned (up to
 * 255: T_QG8's). The lattice types gather their points' bytes in scalar code (lattice_chunk)
 * and take their signs in SIMD. The prefill tiles decode with it. */
static inline __attribute__((always_inline)) int chunk_codes(int t, const uint8_t *b, int j, __m256i *q, float sc[2], float off[2]) {
    switch (t) {
    case T_Q4_0: case T_Q4_1: case T_QG4: case T_IQ4_NL: {
        int head = t == T_Q4_0 || t == T_IQ4_NL ? 2 : t == T_Q4_1 ? 4 : 6;
        *q = nibbles16(b + head);
        sc[0] = sc[1] = rd16(b);
        if (t == T_IQ4_NL) {
            *q = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IQ4_VALUES)), *q);
            off[0] = off[1] = 0;
            return 1;
        }
        off[0] = off[1] = t == T_Q4_0 ? -8.0f * sc[0] : t == T_Q4_1 ? rd16(b + 2) : rd32(b + 2);
        return 0;
    }
    case T_IQ4_XS: {
        const uint8_t *qs;
        iq4xs_chunk(b, j, &sc[0], &qs);
        sc[1] = sc[0]; off[0] = off[1] = 0;
        *q = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IQ4_VALUES)), nibbles16(qs));
        return 1;
    }
    case T_Q5_0: case T_Q5_1: {
        int first = t == T_Q5_1 ? 4 : 2;
        uint32_t qh; memcpy(&qh, b + first, 4);
        *q = _mm256_or_si256(nibbles16(b + first + 4), bits_to_bytes(qh));
        sc[0] = sc[1] = rd16(b);
        off[0] = off[1] = t == T_Q5_0 ? -16.0f * sc[0] : rd16(b + 2);
        return 0;
    }
    case T_Q8_0: case T_QG8:
        *q = _mm256_loadu_si256((const __m256i *)(b + (t == T_Q8_0 ? 2 : 6)));
        sc[0] = sc[1] = rd16(b);
        off[0] = off[1] = t == T_Q8_0 ? 0.0f : rd32(b + 2);
        return t == T_Q8_0;
    case T_Q4_K: case T_Q5_K: {
        int s, m;
        k4_scale_min(j, b + 4, &s, &m);
        __m256i raw = _mm256_loadu_si256((const __m256i *)(b + (t == T_Q4_K ? 16 : 48) + 32 * (j / 2)));
        *q = _mm256_and_si256(j & 1 ? _mm256_srli_epi16(raw, 4) : raw, _mm256_set1_epi8(15));
        if (t == T_Q5_K) {
            __m256i hb = _mm256_loadu_si256((const __m256i *)(b + 16)), bit = _mm256_set1_epi8((char)(1 << j));
            *q = _mm256_or_si256(*q, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit), _mm256_set1_epi8(16)));
        }
        sc[0] = sc[1] = rd16(b) * (float)s;
        off[0] = off[1] = -rd16(b + 2) * (float)m;
        return 0;
    }
    case T_Q6_K: {
        int k = j % 4;
        const uint8_t *ql = b + 64 * (j / 4) + (k & 1) * 32, *qh = b + 128 + 32 * (j / 4);
        const int8_t *scales = (const int8_t *)(b + 192) + 8 * (j / 4) + 2 * k;
        float d = rd16(b + 208);
        __m256i lo = _mm256_loadu_si256((const __m256i *)ql);
        lo = _mm256_and_si256(k >> 1 ? _mm256_srli_epi16(lo, 4) : lo, _mm256_set1_epi8(15));
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)qh), 2 * k), _mm256_set1_epi8(3));
        *q = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
        sc[0] = d * (float)scales[0]; sc[1] = d * (float)scales[1];
        off[0] = -32.0f * sc[0]; off[1] = -32.0f * sc[1];
        return 0;
    }
    case T_IQ2_XXS: case T_IQ2_XS: case T_IQ2_S: case T_IQ3_XXS: case T_IQ3_S: {
        __m256i neg, mag = lattice_vectors(t, b, j, &neg, sc);
        *q = flip_signs(mag, neg);
        off[0] = off[1] = 0;
        return 1;
    }
    case T_Q2_K: {  /* 2-bit codes, a scale and a minimum per 16 (a byte: 4 bits each) */
        __m256i raw = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * (j / 4)));
        *q = _mm256_and_si256(_mm256_srl_epi16(raw, _mm_cvtsi32_si128(2 * (j % 4))), _mm256_set1_epi8(3));
        float d = rd16(b + 80), dmin = rd16(b + 82);
        for (int h = 0; h < 2; h++) {
            uint8_t f = b[2 * j + h];
            sc[h] = d * (float)(f & 15); off[h] = -dmin * (float)(f >> 4);
        }
        return 0;
    }
    case T_Q3_K: {  /* 2 low bits, the third from hmask's bit j; 6-bit signed scales per 16, −4 */
        __m256i raw = _mm256_loadu_si256((const __m256i *)(b + 32 + 32 * (j / 4)));
        __m256i lo = _mm256_and_si256(_mm256_srl_epi16(raw, _mm_cvtsi32_si128(2 * (j % 4))), _mm256_set1_epi8(3));
        __m256i hm = _mm256_loadu_si256((const __m256i *)b), bit = _mm256_set1_epi8((char)(1 << j));
        *q = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), _mm256_set1_epi8(4)));
        float d = rd16(b + 108);
        sc[0] = d * (float)q3k_scale(b + 96, 2 * j); sc[1] = d * (float)q3k_scale(b + 96, 2 * j + 1);
        off[0] = -4.0f * sc[0]; off[1] = -4.0f * sc[1];
        return 0;
    }
    default: {
        int c32[32];
        int8_t c8[32];
        int sgn = decode_chunk(t, b, j, c32, sc, off);
        for (int i = 0; i < 32; i++) c8[i] = (int8_t)c32[i];
        *q = _mm256_loadu_si256((const __m256i *)c8);
        return sgn;
    }
    }
}

#define ACC(P, SC0, SC1, OFF0, OFF1)                                                        \
    do {                                                                                    \
        float d_ = x[c].d;                                                                  \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(P), halves(d_ * (SC0), d_ * (SC1)), acc); \
        acc_off += (OFF0) * x[c].ds[0] + (OFF1) * x[c].ds[1];                               \
    } while (0)

/* a row of lattice type t against 8-bit activations: per chunk the grid bytes gathered, the
 * activations' signs flipped where the weights' are (|x| ≤ 127: no overflow), an unsigned ×
 * signed product; two accumulators */
static inline __attribute__((always_inline)) float dot_lattice(int t, const uint8_t *row, const a8_t *x, int64_t nc) {
    int bb = block_bytes(t);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t c = 0; c < nc; c++) {
        float sc[2];
        __m256i neg, mag = lattice_vectors(t, row + (c / 8) * bb, (int)(c % 8), &neg, sc);
        __m256i xs = flip_signs(_mm256_loadu_si256((const __m256i *)x[c].q), neg);
        float d = x[c].d;
        acc[c & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(mag, xs)), halves(d * sc[0], d * sc[1]), acc[c & 1]);
    }
    return hsum(_mm256_add_ps(acc[0], acc[1]));
}

static inline __attribute__((always_inline)) float dot_avx2(int t, const uint8_t *row, const a8_t *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float acc_off = 0, acc_off1 = 0;
    int64_t nc = n / 32, c;
    switch (t) {
    /* The 32-weight formats: chunks in pairs on two accumulators (each multiply-add waits for
     * the previous one on its accumulator: one chain would bound a chunk to its latency). A fixed
     * offset (Q4_0's −8, Q5_0's −16) is an integer subtraction of the activations' sums of 4; a
     * stored one (Q4_1, Q5_1, T_QG4) a float term on two running sums likewise. */
#define PAIRS(BODY)                                                               \
    do {                                                                          \
        for (c = 0; c + 2 <= nc; c += 2) { BODY(c, acc, acc_off); BODY(c + 1, acc1, acc_off1); } \
        if (c < nc) BODY(c, acc, acc_off);                                        \
    } while (0)
#define FIXED(C, A, SHIFT, B, CODES)                                                                   \
    do {                                                                                               \
        __m256i p_ = dot_u8s8(CODES, _mm256_loadu_si256((const __m256i *)x[C].q));                     \
        p_ = _mm256_sub_epi32(p_, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)x[C].xs), SHIFT)); \
        A = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p_), _mm256_set1_ps(x[C].d * rd16(B)), A);             \
    } while (0)
#define STORED(C, A, O, B, CODES, MIN)                                                                 \
    do {                                                                                               \
        __m256i p_ = dot_u8s8(CODES, _mm256_loadu_si256((const __m256i *)x[C].q));                     \
        A = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p_), _mm256_set1_ps(x[C].d * rd16(B)), A);             \
        O += (MIN) * (x[C].ds[0] + x[C].ds[1]);                                                        \
    } while (0)
#define Q4_0_BODY(C, A, O) FIXED(C, A, 3, row + (C) * 18, nibbles16(row + (C) * 18 + 2))
#define Q4_1_BODY(C, A, O) STORED(C, A, O, row + (C) * 20, nibbles16(row + (C) * 20 + 4), rd16(row + (C) * 20 + 2))
#define QG4_BODY(C, A, O) STORED(C, A, O, row + (C) * 22, nibbles16(row + (C) * 22 + 6), rd32(row + (C) * 22 + 2))
    /* Q5: nibbles16 puts element i+16 in byte 16+i: the high bits follow the same order */
#define Q5_CODES(B, FIRST) _mm256_or_si256(nibbles16((B) + (FIRST) + 4), bits_to_bytes(rd_u32((B) + (FIRST))))
#define Q5_0_BODY(C, A, O) FIXED(C, A, 4, row + (C) * 22, Q5_CODES(row + (C) * 22, 2))
#define Q5_1_BODY(C, A, O) STORED(C, A, O, row + (C) * 24, Q5_CODES(row + (C) * 24, 4), rd16(row + (C) * 24 + 2))
    case T_Q4_0: PAIRS(Q4_0_BODY); break;
    case T_Q4_1: PAIRS(Q4_1_BODY); break;
    case T_QG4: PAIRS(QG4_BODY); break;
    case T_Q5_0: PAIRS(Q5_0_BODY); break;
    case T_Q5_1: PAIRS(Q5_1_BODY); break;
#undef PAIRS
#undef FIXED
#undef STORED
#undef Q4_0_BODY
#undef Q4_1_BODY
#undef QG4_BODY
#undef Q5_CODES
#undef Q5_0_BODY
#undef Q5_1_BODY
    case T_IQ4_NL: case T_IQ4_XS: {
        const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IQ4_VALUES));
        for (c = 0; c < nc; c++) {
            float d;
            const uint8_t *qs;
            if (t == T_IQ4_NL) { d = rd16(row + c * 18); qs = row + c * 18 + 2; }
            else iq4xs_chunk(row + (c / 8) * 136, (int)(c % 8), &d, &qs);
            __m256i q = _mm256_shuffle_epi8(lut, nibbles16(qs));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_s8s8(q, _mm256_loadu_si256((const __m256i *)x[c].q))),
                                  _mm256_set1_ps(x[c].d * d), acc);
        }
        break;
    }
    /* the lattice types: a loop per type (lattice_chunk's switch folded), the magnitudes
     * (unsigned) against the activations with the weights' signs moved onto them */
    case T_IQ2_XXS: return dot_lattice(T_IQ2_XXS, row, x, nc);
    case T_IQ2_XS: return dot_lattice(T_IQ2_XS, row, x, nc);
    case T_IQ2_S: return dot_lattice(T_IQ2_S, row, x, nc);
    case T_IQ3_XXS: return dot_lattice(T_IQ3_XXS, row, x, nc);
    case T_IQ3_S: return dot_lattice(T_IQ3_S, row, x, nc);
    default: {  /* the super-block types (kquant_row takes them when the activations' steps are kept
                 * apart, as matmul does: this is its fallback) and the wide() formats, which
                 * dot16_avx2 takes: the chunk decoder (chunk_codes), the products in SIMD */
        int chunks = block_size(t) / 32, bb = block_bytes(t);
        float sc[2], off[2];
        for (c = 0; c < nc; c++) {
            __m256i qv, xv = _mm256_loadu_si256((const __m256i *)x[c].q);
            int sgn = chunk_codes(t, row + (c / chunks) * bb, (int)(c % chunks), &qv, sc, off);
            ACC(sgn ? dot_s8s8(qv, xv) : dot_u8s8(qv, xv), sc[0], sc[1], off[0], off[1]);
        }
    }
    }
    return hsum(_mm256_add_ps(acc, acc1)) + (acc_off + acc_off1);
}
#undef ACC

/* 32 codes (q: int8, or unsigned bytes when uns) against 16-bit activations: each half's 8
 * partial sums, in int32 */
static inline void madd16(__m256i q, int uns, const int16_t *x, __m256i *p0, __m256i *p1) {
    __m128i a = _mm256_castsi256_si128(q), b = _mm256_extracti128_si256(q, 1);
    __m256i lo = uns ? _mm256_cvtepu8_epi16(a) : _mm256_cvtepi8_epi16(a);
    __m256i hi = uns ? _mm256_cvtepu8_epi16(b) : _mm256_cvtepi8_epi16(b);
    *p0 = _mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)x));
    *p1 = _mm256_madd_epi16(hi, _mm256_loadu_si256((const __m256i *)(x + 16)));
}

#if defined(__AVX512BW__) && defined(__AVX512F__)
/* a chunk's 32 products in one 512-bit multiply: lanes 0-7 the first half's pairs, 8-15 the
 * second's */
static inline __m512 prod16_512(__m256i q, int uns, const int16_t *x) {
    __m512i w = uns ? _mm512_cvtepu8_epi16(q) : _mm512_cvtepi8_epi16(q);
    return _mm512_cvtepi32_ps(_mm512_madd_epi16(w, _mm512_loadu_si512((const void *)x)));
}

static inline __m512 two_halves(float a, float b) {  /* (a ×8, b ×8) */
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a)), _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}
#endif

/* one chunk of dot16_codes into its accumulators */
static inline __attribute__((always_inline)) void dot16_chunk(int t, const uint8_t *b, int j, const a16_t *x,
                                                              const a16b_t *xb, __m256 *acc, float *acc_off) {
    __m256i q;
    float sc[2], off[2];
    int uns = !chunk_codes(t, b, j, &q, sc, off);
    if (xb && uns && t != T_QG8) {
        __m256i p = _mm256_slli_epi32(dot_u8s8(q, _mm256_loadu_si256((const __m256i *)xb->hi)), 8);
        p = _mm256_add_epi32(p, dot_u8s8(_mm256_loadu_si256((const __m256i *)xb->lo), q));
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), halves(x->d * sc[0], x->d * sc[1]), *acc);
    } else {
#if defined(__AVX512BW__) && defined(__AVX512F__)
        *acc = _mm256_add_ps(*acc, fold512(_mm512_mul_ps(prod16_512(q, uns, x->q), two_halves(x->d * sc[0], x->d * sc[1]))));
#else
        __m256i p0, p1;
        madd16(q, uns, x->q, &p0, &p1);
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(x->d * sc[0]), *acc);
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(x->d * sc[1]), *acc);
#endif
    }
    *acc_off += off[0] * x->ds[0] + off[1] * x->ds[1];
}

/* 16-bit activations against any format, through the chunk decoder (inlined where t is a
 * constant): codes 0..63 as two byte products, 256·(q·hi) + lo·q, where the split bytes are
 * given (xb); else, and for signed codes and T_QG8's bytes, widened to int16 (madd). Chunks in
 * pairs on two sets of accumulators (each sum's latency is otherwise the loop's pace). */
static inline __attribute__((always_inline)) float dot16_codes(int t, const uint8_t *row, const a16_t *x,
                                                               const a16b_t *xb, int64_t nc) {
    int chunks = block_size(t) / 32, bb = block_bytes(t);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float off0 = 0, off1 = 0;
    int64_t c = 0;
    for (; c + 2 <= nc; c += 2) {
        dot16_chunk(t, row + (c / chunks) * bb, (int)(c % chunks), x + c, xb ? xb + c : NULL, &acc0, &off0);
        dot16_chunk(t, row + ((c + 1) / chunks) * bb, (int)((c + 1) % chunks), x + c + 1, xb ? xb + c + 1 : NULL,
                    &acc1, &off1);
    }
    if (c < nc) dot16_chunk(t, row + (c / chunks) * bb, (int)(c % chunks), x + c, xb ? xb + c : NULL, &acc0, &off0);
    return hsum(_mm256_add_ps(acc0, acc1)) + (off0 + off1);
}

static inline __attribute__((always_inline)) float dot16_avx2(int t, const uint8_t *row, const a16_t *x,
                                                              const a16b_t *xb, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    float acc_off = 0;
    int64_t nc = n / 32, c;
#if !(defined(__AVX512BW__) && defined(__AVX512F__))
    __m256i p0, p1;  /* madd16's two halves (the 256-bit path) */
#endif
    switch (t) {
    case T_Q8_0: case T_QG8: {
        int bb = t == T_Q8_0 ? 34 : 38, head = t == T_Q8_0 ? 2 : 6;
#if defined(__AVX512BW__) && defined(__AVX512F__)
        __m512 a5 = _mm512_setzero_ps();
        for (c = 0; c < nc; c++) {
            const uint8_t *b = row + c * bb;
            a5 = _mm512_fmadd_ps(prod16_512(_mm256_loadu_si256((const __m256i *)(b + head)), t == T_QG8, x[c].q),
                                 _mm512_set1_ps(x[c].d * rd16(b)), a5);
            if (t == T_QG8) acc_off += rd32(b + 2) * (x[c].ds[0] + x[c].ds[1]);
        }
        return _mm512_reduce_add_ps(a5) + acc_off;
#else
        for (c = 0; c < nc; c++) {
            const uint8_t *b = row + c * bb;
            madd16(_mm256_loadu_si256((const __m256i *)(b + head)), t == T_QG8, x[c].q, &p0, &p1);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1)), _mm256_set1_ps(x[c].d * rd16(b)), acc);
            if (t == T_QG8) acc_off += rd32(b + 2) * (x[c].ds[0] + x[c].ds[1]);
        }
        break;
#endif
    }
    case T_Q6_K:
        for (c = 0; c < nc; c++) {
            __m256i q;
            float sc[2], off[2];
            chunk_codes(T_Q6_K, row + (c / 8) * 210, (int)(c % 8), &q, sc, off);
            q = _mm256_sub_epi8(q, _mm256_set1_epi8(32));  /* signed: the −32 offset in the codes */
            float s0 = sc[0], s1 = sc[1];
#if defined(__AVX512BW__) && defined(__AVX512F__)
            __m512 p = _mm512_mul_ps(prod16_512(q, 0, x[c].q), two_halves(x[c].d * s0, x[c].d * s1));
            acc = _mm256_add_ps(acc, fold512(p));
#else
            madd16(q, 0, x[c].q, &p0, &p1);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(x[c].d * s0), acc);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(x[c].d * s1), acc);
#endif
        }
        break;
    /* any other format (a matrix its model runs at 16 bits): the chunk decoder — inlined per
     * format for the 5-bit heads the engine runs so (native.py's HEAD16_TYPES) */
    case T_Q5_0: return dot16_codes(T_Q5_0, row, x, xb, nc);
    case T_Q5_1: return dot16_codes(T_Q5_1, row, x, xb, nc);
    case T_Q5_K: return dot16_codes(T_Q5_K, row, x, xb, nc);
    default: return dot16_codes(t, row, x, xb, nc);
    }
    return hsum(acc) + acc_off;
}

/* ---- one token's products with the super-block types (Q2_K, Q3_K, Q4_K, Q5_K, IQ4_XS on 8-bit
 * activations; Q6_K on 16-bit ones split into bytes): kquant_row ----
 * Per super-block of 256 weights the per-chunk work is SIMD only: each chunk's integer product
 * (8 lanes), the eight chunks' sums gathered into one vector by a tree of horizontal adds
 * (sums8; half_sums4 for the types with a scale per 16 values), and one multiply-add of that
 * vector by the scales — the block's step times its scales (decoded together: k4_scales8,
 * half_order) times the activations' chunk steps, read from arrays of the steps apart
 * (xsteps_t, from mm_task_t.xd8 …). Minimums and fixed offsets are one more vector multiply-add
 * on the activations' chunk or half sums. The bytes 8 KB on (the rest of the row and
 * the rows after it: a matrix's rows are contiguous) are fetched ahead into the second-level cache
 * in software, a super-block's share at a time: the hardware's prefetch alone left the products
 * at half their speed on matrices that live in memory, not in the cache; nearer (2 KB) or into
 * the first-level cache, rows of 8,192 values lost a sixth. Rows are read one at a time: two or
 * four together, sharing the activations' steps, measured slower. */
#define PREFETCH_BYTES 8192

/* (the sums of each half of 4 chunks' products): (c0h0, c1h0, c2h0, c3h0, c0h1, c1h1, c2h1, c3h1)
 * — a product's lanes 0-3 are its chunk's first 16 values, 4-7 the next */
static inline __m256i half_sums4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    return _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
}

/* (sums of p0's 8 lanes, p1's, …, p7's): the halves' sums added */
static inline __m256i sums8(__m256i p0, __m256i p1, __m256i p2, __m256i p3, __m256i p4, __m256i p5,
                            __m256i p6, __m256i p7) {
    __m256i u0 = half_sums4(p0, p1, p2, p3), u1 = half_sums4(p4, p5, p6, p7);
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

/* Q4_K/Q5_K's 12 bytes of scales and minimums (at s12; the 4 bytes after them are read and
 * unused) → 8 scales (returned) and 8 minimums, as floats: k4_scale_min's values, all at once —
 * bytes 0-3 hold scales 0-3 and the top 2 bits of scales 4-7, bytes 4-7 the same for the
 * minimums, bytes 8-11 the low 4 bits of scales 4-7 (low nibbles) and of minimums 4-7 (high) */
static inline __m256 k4_scales8(const uint8_t *s12, __m256 *mins) {
    __m128i v = _mm_loadu_si128((const __m128i *)s12);
    /* a: (q0-3, q8-11, q4-7, q8-11); top: (·, q0-3, ·, q4-7) */
    __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    __m128i top = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    __m128i r = _mm_and_si128(a, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0));
    r = _mm_or_si128(r, _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi32(0, 0, 0, 0x0f0f0f0f)));
    r = _mm_or_si128(r, _mm_and_si128(_mm_srli_epi16(top, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030)));
    *mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(r, 8)));
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(r));
}

/* bit j of each byte of v moved to bit `to` (the others cleared): one 16-bit shift and a mask —
 * within a byte the bit stays clear of its neighbours' */
static inline __m256i bit_to(__m256i v, int j, int to) {
    __m256i s = j > to ? _mm256_srli_epi16(v, j - to) : j < to ? _mm256_slli_epi16(v, to - j) : v;
    return _mm256_and_si256(s, _mm256_set1_epi8((char)(1 << to)));
}

/* one Q4_K/Q5_K super-block b against the 8 chunks at x (their steps xd, their sums step × Σ
 * codes xs) into acc */
static inline __attribute__((always_inline)) __m256 k4_block(int t, const uint8_t *b, const a8_t *x,
                                                             __m256 xd, __m256 xs, __m256 acc) {
    const __m256i low = _mm256_set1_epi8(15);
    const uint8_t *qs = b + (t == T_Q4_K ? 16 : 48);
    __m256i p[8];
    for (int j = 0; j < 8; j += 2) {
        __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 16 * j));
        __m256i q0 = _mm256_and_si256(raw, low), q1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
        if (t == T_Q5_K) {  /* the fifth bit: bit j of the 32 bytes at 16 */
            __m256i hb = _mm256_loadu_si256((const __m256i *)(b + 16));
            q0 = _mm256_or_si256(q0, bit_to(hb, j, 4));
            q1 = _mm256_or_si256(q1, bit_to(hb, j + 1, 4));
        }
        p[j] = dot_u8s8(q0, _mm256_loadu_si256((const __m256i *)x[j].q));
        p[j + 1] = dot_u8s8(q1, _mm256_loadu_si256((const __m256i *)x[j + 1].q));
    }
    __m256 mins, scales = k4_scales8(b + 4, &mins);
    __m256 sums = _mm256_cvtepi32_ps(sums8(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]));
    acc = _mm256_fmadd_ps(sums, _mm256_mul_ps(_mm256_mul_ps(scales, _mm256_set1_ps(rd16(b))), xd), acc);
    return _mm256_fnmadd_ps(_mm256_mul_ps(mins, _mm256_set1_ps(rd16(b + 2))), xs, acc);
}

/* 16 per-16 scales in bytes (index 2·chunk + half) → floats in half_sums4's order: chunks 0-3
 * (returned), chunks 4-7 (*hi); sgn: the bytes are signed */
static inline __m256 half_order(__m128i v, int sgn, __m256 *hi) {
    v = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15));
    __m128i v1 = _mm_srli_si128(v, 8);
    *hi = _mm256_cvtepi32_ps(sgn ? _mm256_cvtepi8_epi32(v1) : _mm256_cvtepu8_epi32(v1));
    return _mm256_cvtepi32_ps(sgn ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v));
}

/* the activations' terms in half_sums4's order, for chunks 0-3 (a) and 4-7 (b): their steps
 * (xa, xb, from the 8 chunk steps xd) and each half's step × sum (ha, hb, from xh: (c0h0, c0h1,
 * c1h0, …)) */
static inline void half_terms(__m256 xd, const float *xh, __m256 *xa, __m256 *xb, __m256 *ha, __m256 *hb) {
    const __m256i halves_idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    *xa = _mm256_permutevar8x32_ps(xd, _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3));
    *xb = _mm256_permutevar8x32_ps(xd, _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7));
    *ha = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xh), halves_idx);
    *hb = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xh + 8), halves_idx);
}

/* one Q2_K or Q3_K super-block b (codes of 2 or 3 bits, a scale per 16 values: Q2_K's 4 bits
 * with a 4-bit minimum, Q3_K's 6 bits signed with the fixed offset −4) against the 8 chunks at x
 * (their steps xd; xh: each half's step × sum, (c0h0, c0h1, c1h0, …)) into acc */
static inline __attribute__((always_inline)) __m256 k23_block(int t, const uint8_t *b, const a8_t *x, __m256 xd,
                                                              const float *xh, __m256 acc) {
    const __m256i three = _mm256_set1_epi8(3);
    const uint8_t *qs = b + (t == T_Q2_K ? 16 : 32);
    __m256i hm = t == T_Q3_K ? _mm256_loadu_si256((const __m256i *)b) : _mm256_setzero_si256();
    __m256i p[8];
    for (int h = 0; h < 2; h++) {
        __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
        for (int k = 0; k < 4; k++) {
            int j = 4 * h + k;
            __m256i q = _mm256_and_si256(k ? _mm256_srli_epi16(raw, 2 * k) : raw, three);
            if (t == T_Q3_K) q = _mm256_or_si256(q, bit_to(hm, j, 2));  /* the third bit: hmask's bit j */
            p[j] = dot_u8s8(q, _mm256_loadu_si256((const __m256i *)x[j].q));
        }
    }
    __m256 xa, xb, ha, hb;
    half_terms(xd, xh, &xa, &xb, &ha, &hb);
    __m256 sa = _mm256_cvtepi32_ps(half_sums4(p[0], p[1], p[2], p[3]));
    __m256 sb = _mm256_cvtepi32_ps(half_sums4(p[4], p[5], p[6], p[7]));
    __m256 ca, cb;  /* the scales, in steps */
    if (t == T_Q2_K) {
        __m128i f = _mm_loadu_si128((const __m128i *)b);
        __m256 ma, mb, d = _mm256_set1_ps(rd16(b + 80)), dmin = _mm256_set1_ps(rd16(b + 82));
        ca = _mm256_mul_ps(half_order(_mm_and_si128(f, _mm_set1_epi8(15)), 0, &cb), d);
        cb = _mm256_mul_ps(cb, d);
        ma = _mm256_mul_ps(half_order(_mm_and_si128(_mm_srli_epi16(f, 4), _mm_set1_epi8(15)), 0, &mb), dmin);
        mb = _mm256_mul_ps(mb, dmin);
        acc = _mm256_fnmadd_ps(ma, ha, _mm256_fnmadd_ps(mb, hb, acc));
    } else {  /* Q3_K's 6-bit scales: 4 low bits and 2 high bits each (llama.cpp's word arithmetic) */
        uint32_t a[4], top;
        memcpy(a, b + 96, 12);
        top = a[2];
        a[2] = ((a[0] >> 4) & 0x0f0f0f0fu) | (((top >> 4) & 0x03030303u) << 4);
        a[3] = ((a[1] >> 4) & 0x0f0f0f0fu) | (((top >> 6) & 0x03030303u) << 4);
        a[0] = (a[0] & 0x0f0f0f0fu) | ((top & 0x03030303u) << 4);
        a[1] = (a[1] & 0x0f0f0f0fu) | (((top >> 2) & 0x03030303u) << 4);
        /* (built in registers: four stores read back as one load would stall the forwarding) */
        __m128i s = _mm_sub_epi8(_mm_setr_epi32((int)a[0], (int)a[1], (int)a[2], (int)a[3]), _mm_set1_epi8(32));
        __m256 d = _mm256_set1_ps(rd16(b + 108));
        ca = _mm256_mul_ps(half_order(s, 1, &cb), d);
        cb = _mm256_mul_ps(cb, d);
        /* the codes 0..7 stand for −4..3: −4 × each half's sum */
        sa = _mm256_fnmadd_ps(_mm256_set1_ps(4.0f), ha, _mm256_mul_ps(sa, xa));
        sb = _mm256_fnmadd_ps(_mm256_set1_ps(4.0f), hb, _mm256_mul_ps(sb, xb));
        return _mm256_fmadd_ps(sa, ca, _mm256_fmadd_ps(sb, cb, acc));
    }
    return _mm256_fmadd_ps(_mm256_mul_ps(sa, xa), ca, _mm256_fmadd_ps(_mm256_mul_ps(sb, xb), cb, acc));
}

/* one IQ4_XS super-block b (4-bit indices into IQ4_VALUES, a 6-bit scale per chunk, −32) against
 * the 8 chunks at x (steps xd, step × sum xs) into acc. With VNNI the values plus 128, unsigned,
 * then −128 × the chunk's sum; without, signed products (maddubs would saturate on 241 · 127). */
static inline __attribute__((always_inline)) __m256 iq4xs_block(const uint8_t *b, const a8_t *x, __m256 xd,
                                                                __m256 xs, __m256 acc) {
#if defined(__AVX512VNNI__) || defined(__AVXVNNI__)
    const int shift = 128;
#else
    const int shift = 0;
#endif
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_add_epi8(_mm_loadu_si128((const __m128i *)IQ4_VALUES),
                                                                 _mm_set1_epi8((char)shift)));
    __m256i p[8];
    for (int j = 0; j < 8; j++) {
        __m256i v = _mm256_shuffle_epi8(lut, nibbles16(b + 8 + 16 * j)), xv = _mm256_loadu_si256((const __m256i *)x[j].q);
        p[j] = shift ? dot_u8s8(v, xv) : dot_s8s8(v, xv);
    }
    uint16_t sh;
    memcpy(&sh, b + 2, 2);
    uint32_t sl;
    memcpy(&sl, b + 4, 4);
    /* scale j: bits 4(j%2).. of scales_l[j/2], then bits 2j, 2j+1 of scales_h, minus 32 */
    __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)sl), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                  _mm256_set1_epi32(15));
    __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(sh), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                                  _mm256_set1_epi32(3));
    __m256i ls = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
    __m256 sc = _mm256_mul_ps(_mm256_cvtepi32_ps(ls), _mm256_set1_ps(rd16(b)));
    __m256 sums = _mm256_cvtepi32_ps(sums8(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]));
    /* Σ (v + shift)·x·step − shift · step × Σ codes */
    return _mm256_fmadd_ps(sc, _mm256_fnmadd_ps(_mm256_set1_ps((float)shift), xs, _mm256_mul_ps(sums, xd)), acc);
}

/* one Q6_K super-block b against the 8 chunks of 16-bit activations split into bytes at xb (their
 * steps xd; xh: each half's step × sum, (c0h0, c0h1, c1h0, …)) into acc. The codes unsigned
 * (0..63): q·x = 256·(q·hi) + lo·q, two byte products (no saturation: 63 · 128 · 2 and 255 · 63 · 2
 * fit 16 bits), and their fixed offset −32 × each half's sum. */
static inline __attribute__((always_inline)) __m256 k6_block(const uint8_t *b, const a16b_t *xb, __m256 xd,
                                                             const float *xh, __m256 acc) {
    const __m256i low = _mm256_set1_epi8(15), top = _mm256_set1_epi8(0x30);
    __m256i p[8];
    for (int h = 0; h < 2; h++) {  /* a half: 4 chunks from 64 bytes of low nibbles and 32 of high bits */
        __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
        __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
        /* chunk k's two high bits (bits 2k, 2k+1 of qh) moved to bits 4-5 of each byte */
        __m256i q[4] = {_mm256_or_si256(_mm256_and_si256(ql0, low), _mm256_and_si256(_mm256_slli_epi16(qh, 4), top)),
                        _mm256_or_si256(_mm256_and_si256(ql1, low), _mm256_and_si256(_mm256_slli_epi16(qh, 2), top)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), _mm256_and_si256(qh, top)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low),
                                        _mm256_and_si256(_mm256_srli_epi16(qh, 2), top))};
        for (int k = 0; k < 4; k++) {
            const a16b_t *x = xb + 4 * h + k;
            __m256i hi = dot_u8s8(q[k], _mm256_loadu_si256((const __m256i *)x->hi));
            __m256i lo = dot_u8s8(_mm256_loadu_si256((const __m256i *)x->lo), q[k]);
            p[4 * h + k] = _mm256_add_epi32(_mm256_slli_epi32(hi, 8), lo);
        }
    }
    __m256 da, db, ha, hb;  /* (xb: the activations' bytes here) */
    half_terms(xd, xh, &da, &db, &ha, &hb);
    __m256 d = _mm256_set1_ps(rd16(b + 208)), cb, ca = _mm256_mul_ps(half_order(_mm_loadu_si128((const __m128i *)(b + 192)), 1, &cb), d);
    cb = _mm256_mul_ps(cb, d);
    __m256 sa = _mm256_mul_ps(_mm256_cvtepi32_ps(half_sums4(p[0], p[1], p[2], p[3])), da);
    __m256 sb = _mm256_mul_ps(_mm256_cvtepi32_ps(half_sums4(p[4], p[5], p[6], p[7])), db);
    sa = _mm256_fnmadd_ps(_mm256_set1_ps(32.0f), ha, sa);
    sb = _mm256_fnmadd_ps(_mm256_set1_ps(32.0f), hb, sb);
    return _mm256_fmadd_ps(sa, ca, _mm256_fmadd_ps(sb, cb, acc));
}

/* the types kquant_row takes, as the row's activations are 8 (w16 = 0) or 16 bits */
static inline int kquant_takes(int t, int w16) {
    return w16 ? t == T_Q6_K : t == T_Q4_K || t == T_Q5_K || t == T_Q2_K || t == T_Q3_K || t == T_IQ4_XS;
}

/* The activations' records apart, per chunk, for the super-block kernels: the 8- or 16-bit steps
 * (d), the 8-bit ones' step × sum (s), step × each half's sum (h: two per chunk), and the
 * 16-bit codes split into bytes (b). */
typedef struct { const float *d, *s, *h; const a16b_t *b; } xsteps_t;

/* row · x for a row of K-quant type t (kquant_takes) */
static inline __attribute__((always_inline)) float kquant_row_t(int t, const uint8_t *row, const a8_t *x8,
                                                                xsteps_t xr, int64_t nc) {
    int bb = block_bytes(t);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t c = 0; c < nc; c += 8) {
        const uint8_t *b = row + (c / 8) * bb, *ahead = b + PREFETCH_BYTES;
        for (int l = 0; l < bb; l += 64) _mm_prefetch((const char *)(ahead + l), _MM_HINT_T1);
        __m256 d = _mm256_loadu_ps(xr.d + c);
        switch (t) {
        case T_Q6_K: acc = k6_block(b, xr.b + c, d, xr.h + 2 * c, acc); break;
        case T_Q2_K: case T_Q3_K: acc = k23_block(t, b, x8 + c, d, xr.h + 2 * c, acc); break;
        case T_IQ4_XS: acc = iq4xs_block(b, x8 + c, d, _mm256_loadu_ps(xr.s + c), acc); break;
        default: acc = k4_block(t, b, x8 + c, d, _mm256_loadu_ps(xr.s + c), acc);
        }
    }
    return hsum(acc);
}

/* a function per type, each its own code (one function holding all six inlined ran Q4_K at 0.88×) */
#define KQUANT_ROW_OF(T)                                                                             \
    static __attribute__((noinline)) float kquant_row_##T(const uint8_t *row, const a8_t *x8, xsteps_t xr, \
                                                          int64_t nc) {                              \
        return kquant_row_t(T, row, x8, xr, nc);                                                     \
    }
KQUANT_ROW_OF(T_Q2_K)
KQUANT_ROW_OF(T_Q3_K)
KQUANT_ROW_OF(T_Q4_K)
KQUANT_ROW_OF(T_Q5_K)
KQUANT_ROW_OF(T_Q6_K)
KQUANT_ROW_OF(T_IQ4_XS)
#undef KQUANT_ROW_OF

static inline float kquant_row(int t, const uint8_t *row, const a8_t *x8, xsteps_t xr, int64_t nc) {
    switch (t) {
    case T_Q2_K: return kquant_row_T_Q2_K(row, x8, xr, nc);
    case T_Q3_K: return kquant_row_T_Q3_K(row, x8, xr, nc);
    case T_Q4_K: return kquant_row_T_Q4_K(row, x8, xr, nc);
    case T_Q5_K: return kquant_row_T_Q5_K(row, x8, xr, nc);
    case T_IQ4_XS: return kquant_row_T_IQ4_XS(row, x8, xr, nc);
    default: return kquant_row_T_Q6_K(row, x8, xr, nc);
    }
}
#endif


/* ---- float vectors (attention, F32/F16 rows): eight running sums, so the compiler or the
 * SIMD path may keep them in one register ---- */

static inline float vec_dot(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
#if defined(__AVX2__)
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float acc = hsum(_mm256_add_ps(acc0, acc1));
#else
    float part[8] = {0};
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) part[k] += a[i + k] * b[i + k];
    float acc = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
#endif
    for (; i < n; i++) acc += a[i] * b[i];
    return acc;
}

#if defined(__AVX2__)
/* e^x for 8 floats: 2^k · p(r) with x = k ln2 + r, |r| ≤ ln2/2, p the degree-6 Taylor polynomial
 * (relative error below 2e-7 over the float range; 0 below −87, +inf above 88). */
static inline __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.0f), lo = _mm256_set1_ps(-87.0f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);  /* ln 2 in two parts (Cody–Waite) */
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}
#endif

/* x[i] = e^(x[i] − shift); returns their sum */
static inline float exp_shifted(float *x, int64_t n, float shift) {
    int64_t i = 0;
    float sum = 0;
#if defined(__AVX2__)
    __m256 acc = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    sum = hsum(acc);
#endif
    for (; i < n; i++) { x[i] = expf(x[i] - shift); sum += x[i]; }
    return sum;
}

/* g[i] = silu(g[i]) · u[i] */
static inline void silu_mul(float *g, const float *u, int64_t n) {
    int64_t i = 0;
#if defined(__AVX2__)
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i);
        __m256 den = _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, v)));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(v, den), _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* x[i] *= f; returns the largest x[i] (−inf for none) */
static inline float scale_max(float *x, int64_t n, float f) {
    int64_t i = 0;
    float mx = -INFINITY;
#if defined(__AVX2__)
    __m256 fv = _mm256_set1_ps(f), m = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), fv);
        _mm256_storeu_ps(x + i, v);
        m = _mm256_max_ps(m, v);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    mx = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
#endif
    for (; i < n; i++) { x[i] *= f; mx = x[i] > mx ? x[i] : mx; }
    return mx;
}

/* x[i] *= f */
static inline void vec_scale(float *x, int64_t n, float f) {
    int64_t i = 0;
#if defined(__AVX2__)
    __m256 fv = _mm256_set1_ps(f);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), fv));
#endif
    for (; i < n; i++) x[i] *= f;
}

/* y += w * x */
static inline void vec_axpy(float *y, float w, const float *x, int64_t n) {
    int64_t i = 0;
#if defined(__AVX2__)
    __m256 wv = _mm256_set1_ps(w);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; i++) y[i] += w * x[i];
}

static inline float vec_dot_f16(const uint8_t *row, const float *x, int64_t n) {
    int64_t i = 0;
    float acc = 0;
#if defined(__AVX2__) && defined(__F16C__)
    __m256 a = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8)
        a = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * i))), _mm256_loadu_ps(x + i), a);
    acc = hsum(a);
#endif
    for (; i < n; i++) acc += rd16(row + 2 * i) * x[i];
    return acc;
}

/* The dot product of a stored row with quantized activations (block formats: 16-bit ones when
 * w16 — the wide() formats, and any matrix its model asks 16 bits for — 8-bit for the others)
 * or with float activations (F32, F16 rows). */
static inline __attribute__((always_inline)) float dot_row(int t, int w16, const uint8_t *row, const a8_t *xq, const a16_t *x16,
                            const a16b_t *xb, const float *xf, int64_t n) {
    if (t == T_F32) return vec_dot((const float *)row, xf, n);
    if (t == T_F16) return vec_dot_f16(row, xf, n);
#if defined(__AVX2__)
    return w16 ? dot16_avx2(t, row, x16, xb, n) : dot_avx2(t, row, xq, n);
#else
    (void)xb;
    return w16 ? dot_portable(t, row, NULL, x16, n) : dot_portable(t, row, xq, NULL, n);
#endif
}

#endif
