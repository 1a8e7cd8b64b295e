"""Export a quantized model as a GGUF file that llama.cpp runs, carrying quanta's chosen values.

The grids map onto llama.cpp's block types (blocks of 32 along each row):

* Q8_0: ``w = d·q``, ``q`` int8 — quanta's 8-bit symmetric grid (zero point 128);
* Q4_0: ``w = d·(q − 8)``, ``q`` in 0..15 — the 4-bit symmetric grid (zero point 8);
* Q4_1: ``w = d·q + m`` — the 4-bit asymmetric grid (``m = −d·z``).

``d`` and ``m`` are stored as float16, so the quantizers round their grid to float16 first
(:meth:`WeightQuantizer.quantize` with ``storage=``) and the codes they choose are the codes
written: dequantizing the file with the ``gguf`` package gives quanta's own weights. Metadata
and tokenizer are copied from the source GGUF, Q/K rows are permuted back to llama.cpp's rotary
layout, the token embedding is stored in the same type (round to nearest) — in Q8_0 when it is
tied to the output head —, norms stay F32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import ConfigError

BLOCK = 32
MARK = ("quanta.format", "quanta-gguf/1")  # how quanta recognises a GGUF file it wrote
TYPES = {(8, True): "Q8_0", (4, True): "Q4_0", (4, False): "Q4_1"}


def gguf_type(bits: int, sym: bool, group_size: int) -> str:
    """The GGML type for a quanta grid, or a :class:`ConfigError` naming what is supported."""
    kind = TYPES.get((bits, sym or bits == 8))
    if kind is None or group_size != BLOCK:
        raise ConfigError("--format gguf writes Q8_0 (--bits 8), Q4_0 (--bits 4 --sym) or Q4_1 "
                          f"(--bits 4) in groups of {BLOCK}; got {bits} bits in groups of {group_size}")
    return kind


def _f16(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype="<f2").view(np.uint8)


def pack_blocks(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray, kind: str) -> np.ndarray:
    """Bytes ``(rows, blocks · type_size)`` of ``codes`` (unsigned, ``rows × in``) with one scale
    and zero point per block of 32."""
    rows, n = codes.shape
    q = codes.reshape(rows, n // BLOCK, BLOCK).astype(np.int16)
    d = _f16(scales.astype(np.float16)[..., None]).reshape(rows, n // BLOCK, 2)
    if kind == "Q8_0":
        body = (q - 128).astype(np.int8).view(np.uint8)
        return np.concatenate([d, body], axis=-1).reshape(rows, -1)
    nib = (q[..., :16] | (q[..., 16:] << 4)).astype(np.uint8)
    if kind == "Q4_0":
        return np.concatenate([d, nib], axis=-1).reshape(rows, -1)
    m = _f16((-(scales.astype(np.float32) * zeros.astype(np.float32))).astype(np.float16)[..., None])
    return np.concatenate([d, m.reshape(rows, n // BLOCK, 2), nib], axis=-1).reshape(rows, -1)


def storage_grid(scale: Any, zero: Any, kind: str) -> tuple[Any, Any]:
    """The grid as the file stores it: ``d`` rounded to float16 (never to zero), and for Q4_1 the
    zero point that the float16 ``m = −d·z`` implies."""
    import torch

    s = scale.to(torch.float16).to(torch.float32)
    s = torch.where(s > 0, s, torch.full_like(s, 2.0**-24))
    if kind != "Q4_1":
        return s, zero
    m = (-s * zero).to(torch.float16).to(torch.float32)
    return s, -m / s


def export(qweights: dict[str, Any], embedding: Any, source: Path | str, dst: Path | str, *,
           kind: str, heads: tuple[int, int], embedding_kind: str | None = None) -> Path:
    """Write ``dst``: ``source``'s metadata and tokenizer, every quantized matrix from
    ``qweights`` (Hugging Face names → :class:`QuantizedWeight`), the embedding ``embedding``.
    heads: (attention heads, key/value heads), for llama.cpp's Q/K row order."""
    from gguf import GGMLQuantizationType

    from quanta.model.gguf_load import _hf_name, permute
    from quanta.model.gguf_write import rewrite_gguf

    n_heads = {"attn_q": heads[0], "attn_k": heads[1]}

    def rewrite(name: str, t: Any, arr: np.ndarray) -> tuple[np.ndarray, Any]:
        hf, layer_kind = _hf_name(name)
        module = (hf or "").removesuffix(".weight")
        is_emb = name == "token_embd.weight"
        qw = embedding if is_emb else qweights.get(module)
        if qw is None:
            return arr, None
        typ = (embedding_kind or kind) if is_emb else kind
        data = pack_blocks(qw.codes.numpy(), qw.scales.numpy(),
                           None if qw.zeros is None else qw.zeros.numpy(), typ)
        if layer_kind in ("attn_q", "attn_k"):
            data = permute(data, n_heads[layer_kind])
        return data, GGMLQuantizationType[typ]

    return rewrite_gguf(source, dst, rewrite, extra=dict([MARK]))


def wrote(path: Path | str) -> bool:
    """Whether the GGUF file ``path`` carries quanta's mark (``--force`` replaces only those)."""
    from gguf import GGUFReader

    try:
        f = GGUFReader(path).fields.get(MARK[0])
        return f is not None and f.contents() == MARK[1]
    except (ValueError, OSError, IndexError, KeyError):
        return False
