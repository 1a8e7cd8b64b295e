"""SentencePiece-style vocabularies in GGUF (:mod:`quanta.model.formats.gguf_vocab`): a Hugging
Face folder's BPE-with-byte-fallback tokenizer → llama.cpp's scored pieces → the tokenizer
rebuilt from them cuts every text as the folder's own does (transformers' ``tokenizers`` is the
oracle; llama.cpp's cut is checked by ``bench/model_families.py``'s "llama-spm" row)."""

from __future__ import annotations

import json

import pytest
from gguf import GGUFReader

from quanta.cli.main import main
from quanta.model.formats import gguf_vocab
from quanta.model.quantize.calibrate import default_text
from quanta.model.sources.load import load_model
from quanta.model.sources.tiny import write_hf_folder

TEXTS = ["Hello world, the test € 日本", " leading space", "tabs\tand\nnewlines  double",
         "The tower is 324 metres (1,063 ft) tall", "<s> is not the start token in text", ""]


@pytest.fixture(scope="module", params=[True, False], ids=["space-prefix", "no-prefix"])
def spm(request, tmp_path_factory):
    tok = gguf_vocab.train(default_text()[:60000], 400, add_prefix=request.param)
    d = tmp_path_factory.mktemp("spm")
    src = write_hf_folder(d / "hf", seed=3, vocab=400, tokenizer=tok, bos_token_id=2, eos_token_id=1)
    out = d / "m.gguf"
    assert main(["model", "quantize", str(src), "-o", str(out), "--format", "gguf", "--bits", "8",
                 "--method", "rtn"]) == 0
    return tok, src, out, request.param


def test_pieces_are_written_with_scores_types_and_the_space_prefix(spm):
    tok, _src, out, prefix = spm
    r = GGUFReader(out)
    f = {k: r.fields[k].contents() for k in r.fields if k.startswith("tokenizer.")}
    data = json.loads(tok.to_str())
    assert f["tokenizer.ggml.model"] == "llama" and f["tokenizer.ggml.add_space_prefix"] == prefix
    tokens, scores = f["tokenizer.ggml.tokens"], f["tokenizer.ggml.scores"]
    types = f["tokenizer.ggml.token_type"]
    assert all(tokens[i] == t for t, i in data["model"]["vocab"].items())
    assert types[tokens.index("<s>")] == gguf_vocab.CONTROL
    assert types[tokens.index("<unk>")] == gguf_vocab.UNKNOWN  # (an added special token in the folder)
    assert types[tokens.index("<0x0A>")] == gguf_vocab.BYTE and f["tokenizer.ggml.unknown_token_id"] == 3
    first = data["model"]["merges"][0]
    a, b = first.split(" ", 1) if isinstance(first, str) else first
    assert scores[tokens.index(a + b)] == 0.0  # the first merge's piece: rank 0
    second = data["model"]["merges"][1]
    a, b = second.split(" ", 1) if isinstance(second, str) else second
    assert scores[tokens.index(a + b)] == -1.0
    assert f["tokenizer.ggml.bos_token_id"] == 2 and f["tokenizer.ggml.eos_token_id"] == 1
    assert "tokenizer.ggml.merges" not in f


def test_the_rebuilt_tokenizer_cuts_and_joins_text_as_the_folders_own(spm):
    tok, _src, out, _prefix = spm
    rebuilt = load_model(out).tokenizer
    for text in TEXTS:
        ids = tok.encode(text).ids
        assert rebuilt.encode(text).ids == ids, text
        assert rebuilt.decode(ids) == tok.decode(ids)
    assert any(t.startswith("<0x") for t in tok.encode("日本").tokens)  # byte fallback exercised


def test_a_tokenizer_pipeline_of_another_shape_is_refused_before_any_weight(tmp_path, capsys):
    tok = gguf_vocab.train(default_text()[:20000], 300)
    data = json.loads(tok.to_str())
    data["pre_tokenizer"] = {"type": "Whitespace"}
    from tokenizers import Tokenizer

    src = write_hf_folder(tmp_path / "hf", seed=3, vocab=300, tokenizer=Tokenizer.from_str(json.dumps(data)))
    out = tmp_path / "m.gguf"
    assert main(["model", "quantize", str(src), "-o", str(out), "--format", "gguf"]) == 2
    err = capsys.readouterr().err
    assert "SentencePiece-style" in err and "Whitespace" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    # a Metaspace pre-tokenizer that does not split is the same pipeline (newer conversions)
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": gguf_vocab.SPACE, "prepend_scheme": "first",
                             "split": False}
    data["normalizer"] = None
    assert gguf_vocab.add_space_prefix(data) is True
