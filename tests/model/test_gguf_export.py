"""--format gguf: the file's tensors, dequantized by the gguf package, are quanta's own weights;
quanta's loader reads it back; --force replaces only a GGUF quanta wrote."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quanta.errors import ConfigError, OutputError
from quanta.media import get
from quanta.model.gguf_load import _unpermute, load_gguf


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
    import quanta.model.apply as apply

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
        get("model").write(path, out, bits=bits, sym=sym, group_size=32, method=method, format="gguf",
                           calib_samples=8, calib_len=32)
    finally:
        apply.quantize_model = real
    got = _dequantized(out)
    n_head, n_kv = 4, 2
    for hf, qw in kept.items():
        layer = hf.split(".")[2]
        short = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}[hf.split(".", 3)[3]]
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
    from quanta.model.tiny import write_hf_folder

    _, path = tiny
    m = get("model")
    with pytest.raises(ConfigError, match="groups of 32"):
        m.write(path, tmp_path / "a.gguf", bits=4, group_size=128, format="gguf")
    with pytest.raises(ConfigError, match=r"\.gguf name"):
        m.write(path, tmp_path / "a.bin", bits=4, group_size=32, format="gguf")
    with pytest.raises(ConfigError, match="not one"):
        m.write(write_hf_folder(tmp_path / "hf"), tmp_path / "b.gguf", bits=4, group_size=32,
                format="gguf")
    out = tmp_path / "c.gguf"
    m.write(path, out, bits=8, group_size=32, format="gguf")
    m.write(path, out, bits=4, group_size=32, format="gguf", force=True)  # ours: replaced
    foreign = tmp_path / "foreign.gguf"
    foreign.write_bytes(path.read_bytes())
    with pytest.raises(OutputError, match=r"not a (folder|file) quanta wrote"):
        m.write(path, foreign, bits=4, group_size=32, format="gguf", force=True)
    assert foreign.read_bytes() == path.read_bytes()


def test_exported_model_logits_match_the_quantized_model(tiny, tmp_path):
    from quanta.model.apply import quantize_model

    _, path = tiny
    out = tmp_path / "q.gguf"
    get("model").write(path, out, bits=8, group_size=32, format="gguf")
    g = load_gguf(path)
    quantize_model(g.model, "rtn", bits=8, group_size=32, sym=True)
    e = load_gguf(out)
    x = torch.tensor([[256, 5, 77, 100, 3, 9]])
    with torch.no_grad():
        a, b = e.model(x).logits, g.model(x).logits
    assert float((a - b).norm() / b.norm()) < 0.02  # the export also quantizes the embedding
