import json

import numpy as np
import pytest
import torch

from quanta.core.packing import pack, unpack, unpack_torch
from quanta.errors import ConfigError, InputError
from quanta.model.apply import count_by_path, quantize_model, weight_stats
from quanta.model.evaluate import evaluate_causal_lm, windows
from quanta.model.files import load_quantized, save_quantized
from quanta.model.gguf_load import load_gguf
from quanta.model.qlinear import QuantLinear
from quanta.model.quantizers import quantize_weight, reference_dequantize


@pytest.mark.parametrize("bits", range(1, 9))
def test_torch_unpack_matches_numpy(bits):
    codes = np.random.default_rng(bits).integers(0, 1 << bits, 1003).astype(np.uint8)
    data = pack(codes, bits)
    np.testing.assert_array_equal(unpack_torch(torch.from_numpy(data), bits, 1003).numpy(),
                                  unpack(data, bits, 1003))


@pytest.mark.parametrize("method", ["rtn", "mse", "hqq", "nf4"])
@pytest.mark.parametrize("sym", [False, True])
def test_quantizers_bound_the_error(method, sym):
    torch.manual_seed(0)
    w = torch.randn(64, 256) * 0.02
    qw = quantize_weight(w, bits=4, group_size=64, method=method, sym=sym)
    assert qw.codes.dtype == torch.uint8 and int(qw.codes.max()) <= 15
    deq = qw.dequantize()
    torch.testing.assert_close(deq, reference_dequantize(qw), rtol=0, atol=1e-6)
    rel = float(((deq - w) ** 2).mean() / (w**2).mean())
    assert rel < 0.02  # 4-bit groups of 64 on Gaussian weights: ≈ 1% relative error power


def test_mse_and_hqq_beat_rtn_on_heavy_tails():
    torch.manual_seed(1)
    w = torch.distributions.StudentT(3).sample((128, 256)) * 0.02
    err = {m: float(((quantize_weight(w, bits=4, group_size=128, method=m).dequantize() - w) ** 2)
                    .mean()) for m in ("rtn", "mse", "hqq")}
    assert err["mse"] < err["rtn"] and err["hqq"] < err["rtn"]


def test_bad_requests_name_the_layer():
    w = torch.zeros(8, 100)
    with pytest.raises(ConfigError, match=r"layer blk\.3: group size 128 does not fit in_features 100"):
        quantize_weight(w, group_size=128, name="blk.3")
    with pytest.raises(ConfigError, match="bits"):
        quantize_weight(w, bits=9, group_size=0)
    with pytest.raises(ConfigError, match="nf4"):
        quantize_weight(w, bits=3, group_size=0, method="nf4")


@pytest.mark.parametrize("shape,bits,group,method,sym,path", [
    ((64, 128), 4, 32, "rtn", False, "int4pack"),
    ((48, 256), 4, 128, "hqq", False, "int4pack"),
    ((50, 128), 4, 32, "rtn", False, "packed"),     # N not a multiple of 16
    ((64, 128), 8, 0, "rtn", True, "int8pack"),
    ((64, 72), 8, 0, "rtn", True, "packed"),        # K = 72: int8 kernel wrong for K % 16 != 0
    ((64, 60), 8, 0, "rtn", True, "packed"),        # K % 8 != 0: int8 kernel would crash
    ((32, 96), 3, 32, "mse", False, "packed"),
    ((32, 96), 2, 32, "rtn", False, "packed"),
    ((32, 96), 6, 0, "rtn", True, "packed"),
    ((32, 128), 4, 64, "nf4", False, "packed"),
    ((64, 576), 4, 128, "rtn", False, "int4pack"),  # 576 = 4.5 groups: zero-padded to 640
    ((64, 100), 3, 32, "hqq", False, "packed"),     # padded fallback
])
def test_quantlinear_paths_match_dequantized_reference(shape, bits, group, method, sym, path):
    torch.manual_seed(2)
    w = torch.randn(*shape) * 0.05
    qw = quantize_weight(w, bits=bits, group_size=group, method=method, sym=sym)
    ql = QuantLinear.from_quantized(qw, bias=torch.randn(shape[0]))
    assert ql.path == path
    x = torch.randn(5, 3, shape[1])
    ref = x @ qw.dequantize().t() + ql.bias
    y = ql(x)
    assert y.shape == (5, 3, shape[0])
    tol = 0.02 if path != "packed" else 2e-3  # bf16 activations on the kernel paths
    assert float((y - ref).norm() / ref.norm()) < tol
    assert ql.weight_bytes() < shape[0] * shape[1] * 4 * (bits + 1) / 32 + 4096


def test_tiny_gguf_round_trip_logits(tiny):
    model, path = tiny
    g = load_gguf(path)
    x = torch.tensor([[256, 5, 77, 100, 3, 9, 200, 150]])
    with torch.no_grad():
        torch.testing.assert_close(g.model(x).logits, model(x).logits, rtol=1e-4, atol=1e-4)
    assert g.tokenizer.encode("hi t").tokens[-1] == "Ġt"


def test_gguf_q8_0_written_by_gguf_package_loads(tiny, tmp_path):
    from tests.model.conftest import write_tiny_gguf

    model, _ = tiny
    q8 = write_tiny_gguf(model, tmp_path / "q8.gguf", "Q8_0")
    g = load_gguf(q8)
    assert "Q8_0" in g.tensor_types.values()
    x = torch.tensor([[256, 5, 77, 100, 3]])
    with torch.no_grad():
        a, b = g.model(x).logits, model(x).logits
    assert float((a - b).norm() / b.norm()) < 0.02


def test_bad_gguf_files(tmp_path, tiny):
    _, path = tiny
    with pytest.raises(InputError, match="no such file"):
        load_gguf(tmp_path / "none.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputError):
        load_gguf(cut)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x00" * 100)
    with pytest.raises(InputError):
        load_gguf(junk)


def test_quantize_save_load_gives_identical_logits(tiny, tmp_path):
    _, path = tiny
    g = load_gguf(path)
    rep = quantize_model(g.model, bits=4, group_size=32, method="hqq")
    assert set(count_by_path(g.model)) == {"int4pack"}
    assert rep["bits_per_quantized_weight"] == pytest.approx(4 + 2 * 16 / 32)  # bf16 scale + zero
    out = save_quantized(g.model, g.tokenizer, tmp_path / "q", report=rep, source=str(path))
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "quant_config.json",
                                                     "tokenizer.json"]
    with pytest.raises(Exception, match="exists"):
        save_quantized(g.model, g.tokenizer, tmp_path / "q", report=rep, source=str(path))
    m2, tok, cfg = load_quantized(out)
    assert cfg["layers"]["model.layers.0.mlp.down_proj"]["path"] == "int4pack"
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


def test_evaluator_windows_and_self_agreement(tiny):
    _, path = tiny
    g = load_gguf(path)
    text = "the tiny test text " * 200
    w = windows(g.tokenizer, text, bos_id=256, n_ctx=32, n_chunks=3)
    assert w.shape == (3, 32) and bool((w[:, 0] == 256).all())
    r = evaluate_causal_lm(g.model, w, reference=g.model)
    assert r["tokens_scored"] == 3 * 15
    assert r["kld"] == pytest.approx(0.0, abs=1e-6) and r["top1_agreement"] == 1.0
    assert 1 < r["perplexity"] < 1e4
    with pytest.raises(InputError):
        windows(g.tokenizer, "short", bos_id=256, n_ctx=32, n_chunks=3)


def test_cli_quantize_eval_info(tiny, tmp_path, capsys):
    from quanta.cli.main import main

    _, path = tiny
    out = tmp_path / "q4"
    assert main(["model", "quantize", str(path), "-o", str(out), "--bits", "4", "--group-size", "32",
                 "--method", "rtn", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["layers"] == 14 and rep["paths"] == {"int4pack": 14}
    assert main(["model", "quantize", str(path), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["model", "eval", str(out), "--reference", str(path), "--chunks", "2", "--ctx", "64",
                 "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["kld"] >= 0 and 0 <= ev["top1_agreement"] <= 1 and ev["tokens_scored"] == 2 * 31
    assert ev["decode_tokens_per_s"] > 0 and ev["peak_rss_mb"] > 0
    assert main(["model", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["quantized_layers"] == {"int4pack": 14}
    bf = tmp_path / "q4bf"
    assert main(["model", "quantize", str(path), "-o", str(bf), "--group-size", "32",
                 "--float-dtype", "bfloat16", "--json"]) == 0
    capsys.readouterr()
    from quanta.model.files import load_quantized

    m_bf, _, _ = load_quantized(bf)
    assert m_bf.model.embed_tokens.weight.dtype == torch.bfloat16
    assert m_bf.model.layers[0].mlp.down_proj.scales_zeros.dtype == torch.bfloat16
    assert (bf / "model.safetensors").stat().st_size < (out / "model.safetensors").stat().st_size
    assert main(["model", "quantize", str(path), "-o", str(tmp_path / "bad"), "--group-size",
                 "256"]) == 2
    err = capsys.readouterr().err
    assert "group size 256 does not fit" in err and "layer model.layers.0" in err
    assert not (tmp_path / "bad").exists()
    assert main(["model", "eval", str(tmp_path / "missing.gguf")]) == 2


def test_encoder_quantization_keeps_embeddings_close(capsys):
    """all-MiniLM-L6-v2 (fp32 safetensors from its PyPI package) through the same command."""
    from quanta.cli.main import main

    assert main(["model", "eval", "minilm", "--bits", "8", "--group-size", "0", "--sym",
                 "--json"]) == 0
    r8 = json.loads(capsys.readouterr().out)
    assert r8["kind"] == "hf-encoder" and r8["sentences"] == 64
    assert r8["cosine_similarity_mean"] > 0.995
    assert main(["model", "eval", "minilm", "--bits", "4", "--group-size", "128", "--json"]) == 0
    r4 = json.loads(capsys.readouterr().out)
    assert 0.8 < r4["cosine_similarity_mean"] < r8["cosine_similarity_mean"]
