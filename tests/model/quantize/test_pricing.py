"""Which rows the sensitivity pass rounds to price a unit: all, but a lattice type's on a sample
of a large unit's rows."""

from __future__ import annotations

from quanta.model.formats.weight import ggml_format
from quanta.model.quantize import pricing


def test_only_a_lattice_type_on_a_large_unit_is_sampled(monkeypatch):
    iq3, q2k = ggml_format("IQ3_S"), ggml_format("Q2_K")
    # the committed cap: a 135 M model's largest layer (576 × 1536) whole, an 8 B one's sampled
    assert pricing.price_stride(iq3, 576, 1536) == 1 and pricing.priced_rows(iq3, 576, 1536) == 576
    assert pricing.price_stride(iq3, 14336, 4096) == 56
    assert pricing.priced_rows(iq3, 14336, 4096) == 256 + 64  # every 56th row, a quarter more
    assert pricing.price_stride(q2k, 14336, 4096) == 1 and pricing.priced_rows(q2k, 14336, 4096) == 14336
    monkeypatch.setattr(pricing, "LATTICE_PRICE_WEIGHTS", 256 * 64)
    assert pricing.price_stride(iq3, 256, 512) == 8 and pricing.price_stride(iq3, 600, 256) == 10
    assert pricing.priced_rows(iq3, 256, 512) == 32 + 8
    assert pricing.priced_rows(iq3, 3, 256 * 64 * 4) == 1 + 1  # never more rows than the unit has
