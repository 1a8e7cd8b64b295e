import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanta.core import pack, packed_size, unpack
from quanta.errors import ConfigError


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 8), st.integers(0, 300), st.integers(0, 2**32 - 1))
def test_round_trip_every_width(bits, n, seed):
    codes = np.random.default_rng(seed).integers(0, 1 << bits, size=n).astype(np.uint8)
    data = pack(codes, bits)
    assert data.dtype == np.uint8 and data.size == packed_size(n, bits) == (n * bits + 7) // 8
    np.testing.assert_array_equal(unpack(data, bits, n), codes)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(1, 100), st.integers(0, 2**32 - 1))
def test_signed_round_trip(bits, n, seed):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    codes = np.random.default_rng(seed).integers(lo, hi + 1, size=n).astype(np.int8)
    np.testing.assert_array_equal(unpack(pack(codes, bits), bits, n, signed=True), codes)


def test_layout_is_little_endian_bit_stream():
    assert pack(np.array([1, 2, 3, 0]), 2).tolist() == [0b00111001]
    assert pack(np.array([0xA, 0x5]), 4).tolist() == [0x5A]
    # 3-bit codes 7,0,5 -> bits 111 000 101 -> 0b01000111, 0b00000001
    assert pack(np.array([7, 0, 5]), 3).tolist() == [0b01000111, 0b1]


def test_out_of_range_and_bad_width():
    with pytest.raises(ConfigError):
        pack(np.array([4]), 2)
    with pytest.raises(ConfigError):
        pack(np.array([1]), 9)
    with pytest.raises(ConfigError):
        unpack(np.zeros(1, np.uint8), 4, 3)


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_chunked_pack_and_unpack_give_the_same_bytes(monkeypatch, bits):
    """Large arrays are packed and unpacked in chunks (bounded memory): the same bytes and codes
    as in one go."""
    import torch

    from quanta.core import packing

    codes = np.random.default_rng(bits).integers(0, 1 << bits, 8 * 37 + 5).astype(np.uint8)
    whole = packing.pack(codes, bits)
    monkeypatch.setattr(packing, "PACK_CODES", 16)
    monkeypatch.setattr(packing, "UNPACK_GROUPS", 3)
    assert np.array_equal(packing.pack(codes, bits), whole)
    assert np.array_equal(packing.unpack_torch(torch.from_numpy(whole), bits, codes.size).numpy(), codes)
