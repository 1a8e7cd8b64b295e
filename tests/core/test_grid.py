import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quanta.core import Grid, choose_qparams, dequantize, fake_quantize, quantize
from quanta.core.grid import QParams, param_shape
from quanta.errors import ConfigError

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=8))
    x = draw(hnp.arrays(np.float32, shape, elements=finite))
    symmetric = draw(st.booleans())
    bits = draw(st.integers(2 if symmetric else 1, 16))
    signed = draw(st.booleans())
    gran = draw(st.sampled_from(["tensor", "channel", "group"]))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    group = None
    if gran == "group":
        n = shape[axis]
        group = draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    return x, Grid(bits, signed, symmetric, gran, axis, group)


def _bound_holds(x, qp):
    xh = dequantize(quantize(x, qp), qp, dtype=np.float64)
    scale = np.asarray(qp.scale, dtype=np.float64)
    # Broadcast the per-block scale back onto the elements through the same block view.
    from quanta.core.grid import from_blocks, to_blocks

    blocks = to_blocks(np.zeros_like(x, dtype=np.float64), qp.grid) + scale.reshape(-1, 1)
    s = from_blocks(blocks, qp.grid, x.shape)
    err = np.abs(xh - x.astype(np.float64))
    # tolerance for float32 arithmetic in x / scale
    return np.all(err <= s / 2 * (1 + 1e-5) + 1e-6 * np.abs(x) + 1e-30)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_error_bounded_by_half_step_and_codes_in_range(case):
    x, grid = case
    qp = choose_qparams(x, grid)
    assert np.shape(qp.scale) == param_shape(grid, x.shape)
    codes = quantize(x, qp)
    assert codes.shape == x.shape
    assert codes.min() >= grid.qmin and codes.max() <= grid.qmax
    assert np.dtype(codes.dtype).itemsize == (1 if grid.bits <= 8 else 2)
    assert _bound_holds(x, qp)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_quantize_dequantize_is_idempotent(case):
    x, grid = case
    qp = choose_qparams(x, grid)
    codes = quantize(x, qp)
    again = quantize(dequantize(codes, qp, dtype=np.float64), qp)
    np.testing.assert_array_equal(again, codes)


@settings(max_examples=100, deadline=None)
@given(cases())
def test_fake_quantize_equals_dequantize_of_quantize(case):
    x, grid = case
    qp = choose_qparams(x, grid)
    np.testing.assert_allclose(fake_quantize(x, qp), dequantize(quantize(x, qp), qp),
                               rtol=1e-6, atol=1e-6 * float(np.max(qp.scale)))


def test_mse_search_never_worse_than_minmax_and_helps_heavy_tails():
    rng = np.random.default_rng(1)
    w = rng.standard_t(3, size=(64, 256)).astype(np.float32)
    g = Grid(4, granularity="group", axis=1, group_size=64)
    e_mm = (fake_quantize(w, choose_qparams(w, g)) - w) ** 2
    e_mse = (fake_quantize(w, choose_qparams(w, g, method="mse")) - w) ** 2
    per_block_mm = e_mm.reshape(64, 4, 64).sum(-1)
    per_block_mse = e_mse.reshape(64, 4, 64).sum(-1)
    assert np.all(per_block_mse <= per_block_mm * (1 + 1e-5))
    assert e_mse.mean() < 0.9 * e_mm.mean()


def test_weighted_mse_search_favours_weighted_elements():
    rng = np.random.default_rng(2)
    x = rng.standard_t(3, size=(1, 512)).astype(np.float32)
    weights = np.ones_like(x)
    big = np.argmax(np.abs(x))
    weights[0, big] = 1e6  # the outlier must be kept: no clipping allowed
    qp = choose_qparams(x, Grid(4), method="mse", weights=weights)
    err = abs(fake_quantize(x, qp)[0, big] - x[0, big])
    assert err <= float(qp.scale) / 2 + 1e-6


def test_per_channel_and_group_shapes():
    w = np.arange(24, dtype=np.float32).reshape(4, 6)
    assert np.shape(choose_qparams(w, Grid(8, granularity="channel", axis=0)).scale) == (4,)
    assert np.shape(choose_qparams(w, Grid(8, granularity="channel", axis=1)).scale) == (6,)
    assert np.shape(choose_qparams(w, Grid(8, granularity="group", axis=1, group_size=3)).scale) \
        == (4, 2)
    assert np.shape(choose_qparams(w, Grid(8, granularity="group", axis=0, group_size=2)).scale) \
        == (6, 2)


def test_channel_scales_are_independent():
    w = np.stack([np.linspace(-1, 1, 16), np.linspace(-100, 100, 16)]).astype(np.float32)
    qp = choose_qparams(w, Grid(8, granularity="channel", axis=0))
    np.testing.assert_allclose(qp.scale, [1 / 127, 100 / 127], rtol=1e-6)


def test_given_scale_and_zero_point():
    x = np.array([-1.0, -0.26, 0.0, 0.24, 1.0])
    qp = choose_qparams(x, Grid(3, signed=True, symmetric=True), method="given", scale=0.25)
    np.testing.assert_array_equal(quantize(x, qp), [-4, -1, 0, 1, 3])


def test_constant_blocks_are_exact():
    for grid in (Grid(4), Grid(4, symmetric=False), Grid(1, symmetric=False, signed=False)):
        for c in (0.0, 3.5, -2.0):
            x = np.full((3, 4), c, dtype=np.float32)
            qp = choose_qparams(x, grid)
            np.testing.assert_array_equal(dequantize(quantize(x, qp), qp), x)


@pytest.mark.parametrize("grid", [Grid(16, symmetric=False), Grid(16), Grid(8, symmetric=False),
                                  Grid(3)])
def test_subnormal_and_tiny_blocks_stay_finite(grid):
    x = np.array([-1.4e-45, 0.0, 2.8e-45, 1e-40], dtype=np.float32)
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        qp = choose_qparams(x, grid)
        codes = quantize(x, qp)
    xh = dequantize(codes, qp)
    assert np.all(np.isfinite(xh)) and np.all(np.abs(xh - x) <= float(np.max(qp.scale)))


def test_torch_matches_numpy():
    import torch

    rng = np.random.default_rng(3)
    w = rng.normal(size=(32, 128)).astype(np.float32)
    for grid in (Grid(4, granularity="group", axis=1, group_size=32),
                 Grid(8, granularity="channel", axis=0),
                 Grid(3, symmetric=False, signed=False, granularity="group", axis=1, group_size=64)):
        for method in ("minmax", "mse"):
            qn = choose_qparams(w, grid, method=method)
            qt = choose_qparams(torch.from_numpy(w), grid, method=method)
            np.testing.assert_allclose(qt.scale.numpy(), qn.scale, rtol=1e-6)
            cn = quantize(w, qn)
            ct = quantize(torch.from_numpy(w), qt)
            assert (ct.numpy() == cn).mean() > 0.999  # ties may round differently at 1 ulp
            np.testing.assert_allclose(dequantize(ct, qt).numpy(), dequantize(cn, qn), atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    {"bits": 0}, {"bits": 33}, {"bits": 1, "symmetric": True}, {"granularity": "row"},
    {"granularity": "group", "group_size": None},
])
def test_bad_grids_raise(kwargs):
    with pytest.raises(ConfigError):
        Grid(**kwargs)


def test_group_size_must_divide():
    with pytest.raises(ConfigError, match="does not divide"):
        choose_qparams(np.zeros((4, 10)), Grid(4, granularity="group", axis=1, group_size=3))


def test_empty_and_unknown_method_raise():
    with pytest.raises(ConfigError):
        choose_qparams(np.zeros(0), Grid(8))
    with pytest.raises(ConfigError):
        choose_qparams(np.zeros(3), Grid(8), method="magic")


@pytest.mark.parametrize("use_torch", [False, True])
def test_mse_search_in_slices_equals_the_search_over_all_blocks(monkeypatch, use_torch):
    import quanta.core.grid as grid_mod

    rng = np.random.default_rng(4)
    x = rng.standard_normal((97, 384)).astype(np.float32) * np.linspace(0.1, 3, 384, dtype=np.float32)
    w = rng.random(384).astype(np.float32)
    if use_torch:
        import torch

        x, w = torch.from_numpy(x), torch.from_numpy(w)
    monkeypatch.setattr(grid_mod, "_compiled_search", lambda *a: None)  # the vectorized search
    for g in (Grid(bits=4, granularity="group", axis=1, group_size=128),
              Grid(bits=8, signed=True, symmetric=True, granularity="channel", axis=0)):
        monkeypatch.setattr(grid_mod, "_SEARCH_ELEMENTS", 1 << 30)
        whole = choose_qparams(x, g, method="mse", weights=w)
        monkeypatch.setattr(grid_mod, "_SEARCH_ELEMENTS", 200)
        sliced = choose_qparams(x, g, method="mse", weights=w)
        assert np.array_equal(np.asarray(whole.scale), np.asarray(sliced.scale))
        assert np.array_equal(np.asarray(whole.zero_point), np.asarray(sliced.zero_point))


SEARCH_GRIDS = [
    Grid(bits=4, signed=False, symmetric=False, granularity="group", axis=1, group_size=32),
    Grid(bits=4, granularity="group", axis=1, group_size=32),
    Grid(bits=2, signed=False, symmetric=False, granularity="group", axis=1, group_size=16),
    Grid(bits=3, signed=False, symmetric=False, granularity="group", axis=1, group_size=12),  # a tail of 4
    Grid(bits=6, signed=False, symmetric=True, granularity="group", axis=1, group_size=64),
    Grid(bits=8, granularity="channel", axis=0),
    Grid(bits=16, signed=False, symmetric=False, granularity="group", axis=1, group_size=24),
    Grid(bits=24, signed=False, symmetric=False, granularity="group", axis=1, group_size=32),  # no SSE path
    Grid(bits=5, signed=False, symmetric=False, granularity="tensor"),
]


def _reference_search(x, grid, weights, ratios):
    import quanta.core.grid as grid_mod

    xp = grid_mod.ops(x)
    b = grid_mod.to_blocks(x, grid)
    lo, hi = xp.amin(b, 1), xp.amax(b, 1)
    s, z = grid_mod._fit(lo, hi, grid)
    w = None if weights is None else grid_mod.to_blocks(xp.broadcast(weights, tuple(x.shape), x), grid)
    return grid_mod._mse_search(xp, b, lo, hi, w, grid, ratios, 2.0, s, z)


@pytest.mark.parametrize("use_torch", [False, True])
@pytest.mark.parametrize("grid", SEARCH_GRIDS,
                         ids=lambda g: f"{g.granularity}{g.bits}{'s' if g.symmetric else 'a'}")
def test_compiled_clip_search_equals_the_vectorized_one(grid, use_torch):
    """The compiled search (``clip_search.h``) keeps, block by block, the very scale and zero
    point of the vectorized search: weighted (per column — as a row, broadcast, or in full —
    and per element) and not, heavy-tailed weights, some constant blocks, custom ratios."""
    rng = np.random.default_rng(11)
    x = (rng.standard_t(3, size=(48, 384)) * 0.05).astype(np.float32)
    x[3, :96] = 0.25  # constant groups
    x[5] = 0.0
    col = (rng.gamma(0.5, size=384) + 1e-3).astype(np.float32)
    full = (rng.random((48, 384)) + 0.01).astype(np.float32)
    if use_torch:
        import torch

        x, col, full = torch.from_numpy(x), torch.from_numpy(col), torch.from_numpy(full)
    row_forms = [col, col.reshape(1, -1), col.expand_as(x) if use_torch else np.broadcast_to(col, x.shape)]
    for weights in [None, *row_forms, full]:
        for ratios in (None, np.linspace(0.95, 0.6, 8)):
            qp = choose_qparams(x, grid, method="mse", weights=weights, clip_ratios=ratios)
            every = np.linspace(1.0, 0.5, 51) if ratios is None else ratios
            s, z = _reference_search(x, grid, weights, every)
            assert np.array_equal(np.asarray(qp.scale).reshape(-1), np.asarray(s).reshape(-1))
            assert np.array_equal(np.asarray(qp.zero_point).reshape(-1), np.asarray(z).reshape(-1))
            assert type(qp.scale) is type(x)


@pytest.mark.parametrize("sym", [False, True])
def test_the_clip_search_kernels_sse2_path_is_its_plain_c_path(sym):
    """Eight weights at a time in SSE2 (levels clamped before they are rounded, four ratios'
    grids at once) against the plain C of machines without it: the same scales and zero points,
    on blocks far from zero (``lo / s`` beyond 2^23: the rounding's guard), odd lengths and 7
    ratios (a remainder of three)."""
    from quanta.core import _kernels

    rng = np.random.default_rng(8)
    for n in (32, 13, 64):
        b = (rng.standard_normal((300, n)) * 0.03).astype(np.float32)
        b[:40] += 1000.0  # spans of a few ulps of 1000: lo / s is huge
        b[40:50] = 3.0  # constant blocks
        wt = (rng.random((7, n)) + 1e-3).astype(np.float32)
        ratios = np.linspace(1.0, 0.7, 7).astype(np.float32)
        outs = []
        for portable in (False, True):
            s, z = np.empty(300, np.float32), np.empty(300, np.float32)
            _kernels.clip_search(b, wt, 5, b.min(1), b.max(1), ratios, sym, 7.0, -8.0 if sym else 0.0,
                                 7.0 if sym else 15.0, 0.0, float(np.finfo(np.float32).tiny), 2.0, s, z,
                                 portable)
            outs.append((s, z))
        assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
        assert len(np.unique(outs[0][0])) > 100


def test_clip_search_runs_compiled_for_float32_and_vectorized_for_float64(monkeypatch):
    import quanta.core.grid as grid_mod

    calls = []
    real = grid_mod._compiled_search
    monkeypatch.setattr(grid_mod, "_compiled_search", lambda *a: calls.append(real(*a)) or calls[-1])
    x = np.random.default_rng(2).standard_normal((8, 64))
    g = Grid(bits=4, granularity="group", axis=1, group_size=32)
    q64 = choose_qparams(x, g, method="mse")
    q32 = choose_qparams(x.astype(np.float32), g, method="mse")
    assert calls[0] is None and calls[1] is not None
    assert q64.scale.dtype == np.float64 and q32.scale.dtype == np.float32


def test_a_wide_grid_rounds_to_the_nearest_level_in_float32():
    """15 bits: float32 cannot hold x/s + zero (26882.5…) to a fraction of a step; the grid
    rounds in float64 above 12 bits (a case hypothesis found)."""
    x = np.array([1.879e3, 1.5991993e-01, -8.583e3], dtype=np.float32)
    qp = choose_qparams(x, Grid(bits=15, signed=False, symmetric=False, granularity="tensor", axis=0))
    assert _bound_holds(x, qp)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_dequantize_in_place_matches_the_formula_and_leaves_its_input(lib):
    """Integer codes are dequantized in place on their float copy (no matrix-sized temporary per
    step): the same values as ``(codes − z) · s``; float codes are not written to."""
    import torch

    rng = np.random.default_rng(5)
    grid = Grid(bits=4, granularity="group", axis=1, group_size=8)
    codes = rng.integers(0, 16, (6, 24)).astype(np.uint8)
    scale = rng.random((6, 3)).astype(np.float32) + 0.1
    zero = rng.integers(0, 16, (6, 3)).astype(np.float32)
    blocks = codes.reshape(-1, 8).astype(np.float32)
    want = ((blocks - zero.reshape(-1, 1)) * scale.reshape(-1, 1)).reshape(6, 24)
    for c in (codes, codes.astype(np.float32)):
        x = torch.from_numpy(c.copy()) if lib == "torch" else c.copy()
        s, z = (torch.from_numpy(scale), torch.from_numpy(zero)) if lib == "torch" else (scale, zero)
        got = dequantize(x, QParams(grid, s, z, c.shape))
        got = got.numpy() if lib == "torch" else got
        assert got.dtype == np.float32 and np.array_equal(got, want)
        assert np.array_equal(np.asarray(x), c)  # the input is untouched
