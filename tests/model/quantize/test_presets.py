"""llama.cpp's file types (``--type Q4_K_M``): each tensor's type by llama.cpp's rules (read off
``src/llama-quant.cpp`` of the 0.3.36 sources; bench/model_frontier.py checks them against
``llama-quantize`` itself), the plan's budget, and the files they give."""

from __future__ import annotations

import pytest
import torch

from quanta.errors import ConfigError
from quanta.media import get
from quanta.model.formats.gguf_read import load_gguf
from quanta.model.options import Options
from quanta.model.quantize.presets import PRESETS, more_bits, tensor_type


def _types(preset: str, n: int = 32, cols: int = 4096, down: int = 11008, gqa: int = 1) -> dict:
    kinds = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up")
    out = {(k, i): tensor_type(preset, k, i, n, cols, gqa=gqa) for i in range(n) for k in kinds}
    out |= {("ffn_down", i): tensor_type(preset, "ffn_down", i, n, down, gqa=gqa) for i in range(n)}
    return out


def test_more_bits_is_llama_cpps_choice_of_layers():
    assert [i for i in range(32) if more_bits(i, 32)] == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29,
                                                          30, 31]


def test_q4_k_m_raises_half_the_v_and_down_projections():
    t = _types("Q4_K_M")
    for i in range(32):
        want = "Q6_K" if more_bits(i, 32) else "Q4_K"
        assert t["attn_v", i] == want and t["ffn_down", i] == want
        assert t["attn_q", i] == t["ffn_up", i] == t["attn_output", i] == "Q4_K"
    assert tensor_type("Q4_K_M", "output", 0, 32, 4096) == "Q6_K"
    assert tensor_type("Q4_K_M", "token_embd", 0, 32, 4096) == "Q4_K"  # untied: the base type
    assert tensor_type("Q8_0", "output", 0, 32, 4096) == "Q8_0"


def test_q3_k_m_and_q2_k():
    t = _types("Q3_K_M")
    assert t["attn_v", 0] == t["attn_v", 1] == "Q5_K" and t["attn_v", 2] == "Q4_K"
    assert t["ffn_down", 1] == "Q5_K" and t["ffn_down", 2] == "Q4_K" and t["attn_output", 5] == "Q4_K"
    assert t["attn_q", 5] == "Q3_K"
    t = _types("Q2_K")
    assert t["attn_v", 5] == "Q3_K" and t["ffn_down", 5] == "Q3_K" and t["attn_output", 5] == "Q3_K"
    assert _types("Q2_K", gqa=4)["attn_v", 5] == "Q4_K"  # grouped-query attention: v is small, raise it
    assert t["attn_q", 5] == "Q2_K"
    assert _types("Q4_0")["ffn_down", 3] == "Q4_1" and _types("Q4_0")["ffn_down", 4] == "Q4_0"  # imatrix


def test_rows_no_super_block_divides_fall_back_as_llama_cpp_does():
    """SmolLM2's 576-wide rows take no K-quant: llama.cpp's fallbacks (its 0.3.36 table)."""
    assert tensor_type("Q4_K_M", "attn_q", 5, 30, 576) == "Q5_0"
    assert tensor_type("Q4_K_M", "attn_v", 0, 30, 576) == "Q8_0"  # Q6_K's fallback
    assert tensor_type("Q5_K_M", "attn_q", 5, 30, 576) == "Q5_1"
    assert tensor_type("Q3_K_S", "attn_q", 5, 30, 576) == "Q4_0"
    assert tensor_type("IQ4_XS", "attn_q", 5, 30, 576) == "IQ4_NL"
    assert tensor_type("Q4_K_M", "output", 0, 30, 576) == "Q8_0"
    assert tensor_type("Q4_K_M", "attn_q", 5, 30, 1536) == "Q4_K"
    assert tensor_type("Q4_K_M", "attn_q", 5, 30, 100) == "F16"
    with pytest.raises(ConfigError, match=r"not a llama\.cpp file type"):
        tensor_type("Q4_K_X", "attn_q", 0, 2, 256)
    assert next(iter(PRESETS)) == "IQ2_XXS" and "Q4_K_M" in PRESETS
    assert tensor_type("IQ3_S", "attn_q", 5, 30, 576) == "IQ4_NL"
    assert tensor_type("IQ2_XXS", "ffn_up", 5, 30, 576) == "IQ4_NL"


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A 4-layer tiny Llama 256 wide (rows of K-quant super-blocks) as a GGUF file."""
    from quanta.model.sources.tiny import tiny_model
    from tests.model.conftest import write_tiny_gguf

    m = tiny_model("llama", hidden=256, num_hidden_layers=4)
    return m, write_tiny_gguf(m, tmp_path_factory.mktemp("wide") / "wide.gguf")


def test_uniform_preset_writes_llama_cpps_types(wide, tmp_path):
    from quanta.model.quantize.plan import options_for, plan_for, read_layout

    m, src = wide
    out = tmp_path / "q.gguf"
    opts = Options(format="gguf", type="Q4_K_M", uniform=True, method="rtn")
    plan = plan_for(read_layout(src), options_for(read_layout(src), opts))
    assert not plan.mixed and plan.kind == "Q4_K"
    rep = get("model").write(src, out, opts)
    types = load_gguf(out).tensor_types
    for i in range(4):
        want = "Q6_K" if more_bits(i, 4) else "Q4_K"  # layers 2 and 3 of 4
        assert types[f"blk.{i}.attn_v.weight"] == types[f"blk.{i}.ffn_down.weight"] == want
        assert types[f"blk.{i}.attn_q.weight"] == types[f"blk.{i}.ffn_gate.weight"] == "Q4_K"
    assert types["token_embd.weight"] == "Q6_K"  # tied to the head: llama.cpp's output type
    assert rep.weight_bytes == out.stat().st_size
    assert abs(out.stat().st_size - plan.predicted_bytes) < 0.01 * plan.predicted_bytes
    g = load_gguf(out)
    x = torch.tensor([[256, 5, 77, 100, 3, 9]])
    with torch.no_grad():
        a, b = g.model(x).logits, m(x).logits
    # round to nearest at ~4.5 bits on a random 4-layer model: Q4_1 (a larger file) measured 0.28
    assert float((a - b).norm() / b.norm()) < 0.3


def test_preset_shares_out_llama_cpps_bytes(wide, tmp_path):
    """``--type Q3_K_M``: the plan's budget is llama.cpp's file (the preset's tensors and the
    source's metadata); the sensitivity pass chooses among every type, K-quants included."""
    from quanta.model.quantize.plan import options_for, plan_for, read_layout

    _, src = wide
    opts = Options(format="gguf", type="Q3_K_M", calib_samples=8, calib_len=32)
    layout = read_layout(src)
    plan = plan_for(layout, options_for(layout, opts))
    uniform = plan_for(layout, options_for(layout, Options(format="gguf", type="Q3_K_M", uniform=True)))
    assert plan.mixed and plan.budget_bytes <= uniform.predicted_bytes
    out = tmp_path / "m.gguf"
    rep = get("model").write(src, out, opts)
    assert out.stat().st_size <= plan.budget_bytes
    chosen = set(rep.mixed["summary"])
    assert chosen & {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"}, chosen
    types = set(load_gguf(out).tensor_types.values())
    assert types - {"F32"} <= set(rep.mixed["summary"]) | {"Q8_0"}


def test_type_options_are_checked_before_anything_is_read(tmp_path):
    with pytest.raises(ConfigError, match=r"not a llama\.cpp file type"):
        Options(format="gguf", type="Q4_K_Z")
    with pytest.raises(ConfigError, match="writes --format gguf"):
        Options(format="compressed-tensors", type="Q4_K_M")
    with pytest.raises(ConfigError, match="not both"):
        Options(format="gguf", type="Q4_K_M", target_size=10**6)
    with pytest.raises(ConfigError, match="--group-size"):
        Options(format="gguf", type="Q4_K_M", group_size=32)
    assert Options(format="gguf", type="Q4_K_M").mixed and not Options(format="gguf", type="Q4_K_M",
                                                                         uniform=True).mixed
    # what no GGML type stores is refused before anything is read: a codebook of its own, and
    # HQQ's fractional zero points wherever a symmetric type (Q8_0, Q6_K, Q4_0, …) may be chosen
    with pytest.raises(ConfigError, match="its own codebook"):
        Options(format="gguf", type="Q4_K_M", method="nf4")
    for kw in ({"type": "Q4_K_M"}, {"bits": 4, "sym": True}, {"bits": 8}, {"bits": 4, "target_bpw": 5.0}):
        with pytest.raises(ConfigError, match="fractional zero points"):
            Options(format="gguf", method="hqq", **kw)
    assert Options(format="gguf", method="hqq", bits=4).method == "hqq"  # Q4_1 keeps them


def test_cli_type_implies_gguf(wide, tmp_path, capsys):
    import json

    from quanta.cli.main import main

    _, src = wide
    assert main(["model", "quantize", str(src), "-o", str(tmp_path / "a.gguf"), "--type", "Q4_K_S",
                 "--uniform", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["format"] == "gguf" and plan["kind"] == "Q4_K"
    # Q4_K_S: v of the first four layers at Q5_K, the tied embedding at Q6_K
    assert {e["format"] for e in plan["entries"] if e["method"]} == {"Q4_K", "Q5_K", "Q6_K"}
    assert main(["model", "quantize", str(src), "-o", str(tmp_path / "b.gguf"), "--type", "Q9"]) == 2
    err = capsys.readouterr().err
    assert "not a llama.cpp file type" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.gguf").exists()


def test_an_untied_head_is_quantized_by_a_preset_and_by_head(tmp_path):
    """llama.cpp quantizes an untied output head (Q6_K where its rows fit): a preset does too;
    ``--head`` alone puts the head in the plan (the default exclude of "lm_head" no longer hides it)."""
    import json

    from safetensors.torch import save_file

    from quanta.model.quantize.plan import options_for, plan_for, read_layout
    from quanta.model.sources.tiny import byte_tokenizer, tiny_model

    m = tiny_model("llama", hidden=256, tie_word_embeddings=False)
    d = tmp_path / "untied"
    d.mkdir()
    cfg = m.config.to_dict() | {"architectures": ["LlamaForCausalLM"]}
    (d / "config.json").write_text(json.dumps(cfg, default=str))
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(d / "model.safetensors"))
    byte_tokenizer().save(str(d / "tokenizer.json"))
    layout = read_layout(d)
    assert not layout.tied
    heads = {o: [e for e in plan_for(layout, options_for(layout, o)).entries if e.role == "head"]
             for o in (Options(format="gguf", type="Q4_K_M", uniform=True), Options(head=True, method="rtn"),
                       Options(method="rtn"))}
    (preset,), (head,), (kept,) = heads.values()
    assert preset.format == "Q6_K" and preset.method
    assert head.method == "rtn" and head.format.startswith("4-bit")
    assert kept.method is None
    out = tmp_path / "u.gguf"
    get("model").write(d, out, Options(format="gguf", type="Q4_K_M", uniform=True, method="rtn"))
    types = load_gguf(out).tensor_types
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"


def test_stacks_of_experts_follow_their_kind_and_eight_experts_take_llama_cpps_rules():
    """llama.cpp counts one ffn_down_exps per block as it counts ffn_down; a model of 8 experts
    (Mixtral's count) keeps attn_v and attn_k at Q8_0 and raises attn_output to Q5_K."""
    n = 32
    for i in range(n):
        stack, dense = (tensor_type("Q4_K_M", k, i, n, 4096) for k in ("ffn_down_exps", "ffn_down"))
        assert stack == dense
    assert tensor_type("Q4_K_M", "ffn_gate_exps", 0, n, 4096, experts=128) == "Q4_K"
    assert tensor_type("Q4_K_M", "attn_v", 5, n, 4096, experts=8) == "Q8_0"
    assert tensor_type("Q2_K", "attn_k", 5, n, 4096, experts=8) == "Q8_0"
    assert tensor_type("Q4_K_M", "attn_k", 5, n, 4096, experts=128) == "Q4_K"
    assert tensor_type("Q4_K_M", "attn_output", 5, n, 4096, experts=8) == "Q5_K"
    assert tensor_type("Q5_K_M", "attn_output", 5, n, 4096, experts=8) == "Q5_K"  # its base
    assert tensor_type("Q6_K", "attn_output", 5, n, 4096, experts=8) == "Q6_K"


def test_the_lattice_presets_follow_llama_cpps_rules():
    """The IQ2 presets' own branch of rules, the IQ3 presets' among the others (0.3.36's
    ``llama_tensor_get_type``, with an importance matrix)."""
    t = _types("IQ2_XXS")
    assert t["attn_v", 5] == "Q2_K" and _types("IQ2_XXS", gqa=4)["attn_v", 5] == "Q4_K"
    assert t["ffn_down", 3] == "Q2_K" and t["ffn_down", 4] == "IQ2_XXS"  # the first eighth raised
    assert t["attn_q", 5] == t["attn_output", 5] == t["ffn_gate", 5] == "IQ2_XXS"
    t = _types("IQ2_M")
    assert t["attn_v", 5] == t["ffn_down", 0] == t["attn_output", 5] == "IQ3_S"
    assert t["attn_q", 5] == "IQ2_S" and _types("IQ2_S")["attn_q", 5] == "IQ2_XS"
    t = _types("IQ3_XXS")
    assert t["attn_q", 5] == t["attn_k", 5] == "IQ2_S" and t["attn_output", 5] == "IQ3_S"
    assert t["attn_v", 5] == t["ffn_up", 5] == t["ffn_down", 5] == "IQ3_XXS"
    t = _types("IQ3_XS")
    assert t["ffn_gate", 3] == "IQ3_S" and t["ffn_gate", 4] == t["ffn_up", 27] == "IQ3_XXS"
    assert t["ffn_up", 28] == "IQ3_S" and t["attn_q", 5] == "IQ3_XXS"
    t = _types("IQ3_M")
    assert t["attn_v", 5] == t["attn_output", 5] == t["ffn_down", 3] == "Q4_K" and t["ffn_down", 4] == "IQ3_S"
    assert _types("IQ3_S", gqa=4)["attn_v", 5] == "Q4_K" and _types("IQ3_S")["attn_v", 5] == "IQ3_S"
    assert tensor_type("IQ2_XS", "output", 0, 32, 4096) == "Q5_K"
    assert tensor_type("IQ3_XXS", "output", 0, 32, 4096) == "Q5_K"
    assert tensor_type("IQ3_M", "output", 0, 32, 4096) == "Q6_K"
    assert tensor_type("IQ2_XS", "token_embd", 0, 32, 4096) == "Q2_K"  # untied
    assert tensor_type("IQ2_M", "token_embd", 0, 32, 4096) == "IQ3_S"
    assert tensor_type("IQ2_XXS", "attn_k", 5, 32, 4096, experts=8) == "Q4_K"
    assert tensor_type("IQ3_S", "attn_output", 5, 32, 4096, experts=8) == "Q5_K"


def test_a_lattice_preset_writes_lattice_types_the_gguf_package_reads(wide, tmp_path):
    """``--type IQ2_XS --uniform``: llama.cpp's types, every lattice tensor read back by the
    ``gguf`` package as quanta dequantizes it; ``--type IQ3_M``: the budget shared out among every
    type, the lattice types included (a lattice preset always offers them)."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from quanta.model.quantize.plan import options_for, plan_for, read_layout

    m, src = wide
    out = tmp_path / "u.gguf"
    get("model").write(src, out, Options(format="gguf", type="IQ2_XS", uniform=True, method="rtn"))
    g = load_gguf(out)
    assert g.tensor_types["blk.0.ffn_down.weight"] == "IQ2_XS"  # of 4 layers, none is the first eighth
    assert g.tensor_types["blk.1.attn_v.weight"] == "Q2_K"
    assert g.tensor_types["blk.2.attn_q.weight"] == "IQ2_XS"
    assert g.tensor_types["token_embd.weight"] == "Q5_K"  # tied: llama.cpp's output type under IQ2_XS
    for t in GGUFReader(out).tensors:
        if t.tensor_type.name == "IQ2_XS":
            mine = dequantize(np.asarray(t.data), t.tensor_type)
            assert np.isfinite(mine).all() and np.abs(mine).max() > 0
    x = torch.tensor([[256, 5, 77, 100, 3, 9]])
    with torch.no_grad():
        a, b = g.model(x).logits, m(x).logits
    assert float((a - b).norm() / b.norm()) < 1.0
    opts = Options(format="gguf", type="IQ3_M", calib_samples=8, calib_len=32)
    layout = read_layout(src)
    plan = plan_for(layout, options_for(layout, opts))
    out = tmp_path / "m.gguf"
    rep = get("model").write(src, out, opts)
    assert out.stat().st_size <= plan.budget_bytes
    assert set(rep.mixed["summary"]) & {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S"}
