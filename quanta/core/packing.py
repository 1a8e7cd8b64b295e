"""Bit packing: codes of 1..8 bits stored densely in bytes.

Layout (the same for every width): a little-endian bit stream. Code ``i`` occupies bits
``i*bits .. i*bits+bits-1``, bit 0 being the least significant bit of byte 0. ``n`` codes take
``ceil(n * bits / 8)`` bytes. Eight codes fill exactly ``bits`` bytes, so packing works on groups
of eight codes held in one 64-bit word — vectorized, no per-element Python loop.
"""

from __future__ import annotations

import numpy as np

from quanta.errors import ConfigError


def packed_size(n: int, bits: int) -> int:
    """Bytes needed for ``n`` codes of ``bits`` bits."""
    return (n * bits + 7) // 8


def _check_bits(bits: int) -> None:
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise ConfigError(f"packing takes 1..8 bits per code, got {bits!r}")


def _or_columns(cols: np.ndarray, bits: int) -> np.ndarray:
    """OR the columns of ``cols`` together, column k shifted left by ``k * bits``."""
    cols = np.ascontiguousarray(cols.T)  # rows are contiguous: each OR streams through memory
    out = cols[0].copy()
    for k in range(1, cols.shape[0]):
        out |= cols[k] << cols.dtype.type(k * bits)
    return out


def _split_columns(words: np.ndarray, bits: int, per: int) -> np.ndarray:
    """Inverse of :func:`_or_columns`: ``(len(words), per)`` fields of ``bits`` bits."""
    mask = words.dtype.type((1 << bits) - 1)
    out = np.empty((per, words.size), dtype=np.uint8)
    for k in range(per):
        out[k] = (words >> words.dtype.type(k * bits)) & mask
    return out.T


#: codes packed at a time by :func:`pack` (a multiple of 8: chunks pack to whole bytes)
PACK_CODES = 1 << 23


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack integer codes into a flat uint8 array.

    Codes may be unsigned (``0 .. 2**bits-1``) or signed (``-2**(bits-1) .. 2**(bits-1)-1``, two's
    complement); values outside the width raise :class:`ConfigError`. The array is flattened in
    C order; keep its shape to unpack.
    """
    _check_bits(bits)
    c = np.asarray(codes).ravel()
    if c.size > PACK_CODES:  # in chunks of whole groups of eight codes: the same bytes, less memory
        return np.concatenate([pack(c[i:i + PACK_CODES], bits) for i in range(0, c.size, PACK_CODES)])
    if c.size and not np.issubdtype(c.dtype, np.integer):
        raise ConfigError("pack takes integer codes")
    if c.size:
        lo, hi = int(c.min()), int(c.max())
        if lo < -(1 << (bits - 1)) or hi > (1 << bits) - 1 or (lo < 0 and hi > (1 << (bits - 1)) - 1):
            raise ConfigError(f"codes in [{lo}, {hi}] do not fit {bits} bits")
    n = c.size
    if bits == 8:
        return c.astype(np.uint8).copy()
    if 8 % bits == 0:  # 1, 2, 4 bits: whole codes per byte, all in uint8
        per = 8 // bits
        u8 = np.zeros(-(-n // per) * per, dtype=np.uint8)
        u8[:n] = c.astype(np.uint8) & np.uint8((1 << bits) - 1)
        return _or_columns(u8.reshape(-1, per), bits)
    groups = -(-n // 8)
    u8 = np.zeros(groups * 8, dtype=np.uint8)
    u8[:n] = c.astype(np.uint8) & np.uint8((1 << bits) - 1)
    cols = np.ascontiguousarray(u8.reshape(groups, 8).T)
    words = cols[0].astype(np.uint64)
    for k in range(1, 8):
        words |= cols[k].astype(np.uint64) << np.uint64(k * bits)
    out = words.astype("<u8").view(np.uint8).reshape(groups, 8)[:, :bits]
    return out.reshape(-1)[: packed_size(n, bits)].copy()


def unpack(data: np.ndarray, bits: int, n: int, *, signed: bool = False) -> np.ndarray:
    """Inverse of :func:`pack`: ``n`` codes as uint8 (or int8 when ``signed``)."""
    _check_bits(bits)
    d = np.asarray(data, dtype=np.uint8).ravel()
    if d.size < packed_size(n, bits):
        raise ConfigError(f"{d.size} bytes cannot hold {n} codes of {bits} bits")
    if bits == 8:
        out = d[:n].copy()
        return out.view(np.int8) if signed else out
    if 8 % bits == 0:
        per = 8 // bits
        out = _split_columns(d[: packed_size(n, bits)], bits, per).reshape(-1)[:n]
        return _as_signed(out, bits) if signed else out
    groups = -(-n // 8)
    buf = np.zeros((groups, 8), dtype=np.uint8)
    flat = d[: packed_size(n, bits)]
    padded = np.zeros(groups * bits, dtype=np.uint8)
    padded[: flat.size] = flat
    buf[:, :bits] = padded.reshape(groups, bits)
    words = buf.view("<u8").reshape(groups)
    out = _split_columns(words, bits, 8).reshape(-1)[:n]
    return _as_signed(out, bits) if signed else out


def _as_signed(out: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement reading of unsigned ``bits``-bit codes, as int8."""
    half = 1 << (bits - 1)
    return (out.astype(np.int16) - ((out >= half).astype(np.int16) << bits)).astype(np.int8)


#: groups of eight codes unpacked at a time by :func:`unpack_torch` (64 MB of int64 words)
UNPACK_GROUPS = 1 << 20


def unpack_torch(data, bits: int, n: int):
    """:func:`unpack` for a torch uint8 tensor (same layout), returning uint8 codes.

    For model code that unpacks on the fly: the bytes of each group of eight codes are widened
    to one int64 word (the top byte is always zero, so int64 shifts are exact) and split.
    """
    import torch

    _check_bits(bits)
    if bits == 8:
        return data[:n].clone()
    if 8 % bits == 0:  # 1, 2, 4 bits: whole codes per byte, split with byte shifts
        per = 8 // bits
        shifts = torch.arange(per, dtype=torch.uint8, device=data.device) * bits
        flat = data[: packed_size(n, bits)]
        return ((flat[:, None] >> shifts) & ((1 << bits) - 1)).reshape(-1)[:n]
    groups = -(-n // 8)
    flat = data[: packed_size(n, bits)]
    out = torch.empty(groups * 8, dtype=torch.uint8, device=data.device)
    shifts = torch.arange(8, dtype=torch.int64, device=data.device) * bits
    for g0 in range(0, groups, UNPACK_GROUPS):  # in chunks: the int64 words are 8× the codes
        g1 = min(g0 + UNPACK_GROUPS, groups)
        buf = torch.zeros((g1 - g0, 8), dtype=torch.uint8, device=data.device)
        part = flat[g0 * bits: g1 * bits]
        padded = torch.zeros((g1 - g0) * bits, dtype=torch.uint8, device=data.device)
        padded[: part.numel()] = part
        buf[:, :bits] = padded.view(g1 - g0, bits)
        words = buf.view(torch.int64)  # (groups, 1), little-endian like the numpy path
        out[g0 * 8: g1 * 8] = ((words >> shifts) & ((1 << bits) - 1)).reshape(-1)
    return out[:n]
