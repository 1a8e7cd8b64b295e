"""AWQ: activation-aware per-input-channel scales (Lin et al., 2023), a block-level strategy that
runs before a block's layers are quantized.

Layers fed the same input (Q, K, V; gate and up; O; down) form a group. Its weights are scaled
column by column, ``W ← W·diag(s)``, with ``s = rms(x)^α`` (each input channel's root mean
square on the calibration data, normalised by ``√(max·min)``), so that the channels that carry
large activations round on a finer effective grid; the input is divided by the same ``s``, which
costs nothing when it folds into the layer that produces it:

* a norm (RMSNorm, LayerNorm): its weight (and bias) divided by ``s``;
* a Linear (V before O, up before down): its output rows divided by ``s``. With grouped-query
  attention one V channel feeds several O inputs, so those inputs share one scale (the geometric
  mean of theirs).

Folds are a table of (producer, consumers) by name inside a block, one line each
(:data:`FOLDS`); a group with no fold (a BERT block's attention input, which also feeds the
residual) divides its input explicitly (``QuantLinear.input_scale``) — or keeps ``s = 1`` where
the output format cannot hold such a scale (GGUF).

``α`` is searched over a grid of 20 for the least output error of the group on the calibration
data, ``Σ_layers tr(E H Eᵀ)`` with ``E`` the error of the scaled weight rounded as "imatrix"
rounds it (round to nearest, clipping searched with the scaled inputs' mean squares), brought
back to the original inputs, and ``H`` the layer's input second moment (its GPTQ Hessian): the
error the layers' outputs would see on the calibration data, without running the block. (With
the round-to-nearest error of a plain min/max grid instead, the search picks scales that make
MiniLM worse than no scaling.) ``α = 0`` (no scaling) is in the grid, so "awq" never does worse
than "imatrix" by that measure. Then the scaled weights are quantized
by the base method (importance-weighted clipping search for "awq", GPTQ for "awq+gptq") with the
statistics rescaled to match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from quanta.model.arch import ARCHITECTURES
from quanta.model.quantize.quantizers import LayerStats, WeightQuantizer, make_quantizer

#: exponents tried: 0, 0.05, …, 0.95
GRID = 20


@dataclass(frozen=True)
class Fold:
    """The module ``producer`` (a norm or a Linear) computes the one input of ``consumers``
    (names relative to the block). A producer narrower than the consumers' input is V under
    grouped-query attention (its channels repeated per query head)."""

    producer: str
    consumers: tuple[str, ...]


#: every family's folds, from the architecture tables
FOLDS = tuple(Fold(p, c) for a in ARCHITECTURES.values() for p, c in a.folds)
#: each family's own folds, by its Hugging Face class (Gemma's norms take no fold that Llama's do)
FOLDS_BY_CLASS = {a.hf_class: tuple(Fold(p, c) for p, c in a.folds) for a in ARCHITECTURES.values()}


def folds_of(model: nn.Module) -> tuple[Fold, ...]:
    """The folds of ``model``'s family (every family's for a model outside the table, e.g. the
    lite Llama)."""
    return FOLDS_BY_CLASS.get(type(model).__name__, FOLDS)


def activation_scales(stats: LayerStats, alpha: float, tie: torch.Tensor | None = None) -> torch.Tensor:
    """``rms(x)^α`` per input channel, normalised by ``√(max·min)`` (float32, ``(in,)``);
    ``tie``: for each input, the producer channel it comes from (inputs sharing one get the
    geometric mean of their scales)."""
    s = stats.mean_sq.float().sqrt().clamp_min(1e-6).pow(alpha)
    if tie is not None:
        s = _tied(s, tie)
    return s / (s.max() * s.min()).sqrt()


def _tied(s: torch.Tensor, tie: torch.Tensor) -> torch.Tensor:
    n = int(tie.max()) + 1
    logs = torch.zeros(n).index_add_(0, tie, s.log())
    count = torch.zeros(n).index_add_(0, tie, torch.ones_like(s))
    return (logs / count.clamp_min(1)).exp()[tie]


def group_error(weights: list[torch.Tensor], quantizers: list[WeightQuantizer], h: torch.Tensor,
                s: torch.Tensor) -> float:
    """``Σ tr(E H Eᵀ)``: the output error of round-to-nearest on ``W·diag(s)``, brought back to the
    original inputs (``E = Q(W s)/s − W``), over the calibration inputs whose second moment is
    ``h``."""
    total = 0.0
    for w, q in zip(weights, quantizers):
        e = _nearest(w * s, q, h.diagonal() / (s * s)) / s - w
        total += float(((e @ h) * e).sum())
    return total


def _nearest(w: torch.Tensor, q: WeightQuantizer, mean_sq: torch.Tensor) -> torch.Tensor:
    """``w`` rounded by "imatrix" on ``q``'s grid (bits, group size, symmetry), its clipping
    searched over :data:`CLIPS` with ``mean_sq`` (the scaled inputs' mean squares) as importance."""
    proxy = make_quantizer("imatrix", bits=q.bits, group_size=q.group_size, sym=q.sym)
    proxy.clip_ratios = CLIPS
    st = LayerStats(w.shape[1])
    st.n, st.sum_sq = 1, mean_sq.double()
    return proxy.quantize(w, stats=st).dequantize()


#: clipping ratios the search's rounding tries (21 of "imatrix"'s 51: the search only ranks
#: exponents)
CLIPS = np.linspace(1.0, 0.5, 21)


def search(weights: list[torch.Tensor], quantizers: list[WeightQuantizer], stats: LayerStats,
           tie: torch.Tensor | None = None, grid: int = GRID) -> tuple[float, torch.Tensor]:
    """The exponent with the least :func:`group_error`, and its scales."""
    h = stats.hessian.float()
    ws = [w.detach().float() for w in weights]
    best: tuple[float, float, torch.Tensor] | None = None
    for i in range(grid):
        s = activation_scales(stats, i / grid, tie)
        err = group_error(ws, quantizers, h, s)
        if best is None or err < best[0]:
            best = (err, i / grid, s)
    assert best is not None
    return best[1], best[2]


def rescale_stats(stats: LayerStats, s: torch.Tensor) -> None:
    """The statistics of the inputs divided by ``s`` (in place)."""
    s64 = s.double()
    stats.sum_sq /= s64 * s64
    if stats.xtx is not None:
        stats.xtx /= torch.outer(s, s).to(stats.xtx.dtype)


def prepare_block(model: nn.Module, layers: list[tuple[str, nn.Linear]], stats: dict[str, LayerStats],
                  quantizer_for: Callable[[str], WeightQuantizer]) -> dict[str, torch.Tensor]:
    """Scale every group of ``layers`` (one block's targets, still float) whose quantizer asks for
    AWQ: weights scaled, producers folded, ``stats`` rescaled in place. Returns the explicit input
    scales (``1/s``) of the layers whose group has no fold, by name."""
    groups: dict[int, list[tuple[str, nn.Linear]]] = {}
    for name, lin in layers if stats else ():
        if quantizer_for(name).scales_activations:
            groups.setdefault(id(stats[name]), []).append((name, lin))
    explicit: dict[str, torch.Tensor] = {}
    for members in groups.values():
        names = [n for n, _ in members]
        fold = _fold_for(model, names)
        qs = [quantizer_for(n) for n in names]
        if fold is None and any(q.storage for q in qs):
            continue  # a GGUF file has nowhere to keep an input scale
        st = stats[names[0]]
        tie = _tie(model, fold[0], members[0][1].in_features) if fold else None
        _, s = search([lin.weight for _, lin in members], qs, st, tie)
        for _, lin in members:
            lin.weight.data.mul_(s.to(lin.weight.dtype))
        rescale_stats(st, s)
        if fold:
            _fold(fold[0], s if tie is None else _producer_scales(s, tie))
        else:
            explicit.update({n: 1.0 / s for n in names})
    return explicit


def _fold_for(model: nn.Module, names: list[str]) -> tuple[nn.Module, Fold] | None:
    """The producer a group folds into: its consumers must be exactly the group's layers."""
    m = re.match(r"(.*\.\d+\.)", names[0])
    if m is None:
        return None
    prefix = m.group(1)
    rel = sorted(n[len(prefix):] for n in names)
    for f in folds_of(model):
        if sorted(f.consumers) == rel:
            try:
                producer = model.get_submodule(prefix + f.producer)
            except AttributeError:
                return None
            if isinstance(producer, nn.Linear) or (hasattr(producer, "weight") and producer.weight.ndim == 1):
                return producer, f
    return None


def _tie(model: nn.Module, producer: nn.Module, width: int) -> torch.Tensor | None:
    """For each consumer input, the producer channel it comes from (None: one to one)."""
    n_out = producer.out_features if isinstance(producer, nn.Linear) else producer.weight.numel()
    if n_out == width:
        return None
    cfg = model.config
    hd = width // cfg.num_attention_heads
    rep = cfg.num_attention_heads // cfg.num_key_value_heads
    j = torch.arange(width)
    return (j // hd // rep) * hd + j % hd


def _producer_scales(s: torch.Tensor, tie: torch.Tensor) -> torch.Tensor:
    out = torch.empty(int(tie.max()) + 1)
    out[tie] = s  # tied inputs share one value
    return out


@torch.no_grad()
def _fold(producer: nn.Module, s: torch.Tensor) -> None:
    """Divide the producer's outputs by ``s``."""
    w = producer.weight
    if isinstance(producer, nn.Linear):
        w.div_(s.to(w.dtype)[:, None])
    else:
        w.div_(s.to(w.dtype))
    bias = getattr(producer, "bias", None)
    if bias is not None:
        bias.div_(s.to(bias.dtype))


__all__ = ["FOLDS", "GRID", "Fold", "activation_scales", "group_error", "prepare_block",
           "rescale_stats", "search"]
