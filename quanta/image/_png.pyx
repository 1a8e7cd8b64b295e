# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""PNG's row filters undone (ISO/IEC 15948 §9, "Filtering"), compiled ahead of time.

:func:`unfilter` reads the inflated image data (each row: a filter-type byte, then the row's
filtered bytes) and writes the samples straight into the caller's array — the one copy a decode
needs. The filters that predict from the pixel to the left — Sub, Average and Paeth, which
photographs are mostly saved with — run one pixel at a time with its channels in the lanes of
an SSE2 register where the processor has it (as libpng's ``filter_sse2_intrinsics.c`` does),
else byte by byte; both give the same bytes.
"""

from libc.stdint cimport uint8_t
from libc.stdlib cimport calloc, free

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif

    static inline uint8_t quanta_png_paeth(int a, int b, int c) {
        int pa = b - c, pb = a - c, pc;
        pc = pa + pb;
        pa = pa < 0 ? -pa : pa;
        pb = pb < 0 ? -pb : pb;
        pc = pc < 0 ? -pc : pc;
        if (pa <= pb && pa <= pc) return (uint8_t) a;
        return (uint8_t) (pb <= pc ? b : c);
    }

    #if defined(__SSE2__)
    /* a pixel of 3 or 4 bytes as 16-bit lanes, and back */
    #define QUANTA_PNG_INLINE static inline __attribute__((always_inline))
    QUANTA_PNG_INLINE __m128i quanta_png_load(const uint8_t* p, int bpp) {
        uint32_t w = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
                     | (bpp == 4 ? (uint32_t) p[3] << 24 : 0);
        return _mm_unpacklo_epi8(_mm_cvtsi32_si128((int) w), _mm_setzero_si128());
    }
    QUANTA_PNG_INLINE void quanta_png_store(uint8_t* p, __m128i v, int bpp) {
        uint32_t w = (uint32_t) _mm_cvtsi128_si32(_mm_packus_epi16(v, _mm_setzero_si128()));
        p[0] = (uint8_t) w;
        p[1] = (uint8_t) (w >> 8);
        p[2] = (uint8_t) (w >> 16);
        if (bpp == 4)
            p[3] = (uint8_t) (w >> 24);
    }

    /* Sub (1), Average (3) and Paeth (4) for 3- and 4-byte pixels, from the second pixel on:
       the pixel to the left (a) and the one above it (c) stay in registers, one pixel's
       channels side by side, instead of each byte waiting on the store of the one before */
    QUANTA_PNG_INLINE void quanta_png_pixels(int type, const uint8_t* src, const uint8_t* up,
                                             uint8_t* dst, long n, int bpp) {
        const __m128i zero = _mm_setzero_si128(), low = _mm_set1_epi16(0xFF);
        __m128i a = quanta_png_load(dst, bpp), b, c = quanta_png_load(up, bpp), x, pa, pb, pc, sel;
        long i;
        for (i = bpp; i + bpp <= n; i += bpp) {
            x = quanta_png_load(src + i, bpp);
            if (type == 1) {
                a = _mm_and_si128(_mm_add_epi16(x, a), low);
            } else if (type == 3) {
                b = quanta_png_load(up + i, bpp);
                a = _mm_and_si128(_mm_add_epi16(x, _mm_srli_epi16(_mm_add_epi16(a, b), 1)), low);
            } else {
                b = quanta_png_load(up + i, bpp);
                pa = _mm_sub_epi16(b, c);
                pb = _mm_sub_epi16(a, c);
                pc = _mm_add_epi16(pa, pb);
                pa = _mm_max_epi16(pa, _mm_sub_epi16(zero, pa));
                pb = _mm_max_epi16(pb, _mm_sub_epi16(zero, pb));
                pc = _mm_max_epi16(pc, _mm_sub_epi16(zero, pc));
                /* b where pb <= pc, else c; then a where pa <= pb and pa <= pc */
                sel = _mm_cmpgt_epi16(pb, pc);
                c = _mm_or_si128(_mm_and_si128(sel, c), _mm_andnot_si128(sel, b));
                sel = _mm_or_si128(_mm_cmpgt_epi16(pa, pb), _mm_cmpgt_epi16(pa, pc));
                c = _mm_or_si128(_mm_and_si128(sel, c), _mm_andnot_si128(sel, a));
                a = _mm_and_si128(_mm_add_epi16(x, c), low);
                c = b;
            }
            quanta_png_store(dst + i, a, bpp);
        }
    }
    #endif

    /* One row: dst = filtered src undone against the row above (up: zeros for the first row). */
    static int quanta_png_row(int type, const uint8_t* src, const uint8_t* up, uint8_t* dst,
                              long n, int bpp) {
        long i;
        if (type < 0 || type > 4)
            return -1;
        if (type == 0) {
            memcpy(dst, src, (size_t) n);
            return 0;
        }
        if (type == 2) {
            for (i = 0; i < n; i++)
                dst[i] = (uint8_t) (src[i] + up[i]);
            return 0;
        }
        /* the first pixel: nothing to its left (a = c = 0) */
        for (i = 0; i < bpp && i < n; i++)
            dst[i] = (uint8_t) (src[i] + (type == 1 ? 0 : type == 3 ? up[i] >> 1 : up[i]));
    #if defined(__SSE2__)
        /* constant arguments, so that each inlined copy has its own loop and fixed-size loads */
        if (bpp == 3) {
            if (type == 1) quanta_png_pixels(1, src, up, dst, n, 3);
            else if (type == 3) quanta_png_pixels(3, src, up, dst, n, 3);
            else quanta_png_pixels(4, src, up, dst, n, 3);
            return 0;
        }
        if (bpp == 4) {
            if (type == 1) quanta_png_pixels(1, src, up, dst, n, 4);
            else if (type == 3) quanta_png_pixels(3, src, up, dst, n, 4);
            else quanta_png_pixels(4, src, up, dst, n, 4);
            return 0;
        }
    #endif
        for (; i < n; i++) {
            if (type == 1)
                dst[i] = (uint8_t) (src[i] + dst[i - bpp]);
            else if (type == 3)
                dst[i] = (uint8_t) (src[i] + ((dst[i - bpp] + up[i]) >> 1));
            else
                dst[i] = (uint8_t) (src[i] + quanta_png_paeth(dst[i - bpp], up[i], up[i - bpp]));
        }
        return 0;
    }
    """
    int quanta_png_row(int type, const uint8_t* src, const uint8_t* up, uint8_t* dst, long n,
                       int bpp) nogil


def unfilter(const uint8_t[::1] data, uint8_t[:, ::1] out, int bpp) -> bool:
    """Undo the row filters of ``data`` (inflated IDAT: ``out.shape[0]`` rows of a filter byte
    and ``out.shape[1]`` bytes) into ``out``; ``bpp``: bytes per pixel (1..8). False when a row
    names a filter type PNG does not have (``out`` is then partly written)."""
    cdef Py_ssize_t height = out.shape[0], n = out.shape[1], y
    cdef int bad = 0
    cdef uint8_t* zeros
    if not 1 <= bpp <= 8 or (n and n % bpp):
        raise ValueError("1..8 bytes per pixel, rows of whole pixels are needed")
    if data.shape[0] != height * (n + 1):
        raise ValueError("the inflated data must hold every row and its filter byte")
    if height == 0 or n == 0:
        return True
    zeros = <uint8_t*> calloc(n, 1)
    if zeros == NULL:
        raise MemoryError()
    with nogil:
        for y in range(height):
            if quanta_png_row(data[y * (n + 1)], &data[y * (n + 1) + 1], zeros if y == 0 else &out[y - 1, 0],
                              &out[y, 0], n, bpp) < 0:
                bad = 1
                break
    free(zeros)
    return not bad
