"""--format gguf: the file's tensors, dequantized by the gguf package, are quanta's own weights;
quanta's loader reads it back; --force replaces only a GGUF quanta wrote."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from quanta.errors import ConfigError, OutputError
from quanta.media import get
from quanta.model.arch import LLAMA
from quanta.model.formats.gguf_read import _unpermute, load_gguf
from quanta.model.options import Options


def _dequantized(path):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    return {t.name: (np.asarray(dequantize(t.data, t.tensor_type), np.float32)
                     .reshape(tuple(int(s) for s in reversed(t.shape))), t.tensor_type.name)
            for t in GGUFReader(path).tensors}


@pytest.mark.parametrize("bits,sym,kind,method", [(4, False, "Q4_1", "rtn"), (4, True, "Q4_0", "rtn"),
                                                  (8, True, "Q8_0", "rtn"), (4, False, "Q4_1", "gptq"),
                                                  (5, True, "Q5_0", "rtn"), (5, False, "Q5_1", "gptq")])
def test_exported_tensors_are_quantas_weights(tiny, tmp_path, bits, sym, kind, method):
    _, path = tiny
    kept = {}
    import quanta.model.quantize.apply as apply

    real = apply.quantize_model

    def spy(*a, **kw):
        user = kw.get("on_layer")

        def both(name, qw):
            kept[name] = qw
            user(name, qw)

        kw["on_layer"] = both
        return real(*a, **kw)

    apply.quantize_model = spy
    try:
        out = tmp_path / "m.gguf"
        get("model").write(path, out, Options(bits=bits, sym=sym, group_size=32, method=method,
                                              format="gguf", calib_samples=8, calib_len=32))
    finally:
        apply.quantize_model = real
    got = _dequantized(out)
    n_head, n_kv = 4, 2
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    for hf, qw in kept.items():
        layer = hf.split(".")[2]
        short = tmap.get_name(hf + ".weight", try_suffixes=(".weight",)).split(".")[2]  # gguf-py's map
        arr, typ = got[f"blk.{layer}.{short}.weight"]
        assert typ == kind
        if short in ("attn_q", "attn_k"):
            arr = _unpermute(arr, n_head if short == "attn_q" else n_kv)
        np.testing.assert_allclose(arr, qw.dequantize().numpy(), rtol=0, atol=1e-6)
    assert got["token_embd.weight"][1] == "Q8_0"  # tied to the head: kept at 8 bits
    assert got["output_norm.weight"][1] == "F32"
    g = load_gguf(out)  # quanta reads its own export
    assert g.tensor_types["blk.0.ffn_up.weight"] == kind


def test_gguf_export_rules(tiny, tmp_path):
    from quanta.model.sources.tiny import write_hf_folder

    _, path = tiny
    m = get("model")
    with pytest.raises(ConfigError, match="groups of 32"):
        m.write(path, tmp_path / "a.gguf", Options(bits=4, group_size=128, format="gguf"))
    with pytest.raises(ConfigError, match=r"\.gguf name"):
        m.write(path, tmp_path / "a.bin", Options(bits=4, group_size=32, format="gguf"))
    hf = write_hf_folder(tmp_path / "hf")
    (hf / "tokenizer.json").unlink()  # a Hugging Face folder is written as GGUF with its tokenizer
    with pytest.raises(ConfigError, match=r"needs tokenizer\.json"):
        m.write(hf, tmp_path / "b.gguf", Options(bits=4, group_size=32, format="gguf"))
    out = tmp_path / "c.gguf"
    m.write(path, out, Options(bits=8, group_size=32, format="gguf"))
    m.write(path, out, Options(bits=4, group_size=32, format="gguf"), force=True)  # ours: replaced
    foreign = tmp_path / "foreign.gguf"
    foreign.write_bytes(path.read_bytes())
    with pytest.raises(OutputError, match=r"not a (folder|file) quanta wrote"):
        m.write(path, foreign, Options(bits=4, group_size=32, format="gguf"), force=True)
    assert foreign.read_bytes() == path.read_bytes()


def test_exported_model_logits_match_the_quantized_model(tiny, tmp_path):
    from quanta.model.quantize.apply import quantize_model

    _, path = tiny
    out = tmp_path / "q.gguf"
    get("model").write(path, out, Options(bits=8, group_size=32, format="gguf"))
    g = load_gguf(path)
    quantize_model(g.model, "rtn", bits=8, group_size=32, sym=True)
    e = load_gguf(out)
    x = torch.tensor([[256, 5, 77, 100, 3, 9]])
    with torch.no_grad():
        a, b = e.model(x).logits, g.model(x).logits
    assert float((a - b).norm() / b.norm()) < 0.02  # the export also quantizes the embedding


@pytest.mark.parametrize("method", ["rtn", "gptq"])
def test_q6_k_super_blocks_are_quantas_weights(method):
    """Q6_K: 6-bit codes in groups of 16, each group's scale an int8 factor of the super-block's
    float16 d — the gguf package's dequantizer reads back quanta's own weights exactly."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    from quanta.model.formats.gguf_export import pack_blocks
    from quanta.model.formats.weight import BLOCK_TYPES
    from quanta.model.quantize.quantizers import LayerStats, make_quantizer

    g = torch.Generator().manual_seed(3)
    w = torch.randn(6, 512, generator=g) * torch.logspace(-3, 0, 512)[torch.randperm(512, generator=g)]
    w[1] = 0.0  # an all-zero row and a row of tiny values
    w[2] *= 1e-6
    x = torch.randn(200, 512, generator=g)
    stats = LayerStats(512, with_hessian=True)
    stats.add(x)
    qw = make_quantizer(method, bits=6, group_size=16, sym=True, storage="Q6_K").quantize(w, stats=stats)
    assert qw.group_size == 16 and int(qw.codes.max()) <= 63
    data = pack_blocks(qw.codes.numpy(), qw.scales.numpy(), qw.zeros.numpy(), "Q6_K")
    assert data.shape == (6, 2 * BLOCK_TYPES["Q6_K"].type_size)
    back = np.asarray(dequantize(data, GGMLQuantizationType.Q6_K), np.float32).reshape(6, 512)
    np.testing.assert_array_equal(back, qw.dequantize().numpy())
    assert float((back - w.numpy()).std()) < 0.05 * float(w.std())  # GPTQ: output error first
    with pytest.raises(ConfigError, match="multiple of 256"):
        make_quantizer(method, bits=6, group_size=16, sym=True, storage="Q6_K").quantize(
            torch.randn(4, 576), stats=stats)


def test_q6_k_layers_in_an_exported_file(tmp_path):
    """A file whose down projections (rows of 256) are Q6_K and the rest Q8_0: every tensor
    dequantizes to quanta's weights and quanta loads it."""
    from quanta.model.formats.gguf_export import export
    from quanta.model.formats.weight import gguf_formats
    from quanta.model.quantize.apply import quantize_model
    from quanta.model.quantize.calibrate import calibration_windows
    from quanta.model.quantize.quantizers import make_quantizer
    from quanta.model.sources.tiny import byte_tokenizer, tiny_llama
    from tests.model.conftest import write_tiny_gguf

    src = write_tiny_gguf(tiny_llama(hidden=128), tmp_path / "t.gguf")
    assert "Q6_K" in [c.label for c in gguf_formats(True, 256)]
    assert "Q6_K" not in [c.label for c in gguf_formats(True, 128)]
    g = load_gguf(src)
    downs = [n for n, _ in g.model.named_modules() if n.endswith("mlp.down_proj")]
    plan = {n: make_quantizer("gptq", bits=6, group_size=16, sym=True, storage="Q6_K") for n in downs}
    kept = {}
    calib = calibration_windows(byte_tokenizer(), samples=8, length=32, bos_id=256)
    quantize_model(g.model, make_quantizer("gptq", bits=8, group_size=32, sym=True, storage="Q8_0"),
                   calib=calib, plan=plan, on_layer=kept.__setitem__)
    emb = make_quantizer("mse", bits=8, group_size=32, sym=True, storage="Q8_0").quantize(
        g.model.get_input_embeddings().weight.data)
    kinds = {n: "Q6_K" if n in downs else "Q8_0" for n in kept} | {"token_embd": "Q8_0"}
    out = export(kept, emb, src, tmp_path / "q6k.gguf", kinds=kinds, family=LLAMA,
                 config={"num_attention_heads": 4, "num_key_value_heads": 2})
    got = _dequantized(out)
    for layer in range(2):
        arr, typ = got[f"blk.{layer}.ffn_down.weight"]
        assert typ == "Q6_K"
        np.testing.assert_array_equal(arr, kept[f"model.layers.{layer}.mlp.down_proj"].dequantize().numpy())
        assert got[f"blk.{layer}.ffn_up.weight"][1] == "Q8_0"
    assert load_gguf(out).tensor_types["blk.1.ffn_down.weight"] == "Q6_K"


def test_gguf_layers_are_packed_and_parked_as_they_are_made(tiny_hf, tmp_path, monkeypatch):
    """Writing a GGUF file keeps no layer's codes in memory: each layer's blocks go to the spill
    file the moment it is quantized, and the model's layer keeps only its spec."""
    import quanta.model.quantize.apply as apply
    from quanta.model.formats.gguf_export import PackedLayers
    from quanta.model.formats.spill import Parked
    from quanta.model.runtime.qlinear import QuantLinear

    seen = {}
    real = apply.quantize_model

    def spy(model, *a, **kw):
        rep = real(model, *a, **kw)
        seen["kept"] = kw["on_layer"]
        seen["layers"] = [m for m in model.modules() if isinstance(m, QuantLinear)]
        return rep

    monkeypatch.setattr(apply, "quantize_model", spy)
    get("model").write(tiny_hf, tmp_path / "m.gguf", Options(method="gptq", format="gguf", calib_samples=4,
                                                             calib_len=16))
    kept = seen["kept"]
    assert isinstance(kept, PackedLayers) and len(kept) == len(seen["layers"]) > 0
    assert all(isinstance(p, Parked) and p.dtype == "|u1" for p in kept.values())
    assert all(m.folder_tensors is None for m in seen["layers"])
    assert not list(tmp_path.glob(".quanta-spill*"))


@pytest.mark.parametrize("kind", ["Q4_K", "Q6_K", "Q8_0", "Q5_1"])
def test_blocks_packed_in_row_chunks_are_the_same_bytes(monkeypatch, kind):
    """A large matrix (the embedding) is packed in chunks of rows: the same bytes."""
    import quanta.model.formats.gguf_export as ge
    from quanta.model.formats.weight import ggml_format
    from quanta.model.quantize.quantizers import quantizer_for

    w = torch.randn(37, 512, generator=torch.Generator().manual_seed(0))
    qw = quantizer_for("rtn", ggml_format(kind)).quantize(w)
    args = (qw.codes.numpy(), qw.scales.numpy(), None if qw.zeros is None else qw.zeros.numpy(), kind)
    whole = ge.pack_blocks(*args)
    monkeypatch.setattr(ge, "PACK_WEIGHTS", 5 * 512)  # chunks of five rows
    assert np.array_equal(ge.pack_blocks(*args), whole) and whole.shape[0] == 37


def test_a_mixtures_experts_are_written_as_llama_cpps_stacks(tmp_path, capsys):
    """Qwen3-MoE → GGUF: each kind's experts of a block in one 3-D tensor, expert e at index e,
    its blocks exactly those quanta's quantizer makes for that expert alone (round to nearest:
    deterministic); the router float; the converter's expert keys; read back to the same experts.
    A mixed plan gives every expert of a stack one type (the allocator's unit is the stack)."""
    from gguf import GGUFReader

    from quanta.cli.main import main
    from quanta.model.formats.gguf_export import matrix_blocks
    from quanta.model.formats.weight import ggml_format
    from quanta.model.quantize.quantizers import quantizer_for
    from quanta.model.sources.load import load_model
    from quanta.model.sources.tiny import write_hf_folder

    src = write_hf_folder(tmp_path / "hf", seed=4, family="qwen3_moe")
    out = tmp_path / "m.gguf"
    assert main(["model", "quantize", str(src), "-o", str(out), "--format", "gguf", "--bits", "4",
                 "--method", "rtn"]) == 0
    r = GGUFReader(out)
    assert {k: r.fields[f"qwen3moe.{k}"].contents() for k in ("expert_count", "expert_used_count",
                                                              "expert_feed_forward_length")} == \
        {"expert_count": 8, "expert_used_count": 2, "expert_feed_forward_length": 128}
    tensors = {t.name: t for t in r.tensors}
    assert tensors["blk.1.ffn_gate_inp.weight"].tensor_type.name == "F32"
    stack = tensors["blk.1.ffn_down_exps.weight"]
    assert tuple(int(s) for s in stack.shape) == (128, 128, 8) and stack.tensor_type.name == "Q4_1"
    model = load_model(src).model
    q = quantizer_for("rtn", ggml_format("Q4_1"))
    data = np.asarray(stack.data).reshape(8, 128, -1)
    for e in range(8):
        w = model.get_submodule(f"model.layers.1.mlp.experts.{e}.down_proj").weight.detach()
        assert np.array_equal(data[e], matrix_blocks(q.quantize(w), "Q4_1", None, {}))
    back = load_model(out).model
    err = back.model.layers[1].mlp.experts[5].down_proj.weight - \
        model.model.layers[1].mlp.experts[5].down_proj.weight
    assert 0 < float(err.abs().max()) < 0.05  # 4-bit rounding of N(0, 0.05) weights, expert 5 in place 5
    # a mixed plan under llama.cpp's preset: one type per stack
    mixed = tmp_path / "mixed.gguf"
    assert main(["model", "quantize", str(src), "-o", str(mixed), "--type", "Q3_K_M", "--calib-samples", "4",
                 "--calib-len", "32", "--json"]) == 0
    capsys.readouterr()
    types = {t.name: t.tensor_type.name for t in GGUFReader(mixed).tensors}
    assert all(types[f"blk.{b}.ffn_{k}_exps.weight"] for b in (0, 1) for k in ("gate", "up", "down"))
