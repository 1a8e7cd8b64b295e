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


@pytest.mark.parametrize("n,tile", [(7, 3), (64, 16), (100, 512)])
def test_symmetric_permutation_in_place(n, tile):
    from quanta.core.hessian import permute_symmetric

    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, n))
    a = a + a.T
    perm = rng.permutation(n)
    want = a[perm][:, perm]
    permute_symmetric(a, perm, tile=tile)
    np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("h_div", [1.0, 2048.0])
def test_overwriting_the_hessian_gives_the_same_codes(h_div):
    """GPTQ in the caller's own Hessian buffer (permuted and factored in place) rounds exactly
    as it does on a copy."""
    rng = np.random.default_rng(3)
    n, k = 2048, 96
    x = rng.normal(size=(n, 8)) @ rng.normal(size=(8, k)) + 0.1 * rng.normal(size=(n, k))
    w = rng.normal(size=(32, k))
    h = x.T @ x * (h_div / n)
    h[5, :] = h[:, 5] = 0.0  # a dead input
    grid, qp = _grid(w, bits=3, g=32)
    kw = dict(qmin=grid.qmin, qmax=grid.qmax, group_size=32, h_div=h_div)
    ref = gptq_quantize(w, h, qp.scale, qp.zero_point, **kw)
    mine = h.copy()
    got = gptq_quantize(w, mine, qp.scale, qp.zero_point, overwrite_h=True, **kw)
    np.testing.assert_array_equal(got, ref)
    assert not np.array_equal(mine, h)  # it was the working buffer


def test_a_failed_factorization_is_retried_from_the_kept_triangle():
    """A Hessian that is not positive definite at the first damping is restored from its upper
    triangle and damped more: the factor is that of the more damped matrix."""
    from scipy.linalg import cholesky

    from quanta.core.hessian import _inverse_factor

    rng = np.random.default_rng(4)
    v = rng.normal(size=(40, 40))
    a = v @ v.T - 30.0 * np.eye(40)  # indefinite: needs λ well above 0.01 · mean(diag)
    u = _inverse_factor(np.asfortranarray(a.copy()), 0.01)
    lam = 0.01 * np.mean(np.diag(a))
    for _ in range(6):
        try:
            want = cholesky(np.linalg.inv(a + lam * np.eye(40)), lower=True).T
            break
        except np.linalg.LinAlgError:
            lam *= 10
    np.testing.assert_allclose(u, want, rtol=1e-8, atol=1e-10)
    assert np.array_equal(np.tril(u, -1), np.zeros((40, 40)))


@pytest.mark.parametrize("h_div", [1.0, 2048.0])
def test_the_overwritten_hessian_is_given_back_when_asked(h_div):
    """``restore_h``: the caller's buffer holds ``XᵀX / h_div`` again after GPTQ (a dead input's
    zero row and column too), in the inputs' order, and the codes are the same."""
    rng = np.random.default_rng(5)
    n, k = 2048, 600  # wider than one 512-wide tile of the restoring pass
    x = rng.normal(size=(n, 8)) @ rng.normal(size=(8, k)) + 0.1 * rng.normal(size=(n, k))
    w = rng.normal(size=(24, k))
    h = x.T @ x * (h_div / n)
    h[7, :] = h[:, 7] = 0.0
    grid, qp = _grid(w, bits=4, g=24)
    kw = dict(qmin=grid.qmin, qmax=grid.qmax, group_size=24, h_div=h_div)
    ref = gptq_quantize(w, h, qp.scale, qp.zero_point, **kw)
    mine = h.copy()
    got = gptq_quantize(w, mine, qp.scale, qp.zero_point, overwrite_h=True, restore_h=True, **kw)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(mine, h / h_div if h_div != 1.0 else h)


def _output_error(w, what, h, lam):
    e = w - what
    return float(np.einsum("ri,ij,rj->", e, h + lam * np.eye(len(h)), e))


@pytest.mark.parametrize("offsets", [False, True])
def test_refitted_scales_solve_each_rows_least_squares(offsets):
    """The refit is the exact minimiser of the damped output error for the codes held — checked
    against a least-squares solve of one row built from its design matrix — and never worse than
    the scales it started from."""
    from quanta.core.hessian import refit_scales

    rng = np.random.default_rng(6)
    n, k, g = 4096, 96, 32
    x = rng.normal(size=(n, 8)) @ rng.normal(size=(8, k)) + 0.3 * rng.normal(size=(n, k))
    h = x.T @ x / n
    w = rng.normal(size=(12, k))
    grid, qp = _grid(w, bits=3, g=g)
    codes = gptq_quantize(w, h, qp.scale, qp.zero_point, qmin=grid.qmin, qmax=grid.qmax, group_size=g)
    z = np.repeat(qp.zero_point, g, axis=1)
    values = codes.astype(float) if offsets else codes - z
    s0, m0 = qp.scale, -qp.scale * qp.zero_point
    s, m = refit_scales(w, h, values, g, s0, m0 if offsets else None, ridge=0.0)
    lam = 0.01 * np.mean(np.diag(h))
    expand = lambda a: np.repeat(a, g, axis=1)  # noqa: E731
    before = expand(s0) * values + (expand(m0) if offsets else 0.0)
    after = expand(s) * values + (expand(m) if offsets else 0.0)
    assert _output_error(w, after, h, lam) < 0.97 * _output_error(w, before, h, lam)
    # row 3 by hand: ŵ = A θ, minimise (w − Aθ)ᵀ(H + λI)(w − Aθ) through its Cholesky factor
    r = 3
    cols = [np.where(np.arange(k) // g == b, values[r], 0.0) for b in range(k // g)]
    if offsets:
        cols += [(np.arange(k) // g == b).astype(float) for b in range(k // g)]
    a = np.stack(cols, 1)
    c = np.linalg.cholesky(h + lam * np.eye(k)).T
    theta = np.linalg.lstsq(c @ a, c @ w[r], rcond=None)[0]
    got = np.concatenate([s[r], m[r]]) if offsets else s[r]
    np.testing.assert_allclose(got, theta, rtol=1e-7, atol=1e-10)
    assert m is None or m.shape == s.shape


def test_a_group_of_zero_values_keeps_its_scale_and_shapes_are_checked():
    from quanta.core.hessian import refit_scales

    rng = np.random.default_rng(7)
    w = rng.normal(size=(4, 64))
    values = rng.integers(-4, 4, size=(4, 64)).astype(float)
    values[2, 32:] = 0.0
    s0 = np.full((4, 2), 0.25)
    s, _ = refit_scales(w, np.eye(64), values, 32, s0)
    assert s[2, 1] == pytest.approx(0.25)
    assert np.all(np.isfinite(s))
    with pytest.raises(ConfigError, match="shapes"):
        refit_scales(w, np.eye(64), values, 32, np.full((4, 3), 0.25))


def _lattice():
    """Vectors of 4 on levels 1, 3, 5, 8: the half with an even sum of level indices."""
    from quanta.core.lattice import Lattice

    every = np.stack(np.meshgrid(*[np.arange(4)] * 4, indexing="ij"), -1).reshape(-1, 4)
    return Lattice(np.array([1.0, 3.0, 5.0, 8.0]), every[every.sum(1) % 2 == 0])


def test_gptq_on_a_lattice_with_an_identity_hessian_is_the_nearest_points():
    from quanta.core.hessian import gptq_lattice
    from quanta.core.lattice import assign, signs

    rng = np.random.default_rng(0)
    lat = _lattice()
    w = rng.standard_normal((16, 64)).astype(np.float32)
    scale = np.full((16, 2), 0.25)
    values = gptq_lattice(w, np.eye(64), scale, lat, 32, damp=0.0)
    idx, _ = assign((w * signs(w, None, 0)).reshape(-1, 32), lat, np.full(32, 0.25))
    np.testing.assert_array_equal(np.abs(values), lat.values[idx.reshape(-1)].reshape(16, 64))
    np.testing.assert_array_equal(np.sign(values), np.where(w < 0, -1, 1))


def test_gptq_on_a_lattice_lowers_the_output_error_and_checks_shapes():
    from quanta.core.hessian import gptq_lattice
    from quanta.core.lattice import assign, signs

    rng = np.random.default_rng(1)
    lat = _lattice()
    x = rng.standard_normal((2048, 8)) @ rng.standard_normal((8, 64)) + 0.2 * rng.standard_normal((2048, 64))
    h = x.T @ x / len(x)
    w = rng.standard_normal((32, 64)).astype(np.float32)
    scale = np.full((32, 2), 0.3)
    values = gptq_lattice(w, h * len(x), scale, lat, 32, h_div=float(len(x)))
    idx, _ = assign((w * signs(w, None, 0)).reshape(-1, 32), lat, np.full(64, 0.3))
    nearest = signs(w, None, 0) * lat.values[idx.reshape(-1)].reshape(32, 64)

    def err(v):
        e = w - 0.3 * v
        return float(np.einsum("ij,jk,ik->", e, h, e))

    assert err(values) < 0.7 * err(nearest)
    mine = h.copy()
    np.testing.assert_array_equal(gptq_lattice(w, mine, scale, lat, 32, overwrite_h=True), values)
    with pytest.raises(ConfigError, match="shapes do not agree"):
        gptq_lattice(w, h, np.ones((32, 3)), lat, 32)
