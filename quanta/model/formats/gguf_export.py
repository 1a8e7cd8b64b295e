"""Export a quantized model as a GGUF file that llama.cpp runs, carrying quanta's chosen values.

The grids map onto llama.cpp's block types (blocks of 32 along each row):

* Q8_0: ``w = d·q``, ``q`` int8 — quanta's 8-bit symmetric grid (zero point 128);
* Q4_0: ``w = d·(q − 8)``, ``q`` in 0..15 — the 4-bit symmetric grid (zero point 8);
* Q4_1: ``w = d·q + m`` — the 4-bit asymmetric grid (``m = −d·z``);
* Q5_0 / Q5_1: the same at 5 bits (``q − 16``; the fifth bit of each code in a 32-bit word);
* IQ4_NL: ``w = d·levels[q]``, 16 non-uniform levels (:data:`quanta.core.codebook.IQ4_NL`);
* the super-block types Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS (256 weights along rows whose
  width allows it): each group's scale an integer factor of a float16 ``d`` — and, for Q2_K, Q4_K
  and Q5_K, its offset a factor of a float16 ``dmin`` — (:mod:`quanta.model.formats.kquant`);
* the lattice types IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S (same rows): vectors of 8 or 4
  weights on a grid of points, signs apart (:mod:`quanta.model.formats.lattice`).

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

from quanta.model.formats import kquant, lattice
from quanta.model.formats.weight import BLOCK, BLOCK_TYPES

MARK = ("quanta.format", "quanta-gguf/1")  # how quanta recognises a GGUF file it wrote


#: weights packed at a time (rows are packed independently: the same bytes in row chunks, and
#: the packers' int16/float temporaries stay bounded — a 128,256-row embedding made 2 GB of them
#: whole; chunks of 2 M weights keep them near 50 MB and in cache: Q6_K packs 262 M weights in
#: 0.93 s against 1.74 s in chunks of 16 M, 2026-12-07)
PACK_WEIGHTS = 1 << 21


def pack_blocks(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray, kind: str) -> np.ndarray:
    """Bytes ``(rows, blocks · type_size)`` of ``codes`` (unsigned, ``rows × in``) with one scale
    and zero point per block of 32 (in chunks of rows of at most :data:`PACK_WEIGHTS` weights)."""
    rows, n = codes.shape
    step = max(1, PACK_WEIGHTS // max(n, 1))
    if rows <= step:
        return _pack_rows(codes, scales, zeros, kind)
    out = None
    for a in range(0, rows, step):
        part = _pack_rows(codes[a:a + step], scales[a:a + step], None if zeros is None else zeros[a:a + step],
                          kind)
        if out is None:
            out = np.empty((rows, part.shape[1]), np.uint8)
        out[a:a + len(part)] = part
    return out


def _pack_rows(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray, kind: str) -> np.ndarray:
    rows, n = codes.shape
    t = BLOCK_TYPES[kind]
    if t.factors:
        return kquant.pack(codes, scales, zeros, kind, t.factors, t.min_top)
    if t.lattice:
        return lattice.pack(codes, scales, kind)
    q = codes.reshape(rows, n // BLOCK, BLOCK).astype(np.int16)
    d = kquant.f16_bytes(scales.astype(np.float16)).reshape(rows, n // BLOCK, 2)
    if kind == "Q8_0":
        body = (q - 128).astype(np.int8).view(np.uint8)
        return np.concatenate([d, body], axis=-1).reshape(rows, -1)
    lo = q & 0xF
    parts = [d]
    if not BLOCK_TYPES[kind].sym:
        m = -(scales.astype(np.float32) * zeros.astype(np.float32))
        parts.append(kquant.f16_bytes(m.astype(np.float16)).reshape(rows, n // BLOCK, 2))
    if BLOCK_TYPES[kind].bits == 5:  # bit j of a little-endian word: the fifth bit of code j
        qh = ((q >> 4).astype("<u4") << np.arange(BLOCK, dtype="<u4")).sum(-1, dtype="<u4")
        parts.append(qh[..., None].view(np.uint8))
    parts.append((lo[..., :16] | (lo[..., 16:] << 4)).astype(np.uint8))
    return np.concatenate(parts, axis=-1).reshape(rows, -1)


def matrix_blocks(qw: Any, kind: str, layer_kind: str | None, heads: dict) -> np.ndarray:
    """A quantized matrix's GGUF bytes: its blocks in ``kind``, Q/K rows permuted to llama.cpp's
    rotary layout (``heads``: the head counts by tensor kind, :meth:`Architecture.rope_heads`)."""
    from quanta.model.formats.gguf_read import permute

    zeros = None if qw.zeros is None else qw.zeros.numpy()
    data = pack_blocks(qw.codes.numpy(), qw.scales.numpy(), zeros, kind)
    return permute(data, heads[layer_kind]) if layer_kind in heads else data


class PackedLayers(dict):
    """``on_layer`` for a GGUF output: each quantized layer packed into its blocks the moment it
    is made and parked in ``spill`` (name → :class:`~quanta.model.formats.spill.Parked`), so
    that neither its codes nor the model's layer stay in memory; ``kind_of(name)``: its type."""

    def __init__(self, spill: Any, family: Any, config: dict, kind_of: Any) -> None:
        super().__init__()
        self.spill, self.family, self.kind_of = spill, family, kind_of
        self.heads = family.rope_heads(config)

    def __call__(self, name: str, qw: Any) -> None:
        _, layer_kind = self.family.hf_name(self.family.gguf_name(f"{name}.weight"))
        self[name] = self.spill.put(matrix_blocks(qw, self.kind_of(name), layer_kind, self.heads))


def export(qweights: dict[str, Any], embedding: Any, source: Path | str, dst: Path | str, *,
           kinds: dict[str, str], family: Any, config: dict,
           floats: dict[str, np.ndarray] | None = None, plan: dict | None = None,
           model: Any = None, chat_template: str | None = None, spill: Any = None) -> Path:
    """Write ``dst``: ``source``'s metadata and tokenizer — a GGUF file's, or, for a Hugging
    Face folder, those :mod:`quanta.model.formats.gguf_hf` makes from its config, tokenizer and
    ``model`` (with ``chat_template``) —, every quantized matrix from
    ``qweights`` (Hugging Face names → :class:`QuantizedWeight`, or its blocks parked in
    ``spill`` by :class:`PackedLayers`), the embedding ``embedding``.
    kinds: each matrix's block type by the same names, the embedding's under "token_embd".
    family: the source's :class:`~quanta.model.arch.Architecture` (names, the rows llama.cpp
    permutes); config: its Hugging Face config (the head counts of those rows).
    floats: float tensors by Hugging Face parameter name that replace the source's (norms that
    took AWQ's scales), written as float32.
    plan: the command's plan (:meth:`~quanta.model.quantize.plan.QuantPlan.record`), kept as the JSON
    string ``quanta.plan``."""
    floats = floats or {}
    from gguf import GGMLQuantizationType

    from quanta.model.formats.gguf_rewrite import rewrite_gguf
    from quanta.model.formats.spill import Parked

    n_heads = family.rope_heads(config)
    n_experts = family.sizes(config)["experts"] if family.experts else 0

    def rewrite(name: str, t: Any, arr: np.ndarray) -> tuple[Any, Any]:
        hf, layer_kind = family.hf_name(name)
        module = "token_embd" if name == "token_embd.weight" else (hf or "").removesuffix(".weight")
        if "*" in module:  # a stack of experts: each one's blocks, one after the other
            return _stack(module, arr, n_experts, qweights, kinds, spill)
        qw = embedding if module == "token_embd" else qweights.get(module)
        if qw is None:
            if hf not in floats:
                return arr, None
            shift = family.norm_offset if family.role(module) == "norm" else 0.0  # Gemma: 1 + weight
            return np.ascontiguousarray(floats[hf] + np.float32(shift), np.float32), None
        data = qw if isinstance(qw, Parked) else matrix_blocks(qw, kinds[module], layer_kind, n_heads)
        return data, GGMLQuantizationType[kinds[module]]

    extra = dict([MARK]) | ({"quanta.plan": json.dumps(plan)} if plan else {})
    if Path(source).is_file():
        return rewrite_gguf(source, dst, rewrite, extra=extra, checksum=True, spill=spill)
    from quanta.model.formats import gguf_hf
    from quanta.model.formats.gguf_rewrite import write_gguf

    fields = gguf_hf.metadata(source, config, family, chat_template)
    stream = ((name, None, arr) for name, arr in gguf_hf.tensors(model, family))
    return write_gguf(dst, family.gguf_arch, fields, stream, rewrite, extra=extra, checksum=True, spill=spill)


def _stack(module: str, arr: np.ndarray | None, n: int, qweights: dict[str, Any], kinds: dict[str, str],
           spill: Any) -> tuple[Any, Any]:
    """A GGUF stack of ``n`` experts (``module`` names them with ``*``; ``arr`` the float stack,
    experts × out × in, or None): the experts' blocks in order, of the one type they all take — or the
    float stack when none is quantized. Parked blocks are read back one expert at a time and
    the stack parked again; in memory at most one stack's blocks."""
    from gguf import GGMLQuantizationType

    from quanta.model.formats.spill import Parked

    members = [module.replace("*", str(e)) for e in range(n)]
    got = [qweights.get(m) for m in members]
    if all(q is None for q in got):
        return arr, None
    types = {kinds.get(m) for m in members}
    if None in got or len(types) != 1:
        raise ValueError(f"{module}: a GGUF stack of experts needs every expert quantized in one type, "
                         f"got {sorted(map(str, types))}")
    kind = types.pop()
    parts = [spill.read(q) if isinstance(q, Parked) else matrix_blocks(q, kind, None, {}) for q in got]
    data = np.stack(parts)
    return (spill.put(data) if spill is not None else data), GGMLQuantizationType[kind]


def wrote(path: Path | str) -> bool:
    """Whether the GGUF file ``path`` carries quanta's mark (``--force`` replaces only those)."""
    from gguf import GGUFReader

    try:
        f = GGUFReader(path).fields.get(MARK[0])
        return f is not None and f.contents() == MARK[1]
    except (ValueError, OSError, IndexError, KeyError):
        return False
