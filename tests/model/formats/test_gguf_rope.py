"""Llama 3's rotary scaling through GGUF: the ``rope_freqs`` factors llama.cpp's converter
writes, found again as transformers' llama3 parameters; a Llama 3 folder written as GGUF and
read back gives the model's own logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from quanta.errors import ConfigError
from quanta.model.formats import gguf_rope
from quanta.model.formats.gguf_hf import check
from tests.model.conftest import LLAMA3_ROPE

LLAMA31 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 8192}


def test_factors_are_the_converters():
    """Llama 3.1's factors at head_dim 128, theta 500000: 1 for the fast half, 8 for the slowest,
    interpolated between (the numbers llama.cpp's converter writes: the same loop, in float32)."""
    f = gguf_rope.factors(LLAMA31, 500000.0, 128)
    assert f.shape == (64,) and f.dtype == np.float32
    assert f[0] == 1.0 and f[-1] == 8.0 and np.all(np.diff(f) >= 0)
    band = f[(f > 1) & (f < 8)]
    assert 3 <= band.size <= 10  # a handful of interpolated frequencies


@pytest.mark.parametrize("params", [LLAMA31, {**LLAMA31, "factor": 32.0},
                                    {"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 2.0,
                                     "high_freq_factor": 8.0, "original_max_position_embeddings": 4096}])
def test_parameters_are_found_again(params):
    f = gguf_rope.factors(params, 500000.0, 128)
    found = gguf_rope.parameters(f, 500000.0, 128)
    assert found is not None and found["rope_type"] == "llama3"
    np.testing.assert_allclose(gguf_rope.factors(found, 500000.0, 128), f, rtol=1e-5)


def test_other_factors_are_not_guessed():
    assert gguf_rope.parameters(np.linspace(1, 3, 64, dtype=np.float32) ** 2, 500000.0, 128) is None
    assert gguf_rope.parameters(np.ones(64, np.float32), 500000.0, 128) is None
    assert gguf_rope.parameters(np.ones(10, np.float32), 500000.0, 128) is None


def test_only_llamas_rope_scaling_is_written(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": {"a": 0}}}')
    cfg = {"architectures": ["LlamaForCausalLM"], "rope_parameters": {**LLAMA31, "rope_theta": 5e5}}
    assert check(tmp_path, cfg)["model"]["type"] == "BPE"
    with pytest.raises(ConfigError, match="'llama3' rotary scaling"):
        check(tmp_path, {**cfg, "architectures": ["Qwen2ForCausalLM"]})


def test_a_llama_3_folder_round_trips_through_gguf(tmp_path):
    """A tiny Llama with Llama 3's rotary scaling: its GGUF holds llama.cpp's rope_freqs tensor,
    quanta reads the file back with the same scaling, and the logits are the folder's."""
    from gguf import GGUFReader

    from quanta.media import get
    from quanta.model.formats.gguf_read import load_gguf
    from quanta.model.options import Options
    from quanta.model.sources.load import load_model
    from quanta.model.sources.tiny import write_hf_folder

    hf = write_hf_folder(tmp_path / "hf", rope_parameters=LLAMA3_ROPE, max_position_embeddings=1024)
    cfg = json.loads((hf / "config.json").read_text())
    assert cfg["rope_parameters"]["rope_type"] == "llama3"
    out = tmp_path / "l3.gguf"
    get("model").write(hf, out, Options(format="gguf", bits=8, sym=True, group_size=32, method="rtn"))
    freqs = {t.name: np.asarray(t.data) for t in GGUFReader(out).tensors}[gguf_rope.NAME]
    np.testing.assert_array_equal(freqs, gguf_rope.factors(cfg["rope_parameters"], 500000.0, 32))
    assert 1 < freqs.max() and freqs.min() == 1
    g = load_gguf(out)
    rope = g.model.config.rope_parameters
    assert rope["rope_type"] == "llama3" and rope["factor"] == 8.0
    src = load_model(hf).model
    torch.testing.assert_close(g.model.model.rotary_emb.inv_freq, src.model.rotary_emb.inv_freq)
    x = torch.tensor([[256, 5, 77, 100, 3, 9, 40, 41, 42, 43] * 12])
    with torch.no_grad():
        a, b = g.model(x).logits, src(x).logits
    assert float((a - b).norm() / b.norm()) < 0.02  # Q8_0 weights, the same rope
    # factors that are no llama3 rope: refused in one line (never read with the wrong rotation)
    from quanta.errors import InputError

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(out.read_bytes())
    t = next(t for t in GGUFReader(bad, "r+").tensors if t.name == gguf_rope.NAME)
    t.data[:] = np.linspace(1, 3, t.data.size, dtype=np.float32) ** 2
    t.data.flush()
    with pytest.raises(InputError, match="not Llama 3's rotary scaling"):
        load_gguf(bad, verify=False)
