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


#: Worst case of one block's entropy-coded bytes: DC (11 size bits + 11 value bits) and 63 AC
#: symbols of at most 16 + 10 bits is 1,660 bits = 208 bytes; every byte may be 0xFF and take
#: a stuffed 0x00 after it (416), plus a restart marker (2) and padding: 420.
MAX_BYTES_PER_BLOCK = 420


def _check_scan(coefs: np.ndarray, comp: np.ndarray, tables: np.ndarray, blocks_per_mcu: int,
                restart: int) -> None:
    if coefs.ndim != 2 or coefs.shape[1] != 64 or coefs.dtype != np.int16:
        raise ValueError(f"coefficients must be int16 (N, 64), got {coefs.dtype} {coefs.shape}")
    if comp.shape != (coefs.shape[0],):
        raise ValueError("one component index per block is needed")
    if comp.size and (comp.min() < 0 or comp.max() >= tables.size):
        raise ValueError("component index without a table selector")
    if blocks_per_mcu < 1 or coefs.shape[0] % blocks_per_mcu or restart < 0:
        raise ValueError("blocks must form whole MCUs; restart interval must be ≥ 0")


def count_symbols(coefs: np.ndarray, comp: np.ndarray, tables: np.ndarray, blocks_per_mcu: int,
                  restart: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symbol counts per Huffman table, ``(dc_freq, ac_freq)``, each ``(2, 256)`` int64.

    coefs: int16 ``(N, 64)`` zigzag blocks in scan order; comp: each block's component;
    tables: each component's table selector (0 or 1, used for DC and AC alike).
    """
    _check_scan(coefs, comp, tables, blocks_per_mcu, restart)
    t = np.ascontiguousarray(tables, dtype=np.int64)
    return _count_symbols(np.ascontiguousarray(coefs), comp, t, t, int(blocks_per_mcu), int(restart))


def encode_scan(coefs: np.ndarray, comp: np.ndarray, tables: np.ndarray, codes: np.ndarray,
                sizes: np.ndarray, blocks_per_mcu: int, restart: int = 0) -> np.ndarray:
    """The entropy-coded scan (stuffed bytes with RSTn markers) as a uint8 array.

    codes/sizes: ``(4, 256)`` lookup tables, rows 0–1 the DC tables, rows 2–3 the AC tables.
    """
    _check_scan(coefs, comp, tables, blocks_per_mcu, restart)
    if codes.shape != (4, 256) or sizes.shape != (4, 256):
        raise ValueError("code and size tables must be (4, 256)")
    t = np.ascontiguousarray(tables, dtype=np.int64)
    return _encode_scan(np.ascontiguousarray(coefs), comp, t, t, codes, sizes, int(blocks_per_mcu),
                        int(restart))


@numba.njit(cache=True, nogil=True)
def _count_symbols(coefs, comp, dc_tbl, ac_tbl, blocks_per_mcu, restart):  # pragma: no cover
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
def _encode_scan(coefs, comp, dc_tbl, ac_tbl, codes, sizes, blocks_per_mcu, restart):  # pragma: no cover
    out = np.empty(coefs.shape[0] * MAX_BYTES_PER_BLOCK + 64, dtype=np.uint8)
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
