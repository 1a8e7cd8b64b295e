"""The compressed-tensors folder's tensors (:mod:`quanta.model.formats.compressed`), checked with
the compressed-tensors package (a test dependency: the oracle)."""

import numpy as np
import pytest
import torch

from quanta.model.formats.compressed import layer_tensors, nbytes, pack
from quanta.model.quantize.quantizers import make_quantizer


@pytest.mark.parametrize("bits", range(2, 9))
def test_dense_packing_is_compressed_tensors_own(bits):
    from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32

    rng = np.random.default_rng(bits)
    for n in (32, 96, 100, 256):
        codes = rng.integers(0, 2**bits, (5, n))
        ref = pack_to_int32(torch.from_numpy(codes - 2 ** (bits - 1)).to(torch.int8), bits).numpy()
        np.testing.assert_array_equal(pack(codes, bits), ref)
    zeros = rng.integers(0, 2**bits, (40, 3))  # zero points: packed along the rows
    ref = pack_to_int32(torch.from_numpy(zeros - 2 ** (bits - 1)).to(torch.int8), bits, packed_dim=0).numpy()
    np.testing.assert_array_equal(pack(zeros.T, bits).T, ref)


@pytest.mark.parametrize("sym", [True, False])
def test_a_layer_unpacks_to_quantas_weight(sym):
    """A quanta grid is the scheme as it stands: symmetric codes are q + 2^(bits−1); asymmetric
    ones carry integer zero points. The package's own unpacking and dequantization give back
    quanta's weight; the bytes are :func:`nbytes`'s."""
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize

    w = torch.randn(48, 128, generator=torch.Generator().manual_seed(1)) * 0.05
    qw = make_quantizer("rtn", bits=4, group_size=32, sym=sym).quantize(w, name="x")
    t = layer_tensors("x", qw, torch.float32)
    shape = torch.Size(t["x.weight_shape"].tolist())
    q = unpack_from_int32(t["x.weight_packed"], 4, shape)
    zp = None
    if not sym:
        zp = unpack_from_int32(t["x.weight_zero_point"], 4, torch.Size([48, 4]), packed_dim=0)
    args = QuantizationArgs(num_bits=4, type="int", symmetric=sym, strategy="group", group_size=32)
    got = dequantize(x_q=q, scale=t["x.weight_scale"], zero_point=zp, args=args)
    torch.testing.assert_close(got, qw.dequantize(), rtol=0, atol=1e-6)
    assert sum(v.numel() * v.element_size() for v in t.values()) == nbytes(48, 128, 4, 32, sym, 4)


def test_fractional_zero_points_are_refused():
    from quanta.errors import ConfigError

    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(2))
    qw = make_quantizer("hqq", bits=4, group_size=32).quantize(w, name="x")
    with pytest.raises(ConfigError, match="fractional zero points"):
        layer_tensors("x", qw, torch.float32)
