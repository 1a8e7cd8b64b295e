# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The JPEG encoder's per-pixel and per-symbol loops, compiled ahead of time (Cython → C).

Colour conversion (:mod:`.color`), the forward DCT (:mod:`.dct`), symbol counting and
entropy coding (:mod:`.entropy`) and Huffman code lengths (:mod:`.huffman`); each is the
inner loop of one public function there. The image loops release the GIL (planes and
images encode in parallel threads). Float arithmetic is single precision, as libjpeg's.
"""

from libc.math cimport rintf
from libc.string cimport memcpy, memmove
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t, int16_t, int8_t

import numpy as np

cdef extern from "_bits.h":
    bint QUANTA_DCT_AVX2
    void quanta_dct_avx2(const uint8_t* p, Py_ssize_t stride, const float* c, float* f) nogil
    int quanta_bit_length(unsigned long long a) nogil
    int quanta_lowest_bit(unsigned long long a) nogil
    uint64_t quanta_magnitude_mask(const int16_t* c, int t) nogil
    void quanta_store_be32(uint8_t* p, uint32_t w) nogil

#: Worst case of one block's entropy-coded bytes: DC (11 size bits + 11 value bits) and 63 AC
#: symbols of at most 16 + 10 bits is 1,660 bits = 208 bytes; every byte may be 0xFF and take
#: a stuffed 0x00 after it (416), plus a restart marker (2) and padding: 420.
MAX_BYTES_PER_BLOCK = 420


def rgb_to_ycbcr(const uint8_t[:, :, ::1] rgb, uint8_t[:, :, ::1] out, Py_ssize_t first = 0,
                 Py_ssize_t last = -1) -> None:
    """JFIF BT.601 full range, rounded as libjpeg (+0.5, truncate), into ``out`` (3, H', W'):
    rows and columns past the image repeat its last ones (padding to whole MCUs). first, last:
    convert only the image rows ``first:last`` (−1: to the end; the padding rows with the end)."""
    cdef Py_ssize_t h = rgb.shape[0], w = rgb.shape[1], ph = out.shape[1], pw = out.shape[2]
    cdef Py_ssize_t i, j, k
    last = h if last < 0 else last
    if not 0 <= first <= last <= h or ph < h or pw < w:
        raise ValueError("rows first:last of the image, and an output at least as large, are needed")
    cdef float r, g, b, y, cb, cr
    cdef const uint8_t* src
    cdef uint8_t* o0
    cdef uint8_t* o1
    cdef uint8_t* o2
    with nogil:
        for i in range(first, last):
            src = &rgb[i, 0, 0]
            o0 = &out[0, i, 0]
            o1 = &out[1, i, 0]
            o2 = &out[2, i, 0]
            for j in range(w):
                r = src[3 * j]
                g = src[3 * j + 1]
                b = src[3 * j + 2]
                y = (<float> 0.299) * r + (<float> 0.587) * g + (<float> 0.114) * b
                cb = -(<float> 0.168735892) * r - (<float> 0.331264108) * g + (<float> 0.5) * b + (<float> 128.0)
                cr = (<float> 0.5) * r - (<float> 0.418687589) * g - (<float> 0.081312411) * b + (<float> 128.0)
                # each value lies in [0, 255.5]: +0.5 and truncation is libjpeg's rounding, and
                # 255.5 (Cb of pure blue, Cr of pure red) stays 255 (libjpeg's ONE_HALF − 1)
                o0[j] = <uint8_t> min(<int> (y + (<float> 0.5)), 255)
                o1[j] = <uint8_t> min(<int> (cb + (<float> 0.5)), 255)
                o2[j] = <uint8_t> min(<int> (cr + (<float> 0.5)), 255)
            for j in range(w, pw):
                o0[j] = o0[w - 1]
                o1[j] = o1[w - 1]
                o2[j] = o2[w - 1]
        for k in range(3 if last == h else 0):
            for i in range(h, ph):
                memcpy(&out[k, i, 0], &out[k, h - 1, 0], pw)


def downsample(const uint8_t[:, ::1] plane, int h, int v, uint8_t[:, ::1] out) -> None:
    """Average ``h×v`` cells (2×1 or 2×2) with libjpeg's alternating rounding bias
    (``jcsample.c``: 0, 1, 0, 1, … for 2×1 and 1, 2, 1, 2, … for 2×2, by output column)."""
    cdef Py_ssize_t i, j
    cdef int s
    with nogil:
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                if v == 1:
                    s = plane[i, 2 * j] + plane[i, 2 * j + 1] + (j & 1)
                    out[i, j] = <uint8_t> (s >> 1)
                else:
                    s = (plane[2 * i, 2 * j] + plane[2 * i, 2 * j + 1] + plane[2 * i + 1, 2 * j]
                         + plane[2 * i + 1, 2 * j + 1] + 1 + (j & 1))
                    out[i, j] = <uint8_t> (s >> 2)


def cell_spread(const uint8_t[:, :, ::1] ycc, Py_ssize_t height, Py_ssize_t width) -> float:
    """The mean variance of the chroma planes (``ycc[1]``, ``ycc[2]``) inside 2×2 cells over the
    top-left ``height × width`` samples (even sides): what 4:2:0 subsampling loses, in squared
    sample steps. Sums of integers (exact) per cell: ``Σ(x − m)² = Σx² − (Σx)²/4``."""
    cdef Py_ssize_t i, j, k
    cdef const uint8_t* r0
    cdef const uint8_t* r1
    cdef int64_t s, q, a, b, c, d
    cdef double total = 0
    if height % 2 or width % 2 or ycc.shape[0] != 3 or height > ycc.shape[1] or width > ycc.shape[2]:
        raise ValueError("even sides within the three planes are needed")
    if height == 0 or width == 0:
        return 0.0
    with nogil:
        for k in range(1, 3):
            for i in range(0, height, 2):
                r0 = &ycc[k, i, 0]
                r1 = &ycc[k, i + 1, 0]
                s = 0
                q = 0
                for j in range(0, width, 2):
                    a = r0[j]
                    b = r0[j + 1]
                    c = r1[j]
                    d = r1[j + 1]
                    s = a + b + c + d
                    q = q + 4 * (a * a + b * b + c * c + d * d) - s * s  # 16 × the cell's variance
                total += <double> q
    return total / 16.0 / (2 * (height // 2) * (width // 2))


cdef inline void _dct_block(const uint8_t* p, Py_ssize_t stride, const float* c,
                            float* f) noexcept nogil:
    """``f[v*8 + u]``: the DCT of the level-shifted 8×8 block at ``p`` (rows ``stride`` apart),
    rows then columns; ``c`` is the 8×8 DCT matrix, row-major.

    Each 8-point pass folds its input first (``a[i] ± a[7−i]``: the even basis functions are
    symmetric, the odd ones antisymmetric), so it takes 32 multiply-adds instead of 64; the row
    folds are exact integers, the level shift included.
    """
    cdef float tmp[64]
    cdef float ev[4]
    cdef float od[4]
    cdef Py_ssize_t i, y, u
    cdef int lo, hi
    cdef const uint8_t* row
    if QUANTA_DCT_AVX2:  # the AVX2 build: the same arithmetic, 8 lanes at a time (_bits.h)
        quanta_dct_avx2(p, stride, c, f)
        return
    for y in range(8):  # rows: tmp[y*8 + u] = Σx C[u, x]·(p[y, x] − 128)
        row = p + y * stride
        for i in range(4):
            lo = row[i]
            hi = row[7 - i]
            ev[i] = <float> (lo + hi - 256)
            od[i] = <float> (lo - hi)
        for u in range(0, 8, 2):
            tmp[y * 8 + u] = c[u * 8] * ev[0] + c[u * 8 + 1] * ev[1] + c[u * 8 + 2] * ev[2] + c[u * 8 + 3] * ev[3]
            tmp[y * 8 + u + 1] = (c[u * 8 + 8] * od[0] + c[u * 8 + 9] * od[1] + c[u * 8 + 10] * od[2]
                                  + c[u * 8 + 11] * od[3])
    for u in range(8):  # columns: F[v, u] = Σy C[v, y]·tmp[y*8 + u]
        for i in range(4):
            ev[i] = tmp[i * 8 + u] + tmp[(7 - i) * 8 + u]
            od[i] = tmp[i * 8 + u] - tmp[(7 - i) * 8 + u]
        for y in range(0, 8, 2):
            f[y * 8 + u] = c[y * 8] * ev[0] + c[y * 8 + 1] * ev[1] + c[y * 8 + 2] * ev[2] + c[y * 8 + 3] * ev[3]
            f[y * 8 + 8 + u] = (c[y * 8 + 8] * od[0] + c[y * 8 + 9] * od[1] + c[y * 8 + 10] * od[2]
                                + c[y * 8 + 11] * od[3])


def forward_dct(const uint8_t[:, ::1] plane, const float[:, ::1] c, float[:, ::1] out) -> None:
    """Separable 8×8 DCT of the level-shifted plane (sides multiples of 8), blocks in raster
    order, natural coefficient order: ``out[block, v*8 + u]``."""
    cdef Py_ssize_t nbx = plane.shape[1] // 8, nby = plane.shape[0] // 8, by, bx
    cdef Py_ssize_t stride = plane.shape[1]
    with nogil:
        for by in range(nby):
            for bx in range(nbx):
                _dct_block(&plane[by * 8, bx * 8], stride, &c[0, 0], &out[by * nbx + bx, 0])


def forward_quantize(const uint8_t[:, ::1] plane, const float[:, ::1] c, const float[::1] scale,
                     float qmin, float qmax, const Py_ssize_t[::1] order, const Py_ssize_t[::1] dest,
                     int16_t[:, ::1] out) -> None:
    """:func:`forward_dct` and the coefficient grid's rounding in one pass: row ``dest[b]`` of
    ``out`` gets block ``b`` (raster order) as ``clip(rint(F[n] / scale[n]), qmin, qmax)`` at
    position ``k`` with ``n = order[k]`` (the zigzag order) — the arithmetic of
    :func:`quanta.core.grid.quantize` on that grid (float32, ties to even)."""
    cdef Py_ssize_t nbx = plane.shape[1] // 8, nby = plane.shape[0] // 8, by, bx, k, n, row
    cdef float f[64]
    cdef float qn[64]
    if scale.shape[0] != 64 or order.shape[0] != 64:
        raise ValueError("64 scales and 64 positions are needed")
    with nogil:
        for by in range(nby):
            for bx in range(nbx):
                row = dest[by * nbx + bx]
                _dct_block(&plane[by * 8, bx * 8], plane.shape[1], &c[0, 0], f)
                for n in range(64):  # in natural order first (vector lanes), then to zigzag
                    qn[n] = min(max(rintf(f[n] / scale[n] + (<float> 0.0)), qmin), qmax)
                for k in range(64):
                    out[row, k] = <int16_t> qn[order[k]]


cdef extern from *:
    """
    static int quanta_cpu_has_avx2(void) {
    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0;
    #else
        return 0;
    #endif
    }
    """
    int quanta_cpu_has_avx2()


def cpu_has_avx2() -> bool:
    """Whether this processor (and its operating system) runs AVX2 instructions."""
    return quanta_cpu_has_avx2() != 0


cdef inline int _nbits(int64_t v) noexcept nogil:
    """Bits of ``|v|`` (T.81's SSSS category): one count-leading-zeros instruction."""
    return quanta_bit_length(<unsigned long long> (-v if v < 0 else v))


cdef struct BitWriter:
    uint8_t* out
    Py_ssize_t pos
    uint64_t acc
    int nacc


cdef inline void _byte(BitWriter* bw, uint8_t byte) noexcept nogil:
    """One byte of coded data, and the 0x00 stuffed after a 0xFF."""
    bw.out[bw.pos] = byte
    bw.pos += 1
    if byte == 0xFF:
        bw.out[bw.pos] = 0
        bw.pos += 1


cdef inline void _put(BitWriter* bw, uint64_t code, int size) noexcept nogil:
    """Append ``size`` (≤ 32) bits of ``code``. Whole bytes go out four at a time, once 32 bits
    are waiting: stored at once when none of them is 0xFF, else one by one with a 0x00 stuffed
    after each 0xFF (:func:`_finish` writes what is left). The state is read once and written
    once: a byte stored through ``out`` could be any of ``bw``'s fields to the compiler."""
    cdef uint64_t acc = (bw.acc << size) | code
    cdef int nacc = bw.nacc + size
    cdef uint32_t word, inv
    cdef int k
    if nacc >= 32:
        nacc -= 32
        word = <uint32_t> (acc >> nacc)
        inv = ~word
        if ((inv - 0x01010101u) & ~inv & 0x80808080u) == 0:  # no 0xFF byte
            quanta_store_be32(bw.out + bw.pos, word)
            bw.pos += 4
        else:
            for k in range(24, -8, -8):
                _byte(bw, <uint8_t> ((word >> k) & 0xFF))
        acc &= ((<uint64_t> 1) << nacc) - 1
    bw.acc = acc
    bw.nacc = nacc


cdef inline void _finish(BitWriter* bw) noexcept nogil:
    """Write the bits still waiting, the last byte padded with 1-bits (T.81 F.1.2.3)."""
    while bw.nacc >= 8:
        bw.nacc -= 8
        _byte(bw, <uint8_t> ((bw.acc >> bw.nacc) & 0xFF))
    if bw.nacc > 0:
        _byte(bw, <uint8_t> (((bw.acc << (8 - bw.nacc)) | ((1 << (8 - bw.nacc)) - 1)) & 0xFF))
    bw.acc = 0
    bw.nacc = 0


cdef struct Coder:
    int64_t* freq  # (4, 256) symbol counts (rows 0-1 DC, 2-3 AC) when counting, else NULL
    const uint32_t* codes  # (4, 256) codes and their lengths when writing
    const uint8_t* sizes
    int64_t extra  # bits outside the Huffman codes (value and correction bits), when counting
    BitWriter bw


cdef inline void _counting(Coder* cd, int64_t* freq) noexcept:
    """Set ``cd`` up to count symbols into ``freq`` ((4, 256)) and raw bits into ``extra``."""
    cd.freq = freq
    cd.extra = 0


cdef inline void _writing(Coder* cd, const uint32_t* codes, const uint8_t* sizes, uint8_t* out) noexcept:
    """Set ``cd`` up to write bits with ``codes``/``sizes`` ((4, 256)) into ``out``."""
    cd.freq = NULL
    cd.codes = codes
    cd.sizes = sizes
    cd.bw.out = out
    cd.bw.pos = 0
    cd.bw.acc = 0
    cd.bw.nacc = 0


cdef inline void _symbol(Coder* cd, Py_ssize_t t, int sym) noexcept nogil:
    if cd.freq != NULL:
        cd.freq[t * 256 + sym] += 1
    else:
        _put(&cd.bw, cd.codes[t * 256 + sym], cd.sizes[t * 256 + sym])


cdef inline void _value(Coder* cd, int64_t v, int s) noexcept nogil:
    """The ``s`` value bits after a symbol (negative values as ``v − 1``, T.81 F.1.2.1). When
    counting, nothing: a symbol's value bits are its low four bits, summed from the counts at
    the end (:func:`_value_bits`)."""
    if cd.freq == NULL and s:
        _put(&cd.bw, <uint64_t> ((v if v >= 0 else v - 1) & ((1 << s) - 1)), s)


cdef inline void _bits(Coder* cd, uint64_t v, int n) noexcept nogil:
    """``n`` raw bits (EOBRUN lengths, correction bits)."""
    if cd.freq != NULL:
        cd.extra += n
    elif n:
        _put(&cd.bw, v & ((1 << n) - 1), n)


cdef int64_t _value_bits(const int64_t* freq, int tables) noexcept nogil:
    """The value bits behind the symbols counted in ``tables`` rows of 256: ``s`` for a DC
    symbol ``s`` and for an AC symbol ``(run, s)``; none for EOB, EOBRUN and ZRL symbols, whose
    own bits (EOBRUN lengths) are counted as they go."""
    cdef int64_t total = 0
    cdef int k
    for k in range(tables * 256):
        total += freq[k] * (k & 15)
    return total


cdef void _scan(const int16_t[:, ::1] coefs, const int8_t[::1] comp, const int64_t[::1] dc_tbl,
                const int64_t[::1] ac_tbl, Py_ssize_t per_mcu, Py_ssize_t restart,
                Coder* into, const int64_t* first = NULL) noexcept nogil:
    """One pass over the blocks: DC differences, AC run-lengths, restart intervals; each
    symbol counted or written (``cd.freq``). ``first``: each component's DC predictor at the
    start (the blocks are the rest of a scan that began earlier), else 0."""
    cdef Coder local = into[0]  # in registers, not behind a pointer the output could alias
    cdef Coder* cd = &local
    cdef int64_t pred[4]
    cdef Py_ssize_t b, k, c, t, prev
    cdef int64_t v, diff
    cdef uint64_t mask
    cdef int s, run, rst = 0
    for c in range(4):
        pred[c] = first[c] if first != NULL else 0
    for b in range(coefs.shape[0]):
        if b > 0 and restart > 0 and b % per_mcu == 0 and (b // per_mcu) % restart == 0:
            if cd.freq == NULL:
                _finish(&cd.bw)  # pad with 1-bits, then RSTn
                cd.bw.out[cd.bw.pos] = 0xFF
                cd.bw.out[cd.bw.pos + 1] = 0xD0 + (rst & 7)
                cd.bw.pos += 2
            rst += 1
            pred[0] = pred[1] = pred[2] = pred[3] = 0
        c = comp[b]
        diff = coefs[b, 0] - pred[c]
        pred[c] = coefs[b, 0]
        s = _nbits(diff)
        _symbol(cd, dc_tbl[c], s)
        _value(cd, diff, s)
        t = 2 + ac_tbl[c]
        prev = 0
        mask = quanta_magnitude_mask(&coefs[b, 0], 0) & ~(<uint64_t> 1)  # the AC coefficients only
        while mask:  # the nonzero coefficients in zigzag order; the zeros between are runs
            k = quanta_lowest_bit(mask)
            mask &= mask - 1
            run = <int> (k - prev - 1)
            while run > 15:
                _symbol(cd, t, 0xF0)
                run -= 16
            v = coefs[b, k]
            s = _nbits(v)
            _symbol(cd, t, (run << 4) | s)
            _value(cd, v, s)
            prev = k
        if prev < 63:
            _symbol(cd, t, 0)
    if cd.freq == NULL:
        _finish(&cd.bw)
    into[0] = local


def count_symbols(const int16_t[:, ::1] coefs, const int8_t[::1] comp, const int64_t[::1] dc_tbl,
                  const int64_t[::1] ac_tbl, Py_ssize_t blocks_per_mcu, Py_ssize_t restart,
                  const int64_t[::1] first = None):
    """Symbol counts per table, ``(dc_freq, ac_freq)``, each ``(2, 256)`` int64, and the value
    bits that follow the symbols. ``first``: the four DC predictors to start from (the blocks
    continue a scan; no restart markers), else zeros."""
    freq = np.zeros((4, 256), dtype=np.int64)
    cdef int64_t[:, ::1] f = freq
    cdef Coder cd
    cdef const int64_t* p = NULL
    if first is not None:
        if first.shape[0] != 4 or restart:
            raise ValueError("four DC predictors, and no restart markers, are needed")
        p = &first[0]
    _counting(&cd, &f[0, 0])
    with nogil:
        _scan(coefs, comp, dc_tbl, ac_tbl, blocks_per_mcu, restart, &cd, p)
    return freq[:2].copy(), freq[2:].copy(), int(cd.extra + _value_bits(&f[0, 0], 4))


def encode_scan(const int16_t[:, ::1] coefs, const int8_t[::1] comp, const int64_t[::1] dc_tbl,
                const int64_t[::1] ac_tbl, const uint32_t[:, ::1] codes, const uint8_t[:, ::1] sizes,
                Py_ssize_t blocks_per_mcu, Py_ssize_t restart):
    """The entropy-coded scan: stuffed bytes with RSTn markers, as a uint8 array."""
    buf = np.empty(coefs.shape[0] * MAX_BYTES_PER_BLOCK + 64, dtype=np.uint8)
    cdef uint8_t[::1] o = buf
    cdef Coder cd
    _writing(&cd, &codes[0, 0], &sizes[0, 0], &o[0])
    with nogil:
        _scan(coefs, comp, dc_tbl, ac_tbl, blocks_per_mcu, restart, &cd)
    return buf[:cd.bw.pos]


cdef inline int _nbits_u(int a) noexcept nogil:
    return quanta_bit_length(<unsigned long long> a)


def forward_trellis(const uint8_t[:, ::1] plane, const float[:, ::1] c, const float[::1] scale,
                    float qmax, const Py_ssize_t[::1] order, const Py_ssize_t[::1] dest,
                    const float[::1] ac_bits, const float[::1] weight, float lam, float e0,
                    int16_t[:, ::1] out) -> None:
    """:func:`forward_quantize` with the AC coefficients chosen by a trellis: per block, the
    codes minimising ``bits + λ_b · Σ weight[k]·(x[k] − v[k])²`` over the choices
    ``v[k] ∈ {0, r, r − 1}`` (``r = round(|x[k]|)``, sign kept; ``x = F / scale`` in steps),
    dynamic programming over the position of the previous nonzero coefficient. ``bits``
    counts the Huffman code of each run/size symbol (``ac_bits``, 256 lengths in bits: the
    table the block will be written with), its ``size`` value bits, ZRLs and the EOB.

    ``λ_b = lam / (1 + E_b / e0)`` with ``E_b`` the block's mean squared AC coefficient: busy
    blocks (large ``E_b``) mask error and give more of it up (``e0 ≤ 0``: λ fixed). DC is
    rounded to nearest (a DC trellis draws lines at low quality). ``weight`` is in zigzag
    order; everything else as :func:`forward_quantize`.
    """
    cdef Py_ssize_t nbx = plane.shape[1] // 8, nby = plane.shape[0] // 8, by, bx, k, n, row
    cdef Py_ssize_t i, j, jj, nvalid, end, bj, bj1
    cdef float f[64]
    cdef float x[64]
    cdef float xn[64]
    cdef float ax[64]
    cdef int rr[64]
    cdef double zc[64]
    cdef double cost[64]
    cdef int prev[64]
    cdef int val[64]
    # the positions that may end a run (0: the DC), with their path costs and zc, contiguous
    cdef int vpos[64]
    cdef double vcost[64]
    cdef double vzc[64]
    cdef float rates[12 * 64]  # rates[s * 64 + run]: a run of zeros, then a coefficient of size s
    cdef float cheapest[12]  # the least of rates[s * 64 + run] over the runs
    cdef float q, a, energy, zrl = ac_bits[0xF0], eob = ac_bits[0]
    cdef double best, best1, total, lb, d, d1, base, zi
    cdef int r, s, s1, run, v0, big
    if scale.shape[0] != 64 or ac_bits.shape[0] != 256 or weight.shape[0] != 64 or order.shape[0] != 64:
        raise ValueError("64 scales, weights and positions and 256 code lengths are needed")
    if not 0 < qmax < 2048:
        raise ValueError("the AC code range must be 1..2047")
    if lam < 0 or min(ac_bits) < 0 or min(weight) < 0:  # the path search's bound needs costs ≥ 0
        raise ValueError("lam, the code lengths and the weights must not be negative")
    for s in range(12):
        cheapest[s] = 3.4e38
        for run in range(64):
            rates[s * 64 + run] = ac_bits[((run & 15) << 4) | s] + (run >> 4) * zrl
            cheapest[s] = min(cheapest[s], rates[s * 64 + run])
    with nogil:
        for by in range(nby):
            for bx in range(nbx):
                row = dest[by * nbx + bx]
                _dct_block(&plane[by * 8, bx * 8], plane.shape[1], &c[0, 0], f)
                q = rintf(f[0] / scale[0] + (<float> 0.0))
                out[row, 0] = <int16_t> min(max(q, -qmax), qmax)
                energy = 0
                big = 0
                for n in range(64):  # steps in natural order first (vector lanes)
                    xn[n] = f[n] / scale[n]
                for n in range(1, 64):
                    big = big | (xn[n] > <float> 0.5) | (xn[n] < <float> -0.5)
                if not big:  # every AC coefficient rounds to 0: nothing to choose
                    for k in range(1, 64):
                        out[row, k] = 0
                    continue
                for k in range(1, 64):
                    n = order[k]
                    x[k] = xn[n]
                    energy = energy + f[n] * f[n]
                for k in range(1, 64):  # magnitudes and nearest levels, zigzag order (vector lanes)
                    ax[k] = x[k] if x[k] >= 0 else -x[k]
                    rr[k] = <int> min(rintf(ax[k]), qmax)
                    out[row, k] = 0
                lb = lam if e0 <= 0 else lam / (1 + energy / (63 * e0))
                zc[0] = 0
                for k in range(1, 64):
                    zc[k] = zc[k - 1] + lb * weight[k] * (<double> x[k]) * x[k]
                cost[0] = 0
                vpos[0] = 0
                vcost[0] = 0
                vzc[0] = 0
                nvalid = 1
                for i in range(1, 64):
                    r = rr[i]
                    if r == 0:
                        continue
                    a = ax[i]
                    # the value r, and r − 1 when that is not 0: the cheapest path to each over
                    # every earlier run end (the first minimum kept, r's before r − 1's)
                    zi = zc[i - 1]
                    s = _nbits_u(r)
                    d = lb * weight[i] * (<double> (a - r)) * (a - r) + s
                    best = 1e30
                    bj = 0
                    best1 = 1e30
                    bj1 = 0
                    # run ends from the nearest back: every earlier one costs at least the
                    # zeroing distortion from it (zc only grows, path costs are ≥ 0) plus the
                    # cheapest rate, so the scan stops once that bound passes both bests;
                    # ties keep the earliest run end, as a forward scan's first minimum
                    s1 = _nbits_u(r - 1) if r > 1 else 0
                    d1 = lb * weight[i] * (<double> (a - (r - 1))) * (a - (r - 1)) + s1 if r > 1 else 0
                    for jj in range(nvalid - 1, -1, -1):
                        base = zi - vzc[jj]
                        if base + cheapest[s] + d > best and (r == 1 or base + cheapest[s1] + d1 > best1):
                            break
                        run = <int> (i - 1 - vpos[jj])
                        base = vcost[jj] + base
                        total = base + rates[s * 64 + run] + d
                        if total <= best:
                            best = total
                            bj = jj
                        if r > 1:
                            total = base + rates[s1 * 64 + run] + d1
                            if total <= best1:
                                best1 = total
                                bj1 = jj
                    if best1 < best:
                        cost[i] = best1
                        prev[i] = vpos[bj1]
                        val[i] = r - 1
                    else:
                        cost[i] = best
                        prev[i] = vpos[bj]
                        val[i] = r
                    vpos[nvalid] = <int> i
                    vcost[nvalid] = cost[i]
                    vzc[nvalid] = zc[i]
                    nvalid += 1
                end = 0
                best = zc[63] + eob
                for jj in range(1, nvalid):
                    j = vpos[jj]
                    total = cost[j] + (zc[63] - zc[j]) + (eob if j < 63 else 0)
                    if total < best:
                        best = total
                        end = j
                while end > 0:
                    v0 = val[end]
                    out[row, end] = <int16_t> (v0 if x[end] >= 0 else -v0)
                    end = prev[end]


# --- progressive scans (T.81 G.1.2; libjpeg's jcphuff.c) -----------------------------------
# Each scan is counted (symbol counts for its optimal table, plus its raw bits) or written with
# the tables in rows 0-1 (DC) and 2 (the scan's AC table) of ``codes``/``sizes``.

cdef inline void _eobrun(Coder* cd, int* eobrun, char* bits, int* nbits) noexcept nogil:
    """Emit a pending end-of-band run, then the correction bits buffered behind it."""
    cdef int n, k
    if eobrun[0] > 0:
        n = _nbits(eobrun[0]) - 1
        _symbol(cd, 2, n << 4)
        _bits(cd, <uint64_t> eobrun[0], n)
        eobrun[0] = 0
        for k in range(nbits[0]):
            _bits(cd, <uint64_t> bits[k], 1)
        nbits[0] = 0


cdef void _dc_scan(const int16_t[:, ::1] coefs, const int8_t[::1] comp, const int64_t[::1] tbl,
                   int ah, int al, Coder* into) noexcept nogil:
    """The DC scan, interleaved in MCU order: first (differences of ``dc >> al``) or refining
    (bit ``al`` of each DC)."""
    cdef Coder local = into[0]  # in registers, not behind a pointer the output could alias
    cdef Coder* cd = &local
    cdef int64_t pred[4]
    cdef Py_ssize_t b, c
    cdef int64_t v, diff
    cdef int s
    pred[0] = pred[1] = pred[2] = pred[3] = 0
    for b in range(coefs.shape[0]):
        v = coefs[b, 0] >> al
        if ah:
            _bits(cd, <uint64_t> (v & 1), 1)
            continue
        c = comp[b]
        diff = v - pred[c]
        pred[c] = v
        s = _nbits(diff)
        _symbol(cd, tbl[c], s)
        _value(cd, diff, s)
    into[0] = local


cdef inline uint64_t _band(int ss, int se) noexcept nogil:
    """Bits ``ss..se`` of a 64-bit mask."""
    cdef uint64_t upto = <uint64_t> 0xFFFFFFFFFFFFFFFF if se >= 63 else ((<uint64_t> 1) << (se + 1)) - 1
    return upto & ~(((<uint64_t> 1) << ss) - 1)


cdef void _ac_first(const int16_t[:, ::1] blocks, const Py_ssize_t[::1] idx, int ss, int se, int al,
                    Coder* into) noexcept nogil:
    """A first AC scan of one component: band ``ss..se`` of ``|v| >> al`` (sign kept), runs of
    empty bands coded as EOBRUN. Only the band's nonzero coefficients are visited (a bit mask
    per block)."""
    cdef Coder local = into[0]  # in registers, not behind a pointer the output could alias
    cdef Coder* cd = &local
    cdef Py_ssize_t i, b, k, prev
    cdef int run, eobrun = 0, s, zero = 0
    cdef int64_t v, m
    cdef uint64_t bits, band = _band(ss, se)
    cdef char none[1]
    for i in range(idx.shape[0]):
        b = idx[i]
        prev = ss
        bits = quanta_magnitude_mask(&blocks[b, 0], 0) & band
        while bits:
            k = quanta_lowest_bit(bits)
            bits &= bits - 1
            v = blocks[b, k]
            m = (v if v >= 0 else -v) >> al
            if m == 0:
                continue
            run = <int> (k - prev)
            _eobrun(cd, &eobrun, none, &zero)
            while run > 15:
                _symbol(cd, 2, 0xF0)
                run -= 16
            s = _nbits(m)
            _symbol(cd, 2, (run << 4) | s)
            _value(cd, m if v >= 0 else -m, s)
            prev = k + 1
        if prev <= se:  # zeros to the band's end: the block joins the EOB run
            eobrun += 1
            if eobrun == 0x7FFF:
                _eobrun(cd, &eobrun, none, &zero)
    _eobrun(cd, &eobrun, none, &zero)
    into[0] = local


cdef void _ac_refine(const int16_t[:, ::1] blocks, const Py_ssize_t[::1] idx, int ss, int se, int al,
                     Coder* into) noexcept nogil:
    """A refining AC scan: bit ``al`` of every coefficient already nonzero (correction bits),
    and the coefficients that become nonzero at this bit (libjpeg's ``encode_mcu_AC_refine``).
    Only the band's coefficients of ``|v| >> al`` ≥ 1 are visited (a bit mask per block); the
    zeros between them are runs."""
    cdef Coder local = into[0]  # in registers, not behind a pointer the output could alias
    cdef Coder* cd = &local
    cdef Py_ssize_t i, b, k, prev
    cdef int run, eob, eobrun = 0, nbe = 0, nbr, j, a
    cdef int64_t v
    cdef uint64_t bits, todo, band = _band(ss, se)
    cdef char be[1100]  # correction bits waiting behind the EOB run
    cdef char br[64]  # this block's correction bits not yet emitted
    for i in range(idx.shape[0]):
        b = idx[i]
        bits = quanta_magnitude_mask(&blocks[b, 0], (1 << al) - 1) & band
        eob = 0
        todo = bits
        while todo:  # the last coefficient that becomes nonzero at this bit
            k = quanta_lowest_bit(todo)
            todo &= todo - 1
            v = blocks[b, k]
            if ((v if v >= 0 else -v) >> al) == 1:
                eob = <int> k
        run = 0
        nbr = 0
        prev = ss
        while bits:
            k = quanta_lowest_bit(bits)
            bits &= bits - 1
            v = blocks[b, k]
            a = <int> ((v if v >= 0 else -v) >> al)
            run += <int> (k - prev)
            prev = k + 1
            while run > 15 and k <= eob:
                _eobrun(cd, &eobrun, be, &nbe)
                _symbol(cd, 2, 0xF0)
                run -= 16
                for j in range(nbr):
                    _bits(cd, <uint64_t> br[j], 1)
                nbr = 0
            if a > 1:
                br[nbr] = <char> (a & 1)
                nbr += 1
                continue
            _eobrun(cd, &eobrun, be, &nbe)
            _symbol(cd, 2, (run << 4) | 1)
            _bits(cd, 0 if v < 0 else 1, 1)
            for j in range(nbr):
                _bits(cd, <uint64_t> br[j], 1)
            nbr = 0
            run = 0
        run += <int> (se + 1 - prev)  # the zeros after the last coefficient to the band's end
        if run > 0 or nbr > 0:
            eobrun += 1
            for j in range(nbr):
                be[nbe + j] = br[j]
            nbe += nbr
            if eobrun == 0x7FFF or nbe > 1000 - 64 + 1:
                _eobrun(cd, &eobrun, be, &nbe)
    _eobrun(cd, &eobrun, be, &nbe)
    into[0] = local


cdef void _prog(const int16_t[:, ::1] coefs, const int8_t[::1] comp, const int64_t[::1] tbl,
                const Py_ssize_t[::1] idx, int ss, int se, int ah, int al, Coder* cd) noexcept nogil:
    if ss == 0:
        _dc_scan(coefs, comp, tbl, ah, al, cd)
    elif ah == 0:
        _ac_first(coefs, idx, ss, se, al, cd)
    else:
        _ac_refine(coefs, idx, ss, se, al, cd)
    if cd.freq == NULL:
        _finish(&cd.bw)


def count_progressive(const int16_t[:, ::1] coefs, const int8_t[::1] comp, const int64_t[::1] tbl,
                      const Py_ssize_t[::1] idx, int ss, int se, int ah, int al):
    """One progressive scan counted: ``(freq (4, 256), raw bits)``. DC scans (``ss == 0``) run
    over all of ``coefs`` in MCU order with each block's component ``comp`` and table ``tbl``;
    AC scans over the blocks ``idx`` of one component."""
    freq = np.zeros((4, 256), dtype=np.int64)
    cdef int64_t[:, ::1] f = freq
    cdef Coder cd
    _counting(&cd, &f[0, 0])
    with nogil:
        _prog(coefs, comp, tbl, idx, ss, se, ah, al, &cd)
    # first scans code values after their symbols; a refining scan's sign bits are raw bits
    return freq, int(cd.extra + (_value_bits(&f[0, 0], 4) if ah == 0 else 0))


def encode_progressive(const int16_t[:, ::1] coefs, const int8_t[::1] comp, const int64_t[::1] tbl,
                       const Py_ssize_t[::1] idx, int ss, int se, int ah, int al,
                       const uint32_t[:, ::1] codes, const uint8_t[:, ::1] sizes):
    """One progressive scan written (see :func:`count_progressive`): stuffed bytes."""
    cdef Py_ssize_t n = coefs.shape[0] if ss == 0 else idx.shape[0]
    buf = np.empty(n * MAX_BYTES_PER_BLOCK + 64, dtype=np.uint8)
    cdef uint8_t[::1] o = buf
    cdef Coder cd
    _writing(&cd, &codes[0, 0], &sizes[0, 0], &o[0])
    with nogil:
        _prog(coefs, comp, tbl, idx, ss, se, ah, al, &cd)
    return buf[:cd.bw.pos]


cdef inline void _halves(const float* d, Py_ssize_t cols, double* left, double* right) noexcept nogil:
    """One row of the horizontal triangle filter, both phases: ``¾·d[j] + ¼·d[j∓1]`` (edges
    replicated), in double as the upsampling error's expression computes it."""
    cdef Py_ssize_t j
    left[0] = 0.75 * d[0] + 0.25 * d[0]
    for j in range(1, cols):
        left[j] = 0.75 * d[j] + 0.25 * d[j - 1]
    for j in range(cols - 1):
        right[j] = 0.75 * d[j] + 0.25 * d[j + 1]
    right[cols - 1] = 0.75 * d[cols - 1] + 0.25 * d[cols - 1]


cdef inline void _fit_row(const uint8_t* p0, const uint8_t* p1, const double* up, const double* cur,
                          const double* down, Py_ssize_t stride, int v, float inv, const float* d,
                          float* nd, float* ups, Py_ssize_t cols) noexcept nogil:
    """One Jacobi step on a row of cells: ``nd = clip(d + mean residual)``, the residual of the
    cell's samples (rows ``p0``, ``p1``) against the upsampled row: ``cur`` horizontally filtered
    (left phase, then right ``stride`` further on), blended ¾ : ¼ with the row above (``up``)
    for the cell's top samples and below (``down``) for its bottom ones when ``v`` is 2.
    ``ups``: room for 4 × ``cols`` floats (the four upsampled samples of each cell, computed
    first in plain loops the compiler vectorizes)."""
    cdef Py_ssize_t j
    cdef float res, s
    cdef float* tl = ups
    cdef float* tr = ups + cols
    cdef float* bl = ups + 2 * cols
    cdef float* br = ups + 3 * cols
    if v == 1:
        for j in range(cols):
            tl[j] = <float> (1.0 * cur[j])
            tr[j] = <float> (1.0 * cur[stride + j])
        for j in range(cols):
            res = (<float> 0) + (p0[2 * j] - tl[j])
            res = res + (p0[2 * j + 1] - tr[j])
            s = d[j] + res * inv
            nd[j] = min(max(s, <float> 0.0), <float> 255.0)
        return
    for j in range(cols):
        tl[j] = <float> ((<float> 0.75) * cur[j] + (<float> 0.25) * up[j])
        tr[j] = <float> ((<float> 0.75) * cur[stride + j] + (<float> 0.25) * up[stride + j])
        bl[j] = <float> ((<float> 0.75) * cur[j] + (<float> 0.25) * down[j])
        br[j] = <float> ((<float> 0.75) * cur[stride + j] + (<float> 0.25) * down[stride + j])
    for j in range(cols):
        res = (<float> 0) + (p0[2 * j] - tl[j])
        res = res + (p0[2 * j + 1] - tr[j])
        res = res + (p1[2 * j] - bl[j])
        res = res + (p1[2 * j + 1] - br[j])
        s = d[j] + res * inv
        nd[j] = min(max(s, <float> 0.0), <float> 255.0)


def downsample_fit(const uint8_t[:, ::1] plane, int h, int v, int iterations, uint8_t[:, ::1] out) -> None:
    """Subsample ``plane`` by ``h×v`` (2×1 or 2×2) to samples whose triangle ("fancy")
    upsampling, as libjpeg decodes, fits the plane: box averages, then ``iterations`` Jacobi
    steps adding each cell's mean residual; rounded and clipped to 8 bits.

    Every step is a row's function of the previous step's row and its two neighbours, so the
    steps run as a wavefront down the plane: step ``k`` of row ``i`` as soon as step ``k − 1``
    of row ``i + 1`` exists. Each step keeps three rows (and their horizontal filters, both
    phases, in double as the upsampling error's expression computes them) — a few hundred
    kilobytes instead of two float planes, and every row still in cache when the next step
    reads it. The arithmetic of each sample is the plane-at-a-time Jacobi's, bit for bit."""
    cdef Py_ssize_t rows = out.shape[0], cols = out.shape[1], i, j, t
    cdef int lv
    if h != 2 or v not in (1, 2) or plane.shape[0] < rows * v or plane.shape[1] < cols * h:
        raise ValueError("2x1 or 2x2 cells of a plane at least rows*v by cols*h are needed")
    if rows == 0 or cols == 0:
        return
    if iterations < 0:
        raise ValueError("iterations must be >= 0")
    # per step: three rows of samples and their filters (left phase, then right, ``cols`` on)
    row_arr = np.empty((iterations + 1, 3, cols), dtype=np.float32)
    hal_arr = np.empty((iterations + 1, 3, 2 * cols), dtype=np.float64)
    ups_arr = np.empty(4 * cols, dtype=np.float32)
    cdef float[:, :, ::1] rv = row_arr
    cdef double[:, :, ::1] hv = hal_arr
    cdef float[::1] ups = ups_arr
    cdef const uint8_t* r0
    cdef const uint8_t* r1
    cdef float* d
    cdef float s
    cdef float inv = 1.0 / (h * v)
    with nogil:
        for t in range(rows + iterations):
            for lv in range(iterations + 1):
                i = t - lv
                if i < 0 or i >= rows:
                    continue
                d = &rv[lv, i % 3, 0]
                r0 = &plane[i * v, 0]
                r1 = &plane[i * v + v - 1, 0]
                if lv == 0:  # box averages, the cell's samples summed in raster order
                    for j in range(cols):
                        s = (<float> 0) + r0[2 * j]
                        s = s + r0[2 * j + 1]
                        if v == 2:
                            s = s + r1[2 * j]
                            s = s + r1[2 * j + 1]
                        d[j] = s * inv
                else:  # one step from the previous step's row and its neighbours (edges replicated)
                    _fit_row(r0, r1, &hv[lv - 1, (i - 1 if i > 0 else 0) % 3, 0], &hv[lv - 1, i % 3, 0],
                             &hv[lv - 1, (i + 1 if i + 1 < rows else rows - 1) % 3, 0], cols, v, inv,
                             &rv[lv - 1, i % 3, 0], d, &ups[0], cols)
                if lv < iterations:
                    _halves(d, cols, &hv[lv, i % 3, 0], &hv[lv, i % 3, cols])
                else:
                    for j in range(cols):
                        out[i, j] = <uint8_t> <int> (d[j] + <float> 0.5)
