"""Mixed precision: the sensitivity pass, the per-tensor choice under a budget, and the files it
writes (GGUF with several block types, quanta folders with several grids)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from quanta.errors import ConfigError
from quanta.media import get
from quanta.model.formats import weight as formats
from quanta.model.formats.gguf_read import load_gguf
from quanta.model.options import Options
from quanta.model.quantize import mixed
from quanta.model.quantize.apply import find_targets
from quanta.model.quantize.calibrate import calibration_windows


@pytest.fixture(scope="module")
def measured(tiny):
    from quanta.model.sources.load import load_model

    _, path = tiny
    g = load_model(path)
    wins = calibration_windows(g.tokenizer, samples=8, length=32, bos_id=g.bos_id, seed=0)
    names = [n for n, _ in find_targets(g.model, ("*",), ("lm_head",))]
    return g.model, wins, names, mixed.measure(g.model, wins, names)


def test_sensitivity_is_a_quadratic_form(measured):
    model, _, names, sens = measured
    w = dict(model.named_modules())[names[0]].weight.data
    err = torch.randn(w.shape, generator=torch.Generator().manual_seed(1)) * 1e-3
    assert sens.layer_loss(names[0], torch.zeros_like(w)) == 0.0
    one, two = sens.layer_loss(names[0], err), sens.layer_loss(names[0], 2 * err)
    assert one > 0 and two == pytest.approx(4 * one, rel=1e-5)
    assert sens.tokens == 8 * 32
    assert set(sens.inputs) == set(names) | {"lm_head"}  # the tied head is measured too
    # Q, K and V read one input: one set of statistics, shared
    assert sens.inputs["model.layers.0.self_attn.q_proj"] is sens.inputs["model.layers.0.self_attn.v_proj"]
    assert sens.inputs["model.layers.0.mlp.gate_proj"] is not sens.inputs["model.layers.0.self_attn.q_proj"]


def test_block_by_block_pass_agrees_with_one_autograd_pass(measured):
    """The pass runs block by block (blocks run again with gradients, the head's logits in
    slices); one autograd pass over the whole model (the first implementation, kept in
    tests/model/quantize/sensitivity_reference.py) gives the same figures to float rounding."""
    from tests.model.quantize.sensitivity_reference import measure_whole

    model, wins, names, sens = measured
    grad_sq, inputs, emb_sq, tokens = measure_whole(model, wins, names)
    assert tokens == sens.tokens and set(grad_sq) == set(sens.grad_sq) == set(names) | {"lm_head"}
    for n in grad_sq:
        torch.testing.assert_close(sens.grad_sq[n], grad_sq[n], rtol=1e-5,
                                   atol=1e-9 * float(grad_sq[n].max()))
        torch.testing.assert_close(sens.inputs[n].hessian, inputs[n].hessian, rtol=1e-6, atol=0)
    assert torch.equal(sens.embedding_rows, torch.unique(wins))
    assert not emb_sq[~torch.isin(torch.arange(len(emb_sq)), sens.embedding_rows)].any()
    # (one squared gradient in 3008 differed by 2.0e-5 relative on an AMD EPYC: float32 sums of
    # another order; a wrong row or slice is off by far more)
    torch.testing.assert_close(sens.embedding_grad_sq, emb_sq[sens.embedding_rows], rtol=1e-4,
                               atol=1e-9 * float(emb_sq.max()))


def test_streamed_model_measures_the_same(tiny_hf):
    """A model streamed from its files (one block read at a time) measures the same figures,
    bit for bit, and prices the same loss table (embedding in slices) as the model loaded whole."""
    from quanta.model.sources import stream
    from quanta.model.sources.load import load_model

    whole, s = load_model(tiny_hf), load_model(tiny_hf, stream=True)
    assert stream.streamed(s.model) is not None and stream.streamed(whole.model) is None
    model = whole.model
    wins = calibration_windows(whole.tokenizer, samples=8, length=32, bos_id=whole.bos_id, seed=0)
    names = [n for n, _ in find_targets(model, ("*",), ("lm_head",))]
    sens = mixed.measure(model, wins, names)
    cands = formats.gguf_formats(width=64)
    table = mixed.measure_table(s.model, wins, names, cands, embedding=True)
    assert all(p.is_meta for n, p in s.model.named_parameters() if p.ndim == 2)  # all released
    want = mixed.loss_table(model, sens, mixed.unit_shapes(model, names, embedding=True), cands)
    assert list(table) == list(want)
    for n in want:
        np.testing.assert_array_equal(table[n], want[n])


def _kld(model, wins, ref):
    with torch.no_grad():
        lp = torch.log_softmax(model(wins).logits[:, :-1].float(), -1)
    return float((ref.exp() * (ref - lp)).sum(-1).mean())


def test_sensitivity_ranks_layers_as_measured(measured):
    """The predicted loss rise of the same relative error on each layer ranks the layers as the
    KL divergence measured with that one layer perturbed does."""
    from scipy.stats import spearmanr

    model, wins, names, sens = measured
    mods = dict(model.named_modules())
    with torch.no_grad():
        ref = torch.log_softmax(model(wins).logits[:, :-1].float(), -1)
    predicted, actual = [], []
    g = torch.Generator().manual_seed(0)
    for n in names:
        w = mods[n].weight.data
        err = torch.randn(w.shape, generator=g) * 0.05 * w.std()
        predicted.append(sens.layer_loss(n, err))
        w += err
        actual.append(_kld(model, wins, ref))
        w -= err
    rho = spearmanr(predicted, actual).statistic
    assert rho > 0.7, (rho, predicted, actual)


def test_allocation_spends_the_budget_where_it_pays(measured):
    model, _, names, sens = measured
    cands = formats.gguf_formats(width=64)  # the tiny model's rows: no K-quant fits
    shapes = mixed.unit_shapes(model, names, embedding=True)
    table = mixed.loss_table(model, sens, shapes, cands)
    assert [c.label for c in cands] == ["Q4_0", "IQ4_NL", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
    assert all(t[0] > t[-1] > 0 for t in table.values())  # Q4_0 costs more loss than Q8_0
    sizes = {n: [c.nbytes(*shape) for c in cands] for n, shape in shapes.items()}
    small, large = (sum(s[i] for s in sizes.values()) for i in (0, -1))
    plans = [mixed.choose(table, shapes, cands, int(small + f * (large - small)))
             for f in (0.0, 0.3, 0.6, 1.0)]
    for p in plans:
        assert p.nbytes <= p.budget
        assert p.nbytes == sum(c.nbytes(*shapes[n]) for n, c in p.choice.items())
    losses = [p.predicted_loss for p in plans]
    assert losses == sorted(losses, reverse=True) and losses[0] > losses[-1]
    # the smallest budget leaves the 4.5-bit types only, where IQ4_NL's levels beat Q4_0's grid
    assert set(plans[0].summary()) <= {"Q4_0", "IQ4_NL"} and set(plans[-1].summary()) == {"Q8_0"}
    assert sum(table[n][1] < table[n][0] for n in table) > 0.8 * len(table)
    with pytest.raises(ConfigError, match="smallest formats need"):
        mixed.choose(table, shapes, cands, small - 1)


def _dequantized(path):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    return {t.name: t.tensor_type.name for t in GGUFReader(path).tensors}, {
        t.name: np.asarray(dequantize(t.data, t.tensor_type), np.float32) for t in GGUFReader(path).tensors}


def test_mixed_gguf_fits_the_target_and_mixes_types(tiny, tmp_path):
    _, path = tiny
    m = get("model")
    uniform = tmp_path / "q41.gguf"
    m.write(path, uniform, Options(bits=4, group_size=32, format="gguf", method="gptq", calib_samples=8,
                                   calib_len=32))
    target = uniform.stat().st_size + 12_000
    out = tmp_path / "mixed.gguf"
    rep = m.write(path, out, Options(method="gptq", format="gguf", target_size=target, calib_samples=8,
                                     calib_len=32))
    types, _ = _dequantized(out)
    assert out.stat().st_size <= target
    assert len({t for n, t in types.items() if n.endswith(".weight") and "norm" not in n}) >= 2
    assert rep.mixed["map"]["token_embd"] == types["token_embd.weight"]
    assert rep.mixed["map"]["model.layers.1.mlp.down_proj"] == types["blk.1.ffn_down.weight"]
    again = load_gguf(out)  # quanta reads its own mixed file
    assert again.tensor_types["blk.0.attn_v.weight"] == rep.mixed["map"]["model.layers.0.self_attn.v_proj"]


def test_mixed_quanta_folder_records_the_map(tiny, tmp_path):
    from quanta.model.formats.folder import load_quantized

    _, path = tiny
    out = tmp_path / "mixed"
    rep = get("model").write(path, out, Options(method="rtn", target_bpw=5.0, calib_samples=8, calib_len=32))
    cfg = json.loads((out / "quant_config.json").read_text())
    assert cfg["mixed"]["map"] == rep.mixed["map"]
    assert len(set(cfg["mixed"]["map"].values())) >= 2
    bits = {n: spec["bits"] for n, spec in cfg["layers"].items()} | {"token_embd": cfg["embedding"]["bits"]}
    assert {n: f"{b}-bit" for n, b in bits.items()} == {
        n: lab.split(" ")[0] for n, lab in cfg["mixed"]["map"].items()}
    assert rep.mixed["tensor_bytes"] <= rep.mixed["budget_bytes"]
    model, _, _ = load_quantized(out)
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[256, 3, 4, 5]])).logits).all()


def test_an_always_asymmetric_method_is_offered_no_symmetric_grid(tiny, tmp_path):
    """HQQ refines every zero point (fractional): a symmetric format's bytes would not be the
    bytes it writes, so the allocator offers it only asymmetric grids, and the folder holds
    the planned bytes."""
    _, path = tiny
    out = tmp_path / "hqq"
    rep = get("model").write(path, out, Options(method="hqq", target_bpw=6.0, calib_samples=8, calib_len=32))
    assert not any(lab.endswith(("sym", "row", "nl")) for lab in rep.mixed["map"].values())
    cfg = json.loads((out / "quant_config.json").read_text())
    assert not any(spec["sym"] for spec in cfg["layers"].values())
    assert rep.mixed["tensor_bytes"] <= rep.mixed["budget_bytes"]


def test_mixed_rules(tiny, tmp_path):
    _, path = tiny
    m = get("model")
    with pytest.raises(ConfigError, match="not both"):
        m.write(path, tmp_path / "a", Options(target_size=1_000_000, target_bpw=4.0, calib_samples=4,
                                              calib_len=16))
    with pytest.raises(ConfigError, match="smallest formats"):
        m.write(path, tmp_path / "b.gguf", Options(format="gguf", target_size=10_000, calib_samples=4,
                                                   calib_len=16))
    with pytest.raises(ConfigError, match="target-bpw"):
        m.write(path, tmp_path / "c", Options(target_bpw=0.5, calib_samples=4, calib_len=16))
    assert not any(tmp_path.iterdir())


def test_plain_bits_share_out_the_uniform_files_bytes(tiny, tmp_path):
    """``--bits 4`` with a calibrated method (the default) spends the bytes of the uniform 4-bit
    folder (8-bit embedding) by sensitivity: within its budget, among the kernel-backed grids
    (PyTorch's int4/int8, and for a family the compiled kernels run the symmetric groups of 32
    and the IQ4_NL codebook), with less predicted loss than the uniform choice; ``--uniform``
    keeps every layer at 4 bits."""
    from quanta.model.formats.folder import load_quantized
    from quanta.model.sources.load import load_model

    _, path = tiny
    m = get("model")
    rep = m.write(path, tmp_path / "a", Options(bits=4, calib_samples=8, calib_len=32))
    uni = m.write(path, tmp_path / "b", Options(bits=4, calib_samples=8, calib_len=32, uniform=True))
    assert uni.mixed is None and uni.embedding == "8-bit per row (gptq)"
    plan = rep.mixed
    torch_kernels = {"4-bit g128", "4-bit g64", "4-bit g32", *(f"{b}-bit row" for b in (5, 6, 7, 8))}
    compiled = {f.label for f in formats.sym_groups(4)}
    assert set(plan["summary"]) <= torch_kernels | compiled
    g = load_model(path)
    names = [n for n, _ in find_targets(g.model, ("*",), ("lm_head",))]
    shapes = mixed.unit_shapes(g.model, names, embedding=True)
    uniform = sum(formats.EMBEDDING_ROWS.nbytes(*shape) if n == mixed.EMBEDDING else
                  formats.WeightFormat("", 4, formats.auto_group(shape[1])).nbytes(*shape)
                  for n, shape in shapes.items())  # the uniform 4-bit folder's units
    assert plan["budget_bytes"] == uniform >= plan["tensor_bytes"]

    def tensors(d):
        return (d / "model.safetensors").stat().st_size

    assert tensors(tmp_path / "a") <= tensors(tmp_path / "b")
    # the plan's predicted loss is at most that of the uniform choice, measured the same way
    wins = calibration_windows(g.tokenizer, samples=8, length=32, bos_id=g.bos_id, seed=0)
    sens = mixed.measure(g.model, wins[:16], names)
    cands = {n: formats.default_formats(4, shapes[n][1]) for n in names} | {
        mixed.EMBEDDING: formats.embedding_formats()}
    q_cands = [c.label for c in cands["model.layers.0.self_attn.q_proj"]]
    rows = ["5-bit row", "6-bit row", "7-bit row", "8-bit row"]
    sym = ["5-bit g32 sym", "6-bit g32 sym", "8-bit g32 sym", "4-bit g32 nl"]
    assert q_cands == ["4-bit g64", "4-bit g32", *sym, *rows]  # 64 inputs: no groups of 128
    table = mixed.loss_table(g.model, sens, shapes, cands)
    uniform_loss = sum(t[0] for n, t in table.items() if n != mixed.EMBEDDING) + table[mixed.EMBEDDING][-1]
    assert plan["predicted_loss_increase"] <= uniform_loss + 1e-12
    model, _, _ = load_quantized(tmp_path / "a")
    mods = dict(model.named_modules())
    layer_fmt = plan["map"]
    # every layer on a PyTorch kernel but the compiled kernels' grids; the compiled kernels run all
    assert {mods[n].path for n in names if layer_fmt[n] not in compiled} <= {"int4pack", "int8pack"}
    from quanta.model.runtime.native_folder import open_folder

    open_folder(tmp_path / "a", threads=1)


def test_units_chosen_together_take_one_format_and_share_the_budget():
    """``together``: a group's units (a GGUF stack of experts) take one candidate; their losses
    and rows add up, so the allocator weighs the group as one tensor."""
    cands = [formats.WeightFormat("2-bit g32", 2, 32, False), formats.WeightFormat("8-bit g32", 8, 32, False)]
    shapes = {"e0": (64, 64), "e1": (64, 64), "d": (64, 64)}
    # e0 alone would pay for 8 bits; e1 costs nothing; d in between
    table = {"e0": np.array([10.0, 0.0]), "e1": np.array([0.0, 0.0]), "d": np.array([4.0, 0.0])}
    budget = sum(c.nbytes(64, 64) for c in (cands[1], cands[0], cands[0])) + 8
    alone = mixed.choose(table, shapes, cands, budget)
    assert alone.choice["e0"].bits == 8 and alone.choice["e1"].bits == 2
    grouped = mixed.choose(table, shapes, cands, budget, together={"e0": "e*", "e1": "e*"})
    assert grouped.choice["e0"] == grouped.choice["e1"]  # one type for the stack
    # 2 × 64 rows do not fit at 8 bits: the group goes to 2, d takes 8
    assert grouped.choice["e0"].bits == 2 and grouped.choice["d"].bits == 8
    assert set(grouped.shapes) == set(shapes) and grouped.nbytes <= budget


def test_a_large_units_lattice_price_is_taken_on_a_sample_of_its_rows(monkeypatch):
    """A lattice type is priced on a sample of the rows of a unit over ``LATTICE_PRICE_WEIGHTS``
    weights: close to the whole unit's price, other types priced whole as before, the tied
    embedding's lookup term on every row the text uses — and a row that holds most of a layer's
    loss (its output's sensitivity 10⁴ times the others') is found through the reference format,
    which an even sample would miss."""
    from quanta.model.quantize import pricing
    from quanta.model.sources.tiny import tiny_model

    model = tiny_model("llama", hidden=256, vocab=600, tie_word_embeddings=True)
    wins = torch.randint(3, 600, (8, 32), generator=torch.Generator().manual_seed(0))
    names = ["model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj"]
    sens = mixed.measure(model, wins, names)
    sens.grad_sq[names[1]][5] *= 1e4  # row 5: off every 8th row
    cands = [formats.ggml_format(t) for t in ("Q4_K", "Q2_K", "IQ3_S", "IQ2_XS")]
    whole = {n: mixed.unit_losses(model, sens, n, cands) for n in [*names, mixed.EMBEDDING]}
    monkeypatch.setattr(pricing, "LATTICE_PRICE_WEIGHTS", 256 * 64)
    for n in [*names, mixed.EMBEDDING]:
        taken = mixed.unit_losses(model, sens, n, cands)
        assert list(taken[:2]) == list(whole[n][:2])  # K-quants: every row, the same figures
        assert taken[2:] == pytest.approx(whole[n][2:], rel=0.1)
        assert not np.allclose(taken[2:], whole[n][2:], rtol=1e-6)  # a sample, not every row
    # the even sample alone (no reference priced whole) misses row 5: far too low
    alone = mixed.unit_losses(model, sens, names[1], cands[2:])
    assert (alone < 0.2 * whole[names[1]][2:]).all()


def test_an_untied_embeddings_lattice_price_is_its_lookup_on_every_row_it_uses(monkeypatch):
    """Untied, the embedding's price is its lookup term alone — on the rows the text uses, all of
    them — so sampling its other rows changes nothing."""
    from quanta.model.quantize import pricing
    from quanta.model.sources.tiny import tiny_model

    model = tiny_model("llama", hidden=256, vocab=600, tie_word_embeddings=False)
    wins = torch.randint(3, 600, (8, 32), generator=torch.Generator().manual_seed(0))
    sens = mixed.measure(model, wins, ["model.layers.0.mlp.down_proj"])
    cands = [formats.ggml_format(t) for t in ("Q2_K", "IQ3_S", "IQ2_XS")]
    whole = mixed.unit_losses(model, sens, mixed.EMBEDDING, cands)
    monkeypatch.setattr(pricing, "LATTICE_PRICE_WEIGHTS", 256 * 64)
    assert pricing.price_stride(cands[1], 600, 256) == 10
    taken = mixed.unit_losses(model, sens, mixed.EMBEDDING, cands)
    assert (whole > 0).all() and taken == pytest.approx(whole, rel=1e-5)
