import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quanta.core import NF4, Grid, dequantize_scaled, lloyd_max, lookup, nearest, quantize_scaled
from quanta.errors import ConfigError


def test_nf4_shape():
    assert NF4.size == 16 and NF4[0] == -1 and NF4[-1] == 1 and 0.0 in NF4
    assert np.all(np.diff(NF4) > 0)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 200), elements=st.floats(-2, 2)))
def test_nearest_is_the_argmin(x):
    codes = nearest(x, NF4)
    brute = np.abs(x[:, None] - NF4[None, :].astype(np.float64))
    best = brute.min(axis=1)
    np.testing.assert_allclose(np.abs(x - NF4[codes].astype(np.float64)), best, atol=1e-7)


def test_lloyd_max_on_uniform_data_gives_uniform_levels():
    x = np.random.default_rng(0).uniform(-1, 1, 200_000)
    cb = lloyd_max(x, 8)
    np.testing.assert_allclose(cb, (np.arange(8) + 0.5) / 4 - 1, atol=0.01)


def test_lloyd_max_beats_uniform_grid_on_gaussian():
    x = np.random.default_rng(1).normal(size=100_000)
    cb = lloyd_max(x, 16)
    err_lm = np.mean((x - cb[nearest(x, cb)]) ** 2)
    uni = np.linspace(x.min(), x.max(), 16)
    err_u = np.mean((x - uni[nearest(x, uni)]) ** 2)
    assert err_lm < 0.5 * err_u
    # Max's (1960) optimum for 16 levels on a unit Gaussian: MSE 0.009497
    assert err_lm == pytest.approx(0.009497, rel=0.05)


def test_weights_pull_levels():
    x = np.concatenate([np.zeros(1000) - 1, np.zeros(1000) + 1, np.linspace(-1, 1, 1000)])
    w = np.ones_like(x)
    w[2000:] = 1000.0  # the ramp dominates: levels spread over it
    cb = lloyd_max(x, 4, weights=w)
    np.testing.assert_allclose(cb, [-0.75, -0.25, 0.25, 0.75], atol=0.02)


def test_scaled_round_trip_on_groups_and_torch():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(8, 128)).astype(np.float32)
    g = Grid(4, granularity="group", axis=1, group_size=64)
    codes, scales = quantize_scaled(w, NF4, g)
    assert codes.dtype == np.uint8 and scales.shape == (8, 2)
    wh = dequantize_scaled(codes, scales, NF4, g)
    assert np.max(np.abs(wh - w)) <= np.max(scales) * np.max(np.diff(NF4)) / 2 + 1e-6
    import torch

    ct, _ = quantize_scaled(torch.from_numpy(w), NF4, g)
    assert (ct.numpy() == codes).mean() > 0.999
    np.testing.assert_allclose(lookup(ct, NF4).numpy(), lookup(codes, NF4)[...] * 1.0, atol=0)


def test_bad_codebooks():
    with pytest.raises(ConfigError):
        nearest(np.zeros(3), [1.0, 0.0])
    with pytest.raises(ConfigError):
        lloyd_max(np.zeros(0), 4)
