"""A quanta Llama folder loads without transformers for generation, and computes what the
transformers model computes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from quanta.media import get
from quanta.model.options import Options
from quanta.model.runtime.generate import generate_ids
from quanta.model.runtime.lite import LiteLlama, supported
from quanta.model.sources.load import load_model
from quanta.model.sources.tiny import BOS, write_hf_folder

PROMPT = [BOS, 72, 101, 108, 108, 111, 44, 32]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lite")
    src = write_hf_folder(tmp / "hf", seed=4)
    out = tmp / "q4"
    get("model").write(src, out, Options(bits=4, method="rtn"))
    return out


def test_lite_model_generates_the_transformers_models_tokens(folder):
    lite, full = load_model(folder, lite=True), load_model(folder)
    assert isinstance(lite.model, LiteLlama) and not isinstance(full.model, LiteLlama)
    torch.testing.assert_close(lite.model.model.rotary_emb.inv_freq, full.model.model.rotary_emb.inv_freq)
    a = generate_ids(lite.model, PROMPT, max_tokens=20, temperature=0)
    b = generate_ids(full.model, PROMPT, max_tokens=20, temperature=0, fast=False)
    assert a.path.startswith("fast") and a.ids == b.ids
    assert lite.bos_id == full.bos_id
    with pytest.raises(NotImplementedError):
        lite.model(torch.tensor([PROMPT]))


def test_lite_loading_imports_no_transformers(folder):
    code = ("import sys; from quanta.model.sources.load import load_model; "
            f"m = load_model({str(folder)!r}, lite=True).model; "
            "assert type(m).__name__ == 'LiteLlama'; "
            "assert 'transformers' not in sys.modules, 'transformers imported'; "
            # arithmetic on the meta device imports torch's compiler (0.85 s): the rotary table
            # is computed on the CPU
            "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_llama_3_folder_runs_lite_with_its_rotary_scaling(tmp_path):
    """Llama 3's rope (its low frequencies slowed, a blend between): the lite model's inverse
    frequencies are transformers' to the bit, and it generates the same tokens."""
    from tests.model.conftest import LLAMA3_ROPE

    src = write_hf_folder(tmp_path / "hf", seed=4, rope_parameters=LLAMA3_ROPE, max_position_embeddings=1024)
    out = tmp_path / "q4"
    get("model").write(src, out, Options(bits=4, method="rtn"))
    lite, full = load_model(out, lite=True), load_model(out)
    assert isinstance(lite.model, LiteLlama)
    inv = full.model.model.rotary_emb.inv_freq
    assert torch.equal(lite.model.model.rotary_emb.inv_freq, inv)
    assert not torch.equal(inv, 1.0 / (500000.0 ** (torch.arange(0, 32, 2).float() / 32)))  # scaled
    prompt = PROMPT * 12  # past the original 64 positions
    a = generate_ids(lite.model, prompt, max_tokens=12, temperature=0)
    b = generate_ids(full.model, prompt, max_tokens=12, temperature=0, fast=False)
    assert a.path.startswith("fast") and a.ids == b.ids


def test_unusual_configs_load_through_transformers():
    base = {"model_type": "llama", "hidden_act": "silu"}
    assert supported(base)
    assert not supported({**base, "rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4}})
    assert not supported({**base, "attention_bias": True})
    assert not supported({**base, "model_type": "mistral"})
