"""AWQ: scales fold without changing the float model, the search finds outlier channels, and the
scaled models save, load and export as quantized."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from quanta.media import get
from quanta.model.options import Options
from quanta.model.quantize.apply import find_targets, quantize_model
from quanta.model.quantize.awq import activation_scales, group_error, prepare_block, search
from quanta.model.quantize.calibrate import layerwise
from quanta.model.quantize.quantizers import LayerStats, make_quantizer
from quanta.model.runtime.qlinear import QuantLinear
from quanta.model.sources.tiny import tiny_llama, tiny_model


def _logits(m, x):
    with torch.no_grad():
        return m(x).logits


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"])
def test_folded_scales_leave_the_float_model_unchanged(family):
    """Every family's folds are exact in float: Llama's four (norms, V into O, up into down),
    Qwen2's with v's bias divided too, Qwen3's past its head norms, Phi-3's into the norms
    (its fused groups, which fold nowhere else, keep explicit scales), Gemma's into v and up
    only (its norms scale by 1 + weight: q/k/v and gate/up keep explicit scales)."""
    m = tiny_model(family, seed=1)  # grouped-query attention: 4 heads, 2 KV heads
    x = torch.randint(0, 259, (6, 48), generator=torch.Generator().manual_seed(0))
    before = _logits(m, x[:2])
    q = make_quantizer("awq", bits=3, group_size=32)
    explicit: dict = {}
    layerwise(m, find_targets(m, ("*",), ("lm_head",)), x,
              lambda block, stats: explicit.update(prepare_block(m, block, stats, lambda n: q)),
              hessian=True)
    folded_everywhere = family not in ("phi3", "gemma2", "gemma3")
    assert (explicit == {}) == folded_everywhere, sorted(explicit)
    if family.startswith("gemma"):
        v = m.model.layers[0].self_attn.v_proj.weight
        assert sorted(explicit) == sorted(f"model.layers.{i}.{n}" for i in range(2) for n in (
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"))
        assert not torch.allclose(v, tiny_model(family, seed=1).model.layers[0].self_attn.v_proj.weight)
        return
    norm = m.model.layers[0].input_layernorm.weight
    assert not torch.allclose(norm, torch.ones_like(norm))  # the scales went somewhere
    if folded_everywhere:
        torch.testing.assert_close(_logits(m, x[:2]), before, rtol=0, atol=2e-5)


def test_gqa_scales_are_shared_by_the_heads_of_one_value_channel():
    m = tiny_llama(seed=2)
    x = torch.randint(0, 259, (4, 32), generator=torch.Generator().manual_seed(1))
    v_before = m.model.layers[0].self_attn.v_proj.weight.detach().clone()
    o_before = m.model.layers[0].self_attn.o_proj.weight.detach().clone()
    q = make_quantizer("awq", bits=2, group_size=16)
    layerwise(m, find_targets(m, ("*.o_proj",), ()), x,
              lambda block, stats: prepare_block(m, block, stats, lambda n: q), hessian=True)
    s = m.model.layers[0].self_attn.o_proj.weight[0] / o_before[0]  # o's columns × s
    hd, rep = 16, 2  # head dim, query heads per KV head
    by_channel = s.view(2, rep, hd)  # (kv head, repeat, channel)
    torch.testing.assert_close(by_channel[:, 0], by_channel[:, 1])
    v_scale = v_before[:, 0] / m.model.layers[0].self_attn.v_proj.weight[:, 0]  # v's rows ÷ s
    torch.testing.assert_close(v_scale, by_channel[:, 0].reshape(-1), rtol=1e-5, atol=1e-6)


def test_search_scales_up_outlier_channels_and_lowers_the_error():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4096, 64, generator=gen)
    x[:, :4] *= 30.0  # four channels carry large activations
    st = LayerStats(64, with_hessian=True)
    st.add(x)
    w = torch.randn(32, 64, generator=gen) * 0.05
    q = make_quantizer("awq", bits=3, group_size=32)
    alpha, s = search([w], [q], st)
    assert alpha > 0
    assert float(s[:4].min()) > float(s[4:].max())
    h = st.hessian.float()
    assert group_error([w], [q], h, s) < 0.9 * group_error([w], [q], h, torch.ones(64))
    torch.testing.assert_close(activation_scales(st, 0.0), torch.ones(64))


def _outlier_llama(seed: int = 4):
    m = tiny_llama(seed=seed)
    with torch.no_grad():
        for layer in m.model.layers:  # a few hidden channels much louder than the rest
            layer.input_layernorm.weight[:3] = 25.0
            layer.post_attention_layernorm.weight[5:8] = 25.0
    return m


def test_awq_beats_importance_weighted_rounding_on_outlier_channels():
    ref = _outlier_llama()
    calib = torch.randint(0, 259, (16, 64), generator=torch.Generator().manual_seed(5))
    test = torch.randint(0, 259, (4, 64), generator=torch.Generator().manual_seed(6))
    want = _logits(ref, test)
    err = {}
    for method in ("imatrix", "awq"):
        m = copy.deepcopy(ref)
        quantize_model(m, method, bits=3, group_size=32, calib=calib)
        err[method] = float(((_logits(m, test) - want) ** 2).mean())
    assert err["awq"] < 0.8 * err["imatrix"]


def _tiny_bert(seed: int = 7):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=120, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=64)
    return BertModel(cfg).eval()


def test_bert_groups_without_a_fold_scale_their_inputs_explicitly():
    ref = _tiny_bert()
    m = copy.deepcopy(ref)
    calib = torch.randint(0, 120, (8, 32), generator=torch.Generator().manual_seed(8))
    quantize_model(m, "awq", bits=8, group_size=32, calib=calib)
    layer = m.encoder.layer[0]
    for lin in (layer.attention.self.query, layer.attention.self.value, layer.intermediate.dense,
                layer.output.dense):  # fed by a norm that also feeds the residual, or by GELU
        assert isinstance(lin, QuantLinear) and hasattr(lin, "input_scale")
    assert not hasattr(layer.attention.output.dense, "input_scale")  # folded into V
    x = calib[:2]
    with torch.no_grad():
        a, b = m(x).last_hidden_state, ref(x).last_hidden_state
    assert float((a - b).norm() / b.norm()) < 0.02


def test_explicit_scales_survive_a_quanta_folder(tmp_path):
    from quanta.model.formats.folder import load_quantized
    from quanta.model.sources.load import load_model
    from quanta.model.sources.tiny import write_hf_folder

    src = write_hf_folder(tmp_path / "hf", seed=9)
    out = tmp_path / "q"
    # K left float: Q and V share the norm's output without it, so their scales stay explicit
    get("model").write(src, out, Options(bits=4, method="awq", exclude=("lm_head", "*.k_proj"),
                                         calib_samples=8, calib_len=32, uniform=True))
    model, _, _ = load_quantized(out)
    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, QuantLinear) and hasattr(q_proj, "input_scale")
    # rebuilt in memory the same way, the loaded folder computes the same logits
    mem = load_model(src)
    from quanta.model.quantize.calibrate import calibration_windows

    calib = calibration_windows(mem.tokenizer, samples=8, length=32, bos_id=mem.bos_id)
    from quanta.model.quantize.recipe import embedding_method, embedding_quantizer

    emb = embedding_quantizer(None, 4, None, False, embedding_method("awq", mem.model, calib))
    assert emb.name == "imatrix"  # a tied embedding rounds on the head's input statistics
    quantize_model(mem.model, "awq", bits=4, group_size=None, calib=calib, exclude=("lm_head", "*.k_proj"),
                   embedding=emb)
    x = torch.tensor([[256, 5, 77, 100, 3, 9]])
    torch.testing.assert_close(_logits(model, x), _logits(mem.model, x), rtol=0, atol=1e-4)


def test_gguf_export_carries_the_folded_norms(tiny, tmp_path):
    from gguf import GGUFReader

    from quanta.model.formats.gguf_read import load_gguf
    from quanta.model.quantize.calibrate import calibration_windows
    from quanta.model.sources.load import load_model

    _, path = tiny
    out = tmp_path / "awq.gguf"
    get("model").write(path, out, Options(bits=4, method="awq", format="gguf", uniform=True, calib_samples=8,
                                          calib_len=32))  # every layer Q4_1, as in memory below
    norms = [np.asarray(t.data) for t in GGUFReader(out).tensors if t.name.endswith("attn_norm.weight")]
    assert norms and not all(np.allclose(v, 1.0) for v in norms)  # the tiny model's are all 1
    mem = load_model(path)  # the same quantization in memory (the file's embedding is Q8_0)
    calib = calibration_windows(mem.tokenizer, samples=8, length=32, bos_id=mem.bos_id)
    quantize_model(mem.model, make_quantizer("awq", bits=4, group_size=32, storage="Q4_1"), calib=calib)
    x = torch.tensor([[256, 5, 77, 100, 3, 9]])
    a, b = _logits(load_gguf(out).model, x), _logits(mem.model, x)
    assert float((a - b).norm() / b.norm()) < 0.02
