"""A Llama model without transformers, for generation from quanta folders.

Importing transformers' Llama classes costs about two seconds per process — more than loading
a quantized SmolLM2 and answering a short prompt. :class:`LiteLlama` has the same module names
and the arithmetic the lean decode path (:mod:`quanta.model.runtime.fastpath`) needs — embedding,
RMS norms, the rotary frequencies, and the Linear layers a quanta folder fills — and no forward
of its own: it runs only on that path. :func:`supported` says which configurations it covers
(the rest load through transformers).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn


def _rope(cfg: dict) -> tuple[str, float]:
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    kind = params.get("rope_type", params.get("type", "default")) if isinstance(params, dict) else "default"
    theta = (params.get("rope_theta") if isinstance(params, dict) else None) or cfg.get("rope_theta", 10000.0)
    return str(kind), float(theta)


def supported(cfg: dict) -> bool:
    """Whether a Hugging Face config dict describes a model :class:`LiteLlama` can stand for:
    a Llama that the lean decode path runs, with the default rotary embedding or Llama 3's."""
    from quanta.model.runtime.fastpath import unsupported

    return (cfg.get("model_type") == "llama" and _rope(cfg)[0] in ("default", "llama3")
            and unsupported(SimpleNamespace(**cfg)) is None)


def llama3_inv_freq(inv: torch.Tensor, params: dict) -> torch.Tensor:
    """Llama 3's rotary scaling of the inverse frequencies ``inv`` (float32), as transformers
    computes it: wavelengths beyond ``original / low_freq_factor`` slowed by ``factor``, those
    below ``original / high_freq_factor`` kept, a smooth blend between. (The same curve as
    :func:`quanta.model.formats.gguf_rope.factors`, in transformers' order of operations: this
    one must give transformers' frequencies to the bit, that one llama.cpp converter's bytes.)"""
    import math

    factor = float(params["factor"])
    low, high = float(params["low_freq_factor"]), float(params["high_freq_factor"])
    old = float(params["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > old / low, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old / high) * ~(wavelen > old / low)
    return torch.where(medium, blended, scaled)


class RMSNorm(nn.Module):
    """Llama's RMS norm, computed as transformers computes it (float32 statistics)."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width), requires_grad=False)
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(dtype)


class Rotary(nn.Module):
    """The rotary embedding's inverse frequencies (default rope, or Llama 3's). Computed on the
    CPU even when the model is built on the meta device: arithmetic on meta tensors runs torch's
    Python reference ops, whose first use imports its compiler (0.85 s of a 2 s folder load)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        hd = config.head_dim
        steps = torch.arange(0, hd, 2, dtype=torch.int64, device="cpu").float()
        inv = 1.0 / (config.rope_theta ** (steps / hd))
        if config.rope_parameters.get("rope_type") == "llama3":
            inv = llama3_inv_freq(inv, config.rope_parameters)
        self.register_buffer("inv_freq", inv, persistent=False)
        self.attention_scaling = 1.0


class _Linear(nn.Linear):
    """A Linear slot the folder fills: no random initialisation (on the meta device that would
    import torch's compiler, seconds)."""

    def reset_parameters(self) -> None:
        pass


class _Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        pass


class _Attention(nn.Module):
    def __init__(self, c: Any) -> None:
        super().__init__()
        q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
        self.q_proj = _Linear(c.hidden_size, q, bias=False)
        self.k_proj = _Linear(c.hidden_size, kv, bias=False)
        self.v_proj = _Linear(c.hidden_size, kv, bias=False)
        self.o_proj = _Linear(q, c.hidden_size, bias=False)


class _MLP(nn.Module):
    def __init__(self, c: Any) -> None:
        super().__init__()
        self.gate_proj = _Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = _Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = _Linear(c.intermediate_size, c.hidden_size, bias=False)


class _Layer(nn.Module):
    def __init__(self, c: Any) -> None:
        super().__init__()
        self.self_attn, self.mlp = _Attention(c), _MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class _Inner(nn.Module):
    def __init__(self, c: Any) -> None:
        super().__init__()
        self.embed_tokens = _Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.rotary_emb = Rotary(c)


class LiteLlama(nn.Module):
    """Llama's module tree (``model.layers.N.self_attn.q_proj`` …) with no forward: generation
    runs it on the lean decode path."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        self.config = SimpleNamespace(
            model_type="llama", vocab_size=int(cfg["vocab_size"]), hidden_size=hidden,
            intermediate_size=int(cfg["intermediate_size"]), num_hidden_layers=int(cfg["num_hidden_layers"]),
            num_attention_heads=heads, num_key_value_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=_rope(cfg)[1],
            rope_parameters=dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            bos_token_id=cfg.get("bos_token_id"), eos_token_id=cfg.get("eos_token_id"), hidden_act="silu")
        self.model = _Inner(self.config)
        self.lm_head = _Linear(hidden, self.config.vocab_size, bias=False)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, module: nn.Module) -> None:
        self.model.embed_tokens = module

    def tie_weights(self) -> None:
        self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("LiteLlama runs on quanta's decode path only (load without lite=True)")


__all__ = ["LiteLlama", "RMSNorm", "Rotary", "supported"]
