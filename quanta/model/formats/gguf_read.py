"""Load a GGUF file (a family of :mod:`quanta.model.arch`) as a float PyTorch model plus its tokenizer.

Every tensor is dequantized with the ``gguf`` package (any GGML type: F32, F16, Q8_0, Q4_0,
Q4_1, K-quants, ...), so a file written by llama.cpp or by ``gguf``'s own quantizer becomes a
float reference model — a mixture's expert stacks split one matrix per expert, Gemma's norms
stored as 1 + weight taken back. The tokenizer is rebuilt from the file's vocabulary with the
``tokenizers`` library: a byte-level BPE's tokens and merges, or a SentencePiece-style
vocabulary's scored pieces (:mod:`quanta.model.formats.gguf_vocab`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import InputError
from quanta.model.formats import gguf_rope


@dataclass
class GGUFModel:
    """A dequantized GGUF model: torch module, tokenizer, metadata, and source tensor types."""

    model: Any
    tokenizer: Any
    metadata: dict
    tensor_types: dict[str, str]


def _reader(path: Path):
    from gguf import GGUFReader

    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        return GGUFReader(path)
    except (ValueError, OSError, IndexError, KeyError) as e:
        raise InputError(f"{path}: not a readable GGUF file ({e})") from None


def field(r, key: str, default: Any = None) -> Any:
    """The metadata value ``key`` of a reader (gguf-py's or :mod:`.gguf_header`'s), or ``default``."""
    f = r.fields.get(key)
    if f is None:
        return default
    try:
        return f.contents()
    except Exception:
        return default


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's rotary permutation of Q/K rows (what its converter writes)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's rotary permutation of Q/K rows (back to Hugging Face order)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def build_tokenizer(r, path: Path):
    """A ``tokenizers.Tokenizer`` from the GGUF's vocabulary: byte-level BPE ("gpt2": tokens and
    merges) or SentencePiece-style BPE ("llama": pieces with scores)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    kind = field(r, "tokenizer.ggml.model")
    if kind == "llama":  # SentencePiece-style BPE: pieces with scores
        from quanta.model.formats.gguf_vocab import tokenizer_of

        tokens = field(r, "tokenizer.ggml.tokens")
        return tokenizer_of(tokens, field(r, "tokenizer.ggml.scores"),
                            field(r, "tokenizer.ggml.token_type", [1] * len(tokens)),
                            add_prefix=bool(field(r, "tokenizer.ggml.add_space_prefix", True)))
    if kind != "gpt2":
        raise InputError(f"{path}: tokenizer type {kind!r} is not supported (byte-level BPE 'gpt2', "
                         "SentencePiece-style 'llama')")
    tokens = field(r, "tokenizer.ggml.tokens")
    merges = field(r, "tokenizer.ggml.merges") or []
    types = field(r, "tokenizer.ggml.token_type", [1] * len(tokens))
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                              fuse_unk=False, byte_fallback=False))
    pre = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if field(r, "tokenizer.ggml.pre") in ("smollm", "qwen2", "llama-bpe", "deepseek-llm"):
        pre.insert(0, pre_tokenizers.Digits(individual_digits=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence(pre)
    tk.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False)
               for t, k in zip(tokens, types) if k == 3]
    tk.add_special_tokens(special)
    return tk


def _config(r: Any, p: Path, tensors: dict) -> Any:
    """The file's family (:mod:`quanta.model.arch`) and its transformers config, from the
    metadata under the family's GGUF architecture (llama, qwen2, qwen3, phi3: the same keys)."""
    from quanta.errors import ConfigError
    from quanta.model.arch import for_gguf

    try:
        family = for_gguf(field(r, "general.architecture"), str(p))
    except ConfigError as e:
        raise InputError(str(e)) from None
    if any(name.startswith("rope_factors") for name in tensors) or \
            (gguf_rope.NAME in tensors and family.gguf_arch != "llama"):
        raise InputError(f"{p}: rotary scaling factors (rope_factors/rope_freqs tensors) of "
                         f"{family.gguf_arch} are not read yet")

    def g(k: str, d: Any = None) -> Any:
        return field(r, f"{family.gguf_arch}.{k}", d)

    try:
        n_head = int(g("attention.head_count"))
        experts = {"num_experts": int(g("expert_count")), "num_experts_per_tok": int(g("expert_used_count")),
                   "moe_intermediate_size": int(g("expert_feed_forward_length")),
                   "norm_topk_prob": True} if family.experts else {}
        extra = experts | (_gemma_config(g) if family.gemma else {})
        rope = {} if family.gemma else _rope(p, g, n_head, tensors)
        return family, _hf_config(family.hf_classes()[1], r, g, n_head, tensors, rope, extra)
    except (TypeError, ValueError) as e:
        raise InputError(f"{p}: missing or malformed {family.gguf_arch} metadata ({e})") from None


def _gemma_config(g: Any) -> dict:
    """A Gemma GGUF's settings as transformers' config has them: soft-capping, the sliding
    window, the attention scale llama.cpp uses (1/√head_dim), the global and (Gemma 3) local
    rotary bases and linear scaling."""
    head = int(g("attention.key_length"))
    theta = float(g("rope.freq_base", 10000.0))
    full: dict = {"rope_type": "default", "rope_theta": theta}
    if g("rope.scaling.type") == "linear":
        full = {"rope_type": "linear", "rope_theta": theta, "factor": float(g("rope.scaling.factor"))}
    local = g("rope.freq_base_swa")
    rope = full if local is None else \
        {"full_attention": full, "sliding_attention": {"rope_type": "default", "rope_theta": float(local)}}
    out = {"query_pre_attn_scalar": head, "rope_parameters": rope,
           "attn_logit_softcapping": g("attn_logit_softcapping"),
           "final_logit_softcapping": g("final_logit_softcapping")}
    if g("attention.sliding_window") is not None:
        out["sliding_window"] = int(g("attention.sliding_window"))
    return out


def _rope(p: Path, g: Any, n_head: int, tensors: dict) -> dict:
    """The config's rotary settings: the base, and Llama 3's scaling when the file holds a
    ``rope_freqs`` tensor (:mod:`quanta.model.formats.gguf_rope`)."""
    theta = float(g("rope.freq_base", 10000.0))
    if gguf_rope.NAME not in tensors:
        return {"rope_theta": theta}
    head_dim = int(g("attention.key_length") or int(g("embedding_length")) // n_head)
    found = gguf_rope.parameters(_dequantized(p, gguf_rope.NAME, tensors[gguf_rope.NAME]).reshape(-1),
                                 theta, head_dim)
    if found is None:
        raise InputError(f"{p}: its rope_freqs factors are not Llama 3's rotary scaling (not read yet)")
    return {"rope_parameters": {**found, "rope_theta": theta}}


def _hf_config(config_class: Any, r: Any, g: Any, n_head: int, tensors: dict, rope: dict,
               experts: dict) -> Any:
    head_dim = g("attention.key_length")
    return config_class(
        vocab_size=int(g("vocab_size", len(field(r, "tokenizer.ggml.tokens") or []))),
        hidden_size=int(g("embedding_length")), intermediate_size=int(g("feed_forward_length")),
        num_hidden_layers=int(g("block_count")), num_attention_heads=n_head,
        num_key_value_heads=int(g("attention.head_count_kv", n_head)),
        max_position_embeddings=int(g("context_length", 2048)),
        rms_norm_eps=float(g("attention.layer_norm_rms_epsilon", 1e-5)),
        **rope,
        tie_word_embeddings="output.weight" not in tensors,
        bos_token_id=field(r, "tokenizer.ggml.bos_token_id"),
        eos_token_id=field(r, "tokenizer.ggml.eos_token_id"),
        pad_token_id=field(r, "tokenizer.ggml.padding_token_id"),
        **({"head_dim": int(head_dim)} if head_dim is not None else {}), **experts)


def _dequantized(p: Path, name: str, t: Any) -> np.ndarray:
    """A tensor's values as float32 in PyTorch's (reversed) shape."""
    from gguf.quants import dequantize

    try:
        arr = dequantize(t.data, t.tensor_type)
    except (NotImplementedError, ValueError) as e:
        raise InputError(f"{p}: tensor {name}: cannot dequantize {t.tensor_type.name} ({e})") from None
    shape = tuple(int(s) for s in reversed(t.shape))
    try:
        return np.asarray(arr, dtype=np.float32).reshape(shape)
    except ValueError:
        raise InputError(f"{p}: tensor {name} holds {arr.size} values, not {shape}") from None


def _expected_shapes(family: Any, cfg: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor a file of this family and config must hold, in PyTorch's (out, in) order."""
    h = cfg.hidden_size
    kinds = family.kinds()
    per = {kinds[m]: shape for m, shape in family.block_shapes(cfg.to_dict()).items()}
    out = {"token_embd.weight": (cfg.vocab_size, h), "output_norm.weight": (h,)}
    out.update({f"blk.{i}.{k}.weight": v for i in range(cfg.num_hidden_layers) for k, v in per.items()})
    return out


MAX_LAYERS = 4096  # far beyond any llama; a larger count is a corrupt or hostile header


def check_consistent(family: Any, cfg: Any, tensors: dict, p: Path) -> None:
    """Refuse a header whose sizes disagree with the tensors the file really holds — before
    anything is allocated (a 1 KB file declaring a million layers fails here at once)."""
    dims = (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.vocab_size)
    if min(dims) < 1 or cfg.num_hidden_layers < 1 or cfg.num_hidden_layers > MAX_LAYERS:
        raise InputError(f"{p}: implausible sizes in the header (layers {cfg.num_hidden_layers}, "
                         f"hidden {cfg.hidden_size}, heads {cfg.num_attention_heads})")
    if cfg.hidden_size % cfg.num_attention_heads or cfg.num_attention_heads % max(cfg.num_key_value_heads, 1):
        raise InputError(f"{p}: head counts do not divide the hidden size")
    expected = _expected_shapes(family, cfg)
    if "output.weight" in tensors:
        expected["output.weight"] = (cfg.vocab_size, cfg.hidden_size)
    for name, shape in expected.items():
        t = tensors.get(name)
        if t is None:
            raise InputError(f"{p}: the header declares {cfg.num_hidden_layers} layers, but tensor "
                             f"{name} is missing")
        got = tuple(int(s) for s in reversed(t.shape))
        if got != shape:
            raise InputError(f"{p}: tensor {name} has shape {got}, the header implies {shape}")


def load_gguf(path: Path | str, *, dtype: Any = None, verify: bool = True) -> GGUFModel:
    """Read a GGUF of a family in the architecture table into its float transformers model
    (float32 by default);
    ``verify``: check the tensors against the checksum quanta wrote into its own files."""
    import torch
    from gguf import GGMLQuantizationType

    p = Path(path)
    r = _reader(p)
    tensors = {t.name: t for t in r.tensors}
    family, cfg = _config(r, p, tensors)
    check_consistent(family, cfg, tensors, p)
    if verify:
        from quanta.model.formats.integrity import check_gguf

        check_gguf(r, str(p))
    heads = family.rope_heads(cfg.to_dict())
    state, types = {}, {}
    for name, t in tensors.items():
        key, kind = family.hf_name(name)
        if key is None:
            continue
        arr = _dequantized(p, name, t)
        types[name] = GGMLQuantizationType(t.tensor_type).name
        if kind in heads:  # llama.cpp stores Q and K rows permuted for its rotary layout
            arr = _unpermute(arr, heads[kind])
        if family.norm_offset and family.role(key.removesuffix(".weight")) == "norm":
            arr = arr - np.float32(family.norm_offset)  # Gemma's norms are stored as 1 + weight
        if "*" in key:  # a stack of experts: one matrix each
            state.update({key.replace("*", str(e)): torch.from_numpy(np.array(a, dtype=np.float32, order="C"))
                          for e, a in enumerate(arr)})
            continue
        state[key] = torch.from_numpy(np.array(arr, dtype=np.float32, order="C"))
    from quanta.model.sources.experts import split_experts

    model = split_experts(family.hf_classes()[0](cfg))
    tied = {"lm_head.weight"} if cfg.tie_word_embeddings else set()
    missing = set(model.state_dict()) - set(state) - tied
    if missing:
        raise InputError(f"{p}: missing tensors, e.g. {sorted(missing)[0]}")
    model.load_state_dict(state, strict=False)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model = model.to(dtype or torch.float32).eval()
    meta = {"architecture": family.gguf_arch, "name": field(r, "general.name"),
            "file_type": field(r, "general.file_type"), "bos_token_id": cfg.bos_token_id,
            "eos_token_id": cfg.eos_token_id, "chat_template": field(r, "tokenizer.chat_template")}
    return GGUFModel(model, build_tokenizer(r, p), meta, types)
