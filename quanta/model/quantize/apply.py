"""Quantize the Linear layers of a model in place, chosen by name pattern.

Calibration-free quantizers run layer by layer on the weights alone. A quantizer with
``needs_calibration`` gets each layer's :class:`~quanta.model.quantize.quantizers.LayerStats` from the
layer-by-layer engine (:func:`quanta.model.quantize.calibrate.layerwise`): each block sees the inputs the
already-quantized blocks before it produce.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fnmatch import fnmatch
from typing import Any

import torch
from torch import nn

from quanta.model.quantize.awq import prepare_block
from quanta.model.quantize.quantizers import LayerStats, WeightQuantizer, make_quantizer
from quanta.model.reports import QuantizeReport
from quanta.model.runtime.qlinear import QuantLinear
from quanta.progress import Progress

#: by default every Linear but the output head; norms and embeddings are never Linear
DEFAULT_EXCLUDE = ("lm_head",)


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule called ``name`` (dotted path) by ``module``."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def find_targets(model: nn.Module, include: tuple[str, ...],
             exclude: tuple[str, ...]) -> list[tuple[str, nn.Linear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)
            and any(fnmatch(n, p) for p in include) and not any(fnmatch(n, p) for p in exclude)]


def _untie_head(model: nn.Module) -> None:
    lm = getattr(model, "lm_head", None)
    if isinstance(lm, nn.Linear) and getattr(model.config, "tie_word_embeddings", False):
        lm.weight = nn.Parameter(lm.weight.detach().clone(), requires_grad=False)
        model.config.tie_word_embeddings = False


def quantize_model(model: nn.Module, quantizer: WeightQuantizer | str = "rtn", *, bits: int = 4,
                   group_size: int = 128, sym: bool = False, calib: torch.Tensor | None = None,
                   include: tuple[str, ...] = ("*",), exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
                   head: bool = False, progress: Progress | None = None,
                   on_layer: Callable[[str, Any], None] | None = None,
                   plan: Mapping[str, WeightQuantizer] | None = None,
                   embedding: WeightQuantizer | None = None) -> QuantizeReport:
    """Replace matching ``nn.Linear`` layers by :class:`QuantLinear`; returns a report.

    quantizer: a :class:`WeightQuantizer`, or a registered name built with ``bits``,
    ``group_size`` and ``sym``. calib: ``(windows, tokens)`` token ids for quantizers that need
    calibration (run block by block: :mod:`quanta.model.quantize.calibrate`).
    include/exclude: fnmatch patterns on module names (``model.layers.*.mlp.*``).
    head: also quantize the output head (``lm_head``), untying it from the embeddings.
    A layer the settings cannot apply to raises :class:`quanta.errors.ConfigError` naming it.
    ``progress(layers_done, layers_total)``; ``on_layer(name, quantized_weight)`` sees every
    layer's codes and grid (the GGUF export keeps them). plan: a quantizer per layer name
    (mixed precision, :mod:`quanta.model.quantize.mixed`), ``quantizer`` for the layers it does not name.
    embedding: also quantize the token embedding with this quantizer (a tied output head then
    runs on the same codes: :mod:`quanta.model.runtime.qembed`).
    """
    from quanta.errors import ConfigError

    q = make_quantizer(quantizer, bits=bits, group_size=group_size, sym=sym) \
        if isinstance(quantizer, str) else quantizer
    plan = dict(plan or {})
    calibrated = [x for x in (q, *plan.values()) if x.needs_calibration]
    if calibrated and (calib is None or len(calib) == 0):
        raise ConfigError(f"method {calibrated[0].name!r} needs calibration data")
    targets = _resolve_targets(model, include, exclude, head)
    layers: dict[str, dict] = {}

    def replace(block: list[tuple[str, nn.Linear]], stats: dict[str, LayerStats],
                in_block: bool = True) -> None:
        scaled = prepare_block(model, block, stats, lambda n: plan.get(n, q)) if in_block else {}
        for name, lin in block:
            lq = plan.get(name, q)
            qw = lq.quantize(lin.weight.data, stats=stats.get(name), name=name)
            if on_layer:
                on_layer(name, qw)
            ql = QuantLinear.from_quantized(qw, lin.bias.data if lin.bias is not None else None)
            if name in scaled:
                ql.set_input_scale(scaled[name])
            set_submodule(model, name, ql)
            layers[name] = {"bits": lq.bits, "group_size": qw.group_size, "method": lq.name,
                            "sym": lq.sym, "path": ql.path, "in": ql.in_features,
                            "out": ql.out_features, **({"type": lq.storage} if lq.storage else {})}
            if progress:
                progress(len(layers), len(targets))

    if calibrated:
        from quanta.model.quantize.calibrate import block_stats, layerwise

        hessian = any(x.needs_hessian for x in calibrated)
        rest = layerwise(model, targets, torch.as_tensor(calib), replace, hessian=hessian)
        if rest:  # layers outside the blocks (a quantized head): one whole-model pass, no AWQ
            replace(rest, block_stats(model, rest, [x[None] for x in calib], {}, hessian=hessian), False)
    else:
        replace(targets, {})
    if embedding is not None:
        stats = head_stats(model, calib) if embedding.needs_calibration and calib is not None else None
        layers["embedding"] = _quantize_embedding(model, embedding, stats)
    names = sorted({spec["method"] for spec in layers.values()})
    return QuantizeReport(method="+".join(names), layers=layers, **weight_stats(model))


def _resolve_targets(model: nn.Module, include: tuple[str, ...], exclude: tuple[str, ...],
                     head: bool) -> list[tuple[str, nn.Linear]]:
    """The layers to quantize (with ``head``, the output head too, untied from the embedding)."""
    from quanta.errors import ConfigError

    if head:
        exclude = tuple(p for p in exclude if p != "lm_head")
        _untie_head(model)
    targets = find_targets(model, include, exclude)
    if not targets:
        raise ConfigError(f"no Linear layer matches --include {','.join(include)} "
                          f"(minus --exclude {','.join(exclude) or 'nothing'})")
    return targets


@torch.inference_mode()
def head_stats(model: nn.Module, calib: torch.Tensor) -> LayerStats | None:
    """Statistics (with the Hessian) of the output head's inputs — the final norm's outputs —
    over the calibration windows, as the model computes them now (its blocks quantized): what a
    calibrated method rounds a tied embedding with, since as the output head it is the most
    sensitive matrix. None when the head is not tied to the embedding."""
    from quanta.model.quantize.calibrate import block_stats
    from quanta.model.runtime.qembed import ties_head

    if not ties_head(model):
        return None
    windows = [x[None] for x in torch.as_tensor(calib)]
    base = getattr(model, "base_model", model)
    if base is model:  # no decoder of its own to stop at: the head's input by a hook
        return block_stats(model, [("lm_head", model.lm_head)], windows, {}, hessian=True)["lm_head"]
    stats = LayerStats(model.lm_head.in_features, with_hessian=True)
    for x in windows:  # the decoder's last hidden state is the head's input: no logits computed
        stats.add(base(x).last_hidden_state)
    return stats


def _quantize_embedding(model: nn.Module, quantizer: WeightQuantizer,
                        stats: LayerStats | None = None) -> dict:
    """Quantize the token embedding (and a head tied to it; ``stats``: the head's input
    statistics, for a calibrated quantizer); its line of the report."""
    from quanta.model.runtime.qembed import quantize_embedding

    qe, _ = quantize_embedding(model, quantizer, stats)
    return {"bits": qe.bits, "group_size": qe.group_size, "method": qe.method, "sym": quantizer.sym,
            "path": "embedding", "in": qe.embedding_dim, "out": qe.num_embeddings}


def weight_stats(model: nn.Module) -> dict:
    """Weight bytes and bits per weight over the model's matrices (scales included; norms and
    biases counted as stored)."""
    from quanta.model.runtime.qembed import QuantEmbedding

    qbytes = fbytes = qparams = fparams = 0
    seen: set[int] = set()
    tied = tied_head(model)
    for m in model.modules():
        if isinstance(m, QuantLinear) and m is not tied:  # a tied head shares the embedding's codes
            qbytes += m.weight_bytes()
            qparams += m.in_features * m.out_features  # true weights: padding counts as overhead
        if isinstance(m, QuantEmbedding):
            qbytes += m.weight_bytes()
            qparams += m.num_embeddings * m.embedding_dim
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


def tied_head(model: nn.Module) -> nn.Module | None:
    """The output head when it runs on a quantized embedding's codes (counted with it)."""
    from quanta.model.runtime.qembed import QuantEmbedding, ties_head

    return model.lm_head if isinstance(model.get_input_embeddings(), QuantEmbedding) and ties_head(model) \
        else None


def count_by_path(model: nn.Module) -> dict[str, int]:
    """Quantized layers per forward path (int4pack, int8pack, packed; a tied head not counted)."""
    out: dict[str, int] = {}
    tied = tied_head(model)
    for m in model.modules():
        if isinstance(m, QuantLinear) and m is not tied:
            out[m.path] = out.get(m.path, 0) + 1
    return out


__all__ = ["DEFAULT_EXCLUDE", "count_by_path", "find_targets", "quantize_model",
           "set_submodule", "weight_stats"]
