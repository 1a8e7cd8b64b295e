"""The kernel-neutral folder form (issue 22, deliverable 6): a quantized weight stored as codes,
float16 scales and zero points, checked against its spec, re-laid for a kernel on load; folders of
format 1 (PyTorch's int4 packing stored as is) still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from quanta.errors import InputError
from quanta.media import get
from quanta.model.formats import stored
from quanta.model.formats.folder import FORMAT, load_quantized
from quanta.model.formats.weight import FOLDER_TENSORS, WeightFormat
from quanta.model.options import Options
from quanta.model.quantize.quantizers import make_quantizer, quantizer_for
from quanta.model.runtime.qlinear import QuantLinear

V1 = Path(__file__).parent.parent / "data" / "folder_v1"
W = torch.randn(48, 96, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("method,bits,group,sym", [("rtn", 4, 32, False), ("mse", 3, 32, True),
                                                   ("hqq", 5, 0, False), ("nf4", 4, 32, False),
                                                   ("rtn", 8, 0, True), ("rtn", 2, 96, False)])
def test_store_then_restore_gives_the_weight_back(method, bits, group, sym):
    qw = stored.canonical(make_quantizer(method, bits=bits, group_size=group, sym=sym).quantize(W))
    tensors = stored.store(qw)
    assert set(tensors) <= set(FOLDER_TENSORS)
    assert ("zeros" in tensors) == (not qw.sym and qw.codebook is None)
    spec = stored.spec_of(qw)
    back = stored.restore(stored.check_spec(json.loads(json.dumps(spec)), "w"), tensors, "w")
    assert torch.equal(back.codes, qw.codes)
    torch.testing.assert_close(back.dequantize(), qw.dequantize(), rtol=0, atol=0)
    assert sum(v.numel() * v.element_size() for v in tensors.values()) == stored.nbytes(spec)


def test_a_formats_bytes_are_its_stored_tensors():
    for fmt in (WeightFormat("4-bit g32", 4, 32), WeightFormat("3-bit g32 sym", 3, 32, sym=True),
                WeightFormat("6-bit row", 6, 0, sym=True)):
        ql = QuantLinear.from_quantized(quantizer_for("rtn", fmt).quantize(W))
        assert sum(v.numel() * v.element_size() for v in ql.disk_state().values()) == fmt.nbytes(48, 96)
        assert ql.weight_bytes() == fmt.nbytes(48, 96)


@pytest.mark.parametrize("change", [{"bits": 3}, {"group_size": 48}, {"sym": True}, {"out": 47}])
def test_tensors_that_disagree_with_their_spec_are_refused(change):
    qw = make_quantizer("rtn", bits=4, group_size=32).quantize(W)
    spec = {**stored.spec_of(qw), **change}
    with pytest.raises(InputError, match="do not fit"):
        stored.restore(spec, stored.store(qw), "layer x")


def test_a_spec_is_checked_before_its_tensors():
    with pytest.raises(InputError, match="malformed"):
        stored.check_spec({"out": 4}, "layer x")
    with pytest.raises(InputError, match="inconsistent"):
        stored.check_spec({"out": 4, "in": 100, "padded_in": 96, "bits": 4, "group_size": 32, "sym": False,
                           "method": "rtn"}, "layer x")


def test_a_folder_stores_no_kernel_layout_and_the_kernel_is_chosen_on_load(tiny, tmp_path):
    _, path = tiny
    get("model").write(path, tmp_path / "q", Options(method="rtn", bits=4, group_size=32))
    cfg = json.loads((tmp_path / "q" / "quant_config.json").read_text())
    assert cfg["format"] == FORMAT and all("path" not in s for s in cfg["layers"].values())
    with safe_open(str(tmp_path / "q" / "model.safetensors"), "pt") as f:
        names = {k.rpartition(".")[2] for k in f.keys()}
    assert not names & {"scales_zeros", "w_int8", "packed"}
    model, _, _ = load_quantized(tmp_path / "q")
    assert model.model.layers[0].mlp.up_proj.path == "int4pack"


def test_an_nf4_folder_is_written_and_loads(tiny, tmp_path):
    """Every layer's codebook is its own tensor (format 1 could not write an nf4 folder: the
    layers shared one codebook array, which safetensors refuses)."""
    _, path = tiny
    g = get("model")
    g.write(path, tmp_path / "q", Options(method="nf4", bits=4, group_size=32, uniform=True))
    model, _, _ = load_quantized(tmp_path / "q")
    layer = model.model.layers[1].mlp.down_proj
    assert layer.path == "packed" and layer.levels == 16 and layer.method == "nf4"


@pytest.mark.parametrize("name", ["default", "bits3"])
def test_folders_of_format_1_still_load(name):
    """Folders written at 0983cc7 (format 1: int4pack / int8pack / packed buffers as the kernels
    held them; mixed 4–7-bit layers and an embedding, or 3-bit symmetric rows with the head) load
    to the logits that version computed."""
    expected = json.loads((V1 / "expected.json").read_text())
    model, _, cfg = load_quantized(V1 / name)
    assert cfg["format"] == "quanta-quantized/1"
    with torch.no_grad():
        logits = model(torch.tensor([expected["ids"]])).logits[0]
    assert logits.argmax(-1).tolist() == expected[name + "_argmax"]
    torch.testing.assert_close(logits[:, :16], torch.tensor(expected[name]), rtol=0, atol=2e-4)
