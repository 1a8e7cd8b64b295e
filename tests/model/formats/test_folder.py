import pytest
import torch

from quanta.errors import OutputError
from quanta.model.formats.folder import load_quantized, save_quantized
from quanta.model.formats.gguf_read import load_gguf
from quanta.model.options import Options
from quanta.model.quantize.apply import count_by_path, quantize_model, weight_stats
from quanta.model.runtime.qlinear import QuantLinear


def test_quantize_save_load_gives_identical_logits(tiny, tmp_path):
    _, path = tiny
    g = load_gguf(path)
    rep = quantize_model(g.model, "hqq", bits=4, group_size=32)
    assert set(count_by_path(g.model)) == {"int4pack"}
    assert rep.bits_per_quantized_weight == pytest.approx(4 + 2 * 16 / 32)  # bf16 scale + zero
    out = save_quantized(g.model, g.tokenizer, tmp_path / "q", report=rep, source=str(path))
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "quant_config.json",
                                                     "tokenizer.json"]
    with pytest.raises(OutputError, match="exists"):
        save_quantized(g.model, g.tokenizer, tmp_path / "q", report=rep, source=str(path))
    m2, tok, _ = load_quantized(out)
    assert m2.model.layers[0].mlp.down_proj.path == "int4pack"  # chosen again on load
    x = torch.tensor([[256, 5, 77, 100, 3, 9]])
    with torch.no_grad():
        torch.testing.assert_close(m2(x).logits, g.model(x).logits)
    assert tok.encode("hi").ids == g.tokenizer.encode("hi").ids


def test_quantized_model_holds_fewer_bytes(tiny):
    _, path = tiny
    g = load_gguf(path)
    before = weight_stats(g.model)["weight_bytes"]
    quantize_model(g.model, bits=4, group_size=32, head=True)
    after = weight_stats(g.model)
    assert after["weight_bytes"] < 0.5 * before
    assert isinstance(g.model.lm_head, QuantLinear) and not g.model.config.tie_word_embeddings




@pytest.mark.parametrize("embedding_bits", [4, 8])
def test_folder_stores_what_the_model_holds(tmp_path, embedding_bits):
    """The safetensors file is the report's weight bytes plus its header: a quantized
    embedding's scales and zero points keep their float16 (no float32 copy on disk)."""
    from safetensors import safe_open

    from quanta.media import get
    from quanta.model.sources.tiny import write_hf_folder

    src = write_hf_folder(tmp_path / "hf", seed=3)
    rep = get("model").write(src, tmp_path / "q", Options(bits=4, method="rtn",
                                                          embedding_bits=embedding_bits))
    st = tmp_path / "q" / "model.safetensors"
    with safe_open(str(st), "pt") as f:
        emb = {k: f.get_slice(k).get_dtype() for k in f.keys() if k.startswith("model.embed_tokens.")}
    assert emb and all(d in ("U8", "I8", "F16", "BF16") for d in emb.values()), emb
    assert 0 < st.stat().st_size - rep.weight_bytes < 64 * 1024


@pytest.mark.parametrize("bits", [5, 6, 7])
def test_narrow_int8_kernel_rows_are_stored_packed(tiny, tmp_path, bits):
    """5- to 7-bit rows run on the int8 kernel in memory but a folder keeps their codes packed
    at their own width (as every layer: the kernel-neutral form); loading re-lays them for the
    int8 kernel, to the same logits."""
    from safetensors import safe_open

    _, path = tiny
    g = load_gguf(path)
    rep = quantize_model(g.model, "rtn", bits=bits, group_size=0, sym=True)
    assert set(count_by_path(g.model)) == {"int8pack"}
    out = save_quantized(g.model, g.tokenizer, tmp_path / "q", report=rep, source=str(path))
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        packed = f.get_tensor("model.layers.0.mlp.up_proj.codes")
    assert "model.layers.0.mlp.up_proj.w_int8" not in keys
    assert "model.layers.0.mlp.up_proj.zeros" not in keys  # symmetric rows: no zero points stored
    up = g.model.model.layers[0].mlp.up_proj
    assert packed.numel() == up.out_features * up.in_features * bits // 8
    m2, _, _ = load_quantized(out)
    assert m2.model.layers[0].mlp.up_proj.path == "int8pack"
    torch.testing.assert_close(m2.model.layers[0].mlp.up_proj.w_int8, up.w_int8, rtol=0, atol=0)
    x = torch.tensor([[256, 5, 77, 100, 3, 9]])
    with torch.no_grad():
        torch.testing.assert_close(m2(x).logits, g.model(x).logits)
