"""Weight quantizers: error bounds, validation, and a differential loop over every registered
quantizer (as gguf-py's test loops over every type): ``QuantLinear(x)`` equals
``x @ dequantize(w).T`` and the one dequantizer equals the core's own reference."""

import numpy as np
import pytest
import torch

from quanta.core.codebook import dequantize_scaled
from quanta.core.grid import QParams, dequantize
from quanta.errors import ConfigError, InputError
from quanta.model.formats.weight import grid_format
from quanta.model.quantize.quantizers import (
    QUANTIZERS,
    WeightQuantizer,
    make_quantizer,
    quantize_weight,
    weight_grid,
)
from quanta.model.runtime.qlinear import QuantLinear


def reference_dequantize(qw):
    """Dequantize through the core's public functions directly (independent of the model code)."""
    grid = weight_grid(qw.bits, qw.group_size, False)
    if qw.codebook is not None:
        return dequantize_scaled(qw.codes, qw.scales, qw.codebook, grid)[:, : qw.in_features]
    qp = QParams(grid, qw.scales, qw.zeros, tuple(qw.codes.shape))
    return dequantize(qw.codes.to(torch.int32), qp)[:, : qw.in_features]


@pytest.mark.parametrize("method", ["rtn", "mse", "hqq", "nf4"])
@pytest.mark.parametrize("sym", [False, True])
def test_quantizers_bound_the_error(method, sym):
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(0)) * 0.02
    qw = quantize_weight(w, bits=4, group_size=64, method=method, sym=sym)
    assert qw.codes.dtype == torch.uint8 and int(qw.codes.max()) <= 15
    deq = qw.dequantize()
    torch.testing.assert_close(deq, reference_dequantize(qw), rtol=0, atol=1e-6)
    rel = float(((deq - w) ** 2).mean() / (w**2).mean())
    assert rel < 0.02  # 4-bit groups of 64 on Gaussian weights: ≈ 1% relative error power


def test_mse_and_hqq_beat_rtn_on_heavy_tails():
    w = torch.from_numpy(np.random.default_rng(1).standard_t(3, (128, 256)).astype(np.float32)) * 0.02
    err = {m: float(((quantize_weight(w, bits=4, group_size=128, method=m).dequantize() - w) ** 2)
                    .mean()) for m in ("rtn", "mse", "hqq")}
    assert err["mse"] < err["rtn"] and err["hqq"] < err["rtn"]


def test_bad_requests_name_the_layer():
    w = torch.zeros(8, 100)
    with pytest.raises(ConfigError, match=r"layer blk\.3: group size 128 does not fit in_features 100"):
        quantize_weight(w, group_size=128, name="blk.3")
    with pytest.raises(ConfigError, match="bits"):
        quantize_weight(w, bits=9, group_size=0)
    with pytest.raises(ConfigError, match="nf4"):
        quantize_weight(w, bits=3, group_size=0, method="nf4")


def _bits_for(cls):
    return 4 if cls.min_bits <= 4 <= cls.max_bits else cls.min_bits


@pytest.mark.parametrize("method", list(QUANTIZERS))
@pytest.mark.parametrize("shape,group", [((64, 256), 64), ((48, 100), 32)])
def test_every_registered_quantizer_matches_its_dequantized_weight(method, shape, group):
    cls = QUANTIZERS[method]
    q = make_quantizer(method, bits=_bits_for(cls), group_size=group)
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(*shape, generator=gen) * 0.05
    stats = None
    if cls.needs_calibration:
        from quanta.model.quantize.quantizers import LayerStats

        stats = LayerStats(shape[1], with_hessian=cls.needs_hessian)
        stats.add(torch.randn(64, shape[1], generator=gen))
    qw = q.quantize(w, stats=stats)
    deq = qw.dequantize()
    assert deq.shape == w.shape
    torch.testing.assert_close(deq, reference_dequantize(qw), rtol=0, atol=1e-6)
    assert float(((deq - w) ** 2).mean() / (w**2).mean()) < 0.05
    ql = QuantLinear.from_quantized(qw)
    x = torch.randn(7, shape[1], generator=gen)
    ref = x @ deq.t()
    tol = 0.02 if ql.path != "packed" else 2e-3
    assert float((ql(x) - ref).norm() / ref.norm()) < tol


def test_zero_point_default_for_given_signed_asymmetric_grid():
    """Regression (review §4.1): one default zero-point rule; signed grids default to 0."""
    from quanta.core.grid import Grid, choose_qparams, quantize

    g = Grid(bits=8, signed=True, symmetric=False)
    qp = choose_qparams(np.zeros(3), g, method="given", scale=1.0)
    assert float(qp.zero_point) == 0.0
    np.testing.assert_array_equal(quantize(np.array([0.0, 1.0, -1.0]), qp), [0, 1, -1])
    assert float(QParams.given(g, scale=1.0).zero_point) == 0.0
    assert float(QParams.given(Grid(bits=8, signed=False), scale=1.0).zero_point) == 128.0


def test_non_finite_weights_are_refused_naming_the_layer():
    w = torch.zeros(8, 64)
    w[3, 5] = float("nan")
    with pytest.raises(InputError, match=r"layer blk\.0\.attn.*NaN"):
        quantize_weight(w, group_size=32, name="blk.0.attn")


class _Toy(WeightQuantizer):
    """A calibrated toy: scales its grid by the activation magnitude (unregistered here)."""

    needs_calibration = True

    def quantize_padded(self, w, group_size, in_features, stats):
        from quanta.core.grid import choose_qparams

        assert stats is not None and stats.n > 0
        qp = choose_qparams(w, weight_grid(self.bits, group_size, False))
        return self._on_grid(w, qp, in_features)


def test_calibrated_quantizer_without_data_is_refused():
    with pytest.raises(ConfigError, match="calibration"):
        _Toy(grid_format(4, 32)).quantize(torch.zeros(4, 32))


@pytest.mark.parametrize("method", ["rtn", "gptq"])
def test_a_tall_matrix_is_quantized_in_slices_of_rows_with_the_same_result(method, monkeypatch):
    """Rows are independent: quantizing a tall matrix (a token embedding) in slices of rows,
    which bounds the peak memory, gives the codes and scales of one pass over all rows."""
    import quanta.model.quantize.quantizers as qz
    from quanta.model.quantize.quantizers import LayerStats, make_quantizer

    g = torch.Generator().manual_seed(5)
    w = torch.randn(100, 64, generator=g)
    stats = LayerStats(64, with_hessian=True)
    stats.add(torch.randn(300, 64, generator=g))
    whole = make_quantizer(method, bits=4, group_size=32).quantize(w, stats=stats)
    monkeypatch.setattr(qz, "ROW_CHUNK", 32)
    sliced = make_quantizer(method, bits=4, group_size=32).quantize(w, stats=stats)
    assert torch.equal(sliced.codes, whole.codes) and torch.equal(sliced.scales, whole.scales)
    assert torch.equal(sliced.zeros, whole.zeros) and sliced.codes.shape == (100, 64)


def test_a_method_is_built_on_a_format_and_rounds_onto_it():
    """What is stored (a format) apart from how it is rounded (a method): every registered method
    takes the format whole; make_quantizer only names one from numbers first."""
    from quanta.model.formats.weight import ggml_format
    from quanta.model.quantize.quantizers import QUANTIZERS, quantizer_for

    w = torch.randn(16, 96, generator=torch.Generator().manual_seed(3))
    fmt = grid_format(3, None, sym=True)  # per layer: 96 inputs → groups of 32
    assert fmt.group_for(96) == 32 and fmt.nbytes(16, 96) == grid_format(3, 32, True).nbytes(16, 96)
    for name in ("rtn", "mse", "hqq"):
        q = quantizer_for(name, fmt)
        assert isinstance(q, QUANTIZERS[name]) and q.format is fmt and (q.bits, q.sym) == (3, True)
        qw = q.quantize(w)
        assert qw.group_size == 32 and int(qw.codes.max()) <= 7
    q41 = quantizer_for("rtn", ggml_format("Q4_1"))
    assert q41.storage == "Q4_1" and q41.group_for(96) == 32
    named = make_quantizer("rtn", bits=4, group_size=64)
    assert repr(named) == repr(quantizer_for("rtn", grid_format(4, 64))) and named.format.label == "4-bit g64"


def test_the_last_user_of_shared_sums_takes_the_hessian():
    """Layers fed one input share their sums; the last to be quantized takes the float64 sums
    themselves (GPTQ then overwrites them), earlier ones — and uncounted statistics — never."""
    from quanta.model.quantize.quantizers import LayerStats

    st = LayerStats(8, with_hessian=True)
    st.add(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)))
    assert st.take_hessian() is None and st.xtx is not None  # nobody counted the users
    st.users = 3
    assert st.take_hessian() is None and st.take_hessian() is None
    h = st.take_hessian()
    assert h is not None and h.dtype == torch.float64 and st.xtx is None and st.users == 0


def test_block_stats_count_the_layers_sharing_an_input(tiny_hf):
    from quanta.model.quantize.calibrate import block_inputs, block_stats, find_blocks
    from quanta.model.sources.load import load_model

    model = load_model(tiny_hf).model
    _, blocks = find_blocks(model)
    inputs, kw = block_inputs(model, blocks[0], torch.tensor([[1, 2, 3, 4]]))
    layers = [(n, m) for n, m in blocks[0].named_modules() if isinstance(m, torch.nn.Linear)]
    stats = block_stats(blocks[0], layers, inputs, kw, hessian=True)
    assert stats["self_attn.q_proj"] is stats["self_attn.v_proj"] and stats["self_attn.q_proj"].users == 3
    assert stats["mlp.gate_proj"].users == 2 and stats["mlp.down_proj"].users == 1


def test_hessian_sums_in_row_slices_are_the_whole_products(monkeypatch):
    """The product XᵀX is made a slice of rows at a time (no n × n temporaries): the very sums
    one whole float32 product gives."""
    import quanta.model.quantize.quantizers as qz

    monkeypatch.setattr(qz, "XTX_ROWS", 16)
    x = torch.randn(300, 40, generator=torch.Generator().manual_seed(1))
    st = qz.LayerStats(40, with_hessian=True)
    st.add(x)
    st.flush()
    assert torch.equal(st.xtx, (x.t() @ x).to(torch.float64))


def test_a_layer_quantized_in_row_chunks_takes_the_hessian_on_its_last_chunk(monkeypatch):
    """A matrix taller than ROW_CHUNK is one use per chunk of its statistics: GPTQ reads the
    sums for every chunk and takes them only on the last (Llama-3.1-8B's 14,336-row layers)."""
    import quanta.model.quantize.quantizers as qz

    g = torch.Generator().manual_seed(2)
    w, x = torch.randn(40, 64, generator=g), torch.randn(200, 64, generator=g)

    def stats(users: int) -> qz.LayerStats:
        st = qz.LayerStats(64, with_hessian=True, users=users)
        st.add(x)
        return st

    q = qz.make_quantizer("gptq", bits=4, group_size=32)
    whole = q.quantize(w, stats=stats(0))
    monkeypatch.setattr(qz, "ROW_CHUNK", 16)
    st = stats(1)
    chunked = q.quantize(w, stats=st)
    assert torch.equal(whole.codes, chunked.codes) and st.xtx is None and st.users == 0


def _gptq_error(fmt, w, x, owned=False):
    """GPTQ's output error on ``w`` with inputs ``x``; ``owned``: GPTQ takes the sums as its
    working buffer (and gives the Hessian back for the refit)."""
    from quanta.model.quantize.quantizers import LayerStats, quantizer_for

    st = LayerStats(w.shape[1], with_hessian=True, users=int(owned))
    st.add(x)
    h = (x.T @ x / x.shape[0]).double()
    e = (w - quantizer_for("gptq", fmt).quantize(w, stats=st).dequantize()).double()
    assert (st.xtx is None) == owned
    return float(((e @ h) * e).sum())


@pytest.mark.parametrize("label", ["Q5_1", "Q5_0", "Q8_0", "IQ4_NL", "4-bit g32", "4-bit g32 sym",
                                   "4-bit g32 nl"])
def test_gptq_refits_the_grid_to_its_codes(label, monkeypatch):
    """GPTQ's last step — each group's scale (and a Q4_1/Q5_1 offset) refitted to the codes —
    lowers the layer's output error against the same codes on the grid chosen before them; on a
    super-block type (whose scales are factors of one ``d``) nothing is refitted."""
    import quanta.core.hessian as hessian
    from quanta.model.formats.weight import NL4, ggml_format

    torch.manual_seed(0)
    x = torch.randn(4096, 12) @ torch.randn(12, 256) + 0.3 * torch.randn(4096, 256)
    w = torch.randn(48, 256)
    fmt = NL4 if label.endswith("nl") else grid_format(4, 32, sym=label.endswith("sym")) \
        if label.startswith("4-bit") else ggml_format(label)
    refitted = _gptq_error(fmt, w, x)
    assert _gptq_error(fmt, w, x, owned=True) == pytest.approx(refitted, rel=1e-9)
    monkeypatch.setattr(hessian, "refit_scales", lambda w, h, v, g, s, m=None, **kw: (s, m))
    held = _gptq_error(fmt, w, x)
    assert refitted < 0.98 * held
    k = ggml_format("Q4_K")
    with_refit = _gptq_error(k, w, x)
    monkeypatch.undo()
    assert _gptq_error(k, w, x) == with_refit


@pytest.mark.parametrize("kind", ["IQ2_XS", "IQ3_XXS", "IQ3_S"])
def test_gptq_on_a_lattice_type_lowers_the_output_error_of_importance_rounding(kind):
    """On a lattice type GPTQ rounds each run of columns onto the grid's points and feeds its
    error on (importance rounding alone: "imatrix", on the same scales' search); its codes are
    the file's (the ``gguf`` package reads them back) and it takes the Hessian's sums when it is
    their last user."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    from quanta.model.formats.gguf_export import pack_blocks
    from quanta.model.formats.weight import ggml_format
    from quanta.model.quantize.quantizers import LayerStats, quantizer_for

    torch.manual_seed(0)
    x = torch.randn(4096, 12) @ torch.randn(12, 256) + 0.3 * torch.randn(4096, 256)
    w = torch.randn(48, 256)
    gptq = _gptq_error(ggml_format(kind), w, x)
    assert _gptq_error(ggml_format(kind), w, x, owned=True) == pytest.approx(gptq, rel=1e-9)
    st = LayerStats(256)
    st.add(x)
    q = quantizer_for("imatrix", ggml_format(kind)).quantize(w, stats=st)
    h = (x.T @ x / x.shape[0]).double()
    e = (w - q.dequantize()).double()
    assert gptq < 0.8 * float(((e @ h) * e).sum())
    back = dequantize(pack_blocks(q.codes.numpy(), q.scales.numpy(), None, kind), GGMLQuantizationType[kind])
    np.testing.assert_array_equal(back.reshape(w.shape), q.dequantize().numpy())


def test_a_lattice_type_takes_only_the_methods_that_round_onto_levels():
    from quanta.model.formats.weight import ggml_format
    from quanta.model.quantize.quantizers import quantizer_for

    with pytest.raises(ConfigError, match="a lattice type"):
        quantizer_for("hqq", ggml_format("IQ3_S"))
    with pytest.raises(ConfigError, match="multiple of 256"):
        quantizer_for("rtn", ggml_format("IQ3_S")).quantize(torch.randn(4, 576))
