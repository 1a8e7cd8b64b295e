"""The lean decode path computes what the eager model computes: same logits (float), same greedy
tokens (every layer kind), rebuilt when layers change, refused with a reason where it cannot run."""

from __future__ import annotations

import copy

import pytest
import torch

from quanta.model.quantize.apply import quantize_model
from quanta.model.runtime.fastpath import decoder_for
from quanta.model.runtime.generate import generate_ids, stepper
from quanta.model.runtime.qlinear import QuantLinear
from quanta.model.sources.tiny import BOS, tiny_llama

PROMPT = [BOS, 72, 101, 108, 108, 111, 44, 32, 119, 111]


def _model(seed: int = 3):
    return tiny_llama(seed=seed, hidden=128)  # K/V rows: 64, so Q·K·V fuse on int4 too


def test_float_logits_match_step_by_step():
    m = _model()
    dec, why = decoder_for(m, 64)
    assert why == "fast"
    ids = list(PROMPT)
    got = [dec.forward(ids)]
    for t in (5, 9, 200):
        ids.append(t)
        got.append(dec.forward([t]))
    with torch.no_grad():
        for n, g in zip((len(PROMPT), len(PROMPT) + 1, len(PROMPT) + 2, len(PROMPT) + 3), got):
            want = m(torch.tensor([ids[:n]])).logits[0, -1]
            torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-4)


def _quantized(kind: str):
    m = _model()
    if kind == "int4":
        quantize_model(m, "rtn", bits=4, group_size=32)
    elif kind == "int8":
        quantize_model(m, "rtn", bits=8, group_size=0, sym=True)
    elif kind == "3-bit":
        quantize_model(m, "rtn", bits=3, group_size=32)
    elif kind == "awq-explicit":  # K left float: Q and V keep explicit input scales
        calib = torch.randint(0, 259, (8, 32), generator=torch.Generator().manual_seed(0))
        quantize_model(m, "awq", bits=4, group_size=32, calib=calib, exclude=("lm_head", "*.k_proj"))
    elif kind == "bf16":
        m = m.to(torch.bfloat16)
    return m


@pytest.mark.parametrize("kind", ["float", "int4", "int8", "3-bit", "awq-explicit", "bf16"])
def test_greedy_tokens_equal_the_eager_model(kind):
    m = _quantized(kind)
    eager = generate_ids(m, PROMPT, max_tokens=24, temperature=0, fast=False)
    fast = generate_ids(m, PROMPT, max_tokens=24, temperature=0)
    assert fast.path.startswith("fast") and eager.path.startswith("eager")
    assert fast.ids == eager.ids


def test_int4_projections_fuse_into_views_of_one_product():
    m = _quantized("int4")
    dec, _ = decoder_for(m, 32)
    block = dec.blocks[0]
    assert isinstance(block.qkv, QuantLinear) and block.qkv.out_features == 128 + 64 + 64
    assert isinstance(block.gate_up, QuantLinear)
    f = _model()
    fd, _ = decoder_for(f, 32)
    q = f.model.layers[0].self_attn.q_proj.weight
    assert q.untyped_storage().data_ptr() == fd.blocks[0].qkv.weight.untyped_storage().data_ptr()


def test_a_replaced_layer_rebuilds_the_decoder():
    m = _model()
    first = generate_ids(m, PROMPT, max_tokens=8, temperature=0)
    quantize_model(m, "rtn", bits=2, group_size=32)  # the same model object, new layers
    again = generate_ids(m, PROMPT, max_tokens=8, temperature=0)
    assert again.ids == generate_ids(m, PROMPT, max_tokens=8, temperature=0, fast=False).ids
    assert isinstance(copy.deepcopy(m), type(m))  # a model with a decoder still copies
    assert first.path == again.path


def test_other_models_run_eager_and_say_why():
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64))
    dec, why = decoder_for(bert, 16)
    assert dec is None and "not a Llama" in why
    _, line = stepper(bert, 16)
    assert line.startswith("eager: ")


def test_the_cache_grows_for_a_longer_sequence():
    m = _model()
    dec, _ = decoder_for(m, 12)
    dec.forward(PROMPT)
    with pytest.raises(ValueError, match="cache holds"):
        dec.forward([1, 2, 3])
    again, _ = decoder_for(m, 40)  # the same decoder, a longer cache, a new sequence
    assert again is dec and again.pos == 0 and again.max_len == 40


@pytest.mark.parametrize("family", ["mistral", "qwen2", "qwen3"])
@pytest.mark.parametrize("kind", ["float", "int4"])
def test_the_other_llama_shaped_families_decode_on_the_lean_path(family, kind):
    """Mistral (inside its sliding window), Qwen2 (q/k/v biases, fused with their biases) and
    Qwen3 (q/k head norms before the rotation, heads wider than hidden / heads): the eager
    model's greedy tokens, and its logits step by step in float."""
    from quanta.model.sources.tiny import tiny_model

    m = tiny_model(family, seed=4, hidden=128)
    if kind == "int4":
        quantize_model(m, "rtn", bits=4, group_size=32)
    eager = generate_ids(m, PROMPT, max_tokens=24, temperature=0, fast=False)
    fast = generate_ids(m, PROMPT, max_tokens=24, temperature=0)
    assert fast.path.startswith("fast"), fast.path
    assert fast.ids == eager.ids
    if kind == "float":
        dec, _ = decoder_for(m, 40)
        ids = list(PROMPT)
        got = dec.forward(ids)
        with torch.no_grad():
            torch.testing.assert_close(got, m(torch.tensor([ids])).logits[0, -1], rtol=1e-4, atol=1e-4)


def test_mistral_beyond_its_sliding_window_runs_the_eager_model():
    from quanta.model.sources.tiny import tiny_model

    dec, why = decoder_for(tiny_model("mistral", seed=4, hidden=128), 65)  # the tiny window: 64
    assert dec is None and "sliding window of 64" in why
