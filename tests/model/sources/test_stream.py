"""Hugging Face folders read block by block: the store's reads, the meta model, and a streamed
quantization writing the same bytes as one from the model loaded whole."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from quanta.errors import InputError
from quanta.model.sources import stream
from quanta.model.sources.load import load_model
from quanta.model.sources.reading import safetensors_entries


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_store_reads_rows_and_gathers(tmp_path, dtype):
    t = torch.randn(37, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
    save_file({"a.weight": t, "b": torch.arange(3.0)}, str(tmp_path / "m.safetensors"))
    store = stream.TensorStore(safetensors_entries(tmp_path))
    assert torch.equal(store.read("a.weight"), t.float())
    assert torch.equal(store.read("a.weight", 10, 20), t[10:20].float())
    assert torch.equal(store.read("a.weight", 30, 99), t[30:].float())
    ids = torch.tensor([3, 0, 36, 3])
    assert torch.equal(store.rows("a.weight", ids), t[ids].float())
    assert torch.equal(store.read("b"), torch.arange(3.0))


def test_a_header_that_does_not_fit_its_file_is_refused(tmp_path):
    save_file({"a": torch.zeros(4)}, str(tmp_path / "m.safetensors"))
    data = bytearray((tmp_path / "m.safetensors").read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["a"]["data_offsets"] = [0, 4000]
    raw = json.dumps(header).encode()
    (tmp_path / "m.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n:])
    with pytest.raises(InputError, match="outside the file"):
        safetensors_entries(tmp_path)


def test_streamed_model_holds_no_matrix_until_asked(tiny_hf):
    s = load_model(tiny_hf, stream=True).model
    whole = load_model(tiny_hf).model
    mats = {n: p for n, p in s.named_parameters() if p.ndim == 2}
    assert mats and all(p.is_meta for p in mats.values())
    assert all(not p.is_meta for p in s.parameters() if p.ndim == 1)  # norms are read at once
    stream.load(s, "model.layers.1")
    w = dict(whole.named_parameters())
    for n, p in s.named_parameters():
        if n.startswith("model.layers.1."):
            assert torch.equal(p, w[n])
        elif p.ndim == 2:
            assert p.is_meta
    stream.release(s, s.model.layers[1])
    assert all(p.is_meta for p in s.model.layers[1].parameters() if p.ndim == 2)
    ids = torch.tensor([[1, 7, 7, 200, 3]])
    with torch.no_grad():
        assert torch.equal(s.get_input_embeddings()(ids), whole.get_input_embeddings()(ids))
        assert s.get_input_embeddings().weight.is_meta  # the lookup read its rows only
        stream.finish(s)
        assert s.lm_head.weight is s.get_input_embeddings().weight  # tied again
        torch.testing.assert_close(s(ids).logits, whole(ids).logits, rtol=0, atol=0)


def test_row_slices_cover_the_matrix(tiny_hf, monkeypatch):
    monkeypatch.setattr(stream, "SLICE_BYTES", 4 * 128 * 50)  # 50 rows of 128 floats
    s, whole = load_model(tiny_hf, stream=True).model, load_model(tiny_hf).model
    for model in (s, whole):
        parts = list(stream.row_slices(model, model.get_input_embeddings()))
        assert [a for a, _ in parts] == list(range(0, 259, 50))
        assert torch.equal(torch.cat([w for _, w in parts]), whole.get_input_embeddings().weight)


def test_folder_naming_other_parameters_loads_whole(tmp_path, tiny_hf):
    """Files whose names are not transformers' (another checkpoint layout) are not streamed: the
    model loads whole, as before."""
    from safetensors.torch import load_file

    d = tmp_path / "renamed"
    d.mkdir()
    for f in tiny_hf.iterdir():
        if f.suffix != ".safetensors":
            (d / f.name).write_bytes(f.read_bytes())
    state = load_file(str(tiny_hf / "model.safetensors"))
    save_file({k.replace("model.", "", 1): v for k, v in state.items()}, str(d / "model.safetensors"))
    from transformers import AutoModelForCausalLM

    assert stream.open_streamed(d, AutoModelForCausalLM, load_model(tiny_hf).model.config,
                                safetensors_entries(d)) is None
    assert stream.streamed(load_model(d, stream=True).model) is None


@pytest.mark.parametrize("extra", [{"method": "gptq", "uniform": True}, {"method": "rtn"},
                                   {"format": "gguf", "method": "gptq"},
                                   {"method": "imatrix", "target_bpw": 5.0}],
                         ids=["gptq", "rtn", "gguf", "mixed"])
def test_streamed_and_whole_write_the_same_bytes(tiny_hf, tmp_path, monkeypatch, extra):
    from quanta.media import get
    from quanta.model.sources import load as load_mod

    m = get("model")
    kw = {"calib_samples": 8, "calib_len": 32, **extra}
    suffix = ".gguf" if extra.get("format") else ""
    a, b = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    m.write(tiny_hf, a, m.options(**kw))
    real = load_mod.load_model
    monkeypatch.setattr(load_mod, "load_model", lambda src, **k: real(src, **{**k, "stream": False}))
    m.write(tiny_hf, b, m.options(**kw))

    def files(p):
        return {f.name: f.read_bytes() for f in sorted(p.iterdir())} if p.is_dir() else {"": p.read_bytes()}

    fa, fb = files(a), files(b)
    if "quant_config.json" in fa:  # the source path is the same; nothing else may differ
        fa["quant_config.json"], fb["quant_config.json"] = (json.loads(x) for x in (fa["quant_config.json"],
                                                                                     fb["quant_config.json"]))
    assert fa == fb


def test_predicted_memory_of_a_streamed_billion_parameter_model():
    """The cost model: a 1.2 B Llama's default run streamed stays near 3 GB; loaded whole (a
    GGUF source) it would need over 12 GB."""
    import dataclasses

    from quanta.model.quantize.cost import Shapes, predict

    h, i = 2048, 8192
    lin = ((h, h), (512, h), (512, h), (h, h), (i, h), (i, h), (h, i))
    sh = Shapes(16, lin, (h, h, i, h), h, 128256, 1_235_814_400, 2_471_628_800, True, True)
    streamed = predict(sh, 700_000_000, 973_000_000, "gptq", calibrated=True, sensitivity=True, windows=64,
                       tokens=256, speed=(3e11, 1.5e11))
    whole = predict(dataclasses.replace(sh, streamed=False), 700_000_000, 973_000_000, "gptq",
                    calibrated=True, sensitivity=True, windows=64, tokens=256, speed=(3e11, 1.5e11))
    assert 2.0e9 < streamed.peak_bytes < 4.0e9 < 12e9 < whole.peak_bytes
    assert streamed.seconds == pytest.approx(whole.seconds, rel=0.5)
    assert np.isfinite(streamed.seconds) and streamed.seconds > 60


def test_smaller_slices_give_the_same_codes(tiny_hf):
    """stream.slices (what --max-memory shrinks) changes how much of the embedding is in memory
    at once, never its codes; the default comes back after the block."""
    from quanta.model.quantize.quantizers import make_quantizer

    s = load_model(tiny_hf, stream=True).model
    q = make_quantizer("mse", bits=4, group_size=32)
    whole = stream.quantize_rows(q, s, s.get_input_embeddings())
    before = stream.SLICE_BYTES
    with stream.slices(4 * 128 * 40):
        assert len(list(stream.row_slices(s, s.get_input_embeddings()))) == 7
        sliced = stream.quantize_rows(q, s, s.get_input_embeddings())
    assert stream.SLICE_BYTES == before
    assert torch.equal(whole.codes, sliced.codes) and torch.equal(whole.scales, sliced.scales)


@pytest.mark.parametrize("float_dtype", ["float32", "bfloat16"])
def test_an_untied_float_head_is_written_from_the_source_in_slices(tmp_path, monkeypatch, float_dtype):
    """The head left float (untied, excluded by default) is never read whole from a streamed
    source: the writer copies it slice by slice — the same folder as from the model loaded whole."""
    from quanta.media import get
    from quanta.model.formats import safetensors_out
    from quanta.model.sources import load as load_mod
    from quanta.model.sources.tiny import write_hf_folder

    src = write_hf_folder(tmp_path / "untied", seed=4, tie_word_embeddings=False)
    monkeypatch.setattr(stream, "SLICE_BYTES", 4 * 128 * 100)  # three slices of the 259-row head
    deferred = []
    real_write = safetensors_out.write
    monkeypatch.setattr(safetensors_out, "write", lambda path, entries, **kw: (
        deferred.extend(k for k, v in entries.items() if isinstance(v, safetensors_out.Deferred)),
        real_write(path, entries, **kw))[1])
    m = get("model")
    opts = m.options(method="rtn", uniform=True, float_dtype=float_dtype)
    m.write(src, tmp_path / "a", opts)
    assert "lm_head.weight" in deferred
    real = load_mod.load_model
    monkeypatch.setattr(load_mod, "load_model", lambda s, **k: real(s, **{**k, "stream": False}))
    m.write(src, tmp_path / "b", opts)
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()
