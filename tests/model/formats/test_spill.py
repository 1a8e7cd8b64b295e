"""The spill file: tensors parked on disk come back with the same bytes, dtype and shape, and
the file leaves nothing behind."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch

from quanta.model.formats import spill as spill_mod
from quanta.model.formats.spill import Spill


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.uint8, torch.int32])
def test_put_read_and_copy_give_the_same_bytes(tmp_path, dtype, monkeypatch):
    monkeypatch.setattr(spill_mod, "CHUNK", 40)  # several chunks per tensor
    g = torch.Generator().manual_seed(1)
    ts = [(torch.randn(9, 7, generator=g) * 40).to(dtype), torch.arange(5, dtype=torch.int64)]
    with Spill(tmp_path) as sp:
        parked = [sp.put(t) for t in ts]
        assert sp.size == sum(t.numel() * t.element_size() for t in ts)
        for t, p in zip(ts, parked, strict=True):
            raw = t.contiguous().view(torch.uint8).numpy().tobytes()
            assert p.shape == tuple(t.shape) and p.nbytes == len(raw)
            assert p.sha256 == hashlib.sha256(raw).digest()
            assert sp.read(p).tobytes() == raw
            out = io.BytesIO()
            sp.copy(p, out)
            assert out.getvalue() == raw
        assert list(tmp_path.iterdir()) == []  # anonymous: no name in the folder, ever


def test_numpy_arrays_park_too(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    with Spill(tmp_path) as sp:
        p = sp.put(a)
        assert p.dtype == "<f4" and np.array_equal(sp.read(p), a)
