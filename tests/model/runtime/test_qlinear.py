import numpy as np
import pytest
import torch

from quanta.core.packing import pack, unpack, unpack_torch
from quanta.model.quantize.quantizers import quantize_weight
from quanta.model.runtime.qlinear import QuantLinear


@pytest.mark.parametrize("bits", range(1, 9))
def test_torch_unpack_matches_numpy(bits):
    codes = np.random.default_rng(bits).integers(0, 1 << bits, 1003).astype(np.uint8)
    data = pack(codes, bits)
    np.testing.assert_array_equal(unpack_torch(torch.from_numpy(data), bits, 1003).numpy(),
                                  unpack(data, bits, 1003))


@pytest.mark.parametrize("shape,bits,group,method,sym,path", [
    ((64, 128), 4, 32, "rtn", False, "int4pack"),
    ((48, 256), 4, 128, "hqq", False, "int4pack"),
    ((50, 128), 4, 32, "rtn", False, "packed"),     # N not a multiple of 16
    ((64, 128), 8, 0, "rtn", True, "int8pack"),
    ((64, 72), 8, 0, "rtn", True, "packed"),        # K = 72: int8 kernel wrong for K % 16 != 0
    ((64, 60), 8, 0, "rtn", True, "packed"),        # K % 8 != 0: int8 kernel would crash
    ((32, 96), 3, 32, "mse", False, "packed"),
    ((32, 96), 2, 32, "rtn", False, "packed"),
    ((32, 96), 6, 0, "rtn", True, "int8pack"),     # 6-bit rows: codes − 32 on the int8 kernel
    ((32, 96), 5, 0, "mse", True, "int8pack"),
    ((32, 72), 6, 0, "rtn", True, "packed"),
    ((32, 128), 4, 64, "nf4", False, "packed"),
    ((64, 576), 4, 128, "rtn", False, "int4pack"),  # 576 = 4.5 groups: zero-padded to 640
    ((64, 100), 3, 32, "hqq", False, "packed"),     # padded fallback
])
def test_quantlinear_paths_match_dequantized_reference(shape, bits, group, method, sym, path):
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(*shape, generator=gen) * 0.05
    qw = quantize_weight(w, bits=bits, group_size=group, method=method, sym=sym)
    ql = QuantLinear.from_quantized(qw, bias=torch.randn(shape[0], generator=gen))
    assert ql.path == path
    x = torch.randn(5, 3, shape[1], generator=gen)
    ref = x @ qw.dequantize().t() + ql.bias
    y = ql(x)
    assert y.shape == (5, 3, shape[0])
    tol = 0.02 if path != "packed" else 2e-3  # bf16 activations on the kernel paths
    assert float((y - ref).norm() / ref.norm()) < tol
    assert ql.weight_bytes() < shape[0] * shape[1] * 4 * (bits + 1) / 32 + 4096


