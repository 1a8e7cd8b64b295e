"""Quantized models on disk: a folder with ``model.safetensors`` (packed codes, scales, zero
points and the float tensors), ``quant_config.json`` and ``tokenizer.json``. No pickle."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quanta.errors import ConfigError, InputError
from quanta.model.formats import folder_v1, safetensors_out
from quanta.model.formats.folder_config import CONFIG, FORMAT, FORMAT_V1, read_config
from quanta.model.formats.integrity import FOLDER_KEY, check_folder, folder_digest
from quanta.model.formats.spill import Parked, Spill
from quanta.model.quantize.apply import set_submodule
from quanta.model.runtime.qembed import QuantEmbedding, tie_head
from quanta.model.runtime.qlinear import QuantLinear
from quanta.outputs import atomic_output, check_only_ours, check_output, umask

# version 2 (FORMAT) is written; folders of version 1 (PyTorch's int4 packing stored as is) still
# load (:mod:`quanta.model.formats.folder_v1`)


#: the files a quanta model folder holds
WRITES = ("model.safetensors", CONFIG, "tokenizer.json")


def owns(folder: Path | str) -> bool:
    """True when ``folder`` is a model folder quanta wrote (its config names quanta's format);
    ``--force`` replaces only such folders, and refuses one that also holds other files."""
    try:
        cfg = json.loads((Path(folder) / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    if not (isinstance(cfg, dict) and cfg.get("format") in (FORMAT, FORMAT_V1)):
        return False
    check_only_ours(folder, WRITES)
    return True


def save_quantized(model: nn.Module, tokenizer: Any, out: Path | str, *, report: Any,
                   source: str, force: bool = False, float_dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` (with :class:`QuantLinear` layers) to the folder ``out``, atomically; an
    existing ``out`` is replaced only with ``force`` and only if quanta wrote it."""
    out = check_output(out, force=force, inputs=(Path(source),), folder=True, owns=owns)
    with atomic_output(out, folder=True) as tmp:
        write_folder(model, tokenizer, tmp, report=report, source=source, float_dtype=float_dtype)
    return out


def write_folder(model: nn.Module, tokenizer: Any, out: Path | str, *, report: Any, source: str,
                 float_dtype: torch.dtype | None = None, extra: dict | None = None,
                 spill: Spill | None = None) -> Path:
    """Write the model's files into the (existing, empty) folder ``out``.

    float_dtype: store the parameters that stay float (norms, a float embedding or head) in this
    dtype (e.g. ``torch.bfloat16``); the buffers of quantized layers and of a quantized embedding
    are stored as they are (their scales are float16 or bfloat16 already). spill: where layers
    parked their tensors (:meth:`QuantLinear.park`); they are copied from it, never loaded whole.
    """
    from quanta.model.sources import stream

    out = Path(out)
    out.mkdir(exist_ok=True)
    stats = report.to_json() if hasattr(report, "to_json") else dict(report)
    qnames = {n for n, m in model.named_modules() if isinstance(m, QuantLinear | QuantEmbedding)}

    def stored(key: str, v: torch.Tensor) -> Any:
        if v.is_meta:  # a streamed model's tensor not read yet: read slice by slice as it is written
            lazy = stream.deferred(model, key, float_dtype or v.dtype)
            if lazy is None:
                raise RuntimeError(f"{key}: a tensor of the model was never read")
            return lazy
        if float_dtype is not None and v.is_floating_point() and key.rpartition(".")[0] not in qnames:
            v = v.to(float_dtype)
        return v.detach().contiguous()

    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    state = {k: stored(k, v) for k, v in model.state_dict().items()
             if k.rpartition(".")[0] not in qnames and not (tied and k.startswith("lm_head."))}
    layers = {}
    for n, m in model.named_modules():
        if not isinstance(m, QuantLinear | QuantEmbedding) or (tied and n == "lm_head"):
            continue  # (the tied head is rebuilt on load from the embedding's codes)
        state.update({f"{n}.{k}": v if isinstance(v, Parked) else v.contiguous()
                      for k, v in m.disk_state().items()})
        if isinstance(m, QuantLinear):
            layers[n] = {**m.spec(), "bias": m.bias is not None}
    emb = model.get_input_embeddings()
    cfg = {"format": FORMAT, "source": source, "architecture": type(model).__name__,
           "model_config": model.config.to_dict(), "layers": layers,
           **({"embedding": emb.spec()} if isinstance(emb, QuantEmbedding) else {}),
           "weight_stats": {k: v for k, v in stats.items() if k != "layers"}, **(extra or {})}
    hashes = safetensors_out.write(out / "model.safetensors", state, metadata={"format": FORMAT}, spill=spill)
    # the checksum covers the tensors and the config as it will be read back
    cfg[FOLDER_KEY] = folder_digest(hashes, json.loads(json.dumps(cfg, default=str)))
    (out / CONFIG).write_text(json.dumps(cfg, indent=2, default=str))
    tokenizer.save(str(out / "tokenizer.json"))
    for f in out.iterdir():  # safetensors writes its file private: every file gets the umask's mode
        os.chmod(f, 0o666 & ~umask())
    return out


def _read_state(d: Path, cfg: dict, verify: bool) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    where = d / "model.safetensors"
    try:
        # read into ordinary memory (not a file mapping), so the model's resident memory is
        # its own and a later dtype cast frees what it replaces
        raw = where.read_bytes()
        if verify:
            check_folder(raw, cfg, str(where))
        return load(raw)
    except (OSError, SafetensorError) as e:
        raise InputError(f"{where}: cannot read ({e})") from None


def _install_layers(model: nn.Module, layers: Any, state: dict, path: str | None = None) -> None:
    """Build each :class:`QuantLinear` from its spec and its folder tensors (moved out of
    ``state``), the kernel path chosen now (:mod:`quanta.model.formats.stored`)."""
    from quanta.model.formats import stored

    if not isinstance(layers, dict):
        raise InputError("quant_config.json: 'layers' is not an object")
    modules = dict(model.named_modules())
    for name, raw in layers.items():
        if not isinstance(modules.get(name), nn.Linear):
            raise InputError(f"layer {name}: no such Linear layer in the model")
        spec = stored.check_spec(raw, f"layer {name}")
        mine = {k[len(name) + 1:]: state.pop(k) for k in [k for k in state if k.startswith(name + ".")]}
        bias, scale = mine.pop("bias", None), mine.pop("input_scale", None)
        if bool(raw.get("bias")) != (bias is not None) or \
                (bias is not None and tuple(bias.shape) != (spec["out"],)):
            raise InputError(f"layer {name}: bias of shape {None if bias is None else tuple(bias.shape)} "
                             f"does not fit out {spec['out']}")
        if scale is not None and tuple(scale.shape) != (spec["in"],):
            raise InputError(f"layer {name}: input scale of shape {tuple(scale.shape)} does not fit in "
                             f"{spec['in']}")
        ql = QuantLinear.from_quantized(stored.restore(spec, mine, f"layer {name}"), bias, path, keep=False)
        if scale is not None:
            ql.set_input_scale(scale)
        set_submodule(model, name, ql)


def _install_embedding(model: nn.Module, spec: Any, state: dict) -> QuantEmbedding | None:
    """Build the quantized token embedding from its spec, its tensors moved out of ``state``."""
    from quanta.model.formats import stored

    if spec is None:
        return None
    name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    spec = stored.check_spec(spec, "embedding")
    mine = {k: state.pop(f"{name}.{k}") for k in ("codes", "scales", "zeros") if f"{name}.{k}" in state}
    state.pop(f"{name}.weight", None)
    try:
        qe = QuantEmbedding.from_spec(spec, mine, "embedding")
    except ConfigError as e:
        raise InputError(f"embedding: {e}") from None
    model.set_input_embeddings(qe)
    return qe


def load_quantized(folder: Path | str, *, lite: bool = False, verify: bool = True, dense: bool = False,
                   ) -> tuple[nn.Module, Any, dict]:
    """Load a folder written by :func:`save_quantized` (needs no original weights); ``verify``:
    check the tensors and specs against the folder's checksum (:mod:`quanta.model.formats.integrity`).

    lite: where the configuration allows, a :class:`~quanta.model.runtime.lite.LiteLlama` (no
    transformers import; it runs only on the lean decode path) instead of transformers' model.
    dense: every layer (a tied head too; format 2) multiplies its weight dequantized exactly, in float32
    (QuantLinear's "packed" path) — the weights-only reference; PyTorch's int4 and int8 kernels,
    chosen otherwise, round the activations and scales to bfloat16."""
    from quanta.model.arch import for_hf
    from quanta.model.runtime import lite as lite_model
    from quanta.model.sources.experts import split_experts
    from quanta.model.sources.reading import check_declared_size, read_tokenizer

    d = Path(folder)
    cfg = read_config(d)
    check_declared_size(d, cfg["model_config"])
    state = _read_state(d, cfg, verify)
    lite = lite and lite_model.supported(cfg["model_config"])
    try:
        model_class, config_class = (None, None) if lite else for_hf(cfg["architecture"]).hf_classes()
        mcfg = cfg["model_config"] if lite else config_class.from_dict(cfg["model_config"])
        with torch.device("meta"):  # no memory: every tensor comes from the file, checked first
            model = lite_model.LiteLlama(mcfg) if lite else split_experts(model_class(mcfg))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{d}: malformed model_config ({e})") from None
    v1 = cfg["format"] == FORMAT_V1
    path = "packed" if dense else None
    if v1:
        folder_v1.install_layers(model, cfg["layers"], state)
    else:
        _install_layers(model, cfg["layers"], state, path)
    qe = (folder_v1.install_embedding if v1 else _install_embedding)(model, cfg.get("embedding"), state)
    try:
        res = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:
        raise InputError(f"{d}: tensors do not match the model ({str(e).splitlines()[0]})") from None
    if model.config.tie_word_embeddings:
        tie_head(model, qe, path) if qe is not None else model.tie_weights()
    leftover = [n for n, p in list(model.named_parameters()) + list(model.named_buffers())
                if p.is_meta and "rotary" not in n and not n.endswith("embed_scale")]
    if leftover or res.unexpected_keys:
        raise InputError(f"{d}: tensor {(leftover or res.unexpected_keys)[0]} does not fit the model")
    # the rotary embedding's buffers are not saved: rebuild that module on the CPU; so is a
    # scaled embedding's scale (Gemma's √hidden)
    model.model.rotary_emb = type(model.model.rotary_emb)(config=model.config)
    emb = model.get_input_embeddings()
    if getattr(emb, "embed_scale", None) is not None and emb.embed_scale.is_meta:
        emb.register_buffer("embed_scale", torch.tensor(float(emb.scalar_embed_scale)), persistent=False)
    return model.eval(), read_tokenizer(d / "tokenizer.json"), cfg

