"""The evaluator: one protocol for quanta's models and anyone else's.

Protocol ``quanta-ppl/1`` (llama.cpp's perplexity protocol): tokenize WikiText-2's
``test.txt`` whole with the model's tokenizer; take the first 40 consecutive windows of 512
tokens; set the first token of each window to BOS; score only the second half — the logits at
positions 256..510 predicting tokens 257..511 (255 per window, 10,200 in all). Report
perplexity, and against a float reference the mean KL divergence ``KL(P_ref ‖ P_model)`` over
those positions and the top-1 agreement.
"""

from __future__ import annotations

import math
import resource
import time
from pathlib import Path

import torch

from quanta.errors import InputError
from quanta.progress import Progress

PROTOCOL = ("quanta-ppl/1: WikiText-2 test.txt tokenized whole; first 40 windows of 512 "
            "tokens; first token of each set to BOS; logits at positions 256..510 scored "
            "(llama.cpp perplexity protocol)")


def protocol(n_chunks: int, n_ctx: int) -> str:
    """The protocol string for what was actually scored (:data:`PROTOCOL` at 40 × 512)."""
    if (n_chunks, n_ctx) == (40, 512):
        return PROTOCOL
    return (f"quanta-ppl/1 (shortened): WikiText-2 test.txt tokenized whole; first {n_chunks} "
            f"windows of {n_ctx} tokens; first token of each set to BOS; logits at positions "
            f"{n_ctx // 2}..{n_ctx - 2} scored")


def windows(tokenizer, text: str, *, bos_id: int, n_ctx: int = 512, n_chunks: int = 40) -> torch.Tensor:
    """``(n_chunks, n_ctx)`` token windows, BOS first."""
    ids = tokenizer.encode(text).ids
    if len(ids) < n_ctx * n_chunks:
        raise InputError(f"text has {len(ids)} tokens; {n_chunks}×{n_ctx} are needed")
    w = torch.tensor(ids[: n_ctx * n_chunks], dtype=torch.long).view(n_chunks, n_ctx).clone()
    w[:, 0] = bos_id
    return w


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's current resident set size (MB)."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


@torch.inference_mode()
def evaluate_causal_lm(model, wins: torch.Tensor, *, reference=None,
                       progress: Progress | None = None,
                       keep_logprobs: bool = False) -> dict:
    """Perplexity (and KLD/top-1 against ``reference``) over ``wins`` per ``quanta-ppl/1``.

    reference: a model, or the ``logprobs`` list a previous call returned with
    ``keep_logprobs=True`` (float16, so a reference is run once for many comparisons).
    """
    n_chunks, n_ctx = wins.shape
    first = n_ctx // 2
    nll = kld = agree = 0.0
    count = 0
    t_model = 0.0
    kept = []
    for i in range(n_chunks):
        x = wins[i: i + 1]
        t0 = time.perf_counter()
        logits = model(x).logits[0, first: n_ctx - 1].float()
        t_model += time.perf_counter() - t0
        target = wins[i, first + 1:]
        logp = torch.log_softmax(logits, dim=-1)
        nll += float(-logp.gather(1, target[:, None]).sum())
        if keep_logprobs:
            kept.append(logp.to(torch.float16))
        if reference is not None:
            if isinstance(reference, list):
                ref = reference[i].float()
            else:
                ref = torch.log_softmax(reference(x).logits[0, first: n_ctx - 1].float(), dim=-1)
            kld += float((ref.exp() * (ref - logp)).sum())
            agree += float((ref.argmax(-1) == logp.argmax(-1)).sum())
        count += target.numel()
        if progress:
            progress(i + 1, n_chunks)
    out = {"protocol": protocol(n_chunks, n_ctx), "tokens_scored": count, "perplexity": math.exp(nll / count),
           "prefill_tokens_per_s": n_chunks * n_ctx / t_model}
    if reference is not None:
        out["kld"] = kld / count
        out["top1_agreement"] = agree / count
    if keep_logprobs:
        out["logprobs"] = kept
    return out


def decode_speed(model, prompt: torch.Tensor, new_tokens: int = 64) -> float:
    """Greedy decoding with the KV cache: generated tokens per second (after the prompt)."""
    from quanta.model.runtime.generate import generate_ids

    g = generate_ids(model, prompt[0].tolist(), max_tokens=new_tokens + 1, temperature=0)
    return (len(g.ids) - 1) / g.decode_s


@torch.inference_mode()
def sentence_embeddings(model, tokenizer, sentences: list[str], max_len: int = 128) -> torch.Tensor:
    """Mean-pooled, L2-normalised sentence embeddings (sentence-transformers' recipe): each
    sentence's own tokens only — the padding a tokenizer adds (MiniLM's pads to 128) is neither
    attended to nor pooled."""
    embs = []
    for s in sentences:
        enc = tokenizer.encode(s)
        ids = torch.tensor([[i for i, keep in zip(enc.ids, enc.attention_mask) if keep][:max_len]])
        h = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]
        v = h.mean(0)
        embs.append(v / v.norm())
    return torch.stack(embs)


def wikitext2_test_text(folder: Path | None = None) -> str:
    """WikiText-2's test.txt from the shared data ($QUANTA_DATA or ../shared/data)."""
    from quanta.data import data_dir

    p = (folder or data_dir()) / "wikitext-2" / "test.txt"
    if not p.exists():
        raise InputError(f"{p}: WikiText-2 test set not found (set QUANTA_DATA)")
    return p.read_text(encoding="utf-8")
