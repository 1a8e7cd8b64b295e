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

from quanta.errors import ConfigError
from quanta.model.quantize.awq import prepare_block
from quanta.model.quantize.quantizers import LayerStats, WeightQuantizer, make_quantizer
from quanta.model.reports import QuantizeReport
from quanta.model.runtime.qembed import ties_head
from quanta.model.runtime.qlinear import QuantLinear
from quanta.model.sources import stream
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
                   embedding: WeightQuantizer | None = None,
                   on_head: Callable[[LayerStats], None] | None = None, work: Any = None,
                   runnable: bool = True, shelve: Callable[[QuantLinear], None] | None = None,
                   ) -> QuantizeReport:
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
    runs on the same codes: :mod:`quanta.model.runtime.qembed`). on_head(stats): the tied output
    head's input statistics, gathered from the last quantized block's outputs when the layers are
    calibrated (what :func:`head_stats` would measure in a second pass). work: a
    :class:`~quanta.model.quantize.resume.WorkFolder` — each finished block is kept there, and
    the blocks an interrupted run finished are taken from it instead of quantized again.
    runnable: False for a model that will only be written — each finished block's layers keep
    only what the file stores (:meth:`QuantLinear.compact`), which halves their memory, or
    what ``shelve(layer)`` leaves of it: parked in a spill file (:meth:`QuantLinear.park`) or
    nothing (:meth:`QuantLinear.drop`, when ``on_layer`` kept what the file needs) — memory then
    holds the block in hand, not the finished model.
    """
    q = make_quantizer(quantizer, bits=bits, group_size=group_size, sym=sym) \
        if isinstance(quantizer, str) else quantizer
    plan = dict(plan or {})
    calibrated = [x for x in (q, *plan.values()) if x.needs_calibration]
    if calibrated and (calib is None or len(calib) == 0):
        raise ConfigError(f"method {calibrated[0].name!r} needs calibration data")
    targets = _resolve_targets(model, include, exclude, head)
    run = _Installer(model, q, plan, on_layer, progress, len(targets), keep=work is not None,
                     compact=not runnable and not calibrated, shelve=shelve)
    head_in = None
    if calibrated:
        wants_head = ties_head(model) and (on_head is not None or (
            embedding is not None and embedding.needs_calibration))
        head_in = _calibrated(run, targets, torch.as_tensor(calib), any(x.needs_hessian for x in calibrated),
                              wants_head, work, runnable)
    else:
        run.replace(targets, {})
    if head_in is not None and on_head:
        on_head(head_in)
    layers = run.layers
    if embedding is not None:
        stats = None
        if embedding.needs_calibration and calib is not None:
            stats = head_in if head_in is not None else head_stats(model, calib)
        layers["embedding"] = _quantize_embedding(model, embedding, stats, runnable)
    names = sorted({spec["method"] for spec in layers.values()})
    return QuantizeReport(method="+".join(names), layers=layers, **weight_stats(model))


class _Installer:
    """Puts each quantized layer into the model as a :class:`QuantLinear` and records it: the
    report's line, ``on_layer``, progress, and (``keep``) the block in hand for a work folder;
    ``compact``: the layer keeps only what a file stores (nothing will run it)."""

    def __init__(self, model: nn.Module, q: WeightQuantizer, plan: dict[str, WeightQuantizer],
                 on_layer: Callable[[str, Any], None] | None, progress: Progress | None, total: int, *,
                 keep: bool, compact: bool = False, shelve: Callable[[QuantLinear], None] | None = None,
                 ) -> None:
        self.model, self.q, self.plan, self.on_layer = model, q, plan, on_layer
        self.progress, self.total, self.keep, self.compact = progress, total, keep, compact
        #: what a finished layer that nothing will run keeps (default: its folder tensors)
        self.shelve = shelve or QuantLinear.compact
        self.layers: dict[str, dict] = {}
        self.finished: dict[str, tuple] = {}  # the block in hand's layers (for the work folder)

    def install(self, name: str, qw: Any, bias: torch.Tensor | None, scale: torch.Tensor | None) -> None:
        lq = self.plan.get(name, self.q)
        if self.on_layer is not None:
            self.on_layer(name, qw)
        ql = QuantLinear.from_quantized(qw, bias)
        if scale is not None:
            ql.set_input_scale(scale)
        set_submodule(self.model, name, ql)
        if self.compact:  # nothing runs it: only what the file stores is kept
            self.shelve(ql)
        self.layers[name] = {"bits": lq.bits, "group_size": qw.group_size, "method": lq.name,
                             "sym": lq.sym, "path": ql.path, "in": ql.in_features,
                             "out": ql.out_features, **({"type": lq.storage} if lq.storage else {})}
        if self.keep:
            self.finished[name] = (qw, bias, scale)
        if self.progress:
            self.progress(len(self.layers), self.total)

    def replace(self, block: list[tuple[str, nn.Linear]], stats: dict[str, LayerStats],
                in_block: bool = True) -> None:
        """Quantize the layers ``block`` (AWQ's scales first, inside a block) and install them."""
        model = self.model
        scaled = prepare_block(model, block, stats, lambda n: self.plan.get(n, self.q)) if in_block else {}
        for name, lin in block:
            stream.load(model, name)
            q = self.plan.get(name, self.q)
            # rows are rounded independently: without a Hessian to factor once, a large matrix
            # goes in row slices, which bounds the clipping search's temporaries
            qw = q.quantize(lin.weight.data, stats=stats.get(name), name=name) if q.needs_hessian else \
                stream.quantize_rows(q, model, lin, stats=stats.get(name), name=name)
            self.install(name, qw, lin.bias.data if lin.bias is not None else None, scaled.get(name))
            stream.release(model, lin)  # a streamed model's float weight is done with


def _calibrated(run: _Installer, targets: list[tuple[str, nn.Linear]], calib: torch.Tensor, hessian: bool,
                wants_head: bool, work: Any, runnable: bool = True) -> LayerStats | None:
    """The calibrated layers, block by block (:func:`~quanta.model.quantize.calibrate.layerwise`):
    blocks an interrupted run finished taken from ``work``, each finished block kept there (and,
    not ``runnable``, compacted — unless layers outside the blocks need a whole-model pass); the
    layers outside the blocks last: an untied output head alone from the last block's outputs
    through the final norm, row slice by row slice (:func:`_head_by_rows`), anything else by one
    whole-model pass. Returns the tied head's input statistics (``wants_head``)."""
    from quanta.model.quantize.calibrate import block_stats, find_blocks, layerwise

    model = run.model
    start, resumed = work.progress() if work is not None else (0, None)
    prefix, blocks = find_blocks(model)
    outside = [n for n, _ in targets if not n.startswith(prefix + ".")]
    head_last = outside == ["lm_head"] and final_norm(model) is not None
    compact = not runnable and (not outside or head_last)

    def compacted(block: nn.Module) -> None:
        for m in block.modules():
            if compact and isinstance(m, QuantLinear):
                run.shelve(m)

    for i in range(start):  # blocks an interrupted run finished
        _restore(run, work, i)
        compacted(blocks[i])
    run.finished.clear()
    head_in: list = []

    def keep(i: int, block: nn.Module, hidden: list[torch.Tensor]) -> None:
        if work is not None:
            params = {n: p for n, p in block.named_parameters(prefix=f"{prefix}.{i}") if not p.is_meta}
            work.save_block(i, dict(run.finished), params, hidden)
            run.finished.clear()
        compacted(block)

    rest = layerwise(model, targets, calib, run.replace, hessian=hessian,
                     outputs=(lambda h: head_in.append(final_stats(model, h))) if wants_head or head_last
                     else None, after=keep if work is not None or compact else None, start=start,
                     resumed=resumed)
    if rest and head_last:
        _head_by_rows(run, rest[0][1], head_in[0], compact)
    elif rest:  # layers outside the blocks: one whole-model pass, no AWQ
        for name, _ in rest:
            stream.load(model, name)
        run.replace(rest, block_stats(model, rest, [x[None] for x in calib], {}, hessian=hessian), False)
    return head_in[0] if head_in and wants_head else None


def _head_by_rows(run: _Installer, head: nn.Linear, stats: LayerStats, shelve: bool) -> None:
    """Quantize the untied output head with its input statistics ``stats`` (the final norm of
    the last block's outputs: what a whole-model pass would gather), row slice by row slice
    (:func:`~quanta.model.sources.stream.quantize_rows`: a streamed head is never read whole)."""
    qw = stream.quantize_rows(run.plan.get("lm_head", run.q), run.model, head, stats=stats, name="lm_head")
    run.install("lm_head", qw, head.bias.data if head.bias is not None else None, None)
    stream.release(run.model, head)
    if shelve:
        run.shelve(run.model.lm_head)


def _restore(run: _Installer, work: Any, i: int) -> None:
    """Block ``i`` as an interrupted run kept it: its quantized layers installed, its float
    parameters (norms that AWQ rescaled, layers left float) set."""
    done, params = work.block(i)
    for name, (qw, bias, scale) in done.items():
        run.install(name, qw, bias, scale)
    for n, t in params.items():
        stream.set_tensor(run.model, n, t)


def _resolve_targets(model: nn.Module, include: tuple[str, ...], exclude: tuple[str, ...],
                     head: bool) -> list[tuple[str, nn.Linear]]:
    """The layers to quantize (with ``head``, the output head too, untied from the embedding)."""
    if head:
        exclude = tuple(p for p in exclude if p != "lm_head")
        _untie_head(model)
    targets = find_targets(model, include, exclude)
    if not targets:
        raise ConfigError(f"no Linear layer matches --include {','.join(include)} "
                          f"(minus --exclude {','.join(exclude) or 'nothing'})")
    return targets


def final_norm(model: nn.Module) -> nn.Module | None:
    """The norm between the last block and the output head (its family's), or None."""
    from quanta.model.arch import for_hf

    try:
        norm_name = for_hf(type(model).__name__).final_norm
    except ConfigError:
        return None
    return None if norm_name is None else model.get_submodule(norm_name)


@torch.inference_mode()
def final_stats(model: nn.Module, hidden: list[torch.Tensor]) -> LayerStats | None:
    """Statistics (with the Hessian) of the output head's inputs — the final norm of each
    window's last hidden state ``hidden`` — or None for a family without a final norm."""
    norm = final_norm(model)
    if norm is None:
        return None
    stats = LayerStats(model.lm_head.in_features, with_hessian=True)
    for h in hidden:
        stats.add(norm(h))
    stats.flush()
    return stats


@torch.inference_mode()
def head_stats(model: nn.Module, calib: torch.Tensor) -> LayerStats | None:
    """Statistics (with the Hessian) of the output head's inputs — the final norm's outputs —
    over the calibration windows, as the model computes them now (its blocks quantized): what a
    calibrated method rounds a tied embedding with, since as the output head it is the most
    sensitive matrix. None when the head is not tied to the embedding."""
    from quanta.model.quantize.calibrate import block_stats

    if not ties_head(model):
        return None
    from quanta.model.quantize.calibrate import find_blocks

    stream.load(model, find_blocks(model)[0])  # the float layers of a streamed model's blocks
    windows = [x[None] for x in torch.as_tensor(calib)]
    base = getattr(model, "base_model", model)
    if base is model:  # no decoder of its own to stop at: the head's input by a hook
        return block_stats(model, [("lm_head", model.lm_head)], windows, {}, hessian=True)["lm_head"]
    stats = LayerStats(model.lm_head.in_features, with_hessian=True)
    for x in windows:  # the decoder's last hidden state is the head's input: no logits computed
        stats.add(base(x).last_hidden_state)
    return stats


def _quantize_embedding(model: nn.Module, quantizer: WeightQuantizer,
                        stats: LayerStats | None = None, runnable: bool = True) -> dict:
    """Quantize the token embedding (and a head tied to it, unless nothing will run it;
    ``stats``: the head's input statistics, for a calibrated quantizer); its line of the report."""
    from quanta.model.runtime.qembed import quantize_embedding

    qe, _ = quantize_embedding(model, quantizer, stats, runnable=runnable)
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
    from quanta.model.runtime.qembed import QuantEmbedding

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
