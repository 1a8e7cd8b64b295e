"""Quantize the Linear layers of a model in place, chosen by name pattern."""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch

from torch import nn

from quanta.model.qlinear import QuantLinear
from quanta.model.quantizers import quantize_weight

#: by default every Linear but the output head; norms and embeddings are never Linear
DEFAULT_EXCLUDE = ("lm_head",)


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def quantize_model(model: nn.Module, *, bits: int = 4, group_size: int = 128, method: str = "rtn",
                   sym: bool = False, include: tuple[str, ...] = ("*",),
                   exclude: tuple[str, ...] = DEFAULT_EXCLUDE, head: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Replace matching ``nn.Linear`` layers by :class:`QuantLinear`; returns a report.

    include/exclude: fnmatch patterns on module names (``model.layers.*.mlp.*``).
    head: also quantize the output head (``lm_head``), untying it from the embeddings.
    A layer the settings cannot apply to raises :class:`quanta.errors.ConfigError` naming it.
    """
    if head:
        exclude = tuple(p for p in exclude if p != "lm_head")
        lm = getattr(model, "lm_head", None)
        if isinstance(lm, nn.Linear) and getattr(model.config, "tie_word_embeddings", False):
            lm.weight = nn.Parameter(lm.weight.detach().clone(), requires_grad=False)
            model.config.tie_word_embeddings = False
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)
               and any(fnmatch(n, p) for p in include) and not any(fnmatch(n, p) for p in exclude)]
    layers = {}
    for i, (name, lin) in enumerate(targets):
        qw = quantize_weight(lin.weight.data, bits=bits, group_size=group_size, method=method,
                             sym=sym, name=name)
        ql = QuantLinear.from_quantized(qw, lin.bias.data if lin.bias is not None else None)
        _set(model, name, ql)
        layers[name] = {"bits": bits, "group_size": qw.group_size, "method": method,
                        "sym": sym, "path": ql.path, "in": ql.in_features, "out": ql.out_features}
        if progress:
            progress(i + 1, len(targets))
    return {"layers": layers, **weight_stats(model)}


def weight_stats(model: nn.Module) -> dict:
    """Weight bytes and bits per weight over the model's matrices (scales included; norms and
    biases counted as stored)."""
    qbytes = fbytes = qparams = fparams = 0
    seen: set[int] = set()
    for m in model.modules():
        if isinstance(m, QuantLinear):
            qbytes += m.weight_bytes()
            qparams += m.in_features * m.out_features  # true weights: padding counts as overhead
        for p in m.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            fbytes += p.numel() * p.element_size()
            fparams += p.numel()
    params = qparams + fparams
    return {"weight_bytes": qbytes + fbytes, "params": params,
            "bits_per_weight": 8.0 * (qbytes + fbytes) / max(params, 1),
            "quantized_params": qparams,
            "bits_per_quantized_weight": 8.0 * qbytes / qparams if qparams else None}


def count_by_path(model: nn.Module) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in model.modules():
        if isinstance(m, QuantLinear):
            out[m.path] = out.get(m.path, 0) + 1
    return out


__all__ = ["DEFAULT_EXCLUDE", "count_by_path", "quantize_model", "weight_stats"]
