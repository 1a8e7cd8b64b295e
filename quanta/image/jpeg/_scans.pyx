# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The progressive layout search's loops, compiled ahead of time (Cython → C).

Every candidate AC scan of a component is counted from its blocks' nonzero coefficients only
(:func:`nonzeros` lists them once), and sized with its own optimal Huffman table
(:func:`huffman_table`, T.81 Annex K.2 by a binary heap) — the symbol counts and raw bits of
``_kernels.count_progressive``'s AC scans, exactly, without walking the zeros.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, int16_t, int32_t
from libc.stdlib cimport free, malloc

import numpy as np


cdef extern from *:
    """
    static inline int quanta_scan_bit_length(unsigned long long a) {
        return a ? 64 - __builtin_clzll(a) : 0;
    }
    """
    int quanta_scan_bit_length(unsigned long long a) nogil


# --- optimal Huffman tables (T.81 K.2, libjpeg's jpeg_gen_optimal_table) --------------------

cdef inline bint _before(const int64_t* f, int a, int b) noexcept nogil:
    """Heap order: smaller count first; equal counts, larger symbol first (K.2's ties)."""
    return f[a] < f[b] or (f[a] == f[b] and a > b)


cdef inline void _sift_down(int* heap, int n, int i, const int64_t* f) noexcept nogil:
    cdef int c, t
    while True:
        c = 2 * i + 1
        if c >= n:
            return
        if c + 1 < n and _before(f, heap[c + 1], heap[c]):
            c += 1
        if not _before(f, heap[c], heap[i]):
            return
        t = heap[c]
        heap[c] = heap[i]
        heap[i] = t
        i = c


cdef inline void _sift_up(int* heap, int i, const int64_t* f) noexcept nogil:
    cdef int p, t
    while i > 0:
        p = (i - 1) // 2
        if not _before(f, heap[i], heap[p]):
            return
        t = heap[p]
        heap[p] = heap[i]
        heap[i] = t
        i = p


cdef int _table(const int64_t* freq, int* bits, int* vals) noexcept nogil:
    """The optimal table of 256 symbol counts: ``bits[1..16]`` codes per length and ``vals``
    (symbols by length, then value); returns how many symbols, or −1 on a length overflow.

    Figure K.1 merges the two least frequent nodes (ties: the larger symbol), a reserved
    symbol 256 of count 1 keeping any code from being all ones; Figure K.3 limits the lengths
    to 16 bits. The heap pops exactly the pair K.1's linear scans find."""
    cdef int64_t f[257]
    cdef int codesize[257]
    cdef int others[257]
    cdef int heap[257]
    cdef int n = 0, i, j, c1, c2, top, k, count = 0
    cdef int64_t total = 0
    cdef int hist[33]
    cdef int first[33]
    for i in range(256):
        f[i] = freq[i]
        total += freq[i]
    if total == 0:
        f[0] = 1  # a table must hold at least one symbol
    f[256] = 1
    for i in range(257):
        codesize[i] = 0
        others[i] = -1
        if f[i] > 0:
            heap[n] = i
            n += 1
            _sift_up(heap, n - 1, f)
    while n >= 2:
        c1 = heap[0]
        n -= 1
        heap[0] = heap[n]
        _sift_down(heap, n, 0, f)
        c2 = heap[0]
        n -= 1
        heap[0] = heap[n]
        _sift_down(heap, n, 0, f)
        f[c1] += f[c2]
        f[c2] = 0
        top = c1
        codesize[c1] += 1
        while others[c1] >= 0:
            c1 = others[c1]
            codesize[c1] += 1
        others[c1] = c2
        codesize[c2] += 1
        while others[c2] >= 0:
            c2 = others[c2]
            codesize[c2] += 1
        heap[n] = top
        n += 1
        _sift_up(heap, n - 1, f)
    for i in range(33):
        hist[i] = 0
    for i in range(257):
        if codesize[i] > 32:
            return -1
        if codesize[i] > 0:
            hist[codesize[i]] += 1
    i = 32
    while i > 16:  # Figure K.3
        while hist[i] > 0:
            j = i - 2
            while hist[j] == 0:
                j -= 1
            hist[i] -= 2
            hist[i - 1] += 1
            hist[j + 1] += 2
            hist[j] -= 1
        i -= 1
    while hist[i] == 0:
        i -= 1
    hist[i] -= 1  # the reserved symbol's code
    for i in range(1, 17):
        bits[i] = hist[i]
    # symbols by their unlimited length, then value (a counting sort): the order K.3's lengths go to
    for k in range(33):
        first[k] = 0
    for i in range(256):
        first[codesize[i]] += 1
    count = 0
    for k in range(1, 33):
        j = first[k]
        first[k] = count
        count += j
    for i in range(256):
        if codesize[i] > 0:
            vals[first[codesize[i]]] = i
            first[codesize[i]] += 1
    return count


cdef int64_t _table_bits(const int64_t* freq) noexcept nogil:
    """Bits of the symbols ``freq`` coded with their own optimal table, plus 8 per symbol the
    table's DHT lists; −1 on an overflow."""
    cdef int bits[17]
    cdef int vals[256]
    cdef int n = _table(freq, bits, vals), length, k = 0, c
    cdef int64_t total = 8 * n
    if n < 0:
        return -1
    for length in range(1, 17):
        for c in range(bits[length]):
            total += freq[vals[k]] * length
            k += 1
    return total


def huffman_table(const int64_t[::1] freq):
    """The optimal table ``(BITS, HUFFVAL)`` of 256 symbol counts (lengths ≤ 16); None when a
    code length overflows 32 bits before the limit."""
    cdef int bits[17]
    cdef int vals[256]
    cdef int n
    if freq.shape[0] != 256:
        raise ValueError("256 symbol counts are needed")
    with nogil:
        n = _table(&freq[0], bits, vals)
    if n < 0:
        return None
    return [bits[i] for i in range(1, 17)], [vals[i] for i in range(n)]


# --- the candidate scans, from each block's nonzero AC coefficients --------------------------

def last_nonzero(const int16_t[:, ::1] coefs):
    """Each block's last nonzero AC position in zigzag order (0 when it has none), int16."""
    out = np.empty(coefs.shape[0], dtype=np.int16)
    cdef int16_t[::1] o = out
    cdef Py_ssize_t b, k
    with nogil:
        for b in range(coefs.shape[0]):
            k = 63
            while k > 0 and coefs[b, k] == 0:
                k -= 1
            o[b] = <int16_t> k
    return out


def nonzeros(const int16_t[:, ::1] coefs, const Py_ssize_t[::1] idx, const int16_t[::1] last):
    """Blocks ``idx`` of the zigzag ``coefs`` as lists of their nonzero AC coefficients:
    ``(start, pos, mag)`` — block ``i``'s entries are ``start[i]:start[i + 1]``, positions
    (1..63, increasing) and magnitudes ``|v|``. ``last``: each block's last nonzero AC position
    (:func:`last_nonzero`; nothing after it is read)."""
    cdef Py_ssize_t n = idx.shape[0], i, k, b, m = 0, room = 0
    if last.shape[0] != coefs.shape[0]:
        raise ValueError("one last position per block is needed")
    for i in range(n):
        if not 0 <= idx[i] < coefs.shape[0] or not 0 <= last[idx[i]] <= 63:
            raise ValueError("block indices within coefs and last positions 0..63 are needed")
        room += last[idx[i]]
    start_arr = np.empty(n + 1, dtype=np.int64)
    pos_arr = np.empty(max(room, 1), dtype=np.uint8)
    mag_arr = np.empty(max(room, 1), dtype=np.uint16)
    cdef int64_t[::1] start = start_arr
    cdef uint8_t[::1] pos = pos_arr
    cdef uint16_t[::1] mag = mag_arr
    cdef int v
    with nogil:
        for i in range(n):
            start[i] = m
            b = idx[i]
            for k in range(1, last[b] + 1):
                v = coefs[b, k]
                if v != 0:
                    pos[m] = <uint8_t> k
                    mag[m] = <uint16_t> (v if v > 0 else -v)
                    m += 1
        start[n] = m
    return start_arr, pos_arr[:max(m, 1)], mag_arr[:max(m, 1)]


cdef struct Count:
    int64_t* freq  # 256 AC symbol counts
    int64_t extra  # raw bits: value bits, EOBRUN lengths, correction bits
    int eobrun
    int pending  # correction bits waiting behind the EOB run


cdef inline void _flush(Count* c) noexcept nogil:
    """A pending end-of-band run and the correction bits behind it (``_kernels._eobrun``)."""
    cdef int n
    if c.eobrun > 0:
        n = quanta_scan_bit_length(<unsigned long long> c.eobrun) - 1
        c.freq[n << 4] += 1
        c.extra += n + c.pending
        c.eobrun = 0
        c.pending = 0


cdef void _firsts(const int64_t* start, const uint8_t* pos, const uint16_t* mag, Py_ssize_t n,
                  int bands, const int* ss, const int* se, int al, Count* c) noexcept nogil:
    """First AC scans of several bands (``ss[k]..se[k]``) at one point transform ``al``, in one
    pass over the entries: each counted into ``c[k]`` as ``_kernels._ac_first`` writes it (band
    ``ss..se`` of ``|v| >> al``; empty band ends joined into EOB runs)."""
    cdef Py_ssize_t i, e
    cdef int p, run, s, m, k
    cdef int prev[16]
    for i in range(n):
        for k in range(bands):
            prev[k] = ss[k]
        for e in range(start[i], start[i + 1]):
            m = mag[e] >> al
            if m == 0:
                continue
            p = pos[e]
            s = quanta_scan_bit_length(<unsigned long long> m)
            for k in range(bands):
                if p < ss[k] or p > se[k]:
                    continue
                run = p - prev[k]
                _flush(&c[k])
                while run > 15:
                    c[k].freq[0xF0] += 1
                    run -= 16
                c[k].freq[(run << 4) | s] += 1
                c[k].extra += s
                prev[k] = p + 1
        for k in range(bands):
            if prev[k] <= se[k]:  # zeros to the band's end: the block joins the EOB run
                c[k].eobrun += 1
                if c[k].eobrun == 0x7FFF:
                    _flush(&c[k])
    for k in range(bands):
        _flush(&c[k])


cdef void _refine(const int64_t* start, const uint8_t* pos, const uint16_t* mag, Py_ssize_t n,
                  int ss, int se, int al, Count* c) noexcept nogil:
    """A refining AC scan (bit ``al``), counted as ``_kernels._ac_refine``: coefficients of
    ``|v| >> al`` above 1 give correction bits, those equal to 1 become nonzero here."""
    cdef Py_ssize_t i, e, lo, hi
    cdef int p, prev, run, eob, nbr, a
    for i in range(n):
        lo = start[i]
        while lo < start[i + 1] and pos[lo] < ss:
            lo += 1
        hi = lo
        eob = 0
        while hi < start[i + 1] and pos[hi] <= se:
            if (mag[hi] >> al) == 1:
                eob = pos[hi]
            hi += 1
        run = 0
        nbr = 0
        prev = ss
        for e in range(lo, hi):
            a = mag[e] >> al
            if a == 0:
                continue
            p = pos[e]
            run += p - prev
            prev = p + 1
            while run > 15 and p <= eob:
                _flush(c)
                c.freq[0xF0] += 1
                run -= 16
                c.extra += nbr
                nbr = 0
            if a > 1:
                nbr += 1
                continue
            _flush(c)
            c.freq[(run << 4) | 1] += 1
            c.extra += 1 + nbr  # the sign, then the buffered correction bits
            nbr = 0
            run = 0
        run += se + 1 - prev
        if run > 0 or nbr > 0:
            c.eobrun += 1
            c.pending += nbr
            if c.eobrun == 0x7FFF or c.pending > 1000 - 64 + 1:
                _flush(c)
    _flush(c)


cdef struct Lists:
    int64_t* start
    uint8_t* pos
    uint16_t* mag


cdef int _keep(const int64_t* start, const uint8_t* pos, const uint16_t* mag, Py_ssize_t n, int al,
               Lists* out) noexcept nogil:
    """The entries whose ``|v| >> al`` is nonzero (what a scan at point transform ``al`` sees),
    in ``out`` (malloc'd); −1 when memory runs out."""
    cdef Py_ssize_t i, e, m = 0
    out.start = <int64_t*> malloc((n + 1) * sizeof(int64_t))
    out.pos = <uint8_t*> malloc(max(start[n], 1) * sizeof(uint8_t))
    out.mag = <uint16_t*> malloc(max(start[n], 1) * sizeof(uint16_t))
    if out.start == NULL or out.pos == NULL or out.mag == NULL:
        return -1
    for i in range(n):
        out.start[i] = m
        for e in range(start[i], start[i + 1]):
            if mag[e] >> al:
                out.pos[m] = pos[e]
                out.mag[m] = mag[e]
                m += 1
    out.start[n] = m
    return 0


def scan_bits(const int64_t[::1] start, const uint8_t[::1] pos, const uint16_t[::1] mag,
              const int32_t[:, ::1] scans, int64_t[:, ::1] freq, int64_t header_bits):
    """Each AC scan ``(Ss, Se, Ah, Al)`` of ``scans`` over the blocks :func:`nonzeros` listed:
    its symbol counts into ``freq[k]`` (256) and its size in bits — Huffman codes with its own
    optimal table, raw bits, 8 bits per table symbol and ``header_bits`` (before stuffing).
    Scans at the same point transform share one list of the entries they see."""
    cdef Py_ssize_t k, s, j, n = start.shape[0] - 1
    cdef Lists lists[14]
    cdef int al, nb, failed = 0
    cdef int member[16]
    cdef int lo[16]
    cdef int hi[16]
    cdef Count group[16]
    cdef Count* counts
    if freq.shape[0] != scans.shape[0] or freq.shape[1] != 256 or scans.shape[1] != 4:
        raise ValueError("one row of 256 counts per (Ss, Se, Ah, Al) scan is needed")
    if n < 0 or (n > 0 and start[n] > pos.shape[0]) or pos.shape[0] != mag.shape[0]:
        raise ValueError("start, pos and mag must come from nonzeros()")
    for k in range(scans.shape[0]):
        if not (1 <= scans[k, 0] <= scans[k, 1] <= 63 and 0 <= scans[k, 3] < 14):
            raise ValueError("AC scans need 1 <= Ss <= Se <= 63 and 0 <= Al < 14")
    out = np.empty(scans.shape[0], dtype=np.int64)
    cdef int64_t[::1] o = out
    for al in range(14):
        lists[al].start = NULL
        lists[al].pos = NULL
        lists[al].mag = NULL
    counts = <Count*> malloc(max(scans.shape[0], 1) * sizeof(Count))
    if counts == NULL:
        raise MemoryError()
    with nogil:
        for k in range(scans.shape[0]):
            al = scans[k, 3]
            if lists[al].start == NULL and _keep(&start[0], &pos[0], &mag[0], n, al, &lists[al]) < 0:
                failed = 1
                break
            for s in range(256):
                freq[k, s] = 0
            counts[k].freq = &freq[k, 0]
            counts[k].extra = 0
            counts[k].eobrun = 0
            counts[k].pending = 0
            if scans[k, 2] != 0:
                _refine(lists[al].start, lists[al].pos, lists[al].mag, n, scans[k, 0], scans[k, 1], al,
                        &counts[k])
        for al in range(14 if not failed else 0):  # the first scans of each point transform together
            nb = 0
            for k in range(scans.shape[0]):
                if scans[k, 3] == al and scans[k, 2] == 0:
                    member[nb] = <int> k
                    lo[nb] = scans[k, 0]
                    hi[nb] = scans[k, 1]
                    group[nb] = counts[k]
                    nb += 1
                if nb == 16 or (nb > 0 and k == scans.shape[0] - 1):
                    _firsts(lists[al].start, lists[al].pos, lists[al].mag, n, nb, lo, hi, al, group)
                    for j in range(nb):
                        counts[member[j]] = group[j]
                    nb = 0
        for k in range(scans.shape[0] if not failed else 0):
            o[k] = _table_bits(&freq[k, 0])
            if o[k] >= 0:
                o[k] += counts[k].extra + header_bits
        for al in range(14):
            free(lists[al].start)
            free(lists[al].pos)
            free(lists[al].mag)
        free(counts)
    if failed:
        raise MemoryError()
    return out
