"""Entropy coding of quantized blocks: DC prediction, AC run-lengths, Huffman codes, byte
stuffing and restart markers (T.81 F.1.2), in numba — one pass to count symbols (for
optimized tables), one to write bits.

Blocks arrive in scan order as ``(N, 64)`` int16 coefficients in zigzag order, with the
component index of each block; ``blocks_per_mcu`` blocks form one MCU.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _nbits(v):  # pragma: no cover - compiled
    a = -v if v < 0 else v
    n = 0
    while a:
        n += 1
        a >>= 1
    return n


@numba.njit(cache=True, nogil=True)
def count_symbols(coefs, comp, dc_tbl, ac_tbl, blocks_per_mcu, restart):  # pragma: no cover
    """Symbol counts per table: ``(dc_freq, ac_freq)``, each ``(2, 256)`` int64."""
    dc_freq = np.zeros((2, 256), dtype=np.int64)
    ac_freq = np.zeros((2, 256), dtype=np.int64)
    pred = np.zeros(4, dtype=np.int64)
    for b in range(coefs.shape[0]):
        if restart > 0 and b % blocks_per_mcu == 0 and (b // blocks_per_mcu) % restart == 0:
            pred[:] = 0
        c = comp[b]
        dc = np.int64(coefs[b, 0])
        dc_freq[dc_tbl[c], _nbits(dc - pred[c])] += 1
        pred[c] = dc
        run = 0
        t = ac_tbl[c]
        for k in range(1, 64):
            v = np.int64(coefs[b, k])
            if v == 0:
                run += 1
                continue
            while run > 15:
                ac_freq[t, 0xF0] += 1
                run -= 16
            ac_freq[t, (run << 4) | _nbits(v)] += 1
            run = 0
        if run > 0:
            ac_freq[t, 0] += 1
    return dc_freq, ac_freq


@numba.njit(cache=True, inline="always")
def _put(out, pos, acc, nacc, code, size):  # pragma: no cover - compiled
    """Append ``size`` bits of ``code``; emit whole bytes, stuffing 0x00 after each 0xFF."""
    acc = (acc << np.uint64(size)) | np.uint64(code)
    nacc += size
    while nacc >= 8:
        nacc -= 8
        byte = (acc >> np.uint64(nacc)) & np.uint64(0xFF)
        out[pos] = byte
        pos += 1
        if byte == 0xFF:
            out[pos] = 0
            pos += 1
    acc &= np.uint64((1 << nacc) - 1)
    return pos, acc, nacc


@numba.njit(cache=True, nogil=True)
def encode_scan(coefs, comp, dc_tbl, ac_tbl, codes, sizes, blocks_per_mcu, restart):  # pragma: no cover
    """Entropy-coded scan data (bytes, stuffed, with RSTn markers) as a uint8 array.

    ``codes``/``sizes`` are ``(4, 256)``: rows 0–1 DC tables 0–1, rows 2–3 AC tables 0–1.
    """
    out = np.empty(coefs.shape[0] * 420 + 64, dtype=np.uint8)
    pos = 0
    acc = np.uint64(0)
    nacc = 0
    pred = np.zeros(4, dtype=np.int64)
    rst = 0
    for b in range(coefs.shape[0]):
        if restart > 0 and b > 0 and b % blocks_per_mcu == 0 and (b // blocks_per_mcu) % restart == 0:
            pos, acc, nacc = _put(out, pos, acc, nacc, 0x7F, 7)  # pad with 1-bits
            acc = np.uint64(0)
            nacc = 0
            out[pos] = 0xFF
            out[pos + 1] = 0xD0 + (rst & 7)
            pos += 2
            rst += 1
            pred[:] = 0
        c = comp[b]
        dc = np.int64(coefs[b, 0])
        diff = dc - pred[c]
        pred[c] = dc
        s = _nbits(diff)
        t = dc_tbl[c]
        pos, acc, nacc = _put(out, pos, acc, nacc, codes[t, s], sizes[t, s])
        if s:
            vb = diff if diff >= 0 else diff - 1
            pos, acc, nacc = _put(out, pos, acc, nacc, vb & ((1 << s) - 1), s)
        t = 2 + ac_tbl[c]
        run = 0
        for k in range(1, 64):
            v = np.int64(coefs[b, k])
            if v == 0:
                run += 1
                continue
            while run > 15:
                pos, acc, nacc = _put(out, pos, acc, nacc, codes[t, 0xF0], sizes[t, 0xF0])
                run -= 16
            s = _nbits(v)
            sym = (run << 4) | s
            vb = v if v >= 0 else v - 1
            pos, acc, nacc = _put(out, pos, acc, nacc, codes[t, sym], sizes[t, sym])
            pos, acc, nacc = _put(out, pos, acc, nacc, vb & ((1 << s) - 1), s)
            run = 0
        if run > 0:
            pos, acc, nacc = _put(out, pos, acc, nacc, codes[t, 0], sizes[t, 0])
    if nacc > 0:
        pos, acc, nacc = _put(out, pos, acc, nacc, 0x7F, 7)
    return out[:pos]
