"""The quantized token embedding: lookups equal the dequantized table, a tied head runs on the
same codes, and a folder stores them once and loads them back."""

from __future__ import annotations

import json

import pytest
import torch

from quanta.errors import InputError
from quanta.media import get
from quanta.model.formats.folder import load_quantized, save_quantized
from quanta.model.formats.gguf_read import load_gguf
from quanta.model.options import Options
from quanta.model.quantize.apply import quantize_model, weight_stats
from quanta.model.quantize.quantizers import make_quantizer
from quanta.model.runtime.qembed import QuantEmbedding
from quanta.model.runtime.qlinear import QuantLinear


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
def test_lookup_equals_the_dequantized_table(bits):
    w = torch.randn(50, 64, generator=torch.Generator().manual_seed(bits))
    qw = make_quantizer("mse", bits=bits, group_size=32).quantize(w)
    qe = QuantEmbedding.from_quantized(qw)
    ids = torch.tensor([[0, 49, 7], [7, 3, 0]])
    table = qw.dequantize()
    torch.testing.assert_close(qe(ids), table[ids], rtol=0, atol=2e-3 * float(table.abs().max()))
    assert float((table - w).abs().max()) < 2.0 ** (2 - bits) * float(w.abs().max())
    with pytest.raises(IndexError):
        qe(torch.tensor([50]))


def test_tied_head_runs_on_the_embeddings_codes(tiny, tmp_path):
    _, path = tiny
    g = load_gguf(path)
    float_bytes = weight_stats(g.model)["weight_bytes"]
    rep = quantize_model(g.model, "rtn", bits=4, group_size=32,
                         embedding=make_quantizer("mse", bits=6, group_size=32))
    emb, head = g.model.get_input_embeddings(), g.model.lm_head
    assert isinstance(emb, QuantEmbedding) and isinstance(head, QuantLinear)
    torch.testing.assert_close(head.dequantize_weight(), emb.quantized_weight().dequantize(),
                               rtol=0, atol=1e-6)
    assert rep.layers["embedding"]["bits"] == 6
    assert rep.weight_bytes < 0.35 * float_bytes  # the embedding counted once, quantized
    x = torch.tensor([[256, 5, 77, 100, 3, 9]])
    with torch.no_grad():
        before = g.model(x).logits
    out = save_quantized(g.model, g.tokenizer, tmp_path / "q", report=rep, source=str(path))
    cfg = json.loads((out / "quant_config.json").read_text())
    assert cfg["embedding"]["bits"] == 6 and "lm_head" not in cfg["layers"]
    m2, _, _ = load_quantized(out)
    assert isinstance(m2.lm_head, QuantLinear) and isinstance(m2.get_input_embeddings(), QuantEmbedding)
    with torch.no_grad():
        torch.testing.assert_close(m2(x).logits, before)


def test_a_malformed_embedding_spec_is_refused(tiny, tmp_path):
    _, path = tiny
    out = tmp_path / "q"
    get("model").write(path, out, Options(method="rtn", bits=4, group_size=32))
    cfg = json.loads((out / "quant_config.json").read_text())
    cfg["embedding"]["out"] += 1
    (out / "quant_config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="embedding"):
        load_quantized(out)


def test_defaults_quantize_the_embedding_to_8_bits_per_row(tiny, tmp_path):
    _, path = tiny
    m = get("model")
    rep = m.write(path, tmp_path / "a", Options(bits=4, group_size=32, calib_samples=8, calib_len=32))
    assert rep.method == "gptq"  # calibrated layers by default, and the tied embedding with them
    assert rep.embedding == "8-bit per row (gptq)" and rep.layers == 14
    cfg = json.loads((tmp_path / "a" / "quant_config.json").read_text())
    assert cfg["embedding"]["bits"] == 8 and cfg["embedding"]["group_size"] == 64
    assert cfg["embedding"]["method"] == "gptq"
    model, _, _ = load_quantized(tmp_path / "a")
    assert model.lm_head.path == "int8pack"  # the tied head runs PyTorch's int8 kernel
    m.write(path, tmp_path / "b", Options(method="rtn", bits=4, group_size=32, embedding_bits=0))
    assert "embedding" not in json.loads((tmp_path / "b" / "quant_config.json").read_text())
    m.write(path, tmp_path / "c", Options(method="rtn", bits=4, group_size=32, embedding_bits=4))
    assert load_quantized(tmp_path / "c")[0].lm_head.path == "packed"  # 259 rows: not a multiple of 16

    def size(d):
        return sum(p.stat().st_size for p in d.iterdir())

    assert size(tmp_path / "b") > size(tmp_path / "a")  # the float embedding is the larger folder


@pytest.mark.parametrize("bits,group,sym,path", [(4, 32, False, "int4pack"), (4, 64, False, "int4pack"),
                                                 (8, 0, True, "int8pack"), (6, 32, False, "packed"),
                                                 (5, 0, True, "int8pack"), (6, 0, True, "int8pack")])
def test_the_tied_head_takes_the_fast_kernels(bits, group, sym, path):
    from quanta.model.runtime.qembed import tie_head

    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(0))
    qw = make_quantizer("mse", bits=bits, group_size=group, sym=sym).quantize(w)
    qe = QuantEmbedding.from_quantized(qw)
    model = torch.nn.Module()
    tie_head(model, qe)
    assert model.lm_head.path == path


def test_a_tied_embedding_rounds_by_gptq_on_the_heads_inputs(tiny):
    """As the output head, a tied embedding is rounded by GPTQ with the final norm's outputs as
    its inputs: the head's output error on those inputs is below the clipping search's."""
    import copy

    from quanta.model.quantize.apply import head_stats
    from quanta.model.quantize.calibrate import calibration_windows
    from quanta.model.sources.tiny import byte_tokenizer

    model, _ = tiny
    calib = calibration_windows(byte_tokenizer(), samples=8, length=32, bos_id=256)
    stats = head_stats(copy.deepcopy(model), calib)
    w = model.lm_head.weight.data
    h = stats.hessian.float()

    def head_error(method):
        err = w - make_quantizer(method, bits=4, group_size=32).quantize(w, stats=stats).dequantize()
        return float(((err @ h) * err).sum())

    assert head_error("gptq") < 0.8 * head_error("mse")
    untied = copy.deepcopy(model)
    untied.config.tie_word_embeddings = False
    assert head_stats(untied, calib) is None
