import copy

import pytest
import torch

from quanta.model.quantize.apply import quantize_model
from quanta.model.quantize.calibrate import block_stats, calibration_windows, default_text, find_blocks
from quanta.model.sources.tiny import byte_tokenizer, tiny_llama


def _kld(ref_model, model, x):
    with torch.no_grad():
        ref = torch.log_softmax(ref_model(x).logits, -1)
        lp = torch.log_softmax(model(x).logits, -1)
    return float((ref.exp() * (ref - lp)).sum(-1).mean())


def test_windows_are_seeded_and_start_with_bos():
    tok = byte_tokenizer()
    a = calibration_windows(tok, samples=4, length=32, bos_id=256, seed=3)
    b = calibration_windows(tok, samples=4, length=32, bos_id=256, seed=3)
    c = calibration_windows(tok, samples=4, length=32, bos_id=256, seed=4)
    assert a.shape == (4, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a[:, 0] == 256).all())


def test_default_text_is_the_validation_split(shared_data):
    text = default_text()
    assert len(text) > 100_000
    valid = (shared_data / "wikitext-2" / "valid.txt").read_text(encoding="utf-8")
    test = (shared_data / "wikitext-2" / "test.txt").read_text(encoding="utf-8")
    assert valid.startswith(text) and text[1000:1200] not in test


def test_block_stats_count_every_calibration_token():
    m = tiny_llama(0, hidden=64)
    _, blocks = find_blocks(m)
    calib = calibration_windows(byte_tokenizer(), samples=3, length=16, bos_id=256)
    from quanta.model.quantize.calibrate import block_inputs

    inputs, kwargs = block_inputs(m, blocks[0], calib)
    lin = blocks[0].mlp.down_proj
    stats = block_stats(blocks[0], [("down", lin)], inputs, kwargs, hessian=True)
    assert stats["down"].n == 3 * 16 and stats["down"].hessian.shape == (128, 128)


@pytest.mark.parametrize("bits", [4, 3])
def test_gptq_beats_rtn_on_the_same_grid(bits):
    m = tiny_llama(0, hidden=128)
    tok = byte_tokenizer()
    calib = calibration_windows(tok, samples=16, length=64, bos_id=256)
    test = calibration_windows(tok, samples=6, length=64, bos_id=256, seed=9)
    rtn, gptq = copy.deepcopy(m), copy.deepcopy(m)
    quantize_model(rtn, "rtn", bits=bits, group_size=32)
    quantize_model(gptq, "gptq", bits=bits, group_size=32, calib=calib)
    assert _kld(m, gptq, test) < 0.7 * _kld(m, rtn, test)


def test_calibrated_method_without_data_is_refused():
    from quanta.errors import ConfigError

    with pytest.raises(ConfigError, match="calibration"):
        quantize_model(tiny_llama(0), "gptq", bits=4, group_size=32)


def test_imatrix_beats_plain_mse_clipping_on_the_output():
    m = tiny_llama(0, hidden=128)
    tok = byte_tokenizer()
    calib = calibration_windows(tok, samples=16, length=64, bos_id=256)
    test = calibration_windows(tok, samples=6, length=64, bos_id=256, seed=9)
    mse, imx = copy.deepcopy(m), copy.deepcopy(m)
    quantize_model(mse, "mse", bits=3, group_size=32)
    quantize_model(imx, "imatrix", bits=3, group_size=32, calib=calib)
    assert _kld(m, imx, test) < _kld(m, mse, test)
