import pytest

from quanta.errors import InputError
from quanta.model.evaluate import evaluate_causal_lm, windows
from quanta.model.gguf_load import load_gguf


def test_evaluator_windows_and_self_agreement(tiny):
    _, path = tiny
    g = load_gguf(path)
    text = "the tiny test text " * 200
    w = windows(g.tokenizer, text, bos_id=256, n_ctx=32, n_chunks=3)
    assert w.shape == (3, 32) and bool((w[:, 0] == 256).all())
    r = evaluate_causal_lm(g.model, w, reference=g.model)
    assert r["tokens_scored"] == 3 * 15
    assert r["kld"] == pytest.approx(0.0, abs=1e-6) and r["top1_agreement"] == 1.0
    assert 1 < r["perplexity"] < 1e4
    with pytest.raises(InputError):
        windows(g.tokenizer, "short", bos_id=256, n_ctx=32, n_chunks=3)


