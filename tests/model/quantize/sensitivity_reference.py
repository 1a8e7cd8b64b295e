"""The sensitivity pass as it was first written — one whole-model forward and backward with
autograd per window — kept as the oracle of the block-by-block pass
(:func:`quanta.model.quantize.mixed.measure`), which must agree with it to float rounding."""

from __future__ import annotations

import torch
from torch import nn

from quanta.model.quantize.quantizers import LayerStats
from quanta.model.runtime.qembed import ties_head


def measure_whole(model: nn.Module, calib: torch.Tensor,
                  names: list[str]) -> tuple[dict, dict, torch.Tensor, int]:
    """(grad_sq per layer, input stats per layer, the embedding's squared gradients (vocab × dim),
    tokens) of the float causal LM over the windows ``calib``."""
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
        for i in range(len(calib)):
            ids = torch.as_tensor(calib[i:i + 1])
            seen.clear()
            e = _loss_backward(model, emb, ids)
            emb_sq.index_add_(0, ids.reshape(-1), e.grad.reshape(-1, e.shape[-1]).float() ** 2)
            tokens += ids.numel()
    finally:
        for h in hooks:
            h.remove()
        for p, g in zip(model.parameters(), grads):
            p.requires_grad_(g)
    return grad_sq, {n: stats[owner[n]] for n in watch}, emb_sq, tokens


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


