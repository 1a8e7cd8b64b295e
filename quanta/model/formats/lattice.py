"""llama.cpp's lattice types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S): vectors of 8 or 4 weights
rounded together onto a grid of points (:class:`quanta.core.lattice.Lattice`), and their bytes.

A super-block of 256 weights keeps one float16 ``d``; each sub-block of 32 (or 16) weights a
4-bit factor ``l``, its scale ``d · c · (2l + 1)`` (``c`` = 1 for IQ3_S, ¼ for IQ3_XXS, ⅛ for the
IQ2 types); each vector of 4 (IQ3) or 8 (IQ2) magnitudes the index of a grid point; each weight a
sign — free (IQ2_S, IQ3_S) or with an even count of negatives per 8 weights (the others keep 7
sign bits per 8). The grids, their levels and the sign table are the ``gguf`` package's (llama.cpp's
own tables), never a copy; the byte layouts (:func:`pack`) are ggml's ``block_iq2_xxs`` …
``block_iq3_s``, checked in the tests against the ``gguf`` package's dequantizer.

quanta's rounding (:func:`quantize`): signs first (a run's cheapest flip when its count of
negatives must be even), each sub-block's scale and points searched for the least
importance-weighted squared error (:func:`quanta.core.lattice.fit`), ``d`` from the largest
scale, then each sub-block's factor chosen among the nearest three for the least error with its
points found again at that scale. As QuantizedWeight codes, a weight is an index into the signed
levels (:func:`codebook`), its group's scale the sub-block's: the core's codebook dequantizer
gives the weights, the packer finds the points again. numpy only: no torch at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from quanta.core.lattice import Lattice, assign, fit, signs
from quanta.errors import ConfigError
from quanta.model.formats.kquant import bit_fields, f16, f16_bytes, factors

#: weights per super-block (ggml's QK_K)
SUPER = 256
#: the largest sub-block factor (4 bits)
TOP = 15


@dataclass(frozen=True)
class LatticeType:
    """One lattice type: its sub-block (weights per factor), the factor's multiplier ``c`` and
    whether its signs keep an even count of negatives per 8 weights."""

    name: str
    sub: int
    c: float
    parity: bool

    @property
    def lattice(self) -> Lattice:
        return _lattice(self.name)


TYPES = {t.name: t for t in (
    LatticeType("IQ2_XXS", 32, 0.125, True), LatticeType("IQ2_XS", 16, 0.125, True),
    LatticeType("IQ2_S", 16, 0.125, False), LatticeType("IQ3_XXS", 32, 0.25, True),
    LatticeType("IQ3_S", 32, 1.0, False))}


def _quant(name: str):
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits

    q = _type_traits[GGMLQuantizationType[name]]
    q.init_grid()
    return q


@cache
def _lattice(name: str) -> Lattice:
    """The type's grid as a :class:`Lattice` (its levels: the ``gguf`` package's ``grid_map``)."""
    q = _quant(name)
    levels = np.asarray(q.grid_map, np.float32)
    grid = np.asarray(q.grid, np.float32).reshape(q.grid_shape)
    points = np.searchsorted(levels, grid)
    if not np.array_equal(levels[points], grid):
        raise ConfigError(f"{name}: the gguf package's grid is not on its levels")
    return Lattice(levels, points, 8 if TYPES[name].parity else 0)


def codebook(name: str) -> np.ndarray:
    """The signed levels a code indexes: ``−levels`` from the largest down, then ``levels``."""
    lv = _lattice(name).levels
    return np.concatenate([-lv[::-1], lv]).astype(np.float32)


def quantize(x: np.ndarray, name: str, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``(rows, n)`` (indices into :func:`codebook`) and scales ``(rows, n / sub)`` of
    ``x`` (``n`` a multiple of 256) in type ``name``; ``weights``: per-weight weights of the
    squared error (the importance matrix, broadcast to ``x``), or None."""
    t = TYPES[name]
    lat = t.lattice
    x = np.asarray(x, np.float32)
    rows, n = x.shape
    if n % SUPER:
        raise ConfigError(f"{name} needs rows of a multiple of {SUPER} weights; got {n}")
    w = None if weights is None else np.ascontiguousarray(np.broadcast_to(weights, x.shape), np.float32)
    sg = signs(x, w, lat.parity)
    a = (x * sg).reshape(-1, t.sub)
    wb = None if w is None else w.reshape(-1, t.sub)
    _, s, _ = fit(a, lat, wb)
    per = SUPER // t.sub
    sb = np.maximum(s, 0).reshape(-1, per)
    d = f16(sb.max(1) / (t.c * (2 * TOP + 1)))
    best_err = best_idx = best_scale = None
    with np.errstate(divide="ignore", invalid="ignore"):
        ell = np.rint((np.where(d[:, None] > 0, sb / (t.c * d[:, None]), 0) - 1) / 2)
    for step in (0, -1, 1):
        f = np.clip(ell + step, 0, TOP)
        scale = (d[:, None] * np.float32(t.c) * (2 * f + 1)).astype(np.float32).reshape(-1)
        idx, err = assign(a, lat, scale, wb)
        if best_err is None:
            best_err, best_idx, best_scale = err, idx, scale
        else:
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_idx = np.where(better[:, None], idx, best_idx)
            best_scale = np.where(better, scale, best_scale)
    values = sg.reshape(rows, n) * lat.values[best_idx.reshape(-1)].reshape(rows, n)
    return codes_of(values, name), best_scale.reshape(rows, n // t.sub).astype(np.float32)


def quantize_gptq(x: np.ndarray, name: str, h: np.ndarray, weights: np.ndarray | None = None, *,
                  damp: float = 0.01, h_div: float = 1.0,
                  overwrite_h: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`quantize`'s scales (searched with ``weights``, the Hessian's diagonal), then the
    points and signs chosen by GPTQ on them (:func:`quanta.core.hessian.gptq_lattice`; ``h``:
    the inputs' second moments ``XᵀX``, divided by ``h_div``). Same codes and scales."""
    from quanta.core.hessian import gptq_lattice

    t = TYPES[name]
    _, scales = quantize(x, name, weights)
    v = gptq_lattice(x, h, scales, t.lattice, t.sub, damp=damp, h_div=h_div, overwrite_h=overwrite_h)
    return codes_of(v, name), scales


def codes_of(values: np.ndarray, name: str) -> np.ndarray:
    """Codes (indices into :func:`codebook`) of signed levels."""
    lv = _lattice(name).levels
    k = len(lv)
    m = np.searchsorted(lv, np.abs(values))
    return np.where(values > 0, k + m, k - 1 - m).astype(np.uint8)


def pack(codes: np.ndarray, scales: np.ndarray, name: str) -> np.ndarray:
    """Bytes ``(rows, blocks · type_size)`` of type ``name`` from :func:`quantize`'s codes and
    scales. Refuses vectors that are not grid points and, for the types that keep 7 sign bits per
    8 weights, runs with an odd count of negatives."""
    t = TYPES[name]
    lat = t.lattice
    rows, n = codes.shape
    nb = n // SUPER
    k = len(lat.levels)
    c = codes.astype(np.int16).reshape(rows, nb, SUPER)
    neg = c < k
    mags = np.where(neg, k - 1 - c, c - k)
    pts = lat.index(mags.reshape(rows, nb, SUPER // lat.dim, lat.dim))
    if (pts < 0).any():
        raise ConfigError(f"{name}: a vector of weights is not on its grid")
    if t.parity and (neg.reshape(rows, nb, -1, 8).sum(-1) % 2).any():
        raise ConfigError(f"{name}: a run of 8 signs has an odd count of negatives")
    # d and the odd factors 2l + 1 of d·c (c a power of two: the division is exact); an all-zero
    # super-block keeps d = 0, l = 0
    s = np.asarray(scales, np.float32).reshape(rows, nb, SUPER // t.sub) / np.float32(t.c)
    d, odd = factors(s, 1, 2 * TOP + 1, zero_ok=True, odd=True)
    f = np.maximum((odd - 1) // 2, 0).astype(np.uint32)
    head = f16_bytes(d)
    bits = bit_fields(neg.reshape(rows, nb, SUPER // 8, 8), 1, -1)  # sign bits, weight 8i + j
    sign7 = (bits & 0x7F).astype(np.uint32)
    nib = (f[..., 0::2] | (f[..., 1::2] << 4)).astype(np.uint8)
    if name == "IQ3_S":  # qs: point & 255 per vector; qh: bit 8 of vector 8i + j; signs; factors
        qh = bit_fields((pts >> 8).reshape(rows, nb, 8, 8), 1, -1)
        parts = [head, (pts & 0xFF).astype(np.uint8), qh, bits, nib]
    elif name == "IQ2_S":  # qs low bytes; signs; qh: bits 8-9 of vector 4i + j at 2j; factors
        hi = (pts >> 8).astype(np.uint8).reshape(rows, nb, 8, 4)
        qh = (hi << (2 * np.arange(4, dtype=np.uint8))).sum(-1, dtype=np.uint8)
        parts = [head, (pts & 0xFF).astype(np.uint8), bits, qh, nib]
    elif name == "IQ2_XS":  # a uint16 per vector: point | sign bits << 9; factors
        q = (pts.astype(np.uint32) | (sign7 << 9)).astype("<u2")
        parts = [head, q.view(np.uint8).reshape(rows, nb, -1), nib]
    else:  # IQ2_XXS, IQ3_XXS: per sub-block of 32, a word of 4 × 7 sign bits and the factor at 28
        aux = (sign7.reshape(rows, nb, SUPER // 32, 4) << (7 * np.arange(4, dtype=np.uint32))).sum(
            -1, dtype=np.uint32) | (f << 28)
        if name == "IQ3_XXS":  # the 64 points as bytes, then the 8 words
            parts = [head, pts.astype(np.uint8), aux.astype("<u4").view(np.uint8).reshape(rows, nb, -1)]
        else:  # per sub-block: its 4 points as bytes, then its word
            q = pts.astype(np.uint8).reshape(rows, nb, SUPER // 32, 4)
            words = np.concatenate([q, aux.astype("<u4")[..., None].view(np.uint8)], -1)
            parts = [head, words.reshape(rows, nb, -1)]
    return np.concatenate(parts, -1).reshape(rows, -1)
