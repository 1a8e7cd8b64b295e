import pytest
import torch

from quanta.errors import InputError
from quanta.model.eval.evaluate import evaluate_causal_lm, windows
from quanta.model.formats.gguf_read import load_gguf


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




def test_sentence_embeddings_leave_the_tokenizers_padding_out():
    """MiniLM's tokenizer pads every sentence to 128 tokens: the embedding is the sentence's own
    tokens' mean, the same as with padding switched off (attending to the pads changes it)."""
    import copy

    from quanta.model.eval.evaluate import sentence_embeddings
    from quanta.model.sources.load import load_model

    ref = load_model("minilm")
    tok = ref.tokenizer
    assert tok.padding and tok.padding["length"] == 128
    short = ["A short sentence about Du Fu .", "= = = Influence on Japanese literature = = ="]
    padded = sentence_embeddings(ref.model, tok, short)
    plain_tok = copy.deepcopy(tok)
    plain_tok.no_padding()
    torch.testing.assert_close(padded, sentence_embeddings(ref.model, plain_tok, short), rtol=0, atol=1e-5)
    with torch.no_grad():  # what the pads did when they were attended and pooled
        ids = torch.tensor([tok.encode(short[1]).ids])
        h = ref.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0].mean(0)
    assert float(torch.dot(h / h.norm(), padded[1])) < 0.99
