"""The worked examples of docs/ARCHITECTURE.md ("Extending the model package"): a storage format,
a rounding method and an architecture each added as one object plus one registration, done here
with toys — nothing else in the package changes for them."""

from __future__ import annotations

import dataclasses

import torch

from quanta.model.formats import stored
from quanta.model.formats.weight import WeightFormat
from quanta.model.quantize.quantizers import QUANTIZERS, RTN, QuantizedWeight, make_quantizer, quantizer_for
from quanta.model.runtime.qlinear import QuantLinear

W = torch.randn(32, 80, generator=torch.Generator().manual_seed(5))


def test_add_a_storage_format():
    """A quanta grid is one WeightFormat: its bytes, its folder tensors and every method's
    rounding onto it follow (a GGML type is one BlockType row in formats.BLOCK_TYPES)."""
    fmt = WeightFormat("3-bit g16 sym", 3, 16, sym=True)
    for method in ("rtn", "mse"):  # (hqq is asymmetric by design: it refines the zero point)
        qw = quantizer_for(method, fmt).quantize(W)
        layer = QuantLinear.from_quantized(qw)
        tensors = layer.disk_state()
        assert sum(t.numel() * t.element_size() for t in tensors.values()) == fmt.nbytes(32, 80)
        back = stored.restore(layer.spec(), tensors, "toy")
        torch.testing.assert_close(back.dequantize(), stored.canonical(qw).dequantize(), rtol=0, atol=0)


def test_add_a_method(monkeypatch):
    """A rounding method is one class plus its row of traits (methods.METHODS): the class
    statement registers it; make_quantizer, the formats and the folder take it as they are."""
    from quanta.model.quantize import methods

    monkeypatch.setitem(methods.METHODS, "toy", methods.Method("toy", "round half away from zero"))

    class Toy(RTN, name="toy"):
        def quantize_padded(self, w, group_size, in_features, stats) -> QuantizedWeight:
            qw = super().quantize_padded(w, group_size, in_features, stats)
            return dataclasses.replace(qw, method=self.name)

    try:
        q = make_quantizer("toy", bits=4, group_size=16)
        layer = QuantLinear.from_quantized(q.quantize(W))
        assert layer.method == "toy"
        back = stored.restore(layer.spec(), layer.disk_state(), "toy")
        assert back.method == "toy"
        torch.testing.assert_close(layer.dequantize_weight(), back.dequantize(), rtol=0, atol=2e-2)
    finally:
        QUANTIZERS.pop("toy", None)
    assert Toy.needs_calibration is False  # its traits came from the table


def test_add_an_architecture(monkeypatch):
    """An architecture is one Architecture entry (quanta.model.arch.ARCHITECTURES); the toy is
    Llama's layout under another family's GGUF name (tests/model/test_arch.py tests the rest)."""
    from tests.model.test_arch import test_a_family_is_one_table_entry

    test_a_family_is_one_table_entry(monkeypatch)
