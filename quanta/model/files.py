"""Quantized models on disk: a folder with ``model.safetensors`` (packed codes, scales, zero
points and the float tensors), ``quant_config.json`` and ``tokenizer.json``. No pickle."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quanta.errors import InputError, OutputError
from quanta.model.qlinear import QuantLinear

FORMAT = "quanta-quantized/1"


def save_quantized(model: nn.Module, tokenizer: Any, out: Path | str, *, report: dict,
                   source: str, force: bool = False, float_dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` (with :class:`QuantLinear` layers) to the folder ``out``, atomically.

    float_dtype: store the parameters that stay float (embeddings, norms, a float head) in this
    dtype (e.g. ``torch.bfloat16``); the quantized layers' buffers are stored as they are.
    """
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists() and not force:
        raise OutputError(f"{out} exists; pass --force to overwrite it")
    if not out.parent.exists():
        raise OutputError(f"{out.parent}: folder does not exist")
    qnames = {n for n, m in model.named_modules() if isinstance(m, QuantLinear)}

    def stored(key: str, v: torch.Tensor) -> torch.Tensor:
        if float_dtype is not None and v.is_floating_point() and key.rpartition(".")[0] not in qnames:
            v = v.to(float_dtype)
        return v.detach().contiguous()

    state = {k: stored(k, v) for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # re-tied on load
    layers = {n: {"in": m.in_features, "padded_in": m.padded_in, "out": m.out_features, "bits": m.bits,
                  "group_size": m.group_size, "method": m.method, "path": m.path,
                  "bias": m.bias is not None}
              for n, m in model.named_modules() if isinstance(m, QuantLinear)}
    cfg = {"format": FORMAT, "source": source, "architecture": type(model).__name__,
           "model_config": model.config.to_dict(), "layers": layers,
           "weight_stats": {k: v for k, v in report.items() if k != "layers"}}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        (tmp / "quant_config.json").write_text(json.dumps(cfg, indent=2, default=str))
        tokenizer.save(str(tmp / "tokenizer.json"))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def load_quantized(folder: Path | str) -> tuple[nn.Module, Any, dict]:
    """Load a folder written by :func:`save_quantized` (needs no original weights)."""
    from safetensors import SafetensorError
    from safetensors.torch import load
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    d = Path(folder)
    try:
        cfg = json.loads((d / "quant_config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{d}: not a quanta model folder ({e})") from None
    if cfg.get("format") != FORMAT:
        raise InputError(f"{d}: unknown format {cfg.get('format')!r}")
    if cfg.get("architecture") != "LlamaForCausalLM":
        raise InputError(f"{d}: architecture {cfg.get('architecture')!r} is not supported")
    try:
        # read into ordinary memory (not a file mapping), so the model's resident memory is
        # its own and a later dtype cast frees what it replaces
        state = load((d / "model.safetensors").read_bytes())
    except (OSError, SafetensorError) as e:
        raise InputError(f"{d / 'model.safetensors'}: cannot read ({e})") from None
    mcfg = LlamaConfig.from_dict(cfg["model_config"])
    with torch.device("meta"):
        model = LlamaForCausalLM(mcfg)
    for name, spec in cfg["layers"].items():
        ql = QuantLinear(spec["in"], spec["out"], bits=spec["bits"], group_size=spec["group_size"],
                         method=spec["method"], path=spec["path"], bias=spec["bias"],
                         padded_in=spec.get("padded_in"))
        for key in [k for k in state if k.startswith(name + ".")]:
            attr = key[len(name) + 1:]
            if attr == "bias":
                ql.bias = nn.Parameter(state.pop(key), requires_grad=False)
            else:
                ql.register_buffer(attr, state.pop(key))
        if spec["path"] == "packed" and "zeros" not in dict(ql.named_buffers()):
            ql.zeros = None
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, ql)
    try:
        res = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:
        raise InputError(f"{d}: tensors do not match the model ({str(e).splitlines()[0]})") from None
    if mcfg.tie_word_embeddings:
        model.tie_weights()
    leftover = [n for n, p in list(model.named_parameters()) + list(model.named_buffers())
                if p.is_meta and "rotary" not in n]
    if leftover or res.unexpected_keys:
        raise InputError(f"{d}: tensor {(leftover or res.unexpected_keys)[0]} does not fit the model")
    # the rotary embedding's buffers are not saved: rebuild that module on the CPU
    rot = model.model.rotary_emb
    model.model.rotary_emb = type(rot)(config=mcfg)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    return model.eval(), tok, cfg
