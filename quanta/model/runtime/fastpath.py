"""A lean decode path for Llama-family models — Llama, Mistral (within its sliding window), Qwen2
(q/k/v biases) and Qwen3 (per-head q/k norms): the same arithmetic as Hugging Face's eager
forward, without its per-module machinery.

One preallocated key/value cache per layer (``(kv_heads, max_len, head_dim)``), rotary tables
computed once, and per layer a handful of tensor operations calling the model's own modules for
the matrix products — ``QuantLinear`` keeps its int4/int8 kernels. Projections that read the same
input are fused into one product where their layouts allow (Q·K·V, gate·up: float matrices or
int4 layers with equal groups), which halves the kernel launches of a step.

:func:`decoder_for` returns a :class:`FastDecoder` for a model it can run, or the reason it
cannot (generation then runs the eager model).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from quanta.model.runtime.qlinear import QuantLinear


def decoder_for(model: Any, max_len: int) -> tuple[FastDecoder | None, str]:
    """A :class:`FastDecoder` for ``model`` (built once per model and kept on it; its cache
    grows to the longest ``max_len`` asked for) and "fast", or None and why not."""
    kept = _DECODERS.get(model)
    if kept is not None and kept.built_from == _modules(model):  # no layer replaced since
        kept.reset(max_len)
        return kept, "fast"
    cfg = getattr(model, "config", None)
    if type(model).__name__ not in FAMILIES or cfg is None:
        return None, f"{type(model).__name__} is not a Llama-family causal LM"
    window = getattr(cfg, "sliding_window", None)
    if window and getattr(cfg, "use_sliding_window", True) and max_len > window:
        return None, f"{max_len} tokens pass the sliding window of {window}"
    why = unsupported(cfg)
    if why:
        return None, why
    dec = FastDecoder(model, max_len)
    _DECODERS[model] = dec
    return dec, "fast"


def unsupported(cfg: Any) -> str | None:
    """Why a Llama configuration (attributes as transformers names them) is outside this path,
    or None."""
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") in ("dynamic", "longrope"):  # tables that change with length
        return f"rope type {rope.get('rope_type')!r} is not supported"
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "attention_bias", False) \
            or getattr(cfg, "mlp_bias", False):
        return "only SiLU MLPs without biases are supported"
    return None


#: the model classes this path runs (their blocks are Llama's, give or take biases and head norms)
FAMILIES = ("LlamaForCausalLM", "LiteLlama", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")

#: each model's decoder (weakly held: it goes with the model, and a copy of a model builds its own)
_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _modules(model: Any) -> tuple:
    """The modules the decoder was built from (the architecture table's, in its order)."""
    from quanta.model.arch import LLAMA

    n = len(model.get_submodule(LLAMA.blocks))
    names = (LLAMA.embedding, LLAMA.final_norm, LLAMA.head,
             *(f"{LLAMA.blocks}.{i}.{m}" for i in range(n) for m in (*LLAMA.norms, *LLAMA.linears)))
    return tuple(model.get_submodule(x) for x in names)


def _fuse(layers: list[nn.Module]) -> nn.Module | None:
    """One module computing ``cat([l(x) for l in layers], -1)``, or None when their layouts
    differ."""
    biased = [m.bias is not None for m in layers]
    if any(biased) and not all(biased):
        return None
    if all(type(m) is nn.Linear for m in layers):
        w = torch.cat([m.weight.detach() for m in layers], 0)
        lin = nn.Linear(w.shape[1], w.shape[0], bias=all(biased), dtype=w.dtype)
        lin.weight = nn.Parameter(w, requires_grad=False)
        for m, part in zip(layers, _rows(w, layers)):  # the originals become views: no copy kept
            m.weight = nn.Parameter(part, requires_grad=False)
        if all(biased):
            lin.bias = nn.Parameter(torch.cat([m.bias.detach() for m in layers]), requires_grad=False)
        return lin
    if all(isinstance(m, QuantLinear) and m.path == "int4pack" and not hasattr(m, "input_scale")
           for m in layers):
        first = layers[0]
        # the CPU kernel's packed layout interleaves rows in blocks of 64: whole blocks concatenate
        if any(m.group_size != first.group_size or m.padded_in != first.padded_in
               or m.out_features % 64 for m in layers):
            return None
        out = sum(m.out_features for m in layers)
        q = QuantLinear(first.in_features, out, bits=4, group_size=first.group_size, method=first.method,
                        path="int4pack", padded_in=first.padded_in)
        q.register_buffer("packed", torch.cat([m.packed for m in layers], 0))
        q.register_buffer("scales_zeros", torch.cat([m.scales_zeros for m in layers], 1))
        if all(biased):  # (a biased layer runs its forward: the kernel adds no bias)
            q.bias = nn.Parameter(torch.cat([m.bias.detach() for m in layers]), requires_grad=False)
        for m, part in zip(layers, _rows(q.packed, layers)):
            m.packed = part
        return q
    return None


def _rows(t: torch.Tensor, layers: list[nn.Module]) -> list[torch.Tensor]:
    return list(t.split([m.out_features for m in layers], 0))


def _kernel(m: nn.Module) -> Any:
    """``x (rows, in) bf16 → (rows, out) bf16``: the layer's own CPU kernel called directly (no
    reshape, checks or dtype round trip per call), or None for layers that need their forward."""
    if not isinstance(m, QuantLinear) or m.bias is not None or hasattr(m, "input_scale") \
            or m.padded_in != m.in_features:
        return None
    return m.kernel()


def _norm(m: nn.Module) -> Any:
    """Llama's RMS norm as one fused ``rms_norm`` call — bit-identical for float32 weights and
    inputs (float32 statistics, as transformers computes them); other dtypes go through the
    module."""
    w, eps = getattr(m, "weight", None), getattr(m, "variance_epsilon", None)
    if w is None or eps is None or w.dtype != torch.float32:
        return m

    def norm(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:
            return m(x)
        return functional.rms_norm(x, (w.shape[0],), w, eps)

    return norm


class _Block:
    def __init__(self, layer: nn.Module) -> None:
        a, m = layer.self_attn, layer.mlp
        self.norm1, self.norm2 = _norm(layer.input_layernorm), _norm(layer.post_attention_layernorm)
        # Qwen3: an RMS norm over each query and key head, before the rotation
        self.q_norm = _norm(a.q_norm) if hasattr(a, "q_norm") else None
        self.k_norm = _norm(a.k_norm) if hasattr(a, "k_norm") else None
        self.qkv = _fuse([a.q_proj, a.k_proj, a.v_proj])
        self.q, self.k, self.v, self.o = a.q_proj, a.k_proj, a.v_proj, a.o_proj
        self.sizes = (a.q_proj.out_features, a.k_proj.out_features, a.v_proj.out_features)
        self.gate_up = _fuse([m.gate_proj, m.up_proj])
        self.gate, self.up, self.down = m.gate_proj, m.up_proj, m.down_proj
        self.kernels = {id(x): _kernel(x) for x in (self.qkv, self.o, self.gate_up, self.down)
                        if x is not None}

    def linear(self, m: nn.Module, x: torch.Tensor, exact: bool = True) -> torch.Tensor:
        """``m(x)``; a quantized layer's kernel is called directly, its bfloat16 output returned
        as such when ``exact`` is False (the caller adds it to a float32 stream, which converts
        it exactly, as the layer's forward would)."""
        fn = self.kernels.get(id(m))
        if fn is None:
            return m(x)
        y = fn(x.reshape(-1, x.shape[-1]).to(torch.bfloat16)).view(*x.shape[:-1], -1)
        return y.to(x.dtype) if exact else y

    def project_qkv(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.qkv is not None:
            return self.linear(self.qkv, h).split(self.sizes, -1)
        return self.q(h), self.k(h), self.v(h)

    def mlp(self, h: torch.Tensor) -> torch.Tensor:
        if self.gate_up is not None:
            g, u = self.linear(self.gate_up, h).chunk(2, -1)
        else:
            g, u = self.gate(h), self.up(h)
        return self.linear(self.down, functional.silu(g) * u, exact=False)


class FastDecoder:
    """Prefill and one-token steps of a Llama model over a preallocated cache."""

    def __init__(self, model: Any, max_len: int) -> None:
        cfg = model.config
        inner = model.model
        self.embed, self.final_norm, self.head = inner.embed_tokens, _norm(inner.norm), model.lm_head
        self.built_from = _modules(model)
        self.blocks = [_Block(layer) for layer in inner.layers]
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
        self.rotary = inner.rotary_emb
        self.scaling = self.head_dim ** -0.5
        self.max_len = 0
        self.reset(max_len)

    def reset(self, max_len: int) -> None:
        """Start a new sequence of up to ``max_len`` tokens (the cache reallocated if longer)."""
        self.pos = 0
        if max_len <= self.max_len:
            return
        self.max_len = int(max_len)
        pos = torch.arange(self.max_len, dtype=torch.float32)
        freqs = pos[:, None] * self.rotary.inv_freq.float()[None]
        emb = torch.cat((freqs, freqs), -1)
        scale = getattr(self.rotary, "attention_scaling", 1.0)
        self.cos = (emb.cos() * scale).to(self.dtype)
        self.sin = (emb.sin() * scale).to(self.dtype)
        shape = (len(self.blocks), self.n_kv, self.max_len, self.head_dim)
        self.k_cache = torch.zeros(shape, dtype=self.dtype)
        self.v_cache = torch.zeros(shape, dtype=self.dtype)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), -1)
        return x * cos + rotated * sin

    @torch.inference_mode()
    def forward(self, ids: list[int]) -> torch.Tensor:
        """Run ``ids`` after what the cache holds; the logits of the last one."""
        t = len(ids)
        start = self.pos
        if start + t > self.max_len:
            raise ValueError(f"the cache holds {self.max_len} tokens; {start + t} needed")
        x = self.embed(torch.tensor([ids]))
        cos, sin = self.cos[start:start + t], self.sin[start:start + t]
        end = start + t
        for i, b in enumerate(self.blocks):
            h = b.norm1(x)
            if b.qkv is not None and b.q_norm is None:  # one rotation over the query and key heads
                qkv = b.linear(b.qkv, h)
                nq = self.n_heads + self.n_kv
                qk = self._rope(qkv[..., :nq * self.head_dim].view(1, t, nq, self.head_dim).transpose(1, 2),
                                cos, sin)
                q, k, v = qk[:, :self.n_heads], qk[:, self.n_heads:], qkv[..., nq * self.head_dim:]
            else:
                q, k, v = b.project_qkv(h)
                q, k = q.view(1, t, self.n_heads, self.head_dim), k.view(1, t, self.n_kv, self.head_dim)
                if b.q_norm is not None:
                    q, k = b.q_norm(q), b.k_norm(k)
                q = self._rope(q.transpose(1, 2), cos, sin)
                k = self._rope(k.transpose(1, 2), cos, sin)
            self.k_cache[i, :, start:end] = k[0]
            self.v_cache[i, :, start:end] = v.view(t, self.n_kv, self.head_dim).transpose(0, 1)
            keys, values = self.k_cache[i, None, :, :end], self.v_cache[i, None, :, :end]
            att = functional.scaled_dot_product_attention(q, keys, values, is_causal=t > 1 and start == 0,
                                                 attn_mask=self._mask(start, t) if t > 1 and start else None,
                                                 scale=self.scaling, enable_gqa=True)
            x = x + b.linear(b.o, att.transpose(1, 2).reshape(1, t, -1), exact=False)
            x = x + b.mlp(b.norm2(x))
        self.pos = end
        return self.head(self.final_norm(x[:, -1:]))[0, -1]

    def _mask(self, start: int, t: int) -> torch.Tensor:
        i = torch.arange(t)[:, None] + start
        j = torch.arange(start + t)[None]
        return j <= i


__all__ = ["FAMILIES", "FastDecoder", "decoder_for", "unsupported"]
