"""Tiny, seeded causal LMs of every family in the architecture table, with a byte-level
tokenizer: the model medium's example input and the families' test models (no download, no
global random state). Random weights: they measure plumbing, never quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

BOS, EOS = 256, 257


def tiny_model(family: str = "llama", seed: int = 0, vocab: int = 259, hidden: int = 64,
               **config: Any) -> Any:
    """A 2-layer causal LM of ``family`` (a causal entry of :data:`quanta.model.arch.ARCHITECTURES`:
    ``hidden`` wide, MLP twice that, 4 heads, 2 KV heads — real grouped-query shapes — and the
    family's own parts: Qwen2's q/k/v biases, Qwen3's head norms on heads of ``hidden / 2``,
    Phi-3's fused projections, Gemma's four norms a block on heads of ``hidden / 2``, Qwen3-MoE's
    8 experts of ``hidden`` wide MLPs, 2 chosen per token, split one Linear per expert) with
    N(0, 0.05) weights and biases from ``seed``, norms of gain 1; ``config``: other settings of
    the family's config (e.g. ``num_hidden_layers``)."""
    import transformers

    from quanta.model.arch import ARCHITECTURES

    arch = ARCHITECTURES[family]
    extra = {"qwen3": {"head_dim": hidden // 2}, "phi3": {"pad_token_id": EOS},
             "mistral": {"sliding_window": 64},
             "gemma2": {"head_dim": hidden // 2, "query_pre_attn_scalar": hidden // 2, "pad_token_id": EOS},
             "gemma3": {"head_dim": hidden // 2, "query_pre_attn_scalar": hidden // 2, "pad_token_id": EOS},
             "qwen3_moe": {"head_dim": hidden // 2, "moe_intermediate_size": hidden, "num_experts": 8,
                           "num_experts_per_tok": 2, "norm_topk_prob": True}}.get(family, {})
    settings = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                    tie_word_embeddings=True, bos_token_id=BOS, eos_token_id=EOS)
    cfg = getattr(transformers, arch.hf_config)(**(settings | extra | config))
    from quanta.model.sources.experts import split_experts

    m = split_experts(getattr(transformers, arch.hf_class)(cfg).eval())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "norm" in n:  # a gain of 1 (Gemma's norms scale by 1 + weight)
                p.fill_(0.0 if family.startswith("gemma") else 1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return m


def tiny_llama(seed: int = 0, vocab: int = 259, hidden: int = 64) -> Any:
    """:func:`tiny_model` of the Llama family."""
    return tiny_model("llama", seed, vocab, hidden)


def byte_tokenizer() -> Any:
    """A byte-level BPE tokenizer: 256 byte tokens, then ``<s>`` (256) and ``</s>`` (257)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    assert set(vocab) == set(alphabet)
    vocab.update({"<s>": BOS, "</s>": EOS})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte → printable character map (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_hf_folder(folder: Path | str, *, seed: int = 0, hidden: int = 128, vocab: int = 259,
                    family: str = "llama", tokenizer: Any = None, **config: Any) -> Path:
    """A Hugging Face folder (config.json, model.safetensors, tokenizer.json) of the tiny model
    of ``family`` (128 wide by default, so that the default groups of 128 fit; ``vocab`` rows in
    the embedding, of which the tokenizer uses the first 258); ``config``: other settings of the
    family's config, as :func:`tiny_model` takes them; ``tokenizer``: another tokenizer to save
    (e.g. :func:`quanta.model.formats.gguf_vocab.train`'s, of at most ``vocab`` tokens)."""
    from safetensors.torch import save_file

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    m = tiny_model(family, seed, vocab=vocab, hidden=hidden, **config)
    cfg = m.config.to_dict()
    cfg["architectures"] = [type(m).__name__]
    (d / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
    tied = bool(cfg.get("tie_word_embeddings"))  # a tied head is the embedding: not stored twice
    state = {k: v.contiguous() for k, v in m.state_dict().items() if k != "lm_head.weight" or not tied}
    save_file(state, str(d / "model.safetensors"), metadata={"format": "pt"})
    (tokenizer or byte_tokenizer()).save(str(d / "tokenizer.json"))
    return d
