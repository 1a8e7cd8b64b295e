"""A Hugging Face model's GGUF metadata (:mod:`quanta.model.formats.gguf_hf`); the whole path
HF folder → GGUF → read back is tests/model/test_families.py's."""

import pytest

from quanta.errors import ConfigError
from quanta.model.formats.gguf_hf import check, metadata_bytes, pre_tokenizer

QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3 = QWEN2.replace(r"|\p{N}|", r"|\p{N}{1,3}|")


def _split(regex: str) -> dict:
    return {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated"},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}}


def test_the_pre_tokenizer_name_comes_from_the_tokenizer_itself():
    smol = {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]}}
    gpt2 = {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}}
    assert [pre_tokenizer(t) for t in (_split(QWEN2), _split(LLAMA3), smol, gpt2, {})] == \
        ["qwen2", "llama-bpe", "smollm", "gpt-2", "default"]


def test_what_cannot_be_written_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="needs tokenizer"):
        check(tmp_path, {})
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "Unigram", "vocab": []}}')
    with pytest.raises(ConfigError, match=r"BPE tokenizers only .*, not 'Unigram'"):
        check(tmp_path, {})
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": {"a": 0}}}')
    assert check(tmp_path, {})["model"]["type"] == "BPE"
    with pytest.raises(ConfigError, match="'yarn' rotary scaling"):
        check(tmp_path, {"rope_scaling": {"type": "yarn", "factor": 4.0}})


def test_the_metadata_bytes_are_the_gguf_encodings():
    from gguf import GGUFValueType as T

    # key: 8-byte length + text, 4-byte type; a string: 8 + text; an array: 4 + 8 + items
    assert metadata_bytes([("a.b", "xyz", T.STRING, None)]) == 8 + 3 + 4 + 8 + 3
    assert metadata_bytes([("k", [1, 2, 3], T.ARRAY, T.INT32)]) == 8 + 1 + 4 + 4 + 8 + 12
    assert metadata_bytes([("k", 7, T.UINT32, None), ("k2", 0.5, T.FLOAT32, None)]) == (13 + 4) + (14 + 4)
