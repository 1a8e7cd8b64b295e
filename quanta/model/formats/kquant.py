"""llama.cpp's super-block types ("K-quants" and IQ4_XS): the grid their 256-weight blocks hold,
and their bytes.

A super-block of 256 weights keeps one float16 ``d`` and, per group of 16 or 32 weights, an
integer factor ``f``: the group's scale is ``d · f``. The asymmetric types (Q2_K, Q4_K, Q5_K) keep a
second float16 ``dmin`` and an integer factor ``g ≥ 0`` per group: the group's offset is ``dmin · g``
and a weight is ``d·f·q − dmin·g`` — quanta's grid ``s·(q − z)`` with ``s = d·f``, ``z = dmin·g / s``.

:func:`on_grid` puts a quantizer's scales (and zero points) on that grid before the codes are
chosen, so the codes written are the codes chosen; :func:`factors` finds ``d`` and ``f`` again
from those scales when the file is written. The byte layouts (:func:`pack`) are ggml's
``block_q2_K`` … ``block_iq4_xs`` (``ggml-common.h``), checked in the tests against the ``gguf``
package's dequantizer. numpy only: no torch at import.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quanta.errors import ConfigError

#: weights per super-block (ggml's QK_K)
SUPER = 256
#: the float16 floor of ``d`` (its smallest subnormal), never zero
TINY = 2.0**-24
#: groups per call of the compiled refinement on one thread
REFINE_GROUPS = 8192


def f16(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to float16, as float32."""
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


def grid_factors(v: np.ndarray, lo: int, hi: int, *, zero_ok: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``d`` (float16, per row of ``v``) and integer factors ``f`` in ``lo..hi`` (per value) with
    ``d·f ≈ v``: ``d`` the finest step that reaches every value — negative when that is finer
    (ggml's Q3_K and IQ4_XS keep factors down to −32 but up to 31) —, floored at
    :data:`TINY`. ``zero_ok``: a factor may be 0 (an offset), else it is at least 1 in size
    (a scale)."""
    v = np.asarray(v, np.float32)
    pos, neg = np.maximum(v.max(-1), 0), np.maximum(-v.min(-1), 0)
    up = np.maximum(pos / hi, neg / -lo if lo < 0 else 0)
    if lo < 0:
        down = np.maximum(pos / -lo, neg / hi)
        d = np.where(down < up, -down, up)
    else:
        d = up
    d = f16(d)
    d = np.where(d != 0, d, np.where(np.signbit(d), -TINY, TINY)).astype(np.float32)
    r = v / d[..., None]
    f = np.clip(np.rint(r), lo, hi)
    if not zero_ok:
        f = np.where(f != 0, f, np.where(r < 0, max(lo, -1), min(hi, 1)))
    return d, f.astype(np.float32)


def factors(v: np.ndarray, lo: int, hi: int, *, zero_ok: bool = False,
            tol: float = 0.0, odd: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``d`` and ``f`` of values ``v`` (``(…, groups)``) that :func:`grid_factors` made (``d·f``,
    or within ``tol`` of its largest value, per row): the largest value's factor searched from the
    largest in size down, so a ``d`` rounded to a float16 subnormal is found too; ``odd``: the
    factors are odd (a lattice type's ``2l + 1``, :mod:`quanta.model.formats.lattice`). Refuses
    values that are on no such grid."""
    v = np.asarray(v, np.float32)
    idx = np.abs(v).argmax(-1)[..., None]
    top = np.take_along_axis(v, idx, -1)[..., 0]
    d = np.zeros(v.shape[:-1], np.float32)
    f = np.zeros(v.shape, np.float32)
    todo = top != 0
    if not zero_ok and (~todo).any():
        raise ConfigError("a super-block's scales are all zero (quantize with storage=)")
    bound = tol * np.abs(top)[..., None]
    for k in sorted((k for k in range(lo, hi + 1) if k and (k % 2 or not odd)), key=lambda k: (-abs(k), -k)):
        if not todo.any():
            return d, f
        dk = f16(top / k)
        with np.errstate(divide="ignore", invalid="ignore"):
            fk = np.rint(v / dk[..., None])
            ok = todo & (dk != 0) & (np.abs(fk * dk[..., None] - v) <= bound).all(-1) & \
                (fk >= lo).all(-1) & (fk <= hi).all(-1) & (zero_ok | (fk != 0).all(-1)) & \
                (not odd or (fk % 2 == 1).all(-1))
        d[ok], f[ok] = dk[ok], fk[ok]
        todo &= ~ok
    if todo.any():
        raise ConfigError("a super-block's scales are not on its grid (quantize with storage=)")
    return d, f


def on_grid(scale: np.ndarray, zero: np.ndarray | None, per: int, scale_range: tuple[int, int],
            min_top: int, qmax: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Scales ``(rows, groups)`` (and zero points, for ``min_top > 0``) as a super-block of
    ``per`` groups keeps them: ``s = d·f`` with ``f`` in ``scale_range``; the offset ``s·z``
    (at least 0: a K-quant subtracts it) as ``dmin·g``, ``g`` in ``0..min_top``. A grid that
    starts above zero (``z < 0``: a group of positive weights) is stretched down to zero with
    its top kept (``s·(qmax − z) / qmax``, codes ``0..qmax``), as ggml's K-quants do."""
    s = np.asarray(scale, np.float32)
    if min_top:
        z = np.asarray(zero, np.float32)
        s = np.where(z < 0, s * (qmax - z) / qmax, s).astype(np.float32)
        zero = np.maximum(z, 0)
    rows = s.shape[0]
    blocks = s.reshape(rows, -1, per)
    d, f = grid_factors(blocks, *scale_range)
    s2 = (d[..., None] * f).reshape(s.shape)
    if not min_top:
        return s2, zero
    m = (s * zero).reshape(rows, -1, per)
    dm, g = grid_factors(m, 0, min_top, zero_ok=True)
    return s2, (dm[..., None] * g).reshape(s.shape) / s2


def bit_fields(q: np.ndarray, width: int, axis: int) -> np.ndarray:
    """Fields of ``width`` bits along ``axis`` of ``q`` OR-ed into one byte (field k at bit
    ``k·width``)."""
    shifts = (np.arange(q.shape[axis]) * width).reshape([-1] + [1] * (q.ndim - 1 - axis % q.ndim))
    return np.bitwise_or.reduce(q.astype(np.uint16) << shifts, axis=axis).astype(np.uint8)


def _halves(q: np.ndarray) -> np.ndarray:
    """Nibbles of 32 codes in 16 bytes: code ``l`` low, code ``l + 16`` high (IQ4_XS's groups)."""
    return (q[..., :16] & 0xF) | ((q[..., 16:] & 0xF) << 4)


def _scales_6bit(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """The 12 bytes of Q4_K/Q5_K's eight 6-bit scale and min factors."""
    lo = sc[..., :4] | ((sc[..., 4:] >> 4) << 6)
    mid = mn[..., :4] | ((mn[..., 4:] >> 4) << 6)
    hi = (sc[..., 4:] & 0xF) | ((mn[..., 4:] & 0xF) << 4)
    return np.concatenate([lo, mid, hi], -1).astype(np.uint8)


def f16_bytes(x: np.ndarray) -> np.ndarray:
    """The bytes of ``x`` as little-endian float16 (a new last axis of 2: ggml's ``d``)."""
    return np.ascontiguousarray(x[..., None], dtype="<f2").view(np.uint8)


def pack(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray | None, kind: str,
         scale_range: tuple[int, int], min_top: int) -> np.ndarray:
    """Bytes ``(rows, blocks · type_size)`` of the super-block type ``kind`` from unsigned codes
    ``(rows, n)``, scales and zero points ``(rows, groups)`` put on its grid by :func:`on_grid`."""
    rows, n = codes.shape
    nb = n // SUPER
    s = np.asarray(scales, np.float32).reshape(rows, nb, -1)
    d, f = factors(s, *scale_range)
    q = codes.astype(np.uint8).reshape(rows, nb, SUPER)
    dm = g = None
    if min_top:
        m = s * np.asarray(zeros, np.float32).reshape(s.shape)
        dm, g = factors(m, 0, min_top, zero_ok=True, tol=1e-5)
    parts = _LAYOUTS[kind](q, f.astype(np.int16), None if g is None else g.astype(np.int16), rows, nb)
    heads = [f16_bytes(d)] + ([] if dm is None else [f16_bytes(dm)])
    parts = parts + heads if kind in ("Q2_K", "Q3_K", "Q6_K") else heads + parts  # ggml's order
    return np.concatenate(parts, -1).reshape(rows, -1)


def _q2_k(q, f, g, rows, nb):
    # 16 bytes of factors (scale low, min high), then 64 bytes: byte 32h + l holds codes
    # 128h + 32k + l at bits 2k
    sc = (f.astype(np.uint8) & 0xF) | ((g.astype(np.uint8) & 0xF) << 4)
    return [sc, bit_fields(q.reshape(rows, nb, 2, 4, 32) & 3, 2, -2).reshape(rows, nb, 64)]


def _q3_k(q, f, g, rows, nb):
    # hmask: byte l bit k is the high bit of code 32k + l; the low two bits as Q2_K's; the
    # sixteen factors + 32 in 6 bits: low nibbles in bytes 0..7 (factor j and j + 8), the high
    # two bits of factor 4i + b in byte 8 + b at bits 2i
    u = (f + 32).astype(np.uint8)
    hmask = bit_fields(q.reshape(rows, nb, 8, 32) >> 2, 1, -2)
    low = bit_fields(q.reshape(rows, nb, 2, 4, 32) & 3, 2, -2).reshape(rows, nb, 64)
    nib = (u[..., :8] & 0xF) | ((u[..., 8:] & 0xF) << 4)
    high = bit_fields((u.reshape(rows, nb, 4, 4) >> 4) & 3, 2, -2)
    return [hmask, low, nib, high]


def _q4_k(q, f, g, rows, nb):
    # eight groups of 32: group 2c + h in the low (h = 0) or high nibbles of bytes 32c..32c + 31
    qs = bit_fields(q.reshape(rows, nb, 4, 2, 32) & 0xF, 4, -2).reshape(rows, nb, 128)
    return [_scales_6bit(f.astype(np.uint8), g.astype(np.uint8)), qs]


def _q5_k(q, f, g, rows, nb):
    qh = bit_fields(q.reshape(rows, nb, 8, 32) >> 4, 1, -2)
    scales, qs = _q4_k(q, f, g, rows, nb)
    return [scales, qh, qs]


def _q6_k(q, f, g, rows, nb):
    # two halves of 128: codes l and l + 64 share byte l of the low nibbles, l + 32 and l + 96
    # byte l + 32; the high two bits of codes l + 32k at bits 2k of byte l; sixteen int8 factors
    h = q.reshape(rows, nb, 2, 4, 32)
    lo, hi = h & 0xF, h >> 4
    ql = np.concatenate([lo[..., 0, :] | (lo[..., 2, :] << 4), lo[..., 1, :] | (lo[..., 3, :] << 4)], -1)
    return [ql.reshape(rows, nb, 128), bit_fields(hi, 2, -2).reshape(rows, nb, 64),
            f.astype(np.int8).view(np.uint8)]


def _iq4_xs(q, f, g, rows, nb):
    # a uint16 of the factors' (+ 32) high two bits (factor j at bits 2j), four bytes of their
    # low nibbles (factor 2b low, 2b + 1 high), and each group of 32 as IQ4_NL's block
    u = (f + 32).astype(np.uint16)
    high = np.bitwise_or.reduce(((u >> 4) & 3) << (2 * np.arange(8, dtype=np.uint16)), axis=-1)
    low = ((u[..., 0::2] & 0xF) | ((u[..., 1::2] & 0xF) << 4)).astype(np.uint8)
    qs = _halves(q.reshape(rows, nb, 8, 32)).reshape(rows, nb, 128)
    return [np.ascontiguousarray(high[..., None], dtype="<u2").view(np.uint8), low, qs]


_LAYOUTS = {"Q2_K": _q2_k, "Q3_K": _q3_k, "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k, "IQ4_XS": _iq4_xs}


def refine(x: np.ndarray, weights: np.ndarray | None, scale: np.ndarray, zero: np.ndarray | None, per: int,
           scale_range: tuple[int, int], min_top: int, qmax: int, reach: int = 2) -> tuple[np.ndarray, Any]:
    """Scales (and zero points) on the super-block's grid (:func:`on_grid`), each group's factors
    moved by up to ``reach`` steps where that lowers its (``weights``-weighted) squared error of
    round to nearest — with signed factors on a symmetric grid, also from the factor of the
    opposite sign (ggml's Q3_K and Q6_K do the same) —: ``d`` and ``dmin`` stay, so the grid
    stays the one the block stores. x: the weights ``(rows, groups · group)``. Compiled
    (:func:`quanta.core._kernels.refine_factors`): one pass per group, slices of groups on
    threads."""
    from quanta.core import _kernels
    from quanta.threads import each

    lo, hi = scale_range
    rows = scale.shape[0]
    s = np.asarray(scale, np.float32).reshape(rows, -1, per)
    d, f = factors(s, lo, hi)
    n = s.size
    xb = np.ascontiguousarray(x, np.float32).reshape(n, -1)
    wb = np.zeros((n, 0), np.float32) if weights is None else \
        np.ascontiguousarray(weights, np.float32).reshape(n, -1)
    if min_top:
        m = s * np.asarray(zero, np.float32).reshape(s.shape)
        dm, g = factors(m, 0, min_top, zero_ok=True, tol=1e-5)
        zfix = np.zeros(n)
    else:
        dm, g = np.zeros_like(d), np.zeros_like(f)
        zfix = np.asarray(zero, np.float64).reshape(n)
    f64, g64 = f.astype(np.float64).reshape(n), g.astype(np.float64).reshape(n)
    flip = 0.0
    if not min_top and lo < 0:
        zl = float(zfix[0])
        flip = (qmax - zl) / zl  # the scale's sign flipped: the largest weight on code 0 (−zero steps)
    dk = np.repeat(d.reshape(-1), per).astype(np.float64)
    dmk = np.repeat(dm.reshape(-1), per).astype(np.float64)

    def run(a: int) -> None:  # groups are independent: slices of them on this process's threads
        sl = slice(a, a + REFINE_GROUPS)
        _kernels.refine_factors(xb[sl], wb[sl], dk[sl], dmk[sl], f64[sl], g64[sl],
                                zfix[sl], float(lo), float(hi), float(min_top), float(qmax), int(reach), flip)

    each(run, range(0, n, REFINE_GROUPS))
    f, g = f64.astype(np.float32).reshape(s.shape), g64.astype(np.float32).reshape(s.shape)
    s2 = (d[..., None] * f).reshape(scale.shape)
    if not min_top:
        return s2, zero
    return s2, ((dm[..., None] * g).reshape(scale.shape) / s2)
