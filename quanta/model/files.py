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
from quanta.model.apply import set_submodule
from quanta.model.integrity import FOLDER_KEY, check_folder, folder_digest
from quanta.model.qembed import QuantEmbedding, tie_head
from quanta.model.qlinear import QuantLinear
from quanta.outputs import atomic_output, check_only_ours, check_output, umask

FORMAT = "quanta-quantized/1"
CONFIG = "quant_config.json"


#: the files a quanta model folder holds
WRITES = ("model.safetensors", CONFIG, "tokenizer.json")


def owns(folder: Path | str) -> bool:
    """True when ``folder`` is a model folder quanta wrote (its config names quanta's format);
    ``--force`` replaces only such folders, and refuses one that also holds other files."""
    try:
        cfg = json.loads((Path(folder) / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    if not (isinstance(cfg, dict) and cfg.get("format") == FORMAT):
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
                 float_dtype: torch.dtype | None = None, extra: dict | None = None) -> Path:
    """Write the model's files into the (existing, empty) folder ``out``.

    float_dtype: store the parameters that stay float (norms, a float embedding or head) in this
    dtype (e.g. ``torch.bfloat16``); the buffers of quantized layers and of a quantized embedding
    are stored as they are (their scales are float16 or bfloat16 already).
    """
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(exist_ok=True)
    stats = report.to_json() if hasattr(report, "to_json") else dict(report)
    qnames = {n for n, m in model.named_modules() if isinstance(m, QuantLinear | QuantEmbedding)}

    def stored(key: str, v: torch.Tensor) -> torch.Tensor:
        if float_dtype is not None and v.is_floating_point() and key.rpartition(".")[0] not in qnames:
            v = v.to(float_dtype)
        return v.detach().contiguous()

    state = {k: stored(k, v) for k, v in model.state_dict().items()}
    for n, m in model.named_modules():  # narrow int8-kernel rows keep their packed width
        if isinstance(m, QuantLinear) and m.path == "int8pack" and m.bits < 8:
            state.pop(f"{n}.w_int8")
            state.update({f"{n}.{k}": v.contiguous() for k, v in m.disk_state().items()})
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    if tied:  # re-tied on load (a quantized head is rebuilt from the embedding's codes)
        state = {k: v for k, v in state.items() if not k.startswith("lm_head.")}
    layers = {n: {"in": m.in_features, "padded_in": m.padded_in, "out": m.out_features, "bits": m.bits,
                  "group_size": m.group_size, "method": m.method, "path": m.path,
                  "bias": m.bias is not None}
              for n, m in model.named_modules()
              if isinstance(m, QuantLinear) and not (tied and n == "lm_head")}
    emb = model.get_input_embeddings()
    cfg = {"format": FORMAT, "source": source, "architecture": type(model).__name__,
           "model_config": model.config.to_dict(), "layers": layers,
           **({"embedding": emb.spec()} if isinstance(emb, QuantEmbedding) else {}),
           "weight_stats": {k: v for k, v in stats.items() if k != "layers"}, **(extra or {})}
    # the checksum covers the tensors and the config as it will be read back
    cfg[FOLDER_KEY] = folder_digest(state, json.loads(json.dumps(cfg, default=str)))
    save_file(state, str(out / "model.safetensors"), metadata={"format": FORMAT})
    (out / CONFIG).write_text(json.dumps(cfg, indent=2, default=str))
    tokenizer.save(str(out / "tokenizer.json"))
    for f in out.iterdir():  # safetensors writes its file private: every file gets the umask's mode
        os.chmod(f, 0o666 & ~umask())
    return out


def _read_config(d: Path) -> dict:
    from quanta.model.sources import read_json

    cfg = read_json(d / CONFIG)
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise InputError(f"{d}: unknown format {cfg.get('format') if isinstance(cfg, dict) else None!r}")
    if cfg.get("architecture") != "LlamaForCausalLM":
        raise InputError(f"{d}: architecture {cfg.get('architecture')!r} is not supported")
    return cfg


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


_PATHS = ("int4pack", "int8pack", "packed")


def _check_spec(name: str, spec: Any, state: dict) -> None:
    """Refuse a layer spec that disagrees with its tensors, before anything is allocated."""
    from quanta.core.packing import packed_size

    if not isinstance(spec, dict):
        raise InputError(f"layer {name}: spec is not an object")
    try:
        inp, pad, out = int(spec["in"]), int(spec.get("padded_in") or spec["in"]), int(spec["out"])
        bits, g, path = int(spec["bits"]), int(spec["group_size"]), spec["path"]
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"layer {name}: malformed spec ({e})") from None
    if path not in _PATHS or not 1 <= bits <= 8 or g < 1 or pad % g or not 0 < inp <= pad or out < 1:
        raise InputError(f"layer {name}: inconsistent spec (in {inp}, padded {pad}, out {out}, "
                         f"bits {bits}, group {g}, path {path!r})")
    scale_key = "scales_zeros" if path == "int4pack" else "scales"
    have = {k[len(name) + 1:]: tuple(v.shape) for k, v in state.items() if k.startswith(name + ".")}
    expect = {"packed": (packed_size(out * pad, bits),)} if path == "packed" else {}
    if path == "int8pack":  # fewer than 8 bits: stored packed, widened on load
        expect = {"w_int8": (out, pad), "scales": (out,)} if bits == 8 else \
            {"packed": (packed_size(out * pad, bits),), "scales": (out,)}
    elif path == "packed":
        expect["scales"] = (out, pad // g)
    else:  # int4pack: the group size must match the stored scales (a changed spec is refused)
        expect["scales_zeros"] = (pad // g, out, 2)
    if scale_key not in have or any(have.get(k) != v for k, v in expect.items()):
        raise InputError(f"layer {name}: tensors {have} do not fit the spec {spec}")
    if "input_scale" in have and have["input_scale"] != (inp,):
        raise InputError(f"layer {name}: input scale of shape {have['input_scale']} does not fit in {inp}")
    if spec.get("bias") and have.get("bias") != (out,):
        raise InputError(f"layer {name}: bias of shape {have.get('bias')} does not fit out {out}")


def _install_layers(model: nn.Module, layers: dict, state: dict) -> None:
    """Build each :class:`QuantLinear` from its spec and move its tensors out of ``state``."""
    if not isinstance(layers, dict):
        raise InputError("quant_config.json: 'layers' is not an object")
    modules = dict(model.named_modules())
    for name, spec in layers.items():
        if not isinstance(modules.get(name), nn.Linear):
            raise InputError(f"layer {name}: no such Linear layer in the model")
        _check_spec(name, spec, state)
        ql = QuantLinear(spec["in"], spec["out"], bits=spec["bits"], group_size=spec["group_size"],
                         method=spec["method"], path=spec["path"], bias=spec["bias"],
                         padded_in=spec.get("padded_in"))
        for key in [k for k in state if k.startswith(name + ".")]:
            attr = key[len(name) + 1:]
            if attr == "bias":
                ql.bias = nn.Parameter(state.pop(key), requires_grad=False)
            elif attr == "packed" and ql.path == "int8pack":
                ql.widen(state.pop(key))
            else:
                ql.register_buffer(attr, state.pop(key))
        set_submodule(model, name, ql)


def _install_embedding(model: nn.Module, spec: Any, state: dict) -> QuantEmbedding | None:
    """Build the quantized token embedding from its spec, its tensors moved out of ``state``."""
    from quanta.core.packing import packed_size

    if spec is None:
        return None
    name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    try:
        num, dim, pad = int(spec["num"]), int(spec["dim"]), int(spec["padded_dim"])
        bits, g = int(spec["bits"]), int(spec["group_size"])
        qe = QuantEmbedding(num, dim, bits=bits, group_size=g, padded_dim=pad, method=str(spec["method"]))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"embedding: malformed spec ({e})") from None
    except ConfigError as e:
        raise InputError(str(e)) from None
    expect = {"packed": (packed_size(num * pad, bits),), "scales": (num, pad // g), "zeros": (num, pad // g)}
    have = {k: tuple(state[f"{name}.{k}"].shape) for k in expect if f"{name}.{k}" in state}
    if have != expect or not 1 <= bits <= 8:
        raise InputError(f"embedding: tensors {have} do not fit the spec {spec}")
    for k in expect:
        qe.register_buffer(k, state.pop(f"{name}.{k}"))
    state.pop(f"{name}.weight", None)
    model.set_input_embeddings(qe)
    return qe


def load_quantized(folder: Path | str, *, lite: bool = False, verify: bool = True,
                   ) -> tuple[nn.Module, Any, dict]:
    """Load a folder written by :func:`save_quantized` (needs no original weights); ``verify``:
    check the tensors and specs against the folder's checksum (:mod:`quanta.model.integrity`).

    lite: where the configuration allows, a :class:`~quanta.model.lite.LiteLlama` (no
    transformers import; it runs only on the lean decode path) instead of transformers' model."""
    from quanta.model import lite as lite_model
    from quanta.model.sources import check_declared_size, read_tokenizer

    d = Path(folder)
    cfg = _read_config(d)
    if not isinstance(cfg.get("model_config"), dict):
        raise InputError(f"{d}: quant_config.json has no model_config object")
    check_declared_size(d, cfg["model_config"])
    state = _read_state(d, cfg, verify)
    lite = lite and lite_model.supported(cfg["model_config"])
    try:
        mcfg = cfg["model_config"] if lite else _hf_config(cfg["model_config"])
        with torch.device("meta"):  # no memory: every tensor comes from the file, checked first
            model = lite_model.LiteLlama(mcfg) if lite else _hf_model(mcfg)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{d}: malformed model_config ({e})") from None
    _install_layers(model, cfg["layers"], state)
    qe = _install_embedding(model, cfg.get("embedding"), state)
    try:
        res = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:
        raise InputError(f"{d}: tensors do not match the model ({str(e).splitlines()[0]})") from None
    if model.config.tie_word_embeddings:
        tie_head(model, qe) if qe is not None else model.tie_weights()
    leftover = [n for n, p in list(model.named_parameters()) + list(model.named_buffers())
                if p.is_meta and "rotary" not in n]
    if leftover or res.unexpected_keys:
        raise InputError(f"{d}: tensor {(leftover or res.unexpected_keys)[0]} does not fit the model")
    # the rotary embedding's buffers are not saved: rebuild that module on the CPU
    model.model.rotary_emb = type(model.model.rotary_emb)(config=model.config)
    return model.eval(), read_tokenizer(d / "tokenizer.json"), cfg


def _hf_config(d: dict) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig.from_dict(d)


def _hf_model(cfg: Any) -> nn.Module:
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(cfg)
