"""A GGUF file from a Hugging Face causal LM, as llama.cpp's converter would lay it out: the
hyper-parameters under the family's GGUF architecture, the tokenizer (tokens by id, their types,
merges — or, for a SentencePiece-style BPE, scores: :mod:`quanta.model.formats.gguf_vocab` —,
special ids, the chat template) from ``tokenizer.json``, and the tensors under gguf-py's names
(:class:`quanta.model.arch.Architecture`), Q/K rows permuted where llama.cpp expects them.

Written with the ``gguf`` package's writer and constants, not llama.cpp's script. What is not
written yet is refused at plan time in one line (:func:`check`): tokenizers other than BPE (a
folder with only SentencePiece's ``tokenizer.model``, a Unigram or WordPiece model) and rotary
scaling other than Llama 3's (which llama.cpp stores as a ``rope_freqs`` tensor:
:mod:`quanta.model.formats.gguf_rope`) and Gemma's linear one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import ConfigError
from quanta.model.formats import gguf_rope, gguf_vocab
from quanta.model.formats.gguf_vocab import tokens_by_id


def check(folder: Path | str, config: dict) -> dict:
    """The folder's ``tokenizer.json``, if quanta can write this model as GGUF; otherwise a
    one-line error saying what is missing (the family and the rotary scaling first: they need
    no file read)."""
    from quanta.model.arch import for_hf
    from quanta.model.sources.reading import read_json

    folder = Path(folder)
    arch = config.get("architectures") or [None]
    if arch[0] is not None and not for_hf(arch[0], str(folder), causal=True).gguf_io:
        raise ConfigError(f"{folder}: --format gguf does not write {arch[0]} yet (write a quanta folder "
                          "or compressed-tensors)")
    if arch[0] is not None and for_hf(arch[0]).experts and config.get("norm_topk_prob") is False:
        raise ConfigError(f"{folder}: --format gguf: llama.cpp renormalises the chosen experts' weights "
                          "(norm_topk_prob), this model does not (write a quanta folder or "
                          "compressed-tensors)")
    if arch[0] is not None and for_hf(arch[0]).gemma:
        _check_gemma(folder, config, for_hf(arch[0]))
    kind = gguf_rope.rope_type(config)
    llama3 = kind == "llama3" and arch[0] is not None and for_hf(arch[0]).gguf_arch == "llama"
    if kind != "default" and not llama3:
        raise ConfigError(f"{folder}: --format gguf does not write {kind!r} rotary scaling yet "
                          "(write a quanta folder, or start from a GGUF file)")
    tok = folder / "tokenizer.json"
    if not tok.is_file():
        raise ConfigError(f"{folder}: --format gguf needs tokenizer.json (a byte-level BPE tokenizer)")
    data = read_json(tok)  # bounded, a one-line error when it is not JSON
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ConfigError(f"{tok}: --format gguf writes BPE tokenizers only (byte-level or "
                          f"SentencePiece-style), not {(model or {}).get('type')!r}")
    if gguf_vocab.is_spm(data):
        gguf_vocab.add_space_prefix(data, str(tok))  # a pipeline of another shape: refused here
    return data


def _check_gemma(folder: Path, config: dict, family: Any) -> None:
    """What llama.cpp's Gemma graphs fix and a Gemma config might not: the attention scale
    (1/√head_dim but for the 27 B shapes), its local/global layer pattern (every second layer
    global for Gemma 2, every sixth for Gemma 3), rotary scaling other than linear."""
    head = family.sizes(config)["head"]
    n = int(config["num_hidden_layers"])
    if family.gguf_arch == "gemma2" and config.get("tie_word_embeddings") is False:
        raise ConfigError(f"{folder}: --format gguf: llama.cpp's gemma2 has no output head of its own; "
                          "this model's is untied")
    scalar = config.get("query_pre_attn_scalar")
    big = n == (46 if family.gguf_arch == "gemma2" else 62)
    expect = family.sizes(config)["hidden"] // int(config["num_attention_heads"]) if big else head
    if scalar is not None and int(scalar) != expect:
        raise ConfigError(f"{folder}: --format gguf: llama.cpp scales {family.gguf_arch}'s attention by "
                          f"1/sqrt({expect}), this model by 1/sqrt(query_pre_attn_scalar={scalar})")
    every = 2 if family.gguf_arch == "gemma2" else 6
    pattern = ["sliding_attention" if i % every < every - 1 else "full_attention" for i in range(n)]
    if config.get("layer_types") not in (None, pattern):
        raise ConfigError(f"{folder}: --format gguf: llama.cpp's {family.gguf_arch} makes one layer in "
                          f"{every} global (the last of each {every}); this model's layer_types differ")
    full = _gemma_rope(config)[0]
    if str(full.get("rope_type") or "default") not in ("default", "linear"):
        raise ConfigError(f"{folder}: --format gguf does not write {full.get('rope_type')!r} rotary scaling "
                          f"of {family.gguf_arch} yet")


def _gemma_rope(config: dict) -> tuple[dict, dict | None]:
    """(the global layers' rotary parameters, the local layers' or None): Gemma 3 keeps them
    apart in ``rope_parameters``; Gemma 2 has one set."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if "full_attention" in rope or "sliding_attention" in rope:
        return rope.get("full_attention") or {}, rope.get("sliding_attention")
    return rope | ({"rope_theta": config["rope_theta"]} if config.get("rope_theta") else {}), None


def _gemma_fields(config: dict, family: Any) -> list[tuple]:
    """Gemma's keys as llama.cpp's converter writes them: soft-capping, the sliding window, the
    global and local rotary bases (Gemma 3), linear rotary scaling."""
    from gguf import GGUFValueType as T
    from gguf import Keys

    arch = family.gguf_arch
    out: list[tuple] = []
    for key, name in ((Keys.LLM.ATTN_LOGIT_SOFTCAPPING, "attn_logit_softcapping"),
                      (Keys.LLM.FINAL_LOGIT_SOFTCAPPING, "final_logit_softcapping")):
        if config.get(name) is not None:
            out.append((key.format(arch=arch), float(config[name]), T.FLOAT32, None))
    if config.get("sliding_window"):
        window = int(config["sliding_window"])
        out.append((Keys.Attention.SLIDING_WINDOW.format(arch=arch), window, T.UINT32, None))
    full, local = _gemma_rope(config)
    if local and local.get("rope_theta") is not None:
        out.append((Keys.Rope.FREQ_BASE_SWA.format(arch=arch), float(local["rope_theta"]), T.FLOAT32, None))
    if full.get("rope_type") == "linear":
        out += [(Keys.Rope.SCALING_TYPE.format(arch=arch), "linear", T.STRING, None),
                (Keys.Rope.SCALING_FACTOR.format(arch=arch), float(full["factor"]), T.FLOAT32, None)]
    return out


def pre_tokenizer(tokenizer: dict) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenization (``tokenizer.ggml.pre``), read from
    ``tokenizer.json`` itself — the tokenizer decides, not the family (a Qwen-shaped model may
    carry another model's tokenizer): Llama 3's split (numbers in runs of up to three) →
    ``llama-bpe``; Qwen2's (digits one by one, in the regex) → ``qwen2``; digits split one by one
    before GPT-2's byte-level regex → ``smollm``; GPT-2's byte-level regex alone → ``gpt-2``;
    anything else llama.cpp's ``default``."""
    pre = json.dumps(tokenizer.get("pre_tokenizer"))
    if '"Split"' in pre:
        if "\\\\p{N}{1,3}" in pre:
            return "llama-bpe"
        if "\\\\p{N}" in pre:
            return "qwen2"
        return "default"
    if '"individual_digits": true' in pre:
        return "smollm"
    if '"ByteLevel"' in pre and '"use_regex": true' in pre:
        return "gpt-2"
    return "default"


def _merges(tokenizer: dict) -> list[str]:
    return [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"].get("merges") or []]


def metadata(folder: Path | str, config: dict, family: Any, chat_template: str | None) -> list[tuple]:
    """The GGUF key/value pairs, as ``(key, value, GGUFValueType, array item type or None)``."""
    from gguf import GGUFValueType as T
    from gguf import Keys

    tok = check(folder, config)
    n = family.sizes(config)
    arch = family.gguf_arch
    llm, att, rope = Keys.LLM, Keys.Attention, Keys.Rope
    fields: list[tuple] = [
        (Keys.General.NAME, Path(folder).name, T.STRING, None),
        (llm.VOCAB_SIZE.format(arch=arch), n["vocab"], T.UINT32, None),
        (llm.CONTEXT_LENGTH.format(arch=arch), int(config.get("max_position_embeddings") or 2048), T.UINT32,
         None),
        (llm.EMBEDDING_LENGTH.format(arch=arch), n["hidden"], T.UINT32, None),
        (llm.BLOCK_COUNT.format(arch=arch), int(config["num_hidden_layers"]), T.UINT32, None),
        (llm.FEED_FORWARD_LENGTH.format(arch=arch), n["inter"], T.UINT32, None),
        (att.HEAD_COUNT.format(arch=arch), int(config["num_attention_heads"]), T.UINT32, None),
        (att.HEAD_COUNT_KV.format(arch=arch), n["kv"] // n["head"], T.UINT32, None),
        (att.LAYERNORM_RMS_EPS.format(arch=arch), float(config.get("rms_norm_eps") or 1e-6), T.FLOAT32, None),
        (rope.FREQ_BASE.format(arch=arch), float(_gemma_rope(config)[0].get("rope_theta") or 10000.0)
         if family.gemma else gguf_rope.rope_theta(config), T.FLOAT32, None),
        (rope.DIMENSION_COUNT.format(arch=arch), n["head"], T.UINT32, None),
    ]
    if family.gemma:
        fields += _gemma_fields(config, family)
    if family.experts:  # the converter's keys: experts, chosen per token, each one's MLP width
        used = int(config["num_experts_per_tok"])
        fields += [(llm.EXPERT_COUNT.format(arch=arch), n["experts"], T.UINT32, None),
                   (llm.EXPERT_USED_COUNT.format(arch=arch), used, T.UINT32, None),
                   (llm.EXPERT_FEED_FORWARD_LENGTH.format(arch=arch), n["moe"], T.UINT32, None)]
    if n["head"] * int(config["num_attention_heads"]) != n["hidden"] or config.get("head_dim"):
        fields += [(att.KEY_LENGTH.format(arch=arch), n["head"], T.UINT32, None),
                   (att.VALUE_LENGTH.format(arch=arch), n["head"], T.UINT32, None)]
    tk = Keys.Tokenizer
    if gguf_vocab.is_spm(tok):  # SentencePiece-style: pieces with scores, byte pieces
        spm = gguf_vocab.fields(tok, n["vocab"], str(folder))
        fields += spm
        tokens = next(v for k, v, *_ in spm if k == tk.LIST)
    else:
        tokens, kinds = tokens_by_id(tok, n["vocab"])
        fields += [(tk.MODEL, "gpt2", T.STRING, None), (tk.PRE, pre_tokenizer(tok), T.STRING, None),
                   (tk.LIST, tokens, T.ARRAY, T.STRING), (tk.TOKEN_TYPE, kinds, T.ARRAY, T.INT32)]
        merges = _merges(tok)
        if merges:  # (GGUF has no empty arrays: a vocabulary of bytes alone has none)
            fields.append((tk.MERGES, merges, T.ARRAY, T.STRING))
    for key, name in ((tk.BOS_ID, "bos_token_id"), (tk.EOS_ID, "eos_token_id"), (tk.PAD_ID, "pad_token_id")):
        value = config.get(name)
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, int) and 0 <= value < len(tokens):
            fields.append((key, value, T.UINT32, None))
    if chat_template:
        fields.append((tk.CHAT_TEMPLATE, chat_template, T.STRING, None))
    return fields


def tensors(model: Any, family: Any) -> Iterator[tuple[str, np.ndarray | None]]:
    """Every tensor under its GGUF name in the model's module order: float32 in llama.cpp's
    layout (Q/K rows permuted for the families whose rotary layout llama.cpp permutes), or None
    for a layer quantized already (its blocks come from the quantizer); the tied head is not
    written. A mixture's experts come as one stack per kind and block (experts × out × in),
    at the experts module."""
    from quanta.model.formats.gguf_read import permute
    from quanta.model.runtime.qembed import QuantEmbedding
    from quanta.model.runtime.qlinear import QuantLinear
    from quanta.model.sources.experts import SplitExperts

    config = model.config.to_dict()
    heads = family.rope_heads(config)
    tied = bool(config.get("tie_word_embeddings"))
    if gguf_rope.rope_type(config) == "llama3":  # llama.cpp's converter writes the factors first
        yield gguf_rope.NAME, gguf_rope.factors(gguf_rope.rope_params(config), gguf_rope.rope_theta(config),
                                                family.sizes(config)["head"])
    stacked: tuple[str, ...] = ()  # the experts modules written as stacks (their insides skipped)
    for module_name, module in model.named_modules():
        if module_name.startswith(stacked):
            continue
        if isinstance(module, SplitExperts):
            yield from _stacks(module_name, module, family)
            stacked += (module_name + ".",)
            continue
        quantized = isinstance(module, QuantLinear | QuantEmbedding)
        params = list(module.named_parameters(recurse=False))
        if quantized:  # its float bias, if any, is a parameter; its weight is the quantizer's
            params = [("weight", None), *((n, p) for n, p in params if n == "bias")]
        for pname, p in params:
            name = family.gguf_name(f"{module_name}.{pname}")
            if name is None or (tied and name == "output.weight"):
                continue
            if p is None or p.is_meta:  # the quantizer's (a streamed model's embedding, too)
                yield name, None
                continue
            arr = p.detach().float().numpy()
            kind = name.split(".")[2] if name.startswith("blk.") else None
            if kind in heads and name.endswith(".weight"):
                arr = permute(arr, heads[kind])
            yield name, np.ascontiguousarray(arr, dtype=np.float32)


def _stacks(name: str, experts: Any, family: Any) -> Iterator[tuple[str, np.ndarray | None]]:
    """The GGUF stacks of one block's experts: each kind's matrices as one float32 array
    (experts × out × in), or None when they are quantized (the writer stacks their blocks)."""
    import torch

    for linear in family.expert_linears:
        mods = [getattr(e, linear) for e in experts]
        gguf = family.gguf_name(f"{name}.0.{linear}.weight")
        if not all(isinstance(m, torch.nn.Linear) and not m.weight.is_meta for m in mods):
            yield gguf, None
        else:
            yield gguf, np.ascontiguousarray(torch.stack([m.weight.detach().float() for m in mods]).numpy())


def metadata_bytes(fields: list[tuple]) -> int:
    """The bytes ``fields`` take in a GGUF header (keys, types, values)."""
    from gguf import GGUFValueType as T

    def size(v: Any, t: Any) -> int:
        if t == T.STRING:
            return 8 + len(str(v).encode())
        return {T.UINT32: 4, T.INT32: 4, T.FLOAT32: 4, T.UINT64: 8, T.BOOL: 1}.get(t, 8)

    total = 0
    for key, value, vtype, sub in fields:
        total += 8 + len(key.encode()) + 4
        total += 4 + 8 + sum(size(v, sub) for v in value) if vtype == T.ARRAY else size(value, vtype)
    return total
