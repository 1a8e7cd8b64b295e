"""The evaluation harness: the reference measured once, each candidate scored against it."""

import copy

import pytest
import torch

from quanta.model.eval.evaluate import evaluate_causal_lm, windows
from quanta.model.eval.harness import EncoderReference, Reference, sweep
from quanta.model.formats.gguf_read import load_gguf
from quanta.model.quantize.apply import count_by_path, quantize_model


@pytest.fixture(scope="module")
def model_and_windows(tiny):
    _, path = tiny
    g = load_gguf(path)
    return g.model, windows(g.tokenizer, "the tiny test text " * 200, bos_id=256, n_ctx=32, n_chunks=3)


def test_a_model_against_itself_scores_no_loss(model_and_windows):
    model, w = model_and_windows
    ref = Reference(model, w)
    s = ref.score(model)
    assert s.tokens == 3 * 15 and s.perplexity == pytest.approx(ref.perplexity, rel=1e-6)
    assert s.kld == pytest.approx(0.0, abs=1e-3)  # against float16-kept log-probabilities
    assert s.top1 == 1.0 and s.recovery == pytest.approx(1.0, rel=1e-6)
    assert s.figures()["recovery_percent"] == pytest.approx(100.0)


def test_kept_and_live_references_agree_and_match_the_evaluator(model_and_windows):
    """The float16-kept reference and the live one (the reference run beside the candidate) give
    the same KLD within float16's rounding; both are the evaluator's own numbers."""
    model, w = model_and_windows
    q = copy.deepcopy(model)
    quantize_model(q, "rtn", bits=2, group_size=32)
    kept, live = Reference(model, w).score(q), Reference(model, w, keep=False).score(q)
    direct = evaluate_causal_lm(q, w, reference=model)
    assert live.kld == pytest.approx(direct["kld"], rel=1e-9) and live.top1 == direct["top1_agreement"]
    assert kept.kld == pytest.approx(direct["kld"], rel=2e-2, abs=1e-4)
    assert kept.kld > 1e-3  # 2-bit weights lose something measurable
    assert live.recovery is None and kept.recovery == pytest.approx(
        Reference(model, w).perplexity / direct["perplexity"])


def test_sweep_quantizes_copies_in_order_and_leaves_the_model_alone(model_and_windows):
    model, w = model_and_windows
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref = Reference(model, w)
    trials = list(sweep(ref, model, [(b, lambda m, b=b: quantize_model(m, "rtn", bits=b, group_size=32))
                                     for b in (8, 2)]))
    assert [t.name for t in trials] == [8, 2]
    assert trials[0].score.kld < trials[1].score.kld  # fewer bits, more divergence
    assert all(t.seconds > 0 and t.peak_rss_mb > 0 and t.made.bits_per_weight > 0 for t in trials)
    assert count_by_path(model) == {}  # the reference model was never quantized
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_encoder_reference_scores_cosine_similarity():
    from quanta.model.eval.evaluate import wikitext2_test_text
    from quanta.model.sources.load import load_model

    ref = load_model("minilm")
    text = wikitext2_test_text()
    er = EncoderReference(ref.model, ref.tokenizer, text)
    same = er.score(ref.model)
    assert same.sentences == 64 and same.cosine_min == pytest.approx(1.0, abs=1e-5)
    (t,) = sweep(er, ref.model, [("rtn3", lambda m: quantize_model(m, "rtn", bits=3, group_size=128))])
    assert 0.5 < t.score.cosine_mean < 0.9999 and t.score.cosine_min <= t.score.cosine_mean
