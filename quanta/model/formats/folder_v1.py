"""Folders of format 1 (``quanta-quantized/1``, written before 2026-12-06): each layer's
tensors as its kernel held them — PyTorch's int4 packing and bfloat16 scale/zero pairs
("int4pack"), an int8 matrix or narrower codes packed ("int8pack"), bit-packed codes with
float16 scales and zero points ("packed") — and the embedding's codes, scales and zero points.
They load as they always did; quanta writes format 2 (:mod:`quanta.model.formats.stored`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from quanta.errors import ConfigError, InputError
from quanta.model.formats.folder_config import FORMAT_V1
from quanta.model.quantize.apply import set_submodule
from quanta.model.runtime.qembed import QuantEmbedding
from quanta.model.runtime.qlinear import QuantLinear

FORMAT = FORMAT_V1

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


def install_layers(model: nn.Module, layers: dict, state: dict) -> None:
    """Build each :class:`QuantLinear` from its spec and move its tensors out of ``state``."""
    if not isinstance(layers, dict):
        raise InputError("quant_config.json: 'layers' is not an object")
    modules = dict(model.named_modules())
    for name, spec in layers.items():
        if not isinstance(modules.get(name), nn.Linear):
            raise InputError(f"layer {name}: no such Linear layer in the model")
        _check_spec(name, spec, state)
        sym = spec["path"] == "int8pack" or (spec["path"] == "packed" and f"{name}.zeros" not in state)
        levels = state[f"{name}.codebook"].numel() if f"{name}.codebook" in state else 0
        ql = QuantLinear(spec["in"], spec["out"], bits=spec["bits"], group_size=spec["group_size"],
                         method=spec["method"], path=spec["path"], bias=spec["bias"],
                         padded_in=spec.get("padded_in"), sym=sym, levels=levels)
        for key in [k for k in state if k.startswith(name + ".")]:
            attr = key[len(name) + 1:]
            if attr == "bias":
                ql.bias = nn.Parameter(state.pop(key), requires_grad=False)
            elif attr == "packed" and ql.path == "int8pack":
                ql.widen(state.pop(key))
            else:
                ql.register_buffer(attr, state.pop(key))
        set_submodule(model, name, ql)


def install_embedding(model: nn.Module, spec: Any, state: dict) -> QuantEmbedding | None:
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
