"""One evaluation harness: the reference measured once, then each candidate scored against it.

Causal language models: :class:`Reference` runs the float model over the ``quanta-ppl/1``
windows once (:func:`quanta.model.eval.evaluate.evaluate_causal_lm`) and keeps its log-probabilities
in float16 — or, with ``keep=False``, keeps the model and runs it beside each candidate, window
by window (one candidate, no 1 GB of kept log-probabilities for SmolLM2's 49,152-token
vocabulary over 40 windows). :meth:`Reference.score` gives a :class:`Score`: perplexity, mean
KL divergence ``KL(P_ref ‖ P_model)`` in nats per token, top-1 agreement and perplexity recovery.
Sentence encoders: :class:`EncoderReference` keeps the float model's sentence embeddings;
:meth:`EncoderReference.score` gives the cosine similarity of each candidate's.

:func:`sweep` is the loop every comparison runs (the tour, the benches): for each named
candidate, copy the reference model, quantize the copy, time it, score it, release it. The CLI's
``quanta model eval --reference`` scores one model through the same :class:`Reference`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from quanta.errors import InputError
from quanta.model.eval.evaluate import (
    decode_speed,
    evaluate_causal_lm,
    peak_rss_mb,
    sentence_embeddings,
    wikitext2_test_text,
    windows,
)
from quanta.model.reports import EvalReport
from quanta.progress import Progress


@dataclass(frozen=True)
class Score:
    """A causal LM scored on the reference's windows. perplexity: exp(mean NLL) over the scored
    tokens. kld: mean KL divergence from the reference, nats per token. top1: share of positions
    where the two models' most likely tokens agree (0–1). recovery: the reference's perplexity over
    this one (1 = no loss; None when the reference kept no perplexity)."""

    protocol: str
    tokens: int
    perplexity: float
    prefill_tokens_per_s: float
    kld: float | None = None
    top1: float | None = None
    recovery: float | None = None

    def figures(self) -> dict[str, Any]:
        """The quality figures as the tour and the benches print them (percentages for the
        shares; no timing, so that a sweep's figures repeat exactly)."""
        out: dict[str, Any] = {"perplexity": self.perplexity}
        if self.kld is not None:
            out.update(kld=self.kld, top1_agreement=self.top1, top1_percent=100 * (self.top1 or 0.0))
        if self.recovery is not None:
            out["recovery_percent"] = 100 * self.recovery
        return out


class Reference:
    """A float causal LM on fixed windows (``n × ctx`` token ids, see
    :func:`quanta.model.eval.evaluate.windows`), measured once."""

    def __init__(self, model: Any, windows: torch.Tensor, *, keep: bool = True,
                 progress: Progress | None = None) -> None:
        self.windows = windows
        self.model = None if keep else model  # kept log-probabilities need no model
        #: the reference's own score (None when it runs beside each candidate instead)
        self.measured: Score | None = None
        self._logprobs: list[torch.Tensor] | None = None
        if keep:
            r = evaluate_causal_lm(model, windows, keep_logprobs=True, progress=progress)
            self._logprobs = r.pop("logprobs")
            self.measured = Score(r["protocol"], r["tokens_scored"], r["perplexity"],
                                  r["prefill_tokens_per_s"])

    @property
    def perplexity(self) -> float | None:
        """The reference's perplexity on the windows (None when it was not kept)."""
        return None if self.measured is None else self.measured.perplexity

    def score(self, model: Any, progress: Progress | None = None) -> Score:
        """``model`` on the same windows against the reference."""
        ref = self._logprobs if self._logprobs is not None else self.model
        r = evaluate_causal_lm(model, self.windows, reference=ref, progress=progress)
        return Score(r["protocol"], r["tokens_scored"], r["perplexity"], r["prefill_tokens_per_s"],
                     r["kld"], r["top1_agreement"],
                     None if self.perplexity is None else self.perplexity / r["perplexity"])


@dataclass(frozen=True)
class EncoderScore:
    """A sentence encoder's embeddings against the reference's: cosine similarity, mean and lowest,
    over ``sentences`` sentences."""

    sentences: int
    cosine_mean: float
    cosine_min: float

    def figures(self) -> dict[str, Any]:
        return {"sentences": self.sentences, "cosine_similarity_mean": self.cosine_mean,
                "cosine_similarity_min": self.cosine_min}


#: sentences an encoder is scored on: the first this many lines of the text longer than 40 characters
ENCODER_SENTENCES = 64


def encoder_sentences(text: str) -> list[str]:
    """The sentences an encoder is scored on (:data:`ENCODER_SENTENCES` long lines of ``text``)."""
    return [s.strip() for s in text.splitlines() if len(s.strip()) > 40][:ENCODER_SENTENCES]


class EncoderReference:
    """A float sentence encoder's embeddings of the first long lines of ``text``, made once."""

    def __init__(self, model: Any, tokenizer: Any, text: str) -> None:
        self.tokenizer = tokenizer
        self.sentences = encoder_sentences(text)
        self.embeddings = sentence_embeddings(model, tokenizer, self.sentences)

    def score(self, model: Any, progress: Progress | None = None) -> EncoderScore:
        emb = sentence_embeddings(model, self.tokenizer, self.sentences)
        cos = (emb * self.embeddings).sum(-1)
        if progress:
            progress(1, 1)
        return EncoderScore(len(self.sentences), float(cos.mean()), float(cos.min()))


@dataclass(frozen=True)
class Trial:
    """One candidate of a sweep: its name, what its quantizing returned (a report), the seconds
    it took, its score and this process's peak resident memory after it (MB)."""

    name: Any
    made: Any
    seconds: float
    score: Score | EncoderScore
    peak_rss_mb: float


def sweep(reference: Reference | EncoderReference, model: Any,
          candidates: Iterable[tuple[Any, Callable[[Any], Any]]]) -> Iterator[Trial]:
    """For each ``(name, quantize)``: a copy of ``model`` quantized in place by ``quantize(copy)``
    (timed), scored against ``reference``, then released — one candidate in memory at a time."""
    for name, quantize in candidates:
        m = copy.deepcopy(model)
        t0 = time.perf_counter()
        made = quantize(m)
        seconds = time.perf_counter() - t0
        score = reference.score(m)
        del m
        yield Trial(name, made, seconds, score, peak_rss_mb())


def evaluate_loaded(loaded: Any, *, reference: Any = None, chunks: int = 40, ctx: int = 512,
                    speed: bool = True, text: str | None = None,
                    progress: Progress | None = None) -> EvalReport:
    """Evaluate a :class:`~quanta.model.sources.load.Loaded` model: causal LMs by quanta-ppl/1 (KLD and
    top-1 against ``reference``), encoders by embedding cosine similarity to ``reference``."""
    from quanta.errors import ConfigError
    from quanta.model.quantize.apply import weight_stats

    if chunks < 1 or ctx < 4:
        raise ConfigError("need at least 1 window (chunks) of at least 4 tokens (ctx)")
    limit = getattr(getattr(loaded.model, "config", None), "max_position_embeddings", None)
    if limit and ctx > limit:
        raise ConfigError(f"--ctx {ctx} exceeds the model's context of {limit} tokens")
    text = wikitext2_test_text() if text is None else text
    m = loaded.model
    if loaded.tokenizer is None:
        raise InputError(f"{loaded.source}: no tokenizer.json in the model folder")
    if loaded.kind == "hf-encoder":
        ref = EncoderReference(reference if reference is not None else m, loaded.tokenizer, text)
        measures = ref.score(m, progress).figures() if reference is not None else \
            {"sentences": len(ref.sentences)}
    else:
        wins = windows(loaded.tokenizer, text, bos_id=loaded.bos_id, n_ctx=ctx, n_chunks=chunks)
        if reference is None:
            measures = evaluate_causal_lm(m, wins, progress=progress)
        else:  # one candidate: the reference runs beside it, window by window
            s = Reference(reference, wins, keep=False).score(m, progress)
            measures = {"protocol": s.protocol, "tokens_scored": s.tokens, "perplexity": s.perplexity,
                        "prefill_tokens_per_s": s.prefill_tokens_per_s, "kld": s.kld,
                        "top1_agreement": s.top1}
        if speed:
            measures["decode_tokens_per_s"] = decode_speed(m, wins[0:1, :32], 32)
    bad = [k for k, v in measures.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise InputError(f"{loaded.source}: the model's outputs are not finite ({', '.join(bad)}): "
                         "its weights or configuration are damaged")
    from quanta.model.sources.load import stored_weight_stats

    if getattr(m, "is_causal_lm", False):  # a GGUF file or quanta folder run natively
        stats = stored_weight_stats(loaded)
        return EvalReport(model=loaded.source, kind=loaded.kind, file_bytes=loaded.source_bytes,
                          **stats, measures=measures, peak_rss_mb=peak_rss_mb())
    stats = weight_stats(m)
    if not stats["quantized_params"]:  # a GGUF file dequantized in memory: its figures as stored
        stats = stored_weight_stats(loaded) or stats
    return EvalReport(model=loaded.source, kind=loaded.kind, file_bytes=loaded.source_bytes,
                      **stats, measures=measures, peak_rss_mb=peak_rss_mb())
