"""Export a quantized model as a GGUF file that llama.cpp runs, carrying quanta's chosen values.

The grids map onto llama.cpp's block types (blocks of 32 along each row):

* Q8_0: ``w = d·q``, ``q`` int8 — quanta's 8-bit symmetric grid (zero point 128);
* Q4_0: ``w = d·(q − 8)``, ``q`` in 0..15 — the 4-bit symmetric grid (zero point 8);
* Q4_1: ``w = d·q + m`` — the 4-bit asymmetric grid (``m = −d·z``);
* Q5_0 / Q5_1: the same at 5 bits (``q − 16``; the fifth bit of each code in a 32-bit word);
* IQ4_NL: ``w = d·levels[q]``, 16 non-uniform levels (:data:`quanta.core.codebook.IQ4_NL`);
* Q6_K (a "K-quant", super-blocks of 256 along rows whose width allows it): ``w = d·s_j·(q − 32)``,
  ``q`` in 0..63, one int8 factor ``s_j`` per 16 weights and one float16 ``d`` per 256 — the
  6-bit symmetric grid in groups of 16, its scales rounded to what the super-block holds.

``d`` and ``m`` are stored as float16, so the quantizers round their grid to float16 first
(:meth:`WeightQuantizer.quantize` with ``storage=``) and the codes they choose are the codes
written: dequantizing the file with the ``gguf`` package gives quanta's own weights. Metadata
and tokenizer are copied from the source GGUF, Q/K rows are permuted back to llama.cpp's rotary
layout, the token embedding is stored in the same type (clipping searched, round to nearest) —
in Q8_0 when it is tied to the output head, or in the type a mixed-precision plan chose —,
norms stay F32. Every matrix may have its own type (:mod:`quanta.model.quantize.mixed`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import ConfigError
from quanta.model.formats.weight import BLOCK, BLOCK_TYPES, K_FACTOR

MARK = ("quanta.format", "quanta-gguf/1")  # how quanta recognises a GGUF file it wrote


def _f16(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype="<f2").view(np.uint8)


def pack_blocks(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray, kind: str) -> np.ndarray:
    """Bytes ``(rows, blocks · type_size)`` of ``codes`` (unsigned, ``rows × in``) with one scale
    and zero point per block of 32."""
    rows, n = codes.shape
    if BLOCK_TYPES[kind].block != BLOCK:
        return _pack_q6_k(codes, scales)
    q = codes.reshape(rows, n // BLOCK, BLOCK).astype(np.int16)
    d = _f16(scales.astype(np.float16)[..., None]).reshape(rows, n // BLOCK, 2)
    if kind == "Q8_0":
        body = (q - 128).astype(np.int8).view(np.uint8)
        return np.concatenate([d, body], axis=-1).reshape(rows, -1)
    lo = q & 0xF
    parts = [d]
    if not BLOCK_TYPES[kind].sym:
        m = -(scales.astype(np.float32) * zeros.astype(np.float32))
        parts.append(_f16(m.astype(np.float16)[..., None]).reshape(rows, n // BLOCK, 2))
    if BLOCK_TYPES[kind].bits == 5:  # bit j of a little-endian word: the fifth bit of code j
        qh = ((q >> 4).astype("<u4") << np.arange(BLOCK, dtype="<u4")).sum(-1, dtype="<u4")
        parts.append(qh[..., None].view(np.uint8))
    parts.append((lo[..., :16] | (lo[..., 16:] << 4)).astype(np.uint8))
    return np.concatenate(parts, axis=-1).reshape(rows, -1)


def _pack_q6_k(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Q6_K super-blocks (ggml's ``block_q6_K``): per 256 weights, the low four bits of each
    code (two halves of 128: codes ``l`` and ``l + 64`` share byte ``l``, ``l + 32`` and ``l + 96``
    byte ``l + 32``), the high two bits (four codes ``l + 32k`` per byte, bits ``2k``), the sixteen
    int8 factors, float16 ``d``."""
    rows, n = codes.shape
    t = BLOCK_TYPES["Q6_K"]
    nb = n // t.block
    q = codes.reshape(rows, nb, 2, 4, 32).astype(np.uint8)  # (super-block, half, quarter k, l)
    lo, hi = q & 0xF, q >> 4
    ql = np.concatenate([lo[..., 0, :] | (lo[..., 2, :] << 4), lo[..., 1, :] | (lo[..., 3, :] << 4)], -1)
    qh = hi[..., 0, :] | (hi[..., 1, :] << 2) | (hi[..., 2, :] << 4) | (hi[..., 3, :] << 6)
    s = scales.astype(np.float32).reshape(rows, nb, t.block // t.group)
    d, f = _k_factors(s)
    return np.concatenate([ql.reshape(rows, nb, 128), qh.reshape(rows, nb, 64),
                           f.astype(np.int8).view(np.uint8), _f16(d[..., None]).reshape(rows, nb, 2)],
                          axis=-1).reshape(rows, -1)


def _k_factors(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float16 ``d`` (per super-block) and integer factors (per group) of scales ``s``
    (``(…, groups)``) that :func:`quanta.model.formats.weight.storage_grid` put on the grid: ``d`` is
    the largest scale ÷ 127 (÷ its factor, below 127 only when ``d`` is a float16 subnormal);
    refuses other scales."""
    d = np.zeros(s.shape[:-1], np.float16)
    f = np.zeros(s.shape, np.float32)
    todo = np.ones(s.shape[:-1], bool)
    top = s.max(-1)
    for k in range(K_FACTOR, 0, -1):
        dk = (top / k).astype(np.float16)
        with np.errstate(divide="ignore", invalid="ignore"):  # dk = 0: not taken
            fk = np.rint(s / dk.astype(np.float32)[..., None])
            ok = todo & (dk > 0) & (fk * dk.astype(np.float32)[..., None] == s).all(-1) & \
                (fk >= 1).all(-1) & (fk <= K_FACTOR).all(-1)
        d[ok], f[ok] = dk[ok], fk[ok]
        todo &= ~ok
        if not todo.any():
            return d, f
    raise ConfigError("a K-quant's scales are not on its super-block's grid (quantize with storage=)")


def export(qweights: dict[str, Any], embedding: Any, source: Path | str, dst: Path | str, *,
           kinds: dict[str, str], family: Any, config: dict,
           floats: dict[str, np.ndarray] | None = None, plan: dict | None = None,
           model: Any = None, chat_template: str | None = None) -> Path:
    """Write ``dst``: ``source``'s metadata and tokenizer — a GGUF file's, or, for a Hugging
    Face folder, those :mod:`quanta.model.formats.gguf_hf` makes from its config, tokenizer and
    ``model`` (with ``chat_template``) —, every quantized matrix from
    ``qweights`` (Hugging Face names → :class:`QuantizedWeight`), the embedding ``embedding``.
    kinds: each matrix's block type by the same names, the embedding's under "token_embd".
    family: the source's :class:`~quanta.model.arch.Architecture` (names, the rows llama.cpp
    permutes); config: its Hugging Face config (the head counts of those rows).
    floats: float tensors by Hugging Face parameter name that replace the source's (norms that
    took AWQ's scales), written as float32.
    plan: the command's plan (:meth:`~quanta.model.quantize.plan.QuantPlan.record`), kept as the JSON
    string ``quanta.plan``."""
    floats = floats or {}
    from gguf import GGMLQuantizationType

    from quanta.model.formats.gguf_read import permute
    from quanta.model.formats.gguf_rewrite import rewrite_gguf

    n_heads = family.rope_heads(config)

    def rewrite(name: str, t: Any, arr: np.ndarray) -> tuple[np.ndarray, Any]:
        hf, layer_kind = family.hf_name(name)
        module = "token_embd" if name == "token_embd.weight" else (hf or "").removesuffix(".weight")
        qw = embedding if module == "token_embd" else qweights.get(module)
        if qw is None:
            return (np.ascontiguousarray(floats[hf], np.float32) if hf in floats else arr), None
        data = pack_blocks(qw.codes.numpy(), qw.scales.numpy(),
                           None if qw.zeros is None else qw.zeros.numpy(), kinds[module])
        if layer_kind in n_heads:
            data = permute(data, n_heads[layer_kind])
        return data, GGMLQuantizationType[kinds[module]]

    extra = dict([MARK]) | ({"quanta.plan": json.dumps(plan)} if plan else {})
    if Path(source).is_file():
        return rewrite_gguf(source, dst, rewrite, extra=extra, checksum=True)
    from quanta.model.formats import gguf_hf
    from quanta.model.formats.gguf_rewrite import write_gguf

    fields = gguf_hf.metadata(source, config, family, chat_template)
    stream = ((name, None, arr) for name, arr in gguf_hf.tensors(model, family))
    return write_gguf(dst, family.gguf_arch, fields, stream, rewrite, extra=extra, checksum=True)


def wrote(path: Path | str) -> bool:
    """Whether the GGUF file ``path`` carries quanta's mark (``--force`` replaces only those)."""
    from gguf import GGUFReader

    try:
        f = GGUFReader(path).fields.get(MARK[0])
        return f is not None and f.contents() == MARK[1]
    except (ValueError, OSError, IndexError, KeyError):
        return False
