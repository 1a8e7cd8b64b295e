"""Tokenizer vocabularies in GGUF: every token by id with llama.cpp's types (both kinds), and
SentencePiece-style BPE vocabularies (llama.cpp's "llama" tokenizer model) both ways.

Checkpoints converted from SentencePiece (Llama 2, Mistral 7B v0.1–v0.3, Gemma) carry a
``tokenizer.json`` whose model is BPE with byte fallback: "▁" stands for a space, ``<0xNN>``
tokens for bytes that no piece covers, and merges in rank order. llama.cpp's "llama" vocabulary
holds the pieces with a score and a type each instead, and at each step merges the adjacent
pair whose concatenation is the highest-scoring piece. Written here, a piece's score is minus
the rank of the first merge that makes it, so llama.cpp merges in the order the merges list
gives; pieces no merge makes score 0. Read back, the merges are rebuilt from the scores: every
split of a piece into two pieces, best-scoring piece first (what transformers does with a
SentencePiece model).

Only the pipeline such a conversion has is accepted: spaces replaced by "▁" (with a "▁"
prepended, llama.cpp's ``add_space_prefix``, or not), by a normalizer or a Metaspace
pre-tokenizer; anything else is refused in one line (:func:`add_space_prefix`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from quanta.errors import ConfigError

SPACE = "\u2581"  # "▁"
#: llama.cpp's token types: a normal token, the unknown token, a control (special) token, a
#: user-defined added token, an unused padding row, a byte piece (``<0x0A>``)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_BYTE = re.compile(r"<0x[0-9A-F]{2}>")


def tokens_by_id(tokenizer: dict, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens by id and their types, padded to the embedding's rows with unused ``[PADn]``."""
    by_id = {int(i): t for t, i in tokenizer["model"]["vocab"].items()}
    types = {}
    for a in tokenizer.get("added_tokens") or []:
        by_id[int(a["id"])] = a["content"]
        types[int(a["id"])] = CONTROL if a.get("special") else USER_DEFINED
    n = max(vocab_size, max(by_id) + 1)
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(n)]
    kinds = [types.get(i, NORMAL if i in by_id else UNUSED) for i in range(n)]
    return tokens, kinds


def is_spm(tokenizer: dict) -> bool:
    """Whether ``tokenizer.json`` is SentencePiece-style BPE (byte fallback)."""
    model = tokenizer.get("model") or {}
    return model.get("type") == "BPE" and bool(model.get("byte_fallback"))


def _steps(part: Any) -> list[dict]:
    if not isinstance(part, dict):
        return []
    return [s for p in part.get("normalizers") or part.get("pretokenizers") or [part] for s in _steps(p)] \
        if part.get("type") == "Sequence" else [part]


def add_space_prefix(tokenizer: dict, where: str = "") -> bool:
    """llama.cpp's ``add_space_prefix`` of a SentencePiece-style ``tokenizer.json``: whether a
    "▁" is put before the text; a pipeline of another shape is refused in one line."""
    norm, pre = _steps(tokenizer.get("normalizer")), _steps(tokenizer.get("pre_tokenizer"))
    kinds = [s.get("type") for s in norm]
    space = {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}
    if kinds in (["Replace"], ["Prepend", "Replace"]) and not pre and norm[-1] == space:
        return kinds[0] == "Prepend" and norm[0].get("prepend") == SPACE
    meta = len(pre) == 1 and pre[0].get("type") == "Metaspace" and pre[0].get("replacement") == SPACE
    if not norm and meta and not pre[0].get("split", True):
        return pre[0].get("prepend_scheme", "always") in ("always", "first")
    raise ConfigError(f"{where}: --format gguf writes SentencePiece-style tokenizers whose only step is "
                      f"spaces as {SPACE} (normalizer {kinds}, pre-tokenizer {[s.get('type') for s in pre]})")


def vocabulary(tokenizer: dict, vocab_size: int) -> tuple[list[str], list[float], list[int]]:
    """Pieces by id (padded to the embedding's rows with unused ``[PADn]``), their scores and
    llama.cpp types."""
    model = tokenizer["model"]
    tokens, kinds = tokens_by_id(tokenizer, vocab_size)
    rank: dict[str, int] = {}
    for i, m in enumerate(model.get("merges") or []):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        rank.setdefault(a + b, i)
    unk = model.get("unk_token")
    kinds = [UNKNOWN if t == unk else BYTE if k == NORMAL and _BYTE.fullmatch(t) else k
             for t, k in zip(tokens, kinds)]
    scores = [-float(rank[t]) if t in rank and k == NORMAL else 0.0 for t, k in zip(tokens, kinds)]
    return tokens, scores, kinds


def fields(tokenizer: dict, vocab_size: int, where: str = "") -> list[tuple]:
    """The GGUF tokenizer keys of a SentencePiece-style ``tokenizer.json`` (without the special
    ids, which every vocabulary writes alike)."""
    from gguf import GGUFValueType as T
    from gguf import Keys

    prefix = add_space_prefix(tokenizer, where)
    tokens, scores, kinds = vocabulary(tokenizer, vocab_size)
    tk = Keys.Tokenizer
    out = [(tk.MODEL, "llama", T.STRING, None), (tk.LIST, tokens, T.ARRAY, T.STRING),
           (tk.SCORES, scores, T.ARRAY, T.FLOAT32), (tk.TOKEN_TYPE, kinds, T.ARRAY, T.INT32),
           (tk.ADD_PREFIX, prefix, T.BOOL, None)]
    unk = tokenizer["model"].get("unk_token")
    if unk in tokens:
        out.append((tk.UNK_ID, tokens.index(unk), T.UINT32, None))
    return out


def _spaces(tk: Any, add_prefix: bool) -> None:
    """A SentencePiece-style tokenizer's only steps: spaces as "▁" (one put first with
    ``add_prefix``), and back when decoding (byte pieces joined into characters)."""
    from tokenizers import decoders, normalizers

    space = normalizers.Replace(" ", SPACE)
    tk.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), space]) if add_prefix else space
    steps = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    tk.decoder = decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if add_prefix else []))


def tokenizer_of(tokens: list[str], scores: list[float], types: list[int], *, add_prefix: bool) -> Any:
    """A ``tokenizers.Tokenizer`` of a GGUF "llama" vocabulary: BPE with byte fallback, the
    merges rebuilt from the scores (the module docstring)."""
    from tokenizers import AddedToken, Tokenizer, models

    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for i, t in enumerate(tokens):
        if types[i] not in (NORMAL, USER_DEFINED) or len(t) < 2:
            continue
        for k in range(1, len(t)):
            a, b = t[:k], t[k:]
            if a in vocab and b in vocab:
                merges.append((-scores[i], vocab[a], vocab[b], a, b))
    merges.sort()
    unk = next((t for t, k in zip(tokens, types) if k == UNKNOWN), None)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for *_, a, b in merges], unk_token=unk,
                              fuse_unk=True, byte_fallback=True))
    _spaces(tk, add_prefix)
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types)
                           if k == CONTROL])
    tk.add_tokens([AddedToken(t, normalized=False) for t, k in zip(tokens, types) if k == USER_DEFINED])
    return tk


def train(text: str, vocab_size: int = 512, *, add_prefix: bool = True) -> Any:
    """A SentencePiece-style tokenizer (``<pad> </s> <s> <unk>``, 256 ``<0xNN>`` byte pieces, then
    ``vocab_size`` − 260 pieces learned from ``text`` by BPE within words; "▁" for spaces; every
    split of a piece a merge, as transformers converts a SentencePiece model): the test models'
    and the families benchmark's stand-in for Llama 2's or Gemma's (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    specials = ["<pad>", "</s>", "<s>", "<unk>"]
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    tk = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    _spaces(tk, add_prefix)
    # pieces learned within words ("▁the"), as SentencePiece's are; applied to the whole text
    tk.pre_tokenizer = pre_tokenizers.Split(SPACE, "merged_with_next")
    tk.train_from_iterator([text], trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                                        special_tokens=specials + byte_pieces))
    data = json.loads(tk.to_str())
    data["added_tokens"] = [a for a in data["added_tokens"] if a["content"] in specials]  # bytes are pieces
    # as a SentencePiece model converted by transformers: every split of a piece is a merge
    # (SentencePiece merges any adjacent pair that makes a piece; BPE only the pair it learned)
    tokens, scores, kinds = vocabulary(data, 0)
    return tokenizer_of(tokens, scores, kinds, add_prefix=add_prefix)


__all__ = ["BYTE", "CONTROL", "NORMAL", "UNKNOWN", "UNUSED", "USER_DEFINED", "add_space_prefix", "fields",
           "is_spm", "tokenizer_of", "tokens_by_id", "train", "vocabulary"]
