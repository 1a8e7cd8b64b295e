import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanta.core import allocate
from quanta.errors import ConfigError


def _brute(D, S, budget):
    best = None
    for c in itertools.product(*[range(len(d)) for d in D]):
        size = sum(S[i][j] for i, j in enumerate(c))
        if size <= budget:
            dist = sum(D[i][j] for i, j in enumerate(c))
            if best is None or dist < best - 1e-12:
                best = dist
    return best


@st.composite
def problems(draw):
    units = draw(st.integers(1, 5))
    D, S = [], []
    for _ in range(units):
        k = draw(st.integers(1, 4))
        D.append(draw(st.lists(st.floats(0, 100), min_size=k, max_size=k)))
        S.append(draw(st.lists(st.integers(1, 20), min_size=k, max_size=k)))
    lo = sum(min(s) for s in S)
    hi = sum(max(s) for s in S)
    return D, S, draw(st.integers(lo, hi))


@settings(max_examples=300, deadline=None)
@given(problems())
def test_exact_matches_brute_force(p):
    D, S, budget = p
    a = allocate(D, S, budget, method="exact")
    assert a.size <= budget
    assert a.distortion == pytest.approx(_brute(D, S, budget), abs=1e-9)
    assert a.distortion == pytest.approx(sum(D[i][j] for i, j in enumerate(a.choice)))


@settings(max_examples=300, deadline=None)
@given(problems())
def test_lagrangian_meets_budget_and_is_never_better_than_optimal(p):
    D, S, budget = p
    a = allocate(D, S, budget)
    assert a.size <= budget
    assert a.distortion >= _brute(D, S, budget) - 1e-9


def _bit_curves(units, seed):
    """Quantization-like curves: distortion ∝ σ²·2^(−2b), size = b bits × elements."""
    rng = np.random.default_rng(seed)
    bits = np.arange(2, 9)
    sig = rng.uniform(0.1, 10, units)
    n = rng.integers(1, 4, units) * 100
    D = [s * 2.0 ** (-2 * bits) * k for s, k in zip(sig, n)]
    S = [bits * k for k in n]
    return D, S


def _lambda_solution(D, S, lam):
    c = [int(np.argmin(d + lam * s)) for d, s in zip(D, S)]
    return c, sum(S[i][j] for i, j in enumerate(c)), sum(D[i][j] for i, j in enumerate(c))


@pytest.mark.parametrize("seed", range(5))
def test_lagrangian_is_optimal_at_hull_budgets_and_monotone_between(seed):
    D, S = _bit_curves(5, seed)
    hull = {}
    for lam in np.geomspace(1e-9, 10, 60):
        _, size, dist = _lambda_solution(D, S, lam)
        hull[int(size)] = dist
    assert len(hull) >= 5
    for budget, dist in hull.items():
        a = allocate(D, S, budget)
        assert a.distortion == pytest.approx(_brute(D, S, budget), rel=1e-12)
        assert a.distortion <= dist * (1 + 1e-12)
    lo, hi = sum(s.min() for s in S), sum(s.max() for s in S)
    for budget in np.linspace(lo, hi, 13).astype(int):
        a = allocate(D, S, budget)
        below = max(b for b in hull if b <= budget)
        assert _brute(D, S, budget) - 1e-12 <= a.distortion <= hull[below] * (1 + 1e-12)


def test_lagrangian_scales_to_many_units():
    D, S = _bit_curves(2000, 7)
    budget = sum(s.min() for s in S) * 2
    a = allocate(D, S, budget)
    assert a.size <= budget and a.size > 0.99 * budget


def test_budget_too_small_and_bad_input():
    with pytest.raises(ConfigError, match="below"):
        allocate([[1, 0]], [[2, 3]], 1)
    with pytest.raises(ConfigError):
        allocate([[1, 0]], [[2]], 5)
    with pytest.raises(ConfigError):
        allocate([[1]], [[1]], 5, method="greedy")
