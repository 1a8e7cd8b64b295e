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




def test_a_held_weight_gives_the_same_outputs_and_is_let_go(monkeypatch):
    """``hold_weight``: the unpacking path dequantizes once for many forwards (the engine's
    windows through a finished block), with the very outputs of unpacking each time."""
    from quanta.model.quantize.calibrate import held_weights

    gen = torch.Generator().manual_seed(3)
    qw = quantize_weight(torch.randn(32, 96, generator=gen) * 0.05, bits=3, group_size=32, method="rtn")
    ql = QuantLinear.from_quantized(qw)
    assert ql.path == "packed"
    xs = [torch.randn(4, 96, generator=gen) for _ in range(3)]
    plain = [ql(x) for x in xs]
    calls = []
    real = ql.stored_weight
    monkeypatch.setattr(ql, "stored_weight", lambda *a: calls.append(1) or real(*a))
    block = torch.nn.Sequential(ql)
    with held_weights(block):
        held = [block(x) for x in xs]
        assert ql._held is not None
    assert len(calls) == 1
    assert all(torch.equal(a, b) for a, b in zip(plain, held))
    assert ql._held is None


@pytest.mark.parametrize("shape, bits, group, sym, path", [
    ((64, 576), 4, 128, False, "int4pack"),  # padded inputs
    ((32, 96), 6, 0, True, "int8pack"),
])
def test_a_held_kernel_layer_runs_in_float32_on_the_stored_weight(shape, bits, group, sym, path):
    """Held, a kernel layer leaves its bf16 kernel for a float32 product with the weight its
    folder tensors hold: the dequantized reference's outputs to float32 rounding."""
    from quanta.model.quantize.calibrate import held_weights

    gen = torch.Generator().manual_seed(4)
    qw = quantize_weight(torch.randn(*shape, generator=gen) * 0.05, bits=bits, group_size=group,
                         method="rtn", sym=sym)
    ql = QuantLinear.from_quantized(qw)
    assert ql.path == path
    x = torch.randn(5, shape[1], generator=gen)
    ref = x @ ql.stored_weight().t()
    assert float((ql(x) - ref).norm() / ref.norm()) > 1e-4  # bf16 activations on the kernel
    with held_weights(torch.nn.Sequential(ql)):
        held = ql(x)
    assert float((held - ref).norm() / ref.norm()) < 1e-6
    assert torch.allclose(ql.stored_weight(), qw.dequantize(), rtol=1e-3, atol=1e-6)
