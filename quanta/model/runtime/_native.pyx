# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled decode kernels over GGML block formats (``blocks.h``: dot products against
activations quantized to 8 bits per 32 values; ``engine.h``: a Llama-family decoder reading its
weights in place; ``pool.h``: the thread pool). :mod:`quanta.model.runtime.native` is the Python
side; :mod:`quanta.model.runtime._dispatch` picks this portable build or the AVX2 one."""

import numpy as np

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uintptr_t
from libc.string cimport memcpy


cdef extern from "blocks.h" nogil:
    ctypedef struct a8_t:
        float d
    int block_bytes(int t)
    int block_size(int t)
    int wide(int t)
    void dequantize_row(int t, const uint8_t *row, float *out, int64_t n)
    float f16_to_f32(uint16_t h)
    int set_grid(int t, const uint8_t *values, int64_t n, int dim)
    int T_Q4_0, T_Q5_0, T_Q8_0, T_QG4, T_QG8, T_IQ4_NL


cdef extern from "engine.h" nogil:
    ctypedef struct mat_t:
        int type
        const uint8_t *data
        int64_t rows, cols, row_bytes
        int w16
    ctypedef struct layer_t:
        mat_t m[7]
        const float *v[7]
    ctypedef struct model_t:
        mat_t embd, output
        const float *out_norm
        layer_t *layers
        int pos, max_len, n_vocab, n_layer
    model_t *model_new(const int *ints, const float *floats, const float *inv_freq)
    void model_free(model_t *md)
    int model_forward(model_t *md, const int32_t *ids, int T, int all, float *out)
    int matmul_rows(int type, const uint8_t *data, int64_t rows, int64_t cols, int64_t row_bytes,
                    const float *x, int T, float *y, int w16)
    int pool_start(int n)


cdef extern from *:
    """
    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    #include <cpuid.h>
    static int quanta_cpu_avxvnni(void) {  /* cpuid leaf 7.1, EAX bit 4 */
        unsigned a = 0, b = 0, c = 0, d = 0;
        return __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1);
    }
    /* 0: none of these, 1: AVX2 + FMA, 2: and AVX-VNNI, 3: AVX2 + FMA + AVX-512 (F, BW, VL, VNNI) */
    static int quanta_cpu_level(void) {
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) return 3;
        return quanta_cpu_avxvnni() ? 2 : 1;
    }
    #else
    static int quanta_cpu_avxvnni(void) { return 0; }
    static int quanta_cpu_level(void) { return 0; }
    #endif
    #if defined(__AVX2__)
    #define QUANTA_AVX2 1
    #else
    #define QUANTA_AVX2 0
    #endif
    #if defined(__AVXVNNI__)
    #define QUANTA_VNNI 1
    #else
    #define QUANTA_VNNI 0
    #endif
    """
    int QUANTA_AVX2
    int QUANTA_VNNI
    int quanta_cpu_level()
    int quanta_cpu_avxvnni()


def cpu_has_avxvnni():
    """Whether this processor has AVX-VNNI (the 256-bit 8-bit products ``_native_vnni`` uses)."""
    return bool(quanta_cpu_avxvnni()) and quanta_cpu_level() >= 1


def cpu_level():
    """What this processor runs: 0 (none of these), 1 (AVX2 and FMA), 2 (and AVX-VNNI), 3 (AVX2, FMA
    and AVX-512 with BW, VL and VNNI)."""
    return quanta_cpu_level()

AVX2 = bool(QUANTA_AVX2)
VNNI = bool(QUANTA_VNNI)


def threads(int n):
    """Run the kernels' products on ``n`` threads from now on (:func:`matmul`'s, and every model's
    until one asks for another count; the pool is shared); returns the count it runs with."""
    return pool_start(n)


def sizes(int ggml_type):
    """(weights per block, bytes per block) of a GGML type; (0, 0) when unsupported."""
    return block_size(ggml_type), block_bytes(ggml_type)


def wide_activations(int ggml_type):
    """Whether products with this type take 16-bit activations (else 8-bit; ``blocks.h``'s wide())."""
    return bool(wide(ggml_type))


def load_grid(int ggml_type, const uint8_t[:, ::1] values):
    """Load a lattice type's grid (``points × dim`` magnitudes, the gguf package's table): until
    then the type reads as unsupported (:func:`sizes` gives (0, 0)). Raises ValueError for
    another type or another shape."""
    if set_grid(ggml_type, &values[0, 0] if values.size else NULL, values.shape[0], values.shape[1]):
        raise ValueError(f"GGML type {ggml_type}: not a lattice type, or its grid is not "
                         f"{values.shape[0]} × {values.shape[1]}")


cdef _readable(int ggml_type, int64_t n):
    if not block_size(ggml_type) or n % block_size(ggml_type):
        raise ValueError(f"GGML type {ggml_type}: not read by these kernels, or {n} weights "
                         "not a whole number of its blocks")


def dequantize(int ggml_type, const uint8_t[:, ::1] rows, int64_t n):
    """``rows`` (raw bytes, one stored row each) as float32 ``(len(rows), n)``."""
    _readable(ggml_type, n)
    out = np.empty((rows.shape[0], n), dtype=np.float32)
    cdef float[:, ::1] o = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(rows.shape[0]):
            dequantize_row(ggml_type, &rows[i, 0], &o[i, 0], n)
    return out


cdef inline int _code(const uint8_t *packed, int64_t i, int bits) noexcept nogil:
    """Code ``i`` of a stream packed by ``quanta.core.packing.pack`` (code i at bit i·bits, least
    significant first)."""
    cdef int64_t bit = i * bits
    cdef unsigned v = packed[bit >> 3]
    if (bit & 7) + bits > 8:
        v |= (<unsigned>packed[(bit >> 3) + 1]) << 8
    return (v >> (bit & 7)) & ((1u << bits) - 1)


def grid_blocks(const uint8_t[::1] packed, int bits, int64_t rows, int64_t width, int64_t cols,
                const uint16_t[:, ::1] scales, zeros, int group, int zero, bint nl=False):
    """A weight of a quanta folder (its packed codes, ``rows × width``; float16 scales per group
    of ``group`` inputs, ``rows × groups``, as raw bits; ``zeros`` the same for an asymmetric grid,
    None for a symmetric one, whose zero point is ``zero``) as blocks the kernels read: its first
    ``cols`` inputs (``cols`` a multiple of 32, every group a multiple of 32 or the whole row).

    Exact (weight = d·q + m gives the folder's ``scale · (code − zero)`` to the bit: d = scale,
    and m = −scale·zero is exact in float32): a symmetric grid of up to 4 bits as Q4_0, of 5 bits
    in groups as Q5_0, wider (or 5 bits per row) as Q8_0; an asymmetric one of up to 4 bits as
    T_QG4, wider as T_QG8. ``nl``: 4-bit codes into IQ4_NL's levels in groups of 32 (weight =
    scale · level[code]), as IQ4_NL blocks. Returns (type, uint8 ``(rows, bytes per row)``)."""
    cdef bint sym = zeros is None
    cdef int t = T_IQ4_NL if nl else \
        (T_Q4_0 if bits <= 4 else T_Q5_0 if bits == 5 and group > 0 else T_Q8_0) if sym else \
        (T_QG4 if bits <= 4 else T_QG8)
    if nl and not (sym and bits == 4 and (group == 32 or (group <= 0 and cols == 32))):
        raise ValueError("IQ4_NL blocks hold 4-bit codes in groups of 32")  # (one group: a row of 32)
    cdef int bb = block_bytes(t), head = 2 if sym else 6
    cdef int64_t nc = cols // 32
    out = np.empty((rows, nc * bb), dtype=np.uint8)
    cdef uint8_t[:, ::1] o = out
    cdef const uint16_t[:, ::1] z = scales if sym else zeros
    cdef int64_t r, c, g, at
    cdef int i, q0, q1, shift = 8 - zero if t == T_Q4_0 else 16 - zero if t == T_Q5_0 else \
        -zero if t == T_Q8_0 else 0
    cdef uint32_t qh
    cdef float m
    cdef uint8_t *b
    with nogil:
        for r in range(rows):
            for c in range(nc):
                g = 0 if group <= 0 else (c * 32) // group
                b = &o[r, c * bb]
                memcpy(b, &scales[r, g], 2)
                if not sym:
                    m = -(f16_to_f32(scales[r, g]) * f16_to_f32(z[r, g]))
                    memcpy(b + 2, &m, 4)
                at = r * width + c * 32
                if t == T_Q4_0 or t == T_QG4 or t == T_IQ4_NL:
                    for i in range(16):
                        q0 = _code(&packed[0], at + i, bits) + shift
                        q1 = _code(&packed[0], at + i + 16, bits) + shift
                        b[head + i] = <uint8_t>(q0 | (q1 << 4))
                elif t == T_Q5_0:  # the low nibbles as Q4_0's, each code's fifth bit in qh
                    qh = 0
                    for i in range(16):
                        q0 = _code(&packed[0], at + i, bits) + shift
                        q1 = _code(&packed[0], at + i + 16, bits) + shift
                        b[6 + i] = <uint8_t>((q0 & 15) | ((q1 & 15) << 4))
                        qh |= (<uint32_t>(q0 >> 4) << i) | (<uint32_t>(q1 >> 4) << (i + 16))
                    memcpy(b + 2, &qh, 4)
                elif sym:
                    for i in range(32):
                        (<int8_t *>(b + head))[i] = <int8_t>(_code(&packed[0], at + i, bits) + shift)
                else:
                    for i in range(32):
                        b[head + i] = <uint8_t>_code(&packed[0], at + i, bits)
    return t, out


def matmul(int ggml_type, const uint8_t[:, ::1] weight, int64_t cols, const float[:, ::1] x, bint wide=False):
    """``x (T, cols) · W^T`` for a weight of ``weight.shape[0]`` rows stored as ``ggml_type``:
    ``(T, rows)`` float32. ``wide``: 16-bit activations whatever the format (the wide() formats
    always take them)."""
    if x.shape[1] != cols or cols % 32:
        raise ValueError("x must have cols columns, a multiple of 32")
    _readable(ggml_type, cols)
    out = np.empty((x.shape[0], weight.shape[0]), dtype=np.float32)
    cdef float[:, ::1] o = out
    cdef int rc
    with nogil:
        rc = matmul_rows(ggml_type, &weight[0, 0], weight.shape[0], cols, weight.shape[1], &x[0, 0],
                         <int>x.shape[0], &o[0, 0], wide)
    if rc:
        raise MemoryError("matmul: out of memory")
    return out


cdef class Model:
    """A Llama-family decoder over stored weights (see ``engine.h``). The arrays handed to it are
    kept referenced for its lifetime: it reads them in place."""

    cdef model_t *md
    cdef object keep

    def __cinit__(self, ints, floats, inv_freq):
        cdef int ci[11]
        cdef float cf[3]
        cdef float[::1] f = np.ascontiguousarray(inv_freq, dtype=np.float32)
        for i in range(11):
            ci[i] = int(ints[i])
        for i in range(3):
            cf[i] = float(floats[i])
        self.md = model_new(ci, cf, &f[0])
        if self.md == NULL:
            raise MemoryError("the decoder's cache does not fit in memory")
        self.keep = [inv_freq]

    def __dealloc__(self):
        model_free(self.md)

    cdef mat_t _mat(self, int ggml_type, arr, int64_t cols, bint w16):
        cdef const uint8_t[:, ::1] v = arr
        cdef mat_t m
        m.type = ggml_type
        m.w16 = w16 or wide(ggml_type)
        m.data = &v[0, 0]
        m.rows = v.shape[0]
        m.cols = cols
        m.row_bytes = v.shape[1]
        self.keep.append(arr)
        return m

    def set_matrix(self, int layer, int which, int ggml_type, arr, int64_t cols, bint wide=False):
        """Matrix ``which`` (0–6: q, k, v, o, gate, up, down) of ``layer``; layer −1: the token
        embedding, −2: the output head. ``arr``: uint8 ``(rows, bytes per row)``; ``wide``: its
        products take 16-bit activations whatever its format."""
        cdef mat_t m = self._mat(ggml_type, arr, cols, wide)
        if layer == -1:
            self.md.embd = m
        elif layer == -2:
            self.md.output = m
        else:
            self.md.layers[layer].m[which] = m

    def set_vector(self, int layer, int which, arr):
        """Vector ``which`` (0–6: attention norm, MLP norm, q norm, k norm, q/k/v biases) of
        ``layer`` (float32); layer −2: the final norm."""
        cdef const float[::1] v = arr
        self.keep.append(arr)
        if layer == -2:
            self.md.out_norm = &v[0]
        else:
            self.md.layers[layer].v[which] = &v[0]

    @property
    def pos(self):
        return self.md.pos

    @property
    def max_len(self):
        return self.md.max_len

    def reset(self):
        """Start a new sequence (the cache is overwritten from position 0)."""
        self.md.pos = 0

    def forward(self, ids, bint all_logits=False):
        """Run ``ids`` after what the cache holds: float32 logits of the last token ``(vocab,)``,
        or of every token ``(len(ids), vocab)``."""
        cdef int32_t[::1] a = np.ascontiguousarray(ids, dtype=np.int32)
        cdef int T = a.shape[0], rc
        if T < 1:
            raise ValueError("no tokens")
        out = np.empty((T if all_logits else 1, self.md.n_vocab), dtype=np.float32)
        cdef float[:, ::1] o = out
        with nogil:
            rc = model_forward(self.md, &a[0], T, all_logits, &o[0, 0])
        if rc == -2:
            raise ValueError("a token id outside the vocabulary")
        if rc:
            raise ValueError(f"the cache holds {self.md.max_len} tokens; {self.md.pos + T} needed")
        return out if all_logits else out[0]
