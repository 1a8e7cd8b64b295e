"""Architectures as data (issue 22, deliverable 4): one table per family, names from gguf-py's
tensor map, read by the planner, loaders, exporter, AWQ and the decode path."""

from __future__ import annotations

import dataclasses

import gguf
import pytest

from quanta.errors import ConfigError
from quanta.model import arch
from quanta.model.arch import BERT, LLAMA, for_gguf, for_hf


@pytest.mark.parametrize("family,const", [(LLAMA, gguf.MODEL_ARCH.LLAMA), (BERT, gguf.MODEL_ARCH.BERT)])
def test_every_block_module_has_gguf_pys_name_and_back(family, const):
    tmap = gguf.get_tensor_name_map(const, 3)
    for m in (*family.linears, *family.norms):
        param = f"{family.blocks}.2.{m}.weight"
        name = family.gguf_name(param)
        assert name == tmap.get_name(param, try_suffixes=(".weight",))
        assert family.hf_name(name)[0] == param
    assert family.gguf_name(f"{family.embedding}.weight") == "token_embd.weight"


def test_roles_come_from_the_table():
    assert [LLAMA.role(f"model.layers.0.{m}") for m in LLAMA.linears] == ["attention"] * 4 + ["mlp"] * 3
    assert LLAMA.role("model.layers.5.input_layernorm") == "norm" and LLAMA.role("model.norm") == "norm"
    assert (LLAMA.role("model.embed_tokens"), LLAMA.role("lm_head")) == ("embedding", "head")
    assert [BERT.role(f"encoder.layer.0.{m}") for m in BERT.linears] == ["attention"] * 4 + ["mlp"] * 2


def test_block_shapes_follow_the_config():
    cfg = {"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2,
           "vocab_size": 300}
    shapes = LLAMA.block_shapes(cfg)
    assert shapes["self_attn.k_proj"] == (32, 64) and shapes["mlp.down_proj"] == (64, 96)
    assert shapes["input_layernorm"] == (64,)


def test_unknown_families_are_refused_naming_the_known():
    with pytest.raises(ConfigError, match=r"supported: llama, qwen2, qwen3, phi3, gemma2, gemma3, "
                                          r"qwen3moe\)"):
        for_gguf("gemma4")
    known = (r"LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM, "
             r"Gemma2ForCausalLM, Gemma3ForCausalLM, Qwen3MoeForCausalLM")
    with pytest.raises(ConfigError, match=rf"supported: {known}\)$"):
        for_hf("BertModel", causal=True)
    assert for_hf("BertModel") is BERT


def test_a_family_is_one_table_entry(monkeypatch):
    """Adding an architecture: one Architecture, registered — the GGUF names, roles and AWQ's
    folds follow. The toy is Llama's layout under a GGUF name gguf-py knows (qwen3)."""
    toy = dataclasses.replace(LLAMA, name="toy", gguf_arch="qwen3", hf_class="ToyForCausalLM")
    monkeypatch.setitem(arch.ARCHITECTURES, "toy", toy)
    assert for_hf("ToyForCausalLM") is toy
    assert toy.hf_name("blk.1.attn_v.weight") == ("model.layers.1.self_attn.v_proj.weight", "attn_v")
    assert toy.role("model.layers.1.mlp.up_proj") == "mlp"


def test_a_mixtures_experts_are_named_as_checkpoints_and_gguf_stacks_name_them():
    """Qwen3-MoE: each expert's layers under their checkpoint names; GGUF holds one stack per
    kind and block (gguf-py's own map names it), the router ("ffn_gate_inp") stays float."""
    a = arch.QWEN3_MOE
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3MOE, 3)
    param = "model.layers.2.mlp.experts.5.up_proj.weight"
    assert a.gguf_name(param) == tmap.get_name("model.layers.2.mlp.experts.up_proj.weight",
                                               try_suffixes=(".weight",)) == "blk.2.ffn_up_exps.weight"
    assert a.hf_name("blk.2.ffn_up_exps.weight") == ("model.layers.2.mlp.experts.*.up_proj.weight",
                                                     "ffn_up_exps")
    assert a.stack("model.layers.2.mlp.experts.5.up_proj") == "model.layers.2.mlp.experts.*.up_proj"
    assert a.stack("model.layers.2.self_attn.q_proj") == "model.layers.2.self_attn.q_proj"
    assert arch.stacked("model.layers.2.mlp.experts.11.down_proj") == "model.layers.2.mlp.experts.*.down_proj"
    assert a.expert_index("model.layers.2.mlp.experts.11.down_proj") == 11
    assert a.expert_index("model.layers.2.mlp.gate") is None
    assert a.role("model.layers.2.mlp.gate") == "router"
    assert a.gguf_name("model.layers.2.mlp.gate.weight") == "blk.2.ffn_gate_inp.weight"
    assert a.role("model.layers.2.mlp.experts.5.down_proj") == "mlp"
    cfg = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
           "intermediate_size": 128, "moe_intermediate_size": 48, "num_local_experts": 8, "vocab_size": 99}
    shapes = a.block_shapes(cfg)
    assert shapes["mlp.experts.*.down_proj"] == (8, 64, 48) and shapes["mlp.gate"] == (8, 64)
    a.check_config(cfg)
    with pytest.raises(ConfigError, match="dense MLP blocks"):
        a.check_config(cfg | {"mlp_only_layers": [1]})
    with pytest.raises(ConfigError, match="dense MLP blocks"):
        a.check_config(cfg | {"decoder_sparse_step": 2})
