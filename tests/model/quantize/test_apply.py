"""quantize_model on a model that will only be written: each finished layer leaves memory
for the spill file as soon as its block is done, and the folder written from there is the one
written from memory."""

from __future__ import annotations

import pytest
import torch

from quanta.model.formats.spill import Parked, Spill
from quanta.model.quantize.apply import quantize_model
from quanta.model.quantize.calibrate import calibration_windows
from quanta.model.runtime.qlinear import QuantLinear
from quanta.model.sources.load import load_model


@pytest.mark.parametrize("method", ["gptq", "rtn"])
def test_finished_layers_are_parked_block_by_block(tiny_hf, tmp_path, method):
    loaded = load_model(tiny_hf, stream=True)
    calib = calibration_windows(loaded.tokenizer, samples=4, length=16)
    parked_after: list[int] = []
    sp = Spill(tmp_path)

    def count(*_a: object) -> None:  # after each layer: how many layers are parked so far
        parked_after.append(sum(isinstance(m, QuantLinear)
                                and isinstance(m.folder_tensors.get("codes"), Parked)
                                for m in loaded.model.modules()))

    with sp:
        quantize_model(loaded.model, method, bits=4, group_size=32, calib=calib if method == "gptq" else None,
                       on_layer=count, runnable=False, shelve=lambda m: m.park(sp))
        layers = [m for m in loaded.model.modules() if isinstance(m, QuantLinear)]
        assert layers and all(all(isinstance(v, Parked) for v in m.folder_tensors.values()) for m in layers)
        assert sp.size == sum(v.nbytes for m in layers for v in m.folder_tensors.values())
    per_block = len(layers) // len(loaded.model.model.layers)
    if method == "gptq":  # a block's layers wait for the block to run; the blocks before are parked
        assert parked_after[per_block] == per_block and parked_after[per_block - 1] == 0
    else:  # nothing runs: each layer is parked as it is made
        assert parked_after == list(range(len(layers)))


def test_dropped_layers_keep_their_spec_but_no_tensors(tiny_hf):
    loaded = load_model(tiny_hf, stream=True)
    kept = {}
    rep = quantize_model(loaded.model, "rtn", bits=4, group_size=32, on_layer=kept.__setitem__,
                         runnable=False, shelve=QuantLinear.drop)
    layers = {n: m for n, m in loaded.model.named_modules() if isinstance(m, QuantLinear)}
    assert set(layers) == set(kept) == set(rep.layers)
    assert all(m.folder_tensors is None and m.weight_bytes() > 0 for m in layers.values())
    with pytest.raises(RuntimeError, match="no folder tensors"):
        next(iter(layers.values())).disk_state()


def test_a_runnable_model_is_never_parked(tiny_hf, tmp_path):
    loaded = load_model(tiny_hf)
    with Spill(tmp_path) as sp:
        quantize_model(loaded.model, "rtn", bits=4, group_size=32, shelve=lambda m: m.park(sp))
        assert sp.size == 0
    x = torch.tensor([[1, 2, 3]])
    assert torch.isfinite(loaded.model(x).logits).all()


@pytest.mark.parametrize("method", ["gptq", "imatrix"])
def test_an_untied_head_is_quantized_from_the_last_block_in_slices(tmp_path, monkeypatch, method):
    """An untied output head needs no second whole-model pass: its statistics come from the last
    block's outputs through the final norm, and it is rounded in row slices of the streamed
    weight — the same codes as the whole-model pass gives (both through the layers' kernels: the
    engine's windows otherwise run the finished blocks as float32 products, which a whole-model
    pass does not)."""
    import contextlib

    import quanta.model.quantize.apply as apply
    import quanta.model.quantize.calibrate as calibrate
    from quanta.model.sources import stream
    from quanta.model.sources.tiny import write_hf_folder

    src = write_hf_folder(tmp_path / "untied", seed=3, tie_word_embeddings=False)
    monkeypatch.setattr(stream, "SLICE_BYTES", 4 * 128 * 100)  # 100 rows a slice: three slices
    monkeypatch.setattr(calibrate, "held_weights", lambda block: contextlib.nullcontext())

    def run(model):
        calib = calibration_windows(load_model(src).tokenizer, samples=4, length=16)
        kept = {}
        quantize_model(model, method, bits=4, group_size=32, calib=calib, head=True,
                       on_layer=kept.__setitem__, runnable=False)
        return kept["lm_head"]

    streamed = load_model(src, stream=True).model
    got = run(streamed)
    assert isinstance(streamed.lm_head, QuantLinear) and getattr(streamed.lm_head, "compacted", False)
    monkeypatch.setattr(apply, "final_norm", lambda m: None)  # the whole-model pass, on a whole model
    want = run(load_model(src).model)
    assert torch.equal(got.codes, want.codes) and torch.equal(got.scales, want.scales)


@pytest.mark.parametrize("method", ["imatrix", "rtn"])
def test_layers_without_a_hessian_in_row_slices_round_the_same(tiny_hf, monkeypatch, method):
    """A method with no Hessian rounds each layer in row slices (bounded temporaries): the same
    codes as the whole matrix at once."""
    from quanta.model.sources import stream

    def codes(slice_bytes: int) -> dict:
        monkeypatch.setattr(stream, "SLICE_BYTES", slice_bytes)
        loaded = load_model(tiny_hf, stream=True)
        calib = calibration_windows(loaded.tokenizer, samples=4, length=16)
        kept = {}
        quantize_model(loaded.model, method, bits=4, group_size=32,
                       calib=calib if method == "imatrix" else None, on_layer=kept.__setitem__)
        return kept

    whole, sliced = codes(1 << 30), codes(4 * 128 * 24)  # 24 rows of 128 inputs a slice
    assert whole.keys() == sliced.keys()
    for n in whole:
        assert torch.equal(whole[n].codes, sliced[n].codes) and torch.equal(whole[n].scales, sliced[n].scales)


def test_a_written_only_model_builds_no_kernel_for_its_tied_head(tiny_hf):
    """The tied head of a model that will only be written is not stored: it keeps its shape and
    spec, no tensors, and the report is the runnable model's."""
    from quanta.model.quantize.quantizers import make_quantizer

    reports = {}
    for runnable in (True, False):
        model = load_model(tiny_hf, stream=True).model
        emb = make_quantizer("mse", bits=8, group_size=0, sym=True)
        reports[runnable] = quantize_model(model, "rtn", bits=4, group_size=32, embedding=emb,
                                           runnable=runnable)
        head = model.lm_head
        assert isinstance(head, QuantLinear)
        if not runnable:
            assert head.folder_tensors is None and not list(head.buffers()) and head.weight_bytes() > 0
    assert reports[True].to_json() == reports[False].to_json()
