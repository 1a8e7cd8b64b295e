"""A quanta folder run by the compiled kernels (:mod:`quanta.model.runtime.native`), no PyTorch.

A folder's weights are kernel-neutral (:mod:`quanta.model.formats.stored`: bit-packed codes,
float16 scales and zero points per group); on loading, each one is repacked into blocks the
kernels read, exactly — ``d·q + m`` gives the folder's ``scale · (code − zero)`` to the bit
(``_native.grid_blocks``: a symmetric grid as Q4_0 or Q8_0, an asymmetric one as quanta's
T_QG4/T_QG8 blocks of 32 weights with a float16 step and a float32 offset; IQ4_NL's levels in
groups of 32, ``scale · level[code]``, as IQ4_NL blocks). The folder's file is
only mapped while that happens; resident memory is then the repacked blocks (about the folder's
size: 4.5 bits per weight for symmetric 4-bit and IQ4_NL groups, 5.5 for asymmetric 4-bit and
symmetric 5-bit groups, 8.5 for wider grids and the 5–8-bit rows).

The Hugging Face names map to the GGUF kinds the engine knows through the architecture table
(:meth:`quanta.model.arch.Architecture.gguf_name`), so the same checks run as for a GGUF file; a
folder's rows are in transformers' order, so its rotary embedding turns halves. What this path
does not run — another architecture, a codebook other than IQ4_NL's in groups of 32, AWQ's
input scales, rotary scaling other than linear or Llama 3's, a width that is not a multiple of
32 — is :class:`Unsupported` with the reason, and the caller loads the PyTorch model instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import InputError
from quanta.model.runtime.native import ARCHS, NativeConfig, NativeLM, TensorView, Unsupported, base_inv_freq

#: safetensors dtypes of a folder's float tensors → how to read them as float32
_FLOATS = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def _native_config(arch: Any, mc: dict) -> NativeConfig:
    """The engine's configuration from a Hugging Face ``config.json`` dict."""
    from quanta.model.arch import Architecture

    n = Architecture.sizes(mc)
    window = 0
    if mc.get("use_sliding_window") or (arch.name == "mistral" and mc.get("sliding_window")):
        if arch.name != "mistral":
            raise Unsupported(f"{arch.name}'s sliding window on some layers")
        window = int(mc["sliding_window"])
    if float(mc.get("partial_rotary_factor", 1.0) or 1.0) != 1.0:
        raise Unsupported("a partial rotary embedding")
    return NativeConfig(
        arch.gguf_arch, n["vocab"], n["hidden"], int(mc["num_hidden_layers"]), int(mc["num_attention_heads"]),
        n["kv"] // n["head"], n["head"], n["inter"], int(mc.get("max_position_embeddings") or 2048),
        float(mc.get("rms_norm_eps", 1e-6)), mc.get("bos_token_id"), mc.get("eos_token_id"), window)


def _inv_freq(mc: dict, head_dim: int) -> np.ndarray:
    """The rotary inverse frequencies of a Hugging Face config (default, linear or Llama 3
    scaling; Llama 3's factors as llama.cpp applies them, :mod:`quanta.model.formats.gguf_rope`)."""
    from quanta.model.formats import gguf_rope

    params, kind, theta = gguf_rope.rope_params(mc), gguf_rope.rope_type(mc), gguf_rope.rope_theta(mc)
    inv = base_inv_freq(theta, head_dim)
    if kind == "linear":
        return (inv / np.float32(params["factor"])).astype(np.float32)
    if kind == "llama3":
        return (inv / gguf_rope.factors(params, theta, head_dim)).astype(np.float32)
    if kind != "default":
        raise Unsupported(f"rotary scaling {kind!r}")
    return inv


class _Folder:
    """The tensors of a folder's ``model.safetensors``, mapped (nothing read until asked for)."""

    def __init__(self, d: Path) -> None:
        from quanta.model.sources.reading import safetensors_entries

        self.entries = safetensors_entries(d)
        if any(Path(e["file"]).name != "model.safetensors" for e in self.entries.values()):
            raise InputError(f"{d}: a quanta folder holds one model.safetensors")
        self.map = np.memmap(d / "model.safetensors", dtype=np.uint8, mode="r")

    def raw(self, name: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        e = self.entries.get(name)
        if e is None:
            raise InputError(f"model.safetensors has no tensor {name}")
        if (e["dtype"], e["shape"]) != (dtype, shape):
            raise InputError(f"{name}: {e['dtype']} {e['shape']}, the config implies {dtype} {shape}")
        return self.map[e["start"]:e["stop"]]

    def floats(self, name: str) -> np.ndarray:
        """A float tensor as float32 (a copy: the engine keeps it)."""
        e = self.entries.get(name)
        if e is None or e["dtype"] not in _FLOATS:
            raise InputError(f"{name}: no float tensor of that name in model.safetensors")
        a = self.raw(name, e["dtype"], e["shape"]).view(_FLOATS[e["dtype"]])
        if e["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return np.array(a.reshape(e["shape"]), dtype=np.float32)


def _repack(files: _Folder, module: str, spec: dict) -> tuple[int, np.ndarray, int]:
    """A quantized weight (its folder tensors named ``module.*``) as (kernel type, blocks, inputs)."""
    from quanta.model.formats.folder_config import layout
    from quanta.model.formats.weight import default_zero
    from quanta.model.runtime._dispatch import kernels

    cols, g = spec["in"], spec["group_size"]
    shapes = layout(spec)
    packed, scales = (files.raw(f"{module}.{k}", "U8" if k == "codes" else "F16", shapes[k][0])
                      for k in ("codes", "scales"))
    zeros = None if spec["sym"] else files.raw(f"{module}.zeros", "F16", shapes["zeros"][0])
    zero = default_zero(spec["bits"])
    rows, width = spec["out"], spec["padded_in"]
    groups = shapes["scales"][0][1]
    kind, blocks = kernels.grid_blocks(
        np.ascontiguousarray(packed), spec["bits"], rows, width, cols,
        np.ascontiguousarray(scales.view(np.uint16).reshape(rows, groups)),
        None if zeros is None else np.ascontiguousarray(zeros.view(np.uint16).reshape(rows, groups)),
        0 if groups == 1 else g, zero, bool(spec["levels"]))
    return kind, blocks, cols


#: a quantized weight's folder tensors (``module.<name>``; its bias is a float tensor)
_OWN = ("codes", "scales", "zeros", "codebook", "input_scale")


def _runs(module: str, spec: dict, files: _Folder) -> dict:
    """``spec``, when the kernels run its grid (else :class:`Unsupported` with the reason): a
    codebook only when it is IQ4_NL's levels in groups of 32 (its 64 bytes read to tell)."""
    cols, g = spec["in"], spec["group_size"]
    if spec["levels"]:
        from quanta.core.codebook import IQ4_NL

        book = files.raw(f"{module}.codebook", "F32", (spec["levels"],)) \
            if spec["levels"] == len(IQ4_NL) and g == 32 else None
        if book is None or not np.array_equal(book.view(np.float32), IQ4_NL):
            raise Unsupported(f"{module} rounds onto a codebook other than IQ4_NL's in groups of 32")
    if cols % 32 or (g != spec["padded_in"] and g % 32):
        raise Unsupported(f"{module}: {cols} inputs in groups of {g} (multiples of 32 needed)")
    if f"{module}.input_scale" in files.entries:
        raise Unsupported(f"{module} divides its input by AWQ's scales")
    return spec


def _plan(d: Path, cfg: dict, arch: Any, files: _Folder) -> tuple[list[tuple[str, dict]], list[str]]:
    """Every decision before a weight is read: the quantized weights ``(module, spec)`` and the
    float tensors, each checked against what this path runs (:class:`Unsupported`) and against
    the file's header (InputError) — from the config and the safetensors header alone (and a
    codebook's 64 bytes)."""
    from quanta.model.formats.folder_config import check_spec

    layers = cfg.get("layers")
    if not isinstance(layers, dict):
        raise InputError(f"{d}: quant_config.json: 'layers' is not an object")
    specs = dict(layers)
    if cfg.get("embedding") is not None:
        specs[arch.embedding] = cfg["embedding"]
    quantized = [(m, _runs(m, check_spec(raw, f"layer {m}"), files)) for m, raw in specs.items()]
    owned = {f"{m}.{k}" for m in specs for k in _OWN}
    floats = [n for n in files.entries if n not in owned]
    for name in floats:
        e = files.entries[name]
        if e["dtype"] not in _FLOATS:
            raise InputError(f"{name}: no float tensor of that name in model.safetensors")
        if len(e["shape"]) == 2 and e["shape"][1] % 32:
            raise Unsupported(f"{name}: {e['shape'][1]} columns (a multiple of 32 needed)")
    names = [f"{m}.weight" for m, _ in quantized] + floats
    gguf = [arch.gguf_name(n) for n in names]
    if None in gguf:
        raise Unsupported(f"{names[gguf.index(None)]} has no place in the {arch.name} model this path runs")
    if "token_embd.weight" not in gguf:
        raise Unsupported("no token embedding")
    if cfg["model_config"].get("tie_word_embeddings", True) is False and "output.weight" not in gguf:
        raise InputError(f"{d}: the model's head is not tied to its embedding, and the folder has none")
    return quantized, floats


def _view(arch: Any, name: str, kind: int, blocks: np.ndarray, cols: int) -> tuple[str, TensorView]:
    """The Hugging Face tensor ``name`` (stored as ``kind``) under its GGUF name (planned)."""
    gguf = arch.gguf_name(name)
    shape = (cols, blocks.shape[0]) if blocks.ndim == 2 else (cols,)
    return gguf, TensorView(gguf, kind, shape, blocks.nbytes, blocks)


def _tensors(arch: Any, files: _Folder, quantized: list[tuple[str, dict]], floats: list[str]) -> dict:
    """Every planned tensor under its GGUF name: the quantized ones repacked, the float ones as
    float32 (norms, biases, a float embedding or head)."""
    out: dict[str, TensorView] = {}
    for module, spec in quantized:
        gguf, view = _view(arch, f"{module}.weight", *_repack(files, module, spec))
        out[gguf] = view
    for name in floats:
        v = files.floats(name)
        blocks = v.view(np.uint8).reshape(v.shape[0], -1) if v.ndim == 2 else v.reshape(-1)
        gguf, view = _view(arch, name, 0, blocks, v.shape[-1] if v.ndim == 2 else v.size)
        out[gguf] = view
    return out


def open_folder(folder: Path | str, threads: int | None = None, verify: bool = True) -> NativeLM:
    """The quanta folder ``folder`` as a :class:`~quanta.model.runtime.native.NativeLM`
    (:class:`Unsupported` with the reason where this path does not run it; InputError for a
    folder that is damaged; ``verify``: its checksum checked first)."""
    from quanta.model.arch import for_hf
    from quanta.model.formats.folder_config import FORMAT, read_config
    from quanta.model.sources.reading import check_declared_size

    d = Path(folder)
    cfg = read_config(d)
    if cfg["format"] != FORMAT:
        raise Unsupported(f"folder format {cfg['format']} (PyTorch's int4 packing)")
    arch = for_hf(cfg["architecture"])
    if arch.gguf_arch not in ARCHS or not arch.causal:
        raise Unsupported(f"architecture {arch.name} runs on the PyTorch path (native: {', '.join(ARCHS)})")
    mc = cfg["model_config"]
    check_declared_size(d, mc)
    try:
        config = _native_config(arch, mc)
        inv = _inv_freq(mc, config.head_dim)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{d}: malformed model_config ({e})") from None
    files = _Folder(d)
    quantized, floats = _plan(d, cfg, arch, files)  # everything decided before a byte is hashed or read
    if verify:
        from quanta.model.formats.integrity import check_folder

        check_folder(memoryview(files.map), cfg, str(d / "model.safetensors"))
    tensors = _tensors(arch, files, quantized, floats)
    del files  # the map: every tensor kept is a copy
    lm = NativeLM(tensors, config, inv, d, neox=True, threads=threads)
    lm.metadata = {"architecture": arch.name, "quant_config": cfg}
    return lm


def load_folder(folder: Path, verify: bool = True) -> tuple[tuple[Any, Any] | None, str]:
    """``((NativeLM, tokenizer), "")`` for a quanta folder the kernels run, else ``(None, why)``."""
    from quanta.model.sources.reading import read_tokenizer

    try:
        lm = open_folder(folder, verify=verify)
    except Unsupported as e:
        return None, str(e)
    return (lm, read_tokenizer(Path(folder) / "tokenizer.json")), ""


__all__ = ["load_folder", "open_folder"]
