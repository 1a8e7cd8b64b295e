"""Mixture-of-experts blocks as quanta quantizes them: one Linear per expert and matrix.

transformers (5.x) keeps a sparse block's experts as two fused 3-D parameters
(``gate_up_proj``: experts × 2·inter × hidden, ``down_proj``: experts × hidden × inter); the
checkpoints on disk, llm-compressor's folders and GGUF's stacks all hold one matrix per expert
(``mlp.experts.{e}.gate_proj.weight``). :func:`split_experts` replaces each fused module with a
:class:`SplitExperts` — a list of :class:`ExpertMLP` s with the checkpoint's names — so that the
layer-by-layer engine, the quantizers, the allocator and every writer see plain Linear layers,
and a streamed folder's tensors map onto the model name for name.

Calibration of rarely chosen experts: a router sends each token to ``num_experts_per_tok`` of
``num_experts`` experts, so a few hundred calibration windows leave some experts with a handful of
tokens or none — a Hessian of rank 3 or a zero one. While the engine gathers statistics
(:func:`every_token`) every expert runs on every token of the block's input, and only the
routed tokens' outputs, weighted as the router weighs them, reach the block's output: each
expert's statistics come from all calibration tokens (llm-compressor's ``calibrate_all_experts``
does the same), the block's output is the model's. Outside that window the block runs only the
chosen experts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class ExpertMLP(nn.Module):
    """One expert: ``down(act(gate(x)) · up(x))``."""

    def __init__(self, hidden: int, inter: int, act: Any, device: Any = None) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False, device=device)
        self.up_proj = nn.Linear(hidden, inter, bias=False, device=device)
        self.down_proj = nn.Linear(inter, hidden, bias=False, device=device)
        self.act_fn = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class SplitExperts(nn.ModuleList):
    """The experts of one sparse block, called as transformers calls its fused experts:
    ``(hidden (tokens, hidden), top_k_index (tokens, k), top_k_weights (tokens, k))`` → the
    weighted sum of each token's chosen experts' outputs."""

    every_token = False  # set by :func:`every_token`

    def forward(self, hidden: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
                ) -> torch.Tensor:
        out = torch.zeros_like(hidden)
        for e, expert in enumerate(self):
            token, pos = torch.where(top_k_index == e)
            if self.every_token:  # statistics from every token; the output from the routed ones
                y = expert(hidden)[token]
            elif token.numel():
                y = expert(hidden[token])
            else:
                continue
            out.index_add_(0, token, (y * top_k_weights[token, pos, None]).to(out.dtype))
        return out


def _fused(module: nn.Module) -> bool:
    p = getattr(module, "gate_up_proj", None)
    return isinstance(p, torch.Tensor) and p.ndim == 3 and not isinstance(module, SplitExperts)


def split_experts(model: nn.Module) -> nn.Module:
    """Replace every fused experts module of ``model`` with a :class:`SplitExperts` holding the
    same weights (on ``meta`` when they are: a streamed or to-be-loaded model); ``model``
    itself, for chaining. A model without experts is returned as it is."""
    for name, mod in list(model.named_modules()):
        if not _fused(mod):
            continue
        gate_up, down = mod.gate_up_proj, mod.down_proj
        n, inter2, hidden = gate_up.shape
        inter = inter2 // 2
        meta = gate_up.is_meta
        split = SplitExperts([ExpertMLP(hidden, inter, mod.act_fn, device="meta" if meta else None)
                              for _ in range(n)])
        if not meta:
            with torch.no_grad():
                for e, expert in enumerate(split):
                    expert.gate_proj.weight.copy_(gate_up[e, :inter])
                    expert.up_proj.weight.copy_(gate_up[e, inter:])
                    expert.down_proj.weight.copy_(down[e])
        for p in split.parameters():
            p.requires_grad_(False)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, split)
    return model


@contextmanager
def every_token(module: nn.Module) -> Iterator[None]:
    """Every :class:`SplitExperts` under ``module`` runs each expert on every token while the
    ``with`` block runs (the module docstring: statistics for rarely chosen experts)."""
    found = [m for m in module.modules() if isinstance(m, SplitExperts)]
    for m in found:
        m.every_token = True
    try:
        yield
    finally:
        for m in found:
            m.every_token = False


__all__ = ["ExpertMLP", "SplitExperts", "every_token", "split_experts"]
