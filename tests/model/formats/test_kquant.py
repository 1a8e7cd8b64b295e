"""llama.cpp's super-block types (Q2_K … Q6_K, IQ4_XS): the bytes quanta writes, dequantized by
the ``gguf`` package, are quanta's own weights, for every rounding method; the grid helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from quanta.errors import ConfigError
from quanta.model.formats.gguf_export import pack_blocks
from quanta.model.formats.kquant import factors, grid_factors, on_grid
from quanta.model.formats.weight import BLOCK_TYPES, gguf_formats
from quanta.model.quantize.quantizers import LayerStats, make_quantizer

SUPER_TYPES = [t for t, b in BLOCK_TYPES.items() if b.factors]


def _weights(rows: int = 6, cols: int = 512) -> tuple[torch.Tensor, LayerStats]:
    g = torch.Generator().manual_seed(3)
    w = torch.randn(rows, cols, generator=g) * torch.logspace(-3, 0, cols)[torch.randperm(cols, generator=g)]
    w[1] = 0.0  # an all-zero row, a row of tiny values, a row of positive values only
    w[2] *= 1e-6
    w[3] = w[3].abs() + 0.5
    stats = LayerStats(cols, with_hessian=True)
    stats.add(torch.randn(200, cols, generator=g))
    return w, stats


def test_every_super_block_type_is_written():
    assert set(SUPER_TYPES) == {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"}
    assert {t.label for t in gguf_formats(True, 512)} >= set(SUPER_TYPES)
    assert not {t.label for t in gguf_formats(True, 576)} & set(SUPER_TYPES)  # 576 is no multiple of 256
    assert "IQ4_XS" not in {t.label for t in gguf_formats(False, 512)}  # a codebook: methods that take levels


@pytest.mark.parametrize("kind", SUPER_TYPES)
@pytest.mark.parametrize("method", ["rtn", "mse", "imatrix", "gptq"])
def test_super_blocks_dequantize_to_quantas_weights(kind, method):
    t = BLOCK_TYPES[kind]
    w, stats = _weights()
    q = make_quantizer(method, bits=t.bits, group_size=t.group, sym=t.sym, storage=kind)
    qw = q.quantize(w, stats=stats)
    assert qw.group_size == t.group and int(qw.codes.max()) < 2**t.bits
    zeros = None if qw.zeros is None else qw.zeros.numpy()
    data = pack_blocks(qw.codes.numpy(), qw.scales.numpy(), zeros, kind)
    assert data.shape == (6, 2 * t.type_size)
    back = np.asarray(dequantize(data, GGMLQuantizationType[kind]), np.float32).reshape(6, 512)
    ours = qw.dequantize().numpy()
    # the scales are exact; an offset d·f·q − dmin·g and quanta's s·(q − z) differ by float32 rounding
    top = np.abs(ours).max(1, keepdims=True)
    assert np.all(np.abs(back - ours) <= 1e-6 * top + 1e-30), kind
    err = float(((back - w.numpy()) ** 2).sum() / (w.numpy() ** 2).sum())
    assert err < {2: 0.25, 3: 0.1, 4: 0.03, 5: 0.01, 6: 0.003}[t.bits]


@pytest.mark.parametrize("kind", SUPER_TYPES)
def test_more_bits_less_error(kind):
    """Each type's round-to-nearest error sits where its bits put it: below the type with one bit
    less (the same grid family), so that no layout bug hides behind a passing round trip."""
    w = torch.randn(8, 1024, generator=torch.Generator().manual_seed(1))
    errs = {}
    for k in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"):
        t = BLOCK_TYPES[k]
        q = make_quantizer("mse", bits=t.bits, group_size=t.group, sym=t.sym, storage=k).quantize(w)
        errs[k] = float(((q.dequantize() - w) ** 2).mean())
    order = list(errs.values())
    assert order == sorted(order, reverse=True)
    assert errs["Q4_K"] < 0.012 and errs["Q6_K"] < 0.0008  # 4 bits: ~ (range/15)²/12 of a Gaussian


def test_grid_factors_reach_the_negative_end_and_round_trip():
    rng = np.random.default_rng(0)
    s = np.abs(rng.normal(size=(50, 16))).astype(np.float32) + 1e-3
    d, f = grid_factors(s, -32, 31)
    assert (d < 0).all() and f.min() >= -32 and (f == -32).any(axis=-1).all()  # the finer side: −32
    v = d[:, None] * f
    d2, f2 = factors(v, -32, 31)
    np.testing.assert_array_equal(d2[:, None] * f2, v)
    mixed = rng.normal(size=(50, 8)).astype(np.float32)  # IQ4_XS: signed codebook scales
    d, f = grid_factors(mixed, -32, 31)
    assert (f != 0).all()
    v = d[:, None] * f
    d2, f2 = factors(v, -32, 31)
    np.testing.assert_array_equal(d2[:, None] * f2, v)


def test_subnormal_steps_are_found_again():
    """A super-block of tiny scales has a float16-subnormal ``d`` whose largest factor falls
    below the top: the exporter's search still finds ``d`` and every factor."""
    s = np.full((3, 8), 3e-7, np.float32) * np.arange(1, 9, dtype=np.float32)
    d, f = grid_factors(s, 1, 63)
    v = d[:, None] * f
    d2, f2 = factors(v, 1, 63)
    np.testing.assert_array_equal(d2[:, None] * f2, v)


def test_offsets_are_never_negative_and_zero_points_follow():
    scale = np.full((2, 8), 0.01, np.float32)
    zero = np.array([[3.0, -2.0, 0.0, 7.5, 1.0, 2.0, 15.0, 4.0]] * 2, np.float32)
    s, z = on_grid(scale, zero, 8, (1, 63), 63, qmax=15)
    assert (z >= 0).all() and z[0, 1] == 0.0  # a group of positive weights: no offset …
    np.testing.assert_allclose(s[0, 1] * 15, 0.01 * 17, rtol=0.02)  # … and its top kept
    # offsets on dmin's grid (the largest, 0.15, ÷ 63): within half a step
    np.testing.assert_allclose(np.delete(s * z, 1, 1), 0.01 * np.delete(zero, 1, 1), rtol=0,
                               atol=0.15 / 63 / 2)


def test_values_on_no_grid_are_refused():
    with pytest.raises(ConfigError, match="not on its grid"):
        factors(np.array([[1.0, 0.3333, 0.77]], np.float32), 1, 15)


@pytest.mark.parametrize("kind", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
@pytest.mark.parametrize("weighted", [False, True])
def test_the_compiled_factor_search_is_the_oracles(kind, weighted):
    """The compiled search (one pass per group) finds each group's factors as the numpy oracle
    does over whole arrays: the same grid, or — where float rounding breaks a tie differently —
    one whose error is the same to 1e-5."""
    from quanta.core.grid import choose_qparams
    from quanta.model.formats.kquant import refine
    from quanta.model.formats.weight import weight_grid
    from tests.model.formats.kquant_reference import refine_reference

    t = BLOCK_TYPES[kind]
    g = torch.Generator().manual_seed(5)
    w = torch.randn(16, 512, generator=g) * torch.linspace(0.1, 2, 512)
    imp = torch.rand(1, 512, generator=g) + 0.1 if weighted else None
    qp = choose_qparams(w, weight_grid(t.bits, t.group, t.sym), method="mse")
    s, z = on_grid(qp.scale.numpy(), qp.zero_point.numpy(),
                   t.block // t.group, t.factors, t.min_top, 2**t.bits - 1)
    wts = None if imp is None else imp.expand_as(w).numpy()
    args = (w.numpy(), wts, s, z, t.block // t.group, t.factors, t.min_top, 2**t.bits - 1)
    (s1, z1), (s2, z2) = refine(*args), refine_reference(*args)

    def err(sc, zp):
        sc, zp = sc.repeat(t.group, 1), np.asarray(zp, np.float32).repeat(t.group, 1)
        q = np.clip(np.rint(w.numpy() / sc + zp), 0, 2**t.bits - 1)
        e = (sc * (q - zp) - w.numpy()) ** 2
        return float((e if wts is None else e * wts).sum())

    same = np.mean(s1 == s2)
    e1, e2 = err(s1, z1), err(s2, z2)
    assert same > 0.99 and abs(e1 - e2) <= 1e-5 * e2, (same, e1, e2)


@pytest.mark.parametrize("weighted", [False, True])
def test_the_refinement_in_slices_on_threads_is_the_whole_ones(monkeypatch, weighted):
    import quanta.model.formats.kquant as kq
    from quanta.core.grid import choose_qparams
    from quanta.model.formats.weight import weight_grid

    t = BLOCK_TYPES["Q4_K"]
    g = torch.Generator().manual_seed(6)
    w = torch.randn(24, 1024, generator=g) * torch.linspace(0.1, 2, 1024)
    wts = (torch.rand(1, 1024, generator=g) + 0.1).expand_as(w).numpy() if weighted else None
    qp = choose_qparams(w, weight_grid(t.bits, t.group, t.sym), method="mse")
    s, z = on_grid(qp.scale.numpy(), qp.zero_point.numpy(), t.block // t.group, t.factors, t.min_top, 15)
    args = (w.numpy(), wts, s, z, t.block // t.group, t.factors, t.min_top, 15)
    monkeypatch.setenv("QUANTA_THREADS", "2")
    whole = kq.refine(*args)
    monkeypatch.setattr(kq, "REFINE_GROUPS", 100)  # 768 groups in 8 slices, on two threads
    sliced = kq.refine(*args)
    assert np.array_equal(whole[0], sliced[0]) and np.array_equal(whole[1], sliced[1])
    assert not np.array_equal(whole[0], s)  # the refinement moved some factors
