# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The progressive layout search's loops, compiled ahead of time (Cython → C).

Every candidate AC scan of a component is counted from its blocks' nonzero coefficients only
(:func:`nonzeros` lists them once), and sized with its own optimal Huffman table
(:func:`huffman_table`, T.81 Annex K.2 by a binary heap) — the symbol counts and raw bits of
``_kernels.count_progressive``'s AC scans, exactly, without walking the zeros.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, int16_t, int32_t
from libc.stdlib cimport calloc, free, malloc

import numpy as np


cdef extern from *:
    int __builtin_popcountll(unsigned long long a) nogil


cdef extern from "_bits.h":
    int quanta_bit_length(unsigned long long a) nogil
    int quanta_lowest_bit(unsigned long long a) nogil
    unsigned long long quanta_magnitude_mask(const int16_t* c, int t) nogil


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

def nonzeros(const int16_t[:, ::1] coefs, const Py_ssize_t[::1] idx):
    """Blocks ``idx`` of the zigzag ``coefs`` as lists of their nonzero AC coefficients:
    ``(start, pos, mag)`` — block ``i``'s entries are ``start[i]:start[i + 1]``, positions
    (1..63, increasing) and magnitudes ``|v|``. Each block's nonzeros are found by one
    vector compare (a 64-bit mask), counted first, then walked bit by bit."""
    cdef Py_ssize_t n = idx.shape[0], i, k, b, m = 0, room = 0
    cdef unsigned long long bits
    cdef int v
    for i in range(n):
        if not 0 <= idx[i] < coefs.shape[0]:
            raise ValueError("block indices within coefs are needed")
    if coefs.shape[1] != 64:
        raise ValueError("blocks of 64 coefficients are needed")
    with nogil:
        for i in range(n):
            room += __builtin_popcountll(quanta_magnitude_mask(&coefs[idx[i], 0], 0) & ~1ULL)
    start_arr = np.empty(n + 1, dtype=np.int64)
    pos_arr = np.empty(max(room, 1), dtype=np.uint8)
    mag_arr = np.empty(max(room, 1), dtype=np.uint16)
    cdef int64_t[::1] start = start_arr
    cdef uint8_t[::1] pos = pos_arr
    cdef uint16_t[::1] mag = mag_arr
    with nogil:
        for i in range(n):
            start[i] = m
            b = idx[i]
            bits = quanta_magnitude_mask(&coefs[b, 0], 0) & ~1ULL
            while bits:
                k = quanta_lowest_bit(bits)
                bits &= bits - 1
                v = coefs[b, k]
                pos[m] = <uint8_t> k
                mag[m] = <uint16_t> (v if v > 0 else -v)
                m += 1
        start[n] = m
    return start_arr, pos_arr, mag_arr


cdef struct Count:
    int64_t* freq  # 256 AC symbol counts
    int64_t extra  # raw bits: value bits, EOBRUN lengths, correction bits
    int eobrun
    int pending  # correction bits waiting behind the EOB run


cdef inline void _flush(Count* c) noexcept nogil:
    """A pending end-of-band run and the correction bits behind it (``_kernels._eobrun``)."""
    cdef int n
    if c.eobrun > 0:
        n = quanta_bit_length(<unsigned long long> c.eobrun) - 1
        c.freq[n << 4] += 1
        c.extra += n + c.pending
        c.eobrun = 0
        c.pending = 0


cdef int _firsts(const int64_t* start, const uint8_t* pos, const uint16_t* mag, Py_ssize_t n,
                 int bands, const int* ss, const int* se, int al, Count* c) noexcept nogil:
    """First AC scans of several bands (``ss[k]..se[k]``) at one point transform ``al``, in one
    pass over the entries: each counted into ``c[k]`` as ``_kernels._ac_first`` writes it (band
    ``ss..se`` of ``|v| >> al``; empty band ends joined into EOB runs); −1 when memory runs out.

    A nonzero at ``p`` after one at ``q`` (the block's previous entry) is coded alike in every
    band that already held ``q`` — the run ``p − q − 1`` — so it is counted once, in a table
    shared by those bands, and added to each of them at the end. The bands' edges cut 1..63 into
    segments of equal membership; which bands held ``q`` and hold ``p`` depends only on the
    segments of ``q`` and ``p``, so one table per segment pair. Only a band's first nonzero in
    a block (its run from the band's start, and the EOB run it ends) is counted band by band.
    The value bits — ``s`` for a symbol of size ``s`` — are summed from the counts at the end (a
    first scan has no correction bits)."""
    cdef Py_ssize_t i, e
    cdef int p, q, run, s, m, k, g, sym, r, segs = 0, t
    cdef int eobrun[16]
    cdef int64_t eobbits[16]
    cdef int last_seg[16]  # each band's last segment
    cdef int seg[64]  # each position's segment (0: none, before position 1)
    cdef int seg_end[64]  # each segment's last position
    cdef int seen[65]  # per block: the last nonzero's position in each segment (0: none yet)
    cdef unsigned int member[64]  # the bands a position is in (a bit per band)
    cdef unsigned int started[64]  # the bands that start at or before a position
    cdef unsigned int mb, new
    cdef int64_t* own
    cdef int64_t* shared
    cdef int64_t* f
    for p in range(64):
        member[p] = 0
        started[p] = 0
        for k in range(bands):
            if ss[k] <= p <= se[k]:
                member[p] |= 1u << k
            if ss[k] <= p:
                started[p] |= 1u << k
    seg[0] = 0
    for p in range(1, 64):  # a new segment wherever the membership changes
        if p == 1 or member[p] != member[p - 1]:
            segs += 1
        seg[p] = segs
        seg_end[segs] = p
    for k in range(bands):
        eobrun[k] = 0
        eobbits[k] = 0
        last_seg[k] = seg[se[k]]
    own = <int64_t*> calloc(bands * 256, sizeof(int64_t))
    shared = <int64_t*> calloc((segs + 1) * (segs + 1) * 256, sizeof(int64_t))
    if own == NULL or shared == NULL:
        free(own)
        free(shared)
        return -1
    for i in range(n):
        q = 0
        for g in range(1, segs + 1):
            seen[g] = 0
        for e in range(start[i], start[i + 1]):
            m = mag[e] >> al
            if m == 0:  # not in these scans (the lists at al > 0 hold none such)
                continue
            p = pos[e]
            s = quanta_bit_length(<unsigned long long> m)
            mb = member[p]
            if mb & started[q]:  # the bands that held q: one count for them all
                f = shared + (seg[q] * (segs + 1) + seg[p]) * 256
                run = p - q - 1
                while run > 15:
                    f[0xF0] += 1
                    run -= 16
                f[(run << 4) | s] += 1
            new = mb & ~started[q]
            while new:  # the bands whose first nonzero in this block this is
                k = quanta_lowest_bit(new)
                new &= new - 1
                f = own + k * 256
                if eobrun[k] > 0:  # the band's pending EOB run ends here
                    r = quanta_bit_length(<unsigned long long> eobrun[k]) - 1
                    f[r << 4] += 1
                    eobbits[k] += r
                    eobrun[k] = 0
                run = p - ss[k]
                while run > 15:
                    f[0xF0] += 1
                    run -= 16
                f[(run << 4) | s] += 1
            seen[seg[p]] = p
            q = p
        for k in range(bands):
            if seen[last_seg[k]] != se[k]:  # zeros to the band's end: the block joins the EOB run
                eobrun[k] += 1
                if eobrun[k] == 0x7FFF:
                    own[k * 256 + (14 << 4)] += 1
                    eobbits[k] += 14
                    eobrun[k] = 0
    for g in range(1, segs + 1):  # the shared tables to their bands
        for t in range(1, segs + 1):
            f = shared + (g * (segs + 1) + t) * 256
            mb = member[seg_end[t]] & started[seg_end[g]]
            while mb:
                k = quanta_lowest_bit(mb)
                mb &= mb - 1
                for sym in range(256):
                    own[k * 256 + sym] += f[sym]
    for k in range(bands):
        f = own + k * 256
        if eobrun[k] > 0:
            r = quanta_bit_length(<unsigned long long> eobrun[k]) - 1
            f[r << 4] += 1
            eobbits[k] += r
        c[k].eobrun = 0
        c[k].extra += eobbits[k]
        for sym in range(256):
            c[k].freq[sym] += f[sym]
            c[k].extra += f[sym] * (sym & 15)  # value bits (none for EOBRUN and ZRL)
    free(own)
    free(shared)
    return 0


cdef void _refine(const int64_t* start, const uint8_t* pos, const uint16_t* mag, Py_ssize_t n,
                  int ss, int se, int al, Count* into) noexcept nogil:
    """A refining AC scan (bit ``al``), counted as ``_kernels._ac_refine``: coefficients of
    ``|v| >> al`` above 1 give correction bits, those equal to 1 become nonzero here."""
    cdef Count local = into[0]  # in registers: the counts behind ``freq`` could alias ``into``
    cdef Count* c = &local
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
    into[0] = local


cdef struct Lists:
    int64_t* start
    uint8_t* pos
    uint16_t* mag


cdef int _keep(const int64_t* start, const uint8_t* pos, const uint16_t* mag, Py_ssize_t n, int al,
               Lists* out) noexcept nogil:
    """The entries whose ``|v| >> al`` is nonzero (what a scan at point transform ``al`` sees),
    in ``out`` (malloc'd); −1 when memory runs out. Every entry is copied and the next slot
    taken only for those kept: no branch to mispredict on the many ±1s."""
    cdef Py_ssize_t i, e, m = 0
    out.start = <int64_t*> malloc((n + 1) * sizeof(int64_t))
    out.pos = <uint8_t*> malloc(max(start[n], 1) * sizeof(uint8_t))
    out.mag = <uint16_t*> malloc(max(start[n], 1) * sizeof(uint16_t))
    if out.start == NULL or out.pos == NULL or out.mag == NULL:
        return -1
    for i in range(n):
        out.start[i] = m
        for e in range(start[i], start[i + 1]):
            out.pos[m] = pos[e]
            out.mag[m] = mag[e]
            m += (mag[e] >> al) != 0
    out.start[n] = m
    return 0


def scan_bits(const int64_t[::1] start, const uint8_t[::1] pos, const uint16_t[::1] mag,
              const int32_t[:, ::1] scans, int64_t[:, ::1] freq, int64_t header_bits):
    """Each AC scan ``(Ss, Se, Ah, Al)`` of ``scans`` over the blocks :func:`nonzeros` listed:
    its symbol counts into ``freq[k]`` (256) and its size in bits — Huffman codes with its own
    optimal table, raw bits, 8 bits per table symbol and ``header_bits`` (before stuffing).
    Scans at the same point transform share one list of the entries they see (at ``Al`` 0,
    the caller's), and its first scans are counted together, in one pass over it."""
    cdef Py_ssize_t k, s, j, n = start.shape[0] - 1
    cdef const int64_t* st = &start[0]
    cdef const uint8_t* ps = &pos[0]
    cdef const uint16_t* mg = &mag[0]
    cdef int al, nb, failed = 0
    cdef Lists lists[14]
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
    lists[0].start = <int64_t*> st
    lists[0].pos = <uint8_t*> ps
    lists[0].mag = <uint16_t*> mg
    counts = <Count*> malloc(max(scans.shape[0], 1) * sizeof(Count))
    if counts == NULL:
        raise MemoryError()
    with nogil:
        for k in range(scans.shape[0]):
            al = scans[k, 3]
            if lists[al].start == NULL and _keep(st, ps, mg, n, al, &lists[al]) < 0:
                failed = 1
                break
            for s in range(256):
                freq[k, s] = 0
            counts[k].freq = &freq[k, 0]
            counts[k].extra = 0
            counts[k].eobrun = 0
            counts[k].pending = 0
            if scans[k, 2] != 0:
                _refine(lists[al].start, lists[al].pos, lists[al].mag, n, scans[k, 0], scans[k, 1], al, &counts[k])
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
                    if _firsts(lists[al].start, lists[al].pos, lists[al].mag, n, nb, lo, hi, al, group) < 0:
                        failed = 1
                    for j in range(nb):
                        counts[member[j]] = group[j]
                    nb = 0
        for k in range(scans.shape[0] if not failed else 0):
            o[k] = _table_bits(&freq[k, 0])
            if o[k] >= 0:
                o[k] += counts[k].extra + header_bits
        for al in range(1, 14):
            free(lists[al].start)
            free(lists[al].pos)
            free(lists[al].mag)
        free(counts)
    if failed:
        raise MemoryError()
    return out
