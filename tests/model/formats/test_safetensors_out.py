"""The streaming safetensors writer writes the very bytes ``safetensors.torch.save`` writes,
with tensors in memory and parked in a spill file alike, and hashes what it wrote."""

from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors.torch import load_file, save

from quanta.model.formats import safetensors_out
from quanta.model.formats.spill import Spill

DTYPES = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.uint16, torch.float16, torch.bfloat16,
          torch.int32, torch.uint32, torch.float32, torch.float64, torch.int64, torch.uint64]


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {f"layer.{i}.{str(d)[6:]}": (torch.randn(3, 5, generator=g) * 50).to(d)
           for i, d in enumerate(DTYPES)}
    out |= {"a.weight": torch.randn(7, generator=g), "b.weight": torch.randn(2, 3, generator=g).half(),
            "empty": torch.zeros(0)}
    return out


@pytest.mark.parametrize("parked", [False, True])
def test_same_bytes_as_the_library(tmp_path, parked):
    ts = _tensors()
    ref = save(ts, metadata={"format": "quanta-quantized/2"})
    with Spill(tmp_path) as sp:
        entries = {k: sp.put(v) if parked and i % 2 else v for i, (k, v) in enumerate(ts.items())}
        hashes = safetensors_out.write(tmp_path / "m.safetensors", entries,
                                       metadata={"format": "quanta-quantized/2"}, spill=sp)
    data = (tmp_path / "m.safetensors").read_bytes()
    assert data == ref
    back = load_file(tmp_path / "m.safetensors")
    for k, v in ts.items():
        assert torch.equal(back[k], v)
        assert hashes[k] == hashlib.sha256(v.contiguous().view(torch.uint8).numpy().tobytes()).digest()


def test_a_parked_tensor_without_its_spill_is_an_error(tmp_path):
    with Spill(tmp_path) as sp:
        p = sp.put(torch.zeros(3))
    with pytest.raises(ValueError, match="spill"):
        safetensors_out.write(tmp_path / "m.safetensors", {"x": p})
