"""Lattice codebooks (quanta.core.lattice): vectors rounded together onto a fixed set of points."""

from __future__ import annotations

import numpy as np
import pytest

from quanta.core.lattice import Lattice, assign, fit, signs
from quanta.errors import ConfigError


def _small() -> Lattice:
    """4 levels, vectors of 3, every point with an even sum of level indices (half of 64)."""
    every = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return Lattice(np.array([1.0, 3.0, 5.0, 8.0]), every[every.sum(1) % 2 == 0])


def _brute(a: np.ndarray, w: np.ndarray, s: np.ndarray, lat: Lattice) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's point of least weighted error, over every point."""
    v = a.reshape(-1, lat.dim)
    wv = w.reshape(-1, lat.dim)
    sv = np.repeat(s, a.shape[1] // lat.dim)
    e = (wv[:, None] * (v[:, None] - sv[:, None, None] * lat.values[None]) ** 2).sum(-1)
    return e.argmin(1), e.min(1)


def test_points_on_the_lattice_are_found_exactly():
    lat = _small()
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(lat.points), (50, 4))
    scale = rng.uniform(0.5, 2.0, 50)
    a = (lat.values[pick].reshape(50, 12) * scale[:, None]).astype(np.float32)
    idx, err = assign(a, lat, scale)
    np.testing.assert_array_equal(idx, pick)
    assert np.all(err < 1e-9)
    idx, s, err = fit(a, lat)
    np.testing.assert_allclose(lat.values[idx].reshape(50, 12) * s[:, None], a, rtol=1e-5)
    assert np.all(err < 1e-6 * (a * a).sum(1))


def test_assign_is_the_nearest_point_when_the_levels_round_to_one_and_close_otherwise():
    lat = _small()
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 9, (400, 6)).astype(np.float32)
    w = rng.uniform(0.1, 2, (400, 6)).astype(np.float32)
    s = np.ones(400)
    idx, err = assign(a, lat, s, w)
    best, least = _brute(a, w, s, lat)
    got = (w.reshape(-1, 3) * (a.reshape(-1, 3) - lat.values[idx.reshape(-1)]) ** 2).sum(1)
    np.testing.assert_allclose(err, got.reshape(400, 2).sum(1), rtol=1e-5)
    on = lat.index(np.clip(np.searchsorted([2, 4, 6.5], a.reshape(-1, 3)), 0, 3)) >= 0
    np.testing.assert_array_equal(idx.reshape(-1)[on], best[on])  # each value's level: the nearest point
    assert got.sum() <= 1.02 * least.sum()  # else among the nearest listed points


def test_fit_searches_the_scale():
    lat = _small()
    rng = np.random.default_rng(2)
    a = np.abs(rng.standard_normal((200, 12))).astype(np.float32)
    _, _, err = fit(a, lat)
    _, at_start = assign(a, lat, a.max(1) / 8.0)  # the largest value on the top level
    assert np.all(err <= at_start + 1e-6) and err.sum() < 0.95 * at_start.sum()


def test_signs_keep_an_even_count_of_negatives_flipping_the_cheapest():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 16)).astype(np.float32)
    w = rng.uniform(0.5, 2, 16).astype(np.float32)
    s = signs(x, w, 8)
    assert np.all((s.reshape(-1, 8) < 0).sum(1) % 2 == 0)
    flipped = (s != np.sign(x)).reshape(-1, 8)
    assert np.all(flipped.sum(1) <= 1)
    cost = (np.broadcast_to(w, x.shape) * x * x).reshape(-1, 8)
    rows = flipped.any(1)
    np.testing.assert_array_equal(flipped[rows].argmax(1), cost[rows].argmin(1))
    np.testing.assert_array_equal(signs(x, None, 0), np.where(x < 0, -1, 1))


def test_a_lattice_checks_its_tables():
    with pytest.raises(ConfigError, match="positive and increasing"):
        Lattice(np.array([0.0, 1.0]), np.zeros((1, 2), int))
    with pytest.raises(ConfigError, match="index its levels"):
        Lattice(np.array([1.0, 2.0]), np.full((1, 2), 2))
    with pytest.raises(ConfigError, match="whole vectors"):
        assign(np.ones((2, 4), np.float32), _small(), np.ones(2))
