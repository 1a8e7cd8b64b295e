"""A quantized weight as a quanta folder stores it (folder format 2): kernel-neutral tensors.

The tensors and their layout are :data:`quanta.model.formats.weight.FOLDER_TENSORS` — the codes
bit-packed row-major, float16 scales, float16 zero points for an asymmetric grid, a codebook's
levels — described by a *spec* (the folder's ``quant_config.json`` keeps one per weight):

``{"out": rows, "in": true inputs, "padded_in": stored width, "bits", "group_size", "sym",
"method", "levels"}``

:func:`store` writes a :class:`~quanta.model.quantize.quantizers.QuantizedWeight` as those tensors,
:func:`restore` checks them against the spec and gives the weight back; the kernel that runs it
(:class:`~quanta.model.runtime.qlinear.QuantLinear`: PyTorch's int4 or int8 packing, or unpacking on the
fly) is chosen when the folder is loaded, not when it is written. :func:`canonical` rounds a
fresh weight's scales and zero points to what the folder keeps, so that a model measured right
after quantization computes exactly what the loaded folder will.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from quanta.core.packing import pack, unpack_torch
from quanta.errors import InputError
from quanta.model.formats.folder_config import check_spec, layout, nbytes
from quanta.model.formats.weight import default_zero
from quanta.model.quantize.quantizers import QuantizedWeight


def canonical(qw: QuantizedWeight) -> QuantizedWeight:
    """``qw`` with its scales and zero points as the folder stores them (through float16), and
    a symmetric grid's zero points exactly ``default_zero(bits)``."""
    zeros = qw.zeros
    if zeros is not None:
        zeros = torch.full_like(qw.scales, default_zero(qw.bits), dtype=torch.float32) if qw.sym \
            else zeros.to(torch.float16).to(torch.float32)
    return QuantizedWeight(qw.codes, qw.scales.to(torch.float16).to(torch.float32), zeros, qw.bits,
                           qw.group_size, qw.method, qw.in_features, qw.codebook, qw.sym)


def spec_of(qw: QuantizedWeight) -> dict[str, Any]:
    """The spec of ``qw`` that the folder's config records."""
    rows, width = qw.codes.shape
    return {"out": rows, "in": qw.in_features, "padded_in": width, "bits": qw.bits,
            "group_size": qw.group_size, "sym": bool(qw.sym or qw.zeros is None), "method": qw.method,
            "levels": 0 if qw.codebook is None else len(qw.codebook)}


def store(qw: QuantizedWeight) -> dict[str, torch.Tensor]:
    """The folder tensors of ``qw`` (names as :data:`~quanta.model.formats.weight.FOLDER_TENSORS`)."""
    spec = spec_of(qw)
    out = {"codes": torch.from_numpy(pack(qw.codes.numpy().astype(np.uint8).ravel(), qw.bits)),
           "scales": qw.scales.to(torch.float16).contiguous()}
    if not spec["sym"]:
        out["zeros"] = qw.zeros.to(torch.float16).contiguous()
    if spec["levels"]:
        out["codebook"] = torch.tensor(np.asarray(qw.codebook, np.float32))  # a copy of its own
    return out


def restore(spec: dict, tensors: dict[str, torch.Tensor], where: str) -> QuantizedWeight:
    """The weight a spec and its folder tensors hold, the tensors' shapes and dtypes checked
    against the spec first (:class:`InputError` naming ``where`` if they disagree)."""
    expect = layout(spec)
    have = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in tensors.items()}
    if have != expect:
        raise InputError(f"{where}: tensors {have} do not fit the spec {spec}")
    rows, width, bits = spec["out"], spec["padded_in"], spec["bits"]
    codes = unpack_torch(tensors["codes"], bits, rows * width).view(rows, width)
    scales = tensors["scales"].to(torch.float32)
    zeros = None if spec["levels"] else (
        torch.full_like(scales, default_zero(bits)) if spec["sym"] else tensors["zeros"].to(torch.float32))
    book = tensors["codebook"].numpy().copy() if spec["levels"] else None
    return QuantizedWeight(codes, scales, zeros, bits, spec["group_size"], spec["method"], spec["in"], book,
                           spec["sym"])


__all__ = ["canonical", "check_spec", "layout", "nbytes", "restore", "spec_of", "store"]
