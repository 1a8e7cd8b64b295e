import numpy as np
import pytest

from quanta.core.grid import Grid, choose_qparams, quantize
from quanta.core.hessian import gptq_quantize
from quanta.errors import ConfigError


def _grid(w, bits=4, g=16):
    grid = Grid(bits=bits, signed=False, symmetric=False, granularity="group", axis=1, group_size=g)
    qp = choose_qparams(w, grid)
    return grid, qp


def test_identity_hessian_is_round_to_nearest():
    """With H = I no error is fed forward (H⁻¹ is diagonal): GPTQ reduces to rounding."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 64))
    grid, qp = _grid(w)
    codes = gptq_quantize(w, np.eye(64), qp.scale, qp.zero_point, qmin=grid.qmin, qmax=grid.qmax,
                          group_size=16, act_order=False)
    np.testing.assert_array_equal(codes, quantize(w, qp))


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_lowers_the_output_error_on_correlated_inputs(act_order):
    rng = np.random.default_rng(1)
    n, k = 2048, 96
    x = rng.normal(size=(n, 8)) @ rng.normal(size=(8, k)) + 0.1 * rng.normal(size=(n, k))
    w = rng.normal(size=(32, k))
    h = x.T @ x / n
    grid, qp = _grid(w, bits=3, g=32)
    codes = gptq_quantize(w, h, qp.scale, qp.zero_point, qmin=grid.qmin, qmax=grid.qmax,
                          group_size=32, act_order=act_order)
    deq = lambda c: (c.reshape(32, -1, 32) - qp.zero_point[..., None]) * qp.scale[..., None]  # noqa: E731
    err_gptq = np.linalg.norm((w - deq(codes).reshape(32, k)) @ x.T)
    err_rtn = np.linalg.norm((w - deq(quantize(w, qp).astype(float)).reshape(32, k)) @ x.T)
    assert err_gptq < 0.7 * err_rtn
    assert codes.min() >= grid.qmin and codes.max() <= grid.qmax


def test_dead_inputs_quantize_to_zero_and_shapes_are_checked():
    w = np.random.default_rng(2).normal(size=(4, 32))
    h = np.eye(32)
    h[3, 3] = 0.0
    grid, qp = _grid(w, g=32)
    codes = gptq_quantize(w, h, qp.scale, qp.zero_point, qmin=grid.qmin, qmax=grid.qmax, group_size=32)
    # the grid's code nearest to 0.0
    np.testing.assert_array_equal(codes[:, 3], np.clip(np.rint(qp.zero_point[:, 0]), 0, 15))
    with pytest.raises(ConfigError):
        gptq_quantize(w, np.eye(31), qp.scale, qp.zero_point, qmin=0, qmax=15, group_size=32)
