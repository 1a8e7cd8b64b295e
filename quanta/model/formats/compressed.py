"""The compressed-tensors folder (``--format compressed-tensors``): what llm-compressor writes for
weight-only integer schemes (W4A16, W8A16, …), which transformers loads with the
``compressed-tensors`` package and vLLM serves.

Each quantized Linear ``X`` is stored as ``X.weight_packed`` (int32: its codes, offset to
unsigned, packed densely — 32 consecutive codes fill exactly ``bits`` words, code ``i`` at bit
``i · bits`` —), ``X.weight_scale`` (one scale per group of inputs, or per row for one group a
row: the "channel" strategy), ``X.weight_shape`` (its (out, in)) and, for an asymmetric grid,
``X.weight_zero_point`` (the integer zero points, packed the same way along the rows). A quanta
grid is already this: a symmetric grid's codes are ``q + 2^(bits−1)`` with the weight
``scale · q``, and an asymmetric grid with integer zero points is ``scale · (q − z)``. Everything
else (norms, the embedding, the head, biases) stays float. ``config.json`` gains the
``quantization_config`` that names the scheme and lists the float modules under ``ignore``.

Nothing here imports ``compressed_tensors``: it is the tests' oracle, not a dependency.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import ConfigError

FORMAT = "pack-quantized"
#: the config.json key that marks a compressed-tensors folder quanta wrote
MARK = "quanta_compressed_tensors"
#: the files such a folder holds
WRITES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json")


def owns(folder: Path | str) -> bool:
    """True when ``folder`` is a compressed-tensors folder quanta wrote (its config.json carries
    :data:`MARK`); ``--force`` replaces only such folders, and refuses one holding other files."""
    from quanta.outputs import check_only_ours

    try:
        cfg = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    if not (isinstance(cfg, dict) and cfg.get(MARK) == FORMAT):
        return False
    check_only_ours(folder, WRITES)
    return True


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned ``codes`` (``(rows, n)``, each below ``2**bits``) packed densely into int32 along
    the last axis: ``ceil(n · bits / 32)`` words a row, code ``i`` at bit ``i · bits`` of the row.
    That is :func:`quanta.core.packing.pack`'s little-endian bit stream, each row padded to whole
    groups of 32 codes (``bits`` words each) and cut back to the words its codes reach."""
    from quanta.core.packing import pack as pack_bits

    codes = np.asarray(codes)
    rows, n = codes.shape
    padded = np.zeros((rows, -(-n // 32) * 32), dtype=np.int64)
    padded[:, :n] = codes
    words = pack_bits(padded, bits).view("<i4").reshape(rows, -1)
    return np.ascontiguousarray(words[:, : math.ceil(n * bits / 32)]).astype(np.int32)


def nbytes(rows: int, cols: int, bits: int, group_size: int, sym: bool, scale_bytes: int = 2) -> int:
    """The bytes of one layer's stored tensors (packed codes, scales, shape, zero points)."""
    groups = 1 if group_size in (0, cols) else cols // group_size
    size = rows * math.ceil(cols * bits / 32) * 4 + rows * groups * scale_bytes + 16
    if not sym:
        size += math.ceil(rows * bits / 32) * groups * 4
    return size


def _scheme(qw: Any) -> dict:
    channel = qw.group_size in (0, qw.in_features) or qw.scales.shape[1] == 1
    return {"num_bits": qw.bits, "type": "int", "symmetric": bool(qw.sym), "dynamic": False,
            "strategy": "channel" if channel else "group", "group_size": None if channel else qw.group_size,
            "actorder": None, "block_structure": None, "observer": "minmax", "observer_kwargs": {}}


def layer_tensors(name: str, qw: Any, scale_dtype: Any) -> dict:
    """The stored tensors of one quantized layer (see the module docstring)."""
    import torch

    if qw.codebook is not None:
        raise ConfigError(f"{name}: a codebook grid cannot be written as compressed-tensors")
    if qw.codes.shape[1] != qw.in_features:
        raise ConfigError(f"{name}: padded inputs ({qw.in_features} → {qw.codes.shape[1]}) cannot be "
                          "written as compressed-tensors")
    out = {f"{name}.weight_packed": torch.from_numpy(pack(qw.codes.numpy(), qw.bits)),
           f"{name}.weight_scale": qw.scales.to(scale_dtype).contiguous(),
           f"{name}.weight_shape": torch.tensor([qw.codes.shape[0], qw.in_features])}
    if not qw.sym:
        zeros = qw.zeros.float()
        if not torch.equal(zeros, zeros.round()):
            raise ConfigError(f"{name}: fractional zero points cannot be written as compressed-tensors "
                              "(use --sym, or a method with integer zero points)")
        z = zeros.round().numpy().astype(np.int64)  # unsigned, as the codes are
        out[f"{name}.weight_zero_point"] = torch.from_numpy(pack(z.T, qw.bits).T.copy())
    return out


def write(model: Any, kept: dict[str, Any], tokenizer: Any, out: Path | str, *, float_dtype: Any,
          chat_template: str | None = None) -> Path:
    """Write the folder ``out`` (existing, empty): ``model``'s float tensors in ``float_dtype``,
    each layer of ``kept`` (module name → QuantizedWeight) packed, ``config.json`` with the
    ``quantization_config``, and the tokenizer."""
    import torch
    from safetensors.torch import save_file

    from quanta.model.runtime.qlinear import QuantLinear

    out = Path(out)
    out.mkdir(exist_ok=True)
    quantized = {n for n, m in model.named_modules() if isinstance(m, QuantLinear)}
    if set(kept) != quantized:
        raise ConfigError("compressed-tensors: every quantized layer needs its codes")
    for n in sorted(quantized):
        if getattr(model.get_submodule(n), "input_scale", None) is not None:
            raise ConfigError(f"{n}: an explicit input scale (AWQ with nowhere to fold it) cannot be "
                              "written as compressed-tensors")
    state = {}
    for key, v in model.state_dict().items():
        module, _, param = key.rpartition(".")
        if module in quantized and param != "bias":
            continue
        if getattr(model.config, "tie_word_embeddings", False) and key == "lm_head.weight":
            continue
        state[key] = (v.to(float_dtype) if v.is_floating_point() else v).detach().contiguous()
    schemes: dict[str, list[str]] = {}
    scheme_of: dict[str, dict] = {}
    for name in sorted(kept):
        state.update(layer_tensors(name, kept[name], float_dtype))
        sch = _scheme(kept[name])
        key = json.dumps(sch, sort_keys=True)
        schemes.setdefault(key, []).append(name)
        scheme_of[key] = sch
    floats = sorted(n for n, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and n not in quantized)
    cfg = model.config.to_dict()
    cfg["architectures"] = [type(model).__name__]
    cfg["torch_dtype"] = str(float_dtype).removeprefix("torch.")
    cfg[MARK] = FORMAT  # --force replaces only folders quanta wrote
    one = len(schemes) == 1
    cfg["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": FORMAT, "quantization_status": "compressed",
        "config_groups": {f"group_{i}": {"targets": ["Linear"] if one else names, "weights": scheme_of[k],
                                         "input_activations": None, "output_activations": None}
                          for i, (k, names) in enumerate(schemes.items())},
        "ignore": floats, "kv_cache_scheme": None, "global_compression_ratio": None}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
    tokenizer.save(str(out / "tokenizer.json"))
    tk = {"tokenizer_class": "PreTrainedTokenizerFast"}
    if chat_template:
        tk["chat_template"] = chat_template
    (out / "tokenizer_config.json").write_text(json.dumps(tk, indent=2))
    return out
