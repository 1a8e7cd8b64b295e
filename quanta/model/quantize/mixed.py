"""Mixed precision under a size budget: each tensor's format chosen from its measured
sensitivity by the core's allocator (:func:`quanta.core.allocate.allocate`).

Sensitivity comes from one pass of the float model over calibration windows, with gradients.
For a Linear layer ``y = W x`` the quantization error ``E = W − Ŵ`` moves its outputs by ``E x``;
to second order the model's loss (and its KL divergence to the float model) grows by

    ΔL ≈ ½ Σ_o ḡ²_o · (E H Eᵀ)_oo,

``H`` the mean of ``x xᵀ`` over the calibration tokens and ``ḡ²_o`` the mean squared gradient of
the per-token loss with respect to output ``o`` (a diagonal Fisher of the layer's outputs — the
sensitivity of HAWQ and SqueezeLLM, with GPTQ's input Hessian). The token embedding's error enters
the residual stream directly: ``ΔL ≈ ½ Σ_{v,d} Ḡ²_{v,d} E²_{v,d}``, ``Ḡ²`` the squared gradients
of the embedding's outputs summed per token id (over all tokens); a tied embedding is also the
output head and adds that layer's term. Each candidate format's ``E`` is its round-to-nearest
error, so the figures rank formats and tensors; the calibrated method applied afterwards (GPTQ)
lowers every term. The units add up, so the allocator minimises the predicted ΔL under the byte
budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quanta.errors import ConfigError
from quanta.model.arch import ARCHITECTURES
from quanta.model.formats.weight import WeightFormat
from quanta.model.quantize.quantizers import LayerStats, WeightQuantizer, quantizer_for, quantizers_for
from quanta.model.runtime.qembed import ties_head
from quanta.progress import Progress

EMBEDDING = "token_embd"  # the unit name of the token embedding (and a tied output head)


Candidates = Sequence[WeightFormat] | dict[str, Sequence[WeightFormat]]


def _for(candidates: Candidates, name: str) -> Sequence[WeightFormat]:
    """The candidates of unit ``name`` (one list for all units, or a list per unit name)."""
    return candidates[name] if isinstance(candidates, dict) else candidates


@dataclass
class Sensitivity:
    """What one calibrated pass measured: per layer the mean squared output gradient and the
    input statistics (with Hessian); per token id and dimension the embedding's squared
    gradients; the token count."""

    grad_sq: dict[str, torch.Tensor]
    inputs: dict[str, LayerStats]
    embedding_grad_sq: torch.Tensor
    tokens: int

    def layer_loss(self, name: str, err: torch.Tensor) -> float:
        """Predicted loss increase of the error ``err`` (``out × in``) on layer ``name``."""
        h = self.inputs[name].hessian.to(torch.float32)
        g2 = (self.grad_sq[name] / self.tokens).to(torch.float32)
        return 0.5 * float((g2 * ((err @ h) * err).sum(1)).sum())

    def embedding_loss(self, err: torch.Tensor, *, tied: bool) -> float:
        """Predicted loss increase of the error ``err`` (``vocab × dim``) on the embedding (and,
        tied, on the output head)."""
        d = 0.5 * float(((self.embedding_grad_sq / self.tokens) * err * err).sum())
        return d + (self.layer_loss("lm_head", err) if tied else 0.0)


def measure(model: nn.Module, calib: torch.Tensor, names: Sequence[str], *, batch: int = 1,
            progress: Progress | None = None) -> Sensitivity:
    """Run the windows ``calib`` (``(n, tokens)`` ids) through the float causal LM with the
    next-token loss, and gather :class:`Sensitivity` for the Linear layers ``names`` (and the
    output head when it is tied to the embedding)."""
    mods = dict(model.named_modules())
    watch = {n: mods[n] for n in names}
    if ties_head(model):
        watch["lm_head"] = model.lm_head
    grad_sq = {n: torch.zeros(m.out_features, dtype=torch.float64) for n, m in watch.items()}
    stats: dict[str, LayerStats] = {}
    owner: dict[str, str] = {}
    seen: dict[int, tuple[str, torch.Tensor]] = {}  # the tensors kept alive: no address reused

    def pre(_m: nn.Module, args: tuple, n: str) -> None:
        x = args[0]
        o = owner.setdefault(n, seen.setdefault(x.data_ptr(), (n, x))[0])
        if o == n:
            stats.setdefault(n, LayerStats(x.shape[-1], with_hessian=True, dtype=torch.float32)).add(x)

    def post(_m: nn.Module, _args: tuple, out: torch.Tensor, n: str) -> None:
        def grad(g: torch.Tensor) -> None:  # returns None: the gradient itself is left alone
            grad_sq[n] += (g.detach().float() ** 2).reshape(-1, g.shape[-1]).sum(0, dtype=torch.float64)

        out.register_hook(grad)

    hooks = [m.register_forward_pre_hook(lambda m, a, n=n: pre(m, a, n)) for n, m in watch.items()]
    hooks += [m.register_forward_hook(lambda m, a, o, n=n: post(m, a, o, n)) for n, m in watch.items()]
    emb = model.get_input_embeddings()
    emb_sq = torch.zeros(emb.weight.shape, dtype=torch.float32)
    grads = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    tokens = 0
    try:
        for i in range(0, len(calib), batch):
            ids = torch.as_tensor(calib[i:i + batch])
            seen.clear()
            e = _loss_backward(model, emb, ids)
            emb_sq.index_add_(0, ids.reshape(-1), e.grad.reshape(-1, e.shape[-1]).float() ** 2)
            tokens += ids.numel()
            if progress:
                progress(min(i + batch, len(calib)), len(calib))
    finally:
        for h in hooks:
            h.remove()
        for p, g in zip(model.parameters(), grads):
            p.requires_grad_(g)
    return Sensitivity(grad_sq, {n: stats[owner[n]] for n in watch}, emb_sq, tokens)


def _loss_backward(model: nn.Module, emb: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Forward the windows ``ids`` from their embeddings, back-propagate the summed next-token
    loss; returns the embedding outputs (their ``.grad`` filled)."""
    with torch.enable_grad():
        e = emb(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=e, use_cache=False).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                 ids[:, 1:].reshape(-1), reduction="sum")
        loss.backward()
    return e


def unit_weights(model: nn.Module, names: Sequence[str], *, embedding: bool) -> dict[str, torch.Tensor]:
    """The float weight of every unit the budget is shared among (Linear layers, the embedding)."""
    mods = dict(model.named_modules())
    out = {n: mods[n].weight.data for n in names}
    if embedding:
        out[EMBEDDING] = model.get_input_embeddings().weight.data
    return out


def loss_table(model: nn.Module, sens: Sensitivity, weights: dict[str, torch.Tensor],
               candidates: Candidates, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Predicted loss increase of each unit in each of its candidate formats (round to nearest)."""
    tied = ties_head(model)
    table = {}
    for k, (name, w) in enumerate(weights.items()):
        row = []
        for c in _for(candidates, name):
            q = quantizer_for("rtn", c).quantize(w, name=name)
            err = w.float() - q.dequantize()
            row.append(sens.embedding_loss(err, tied=tied) if name == EMBEDDING
                       else sens.layer_loss(name, err))
        table[name] = np.asarray(row)
        if progress:
            progress(k + 1, len(weights))
    return table


@dataclass(frozen=True)
class MixedPlan:
    """The chosen format per unit, with the predicted loss increase and the bytes."""

    choice: dict[str, WeightFormat]
    predicted_loss: float
    nbytes: int
    budget: int
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # each unit's (rows, cols)

    def bits_per_weight(self) -> dict[str, float]:
        """Stored bits per weight of each chosen format, over the units that took it."""
        acc: dict[str, list[int]] = {}
        for n, c in self.choice.items():
            rows, cols = self.shapes[n]
            a = acc.setdefault(c.label, [0, 0])
            a[0] += c.nbytes(rows, cols)
            a[1] += rows * cols
        return {label: 8.0 * b / max(w, 1) for label, (b, w) in acc.items()}

    def summary(self) -> dict[str, int]:
        """Units per format label."""
        out: dict[str, int] = {}
        for c in self.choice.values():
            out[c.label] = out.get(c.label, 0) + 1
        return dict(sorted(out.items()))

    def by_kind(self) -> dict[str, dict[str, int]]:
        """Units per format for each kind of tensor (``self_attn.q_proj``, ``token_embd``, ...)."""
        out: dict[str, dict[str, int]] = {}
        for name, c in self.choice.items():
            kind = re.sub(r"^.*?\.\d+\.", "", name)
            out.setdefault(kind, {})
            out[kind][c.label] = out[kind].get(c.label, 0) + 1
        return out


def choose(table: dict[str, np.ndarray], weights: dict[str, torch.Tensor],
           candidates: Candidates, budget: int) -> MixedPlan:
    """One candidate per unit: least predicted loss with the units' bytes within ``budget``."""
    from quanta.core.allocate import allocate

    names = list(table)
    sizes = [[c.nbytes(*weights[n].shape) for c in _for(candidates, n)] for n in names]
    least = sum(min(s) for s in sizes)
    if budget < least:
        raise ConfigError(f"the size target leaves {budget / 1e6:.2f} MB for the quantized tensors; "
                          f"the smallest formats need {least / 1e6:.2f} MB")
    a = allocate([table[n] for n in names], sizes, budget)
    choice = {n: _for(candidates, n)[int(j)] for n, j in zip(names, a.choice)}
    return MixedPlan(choice, float(a.distortion), int(a.size), int(budget),
                     {n: tuple(weights[n].shape) for n in names})


_KINDS = tuple(k for a in ARCHITECTURES.values() for k in a.linears)
_LAYER = re.compile(r"\.(\d+)\.")


def bit_grid(mixed: dict) -> tuple[np.ndarray, list[str]]:
    """Bits per weight of every tensor inside the blocks, as a (tensor kinds × blocks) array
    (NaN where a kind is absent), and the kinds, from a plan as :func:`describe` gives it."""
    bpw = mixed["bits_per_weight"]
    layered = {n: bpw[label] for n, label in mixed["map"].items() if _LAYER.search(n)}
    blocks = 1 + max((int(_LAYER.search(n).group(1)) for n in layered), default=0)
    kinds = [k for k in _KINDS if any(n.endswith(k) for n in layered)] or sorted(
        {_LAYER.split(n, 1)[-1] for n in layered})
    grid = np.full((len(kinds), blocks), np.nan)
    for n, b in layered.items():
        grid[kinds.index(_LAYER.split(n, 1)[-1]), int(_LAYER.search(n).group(1))] = b
    return grid, kinds


def plot_map(mixed: dict, path: Path | str, title: str = "") -> Path:
    """Draw bits per weight of every tensor by layer (rows: tensor kinds; columns: blocks) from
    a plan as :func:`describe` gives it, to ``path`` (PNG, :func:`quanta.render.plots.heat_map`)."""
    from quanta.render.plots import heat_map

    grid, kinds = bit_grid(mixed)
    emb = mixed["map"].get(EMBEDDING)
    extra = f"; token embedding {emb}" if emb else ""
    return heat_map(grid, rows=[k.split(".")[-1] for k in kinds], xlabel="block",
                    title=title or f"bits per weight by tensor ({mixed['tensor_bytes'] / 1e6:.1f} MB of "
                    f"weights{extra})", label="bits per weight", png=path)


def plan_quantizers(plan: MixedPlan, method: str) -> dict[str, WeightQuantizer]:
    """The quantizer of each Linear unit (``method`` on the unit's chosen grid)."""
    return quantizers_for(method, {n: c for n, c in plan.choice.items() if n != EMBEDDING})


def describe(plan: MixedPlan) -> dict[str, Any]:
    """The plan as JSON: the map, each format's bits per weight, and the totals."""
    return {"map": {n: c.label for n, c in plan.choice.items()}, "summary": plan.summary(),
            "bits_per_weight": plan.bits_per_weight(),
            "by_kind": plan.by_kind(), "predicted_loss_increase": plan.predicted_loss,
            "tensor_bytes": plan.nbytes, "budget_bytes": plan.budget}


__all__ = [
    "EMBEDDING",
    "MixedPlan",
    "Sensitivity",
    "bit_grid",
    "choose",
    "describe",
    "loss_table",
    "measure",
    "plan_quantizers",
    "plot_map",
    "unit_weights",
]
