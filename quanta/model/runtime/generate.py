"""Text generation from any causal language model quanta loads: prefill the prompt once, then
one token at a time from the key/value cache, greedy or sampled (temperature, nucleus ``top_p``)
with a seeded generator, streamed as text.

The chat template a model carries (GGUF ``tokenizer.chat_template``, a Hugging Face folder's
``tokenizer_config.json``, or what a quanta folder copied from its source) is rendered in
Jinja's sandbox: a template is data from the model file, never code that runs with quanta's
rights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from quanta.errors import ConfigError, InputError
from quanta.reports import Report


@dataclass(frozen=True)
class Generation(Report):
    """What one generation produced and how fast (tokens per second, wall clock)."""

    model: str = ""
    text: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    stopped: str = ""  # "eos", "max_tokens" or "context" (the model's context was full)
    prefill_s: float = 0.0
    decode_s: float = 0.0
    prefill_tokens_per_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    path: str = ""
    token_ids: list = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        return [("prompt tokens", str(self.prompt_tokens)),
                ("generated tokens", f"{self.generated_tokens} (stopped: {self.stopped})"),
                ("prefill", f"{self.prefill_tokens_per_s:.1f} tokens/s"),
                ("decode", f"{self.decode_tokens_per_s:.1f} tokens/s"), ("path", self.path)]


def check_sampling(max_tokens: int, temperature: float, top_p: float) -> None:
    """Refuse settings that cannot sample (one line each)."""
    if max_tokens < 1:
        raise ConfigError(f"--max-tokens {max_tokens}: give at least 1")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise ConfigError(f"--temperature {temperature}: give 0 (greedy) or a finite number above")
    if not 0 < top_p <= 1:
        raise ConfigError(f"--top-p {top_p}: give a probability in (0, 1]")


def pick(logits: Any, temperature: float, top_p: float, gen: Any) -> int:
    """The next token: the most likely with ``temperature`` 0, else drawn from the softmax at
    that temperature restricted to the smallest set of tokens whose probability reaches
    ``top_p``. ``logits``: a torch tensor (``gen`` a seeded ``torch.Generator``) or a numpy
    array (the native path; ``gen`` a seeded ``numpy.random.Generator``)."""
    if isinstance(logits, np.ndarray):
        return _pick_numpy(logits, temperature, top_p, gen)
    import torch

    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1:
        p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(p, 0) - p < top_p  # the first token always stays
        probs = torch.zeros_like(probs).scatter_(0, order[keep], p[keep])
    return int(torch.multinomial(probs, 1, generator=gen))


def _pick_numpy(logits: np.ndarray, temperature: float, top_p: float, gen: np.random.Generator) -> int:
    """:func:`pick` on numpy logits: the same rule, the draw from numpy's seeded generator."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    if top_p < 1:
        order = np.argsort(-probs, kind="stable")
        p = probs[order]
        keep = np.cumsum(p) - p < top_p  # the first token always stays
        probs = np.zeros_like(probs)
        probs[order[keep]] = p[keep]
        probs /= probs.sum()
    drawn = np.searchsorted(np.cumsum(probs), gen.random() * probs.sum(), side="right")
    return int(min(drawn, len(probs) - 1))


class Generated(NamedTuple):
    """What :func:`generate_ids` produced."""

    ids: list[int]
    stopped: str  # "eos" or "max_tokens"
    prefill_s: float
    decode_s: float
    path: str  # which decode path ran, and why


class _Eager:
    """Hugging Face's forward with its dynamic cache (any causal LM)."""

    def __init__(self, model: Any) -> None:
        self.model, self.cache = model, None

    def forward(self, ids: list[int]) -> Any:
        import torch

        out = self.model(torch.tensor([ids]), cache=self.cache, use_cache=True, logits_to_keep=1)
        self.cache = out.cache
        return out.logits[0, -1]


def stepper(model: Any, max_len: int, fast: bool = True) -> tuple[Any, str]:
    """What runs the steps — the lean path of :mod:`quanta.model.runtime.fastpath` where it applies, else
    the eager model — and a line saying which and why. A
    :class:`~quanta.model.runtime.native.NativeLM` runs on the compiled kernels."""
    if getattr(model, "is_causal_lm", False):
        from quanta.model.runtime._dispatch import build_name
        from quanta.model.runtime.native import NativeStep

        return NativeStep(model, max_len), (f"native kernels ({build_name()}, "
                                            f"{model.threads} threads)")
    if fast:
        from quanta.model.runtime.fastpath import decoder_for

        dec, why = decoder_for(model, max_len)
        if dec is not None:
            return dec, "fast path (preallocated cache, fused projections)"
        return _Eager(model), f"eager: {why}"
    return _Eager(model), "eager (asked for)"


def generate_ids(model: Any, prompt: list[int], *, max_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, stop: set[int] | frozenset = frozenset(),
                 on_token: Callable[[int], None] | None = None, fast: bool = True) -> Generated:
    """Generate after ``prompt`` (token ids). ``stop``: ids that end the generation (kept in the
    ids, not sampled past).
    fast: run the lean decode path where the model allows (same tokens as the eager model)."""
    check_sampling(max_tokens, temperature, top_p)
    if not prompt:
        raise InputError("the prompt has no tokens")
    run, path = stepper(model, len(prompt) + max_tokens, fast)
    if getattr(model, "is_causal_lm", False):
        return _generate(run, path, prompt, max_tokens, temperature, top_p,
                         np.random.default_rng(int(seed)), stop, on_token)
    import torch

    with torch.inference_mode():
        return _generate(run, path, prompt, max_tokens, temperature, top_p,
                         torch.Generator().manual_seed(int(seed)), stop, on_token)


def _generate(run: Any, path: str, prompt: list[int], max_tokens: int, temperature: float, top_p: float,
              gen: Any, stop: set[int] | frozenset, on_token: Callable[[int], None] | None) -> Generated:
    t0 = time.perf_counter()
    logits = run.forward(prompt)
    t1 = time.perf_counter()
    new: list[int] = []
    why = "max_tokens"
    while True:
        tok = pick(logits, temperature, top_p, gen)
        new.append(tok)
        if on_token:
            on_token(tok)
        if tok in stop:
            why = "eos"
            break
        if len(new) >= max_tokens:
            break
        logits = run.forward([tok])
    return Generated(new, why, t1 - t0, time.perf_counter() - t1, path)


def stop_ids(model: Any) -> set[int]:
    """The end-of-sequence ids the model's configuration names."""
    eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    if eos is None:
        return set()
    return {int(e) for e in eos} if isinstance(eos, (list, tuple)) else {int(eos)}


def chat_template(loaded: Any) -> str | None:
    """The chat template the model carries, or None."""
    if loaded.kind == "gguf":
        return loaded.info.get("metadata", {}).get("chat_template")
    if loaded.kind == "quanta":
        return loaded.info.get("quant_config", {}).get("chat_template")
    from quanta.model.sources.reading import folder_chat_template

    return folder_chat_template(Path(loaded.source))


def render_chat(template: str, prompt: str, *, bos: str = "", eos: str = "") -> str:
    """One user message rendered with ``template`` (sandboxed Jinja), ready for the reply."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg: str) -> None:
        raise TemplateError(msg)

    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(
            messages=[{"role": "user", "content": prompt}], add_generation_prompt=True,
            bos_token=bos, eos_token=eos)
    except TemplateError as e:
        raise InputError(f"the model's chat template fails: {e}") from None


class TextStream:
    """Decodes a growing list of ids and hands on only the new text (held back while the last
    token ends inside a multi-byte character)."""

    def __init__(self, tokenizer: Any, write: Callable[[str], None]) -> None:
        self.tokenizer, self.write = tokenizer, write
        self.ids: list[int] = []
        self.shown = 0

    def text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def finish(self) -> None:
        """Hand on what was held back (the text ends inside a character)."""
        t = self.text()
        if len(t) > self.shown:
            self.write(t[self.shown:])
        self.shown = len(t)

    def __call__(self, tok: int) -> None:
        self.ids.append(tok)
        t = self.text()
        if t.endswith("\ufffd"):
            return
        if len(t) > self.shown:
            self.write(t[self.shown:])
        self.shown = len(t)


def generate(loaded: Any, prompt: str, *, max_tokens: int = 128, temperature: float = 0.7,
             top_p: float = 0.9, seed: int = 0, chat: bool = False,
             write: Callable[[str], None] | None = None, fast: bool = True) -> Generation:
    """Generate from a loaded causal language model; ``write`` receives the text as it comes;
    ``fast``: the lean decode path where the model allows (else, or False, the eager model)."""
    causal = getattr(loaded.model, "is_causal_lm", False) or hasattr(loaded.model, "lm_head")
    if loaded.kind == "hf-encoder" or not causal:
        raise InputError(f"{loaded.source}: an encoder; generate needs a causal language model")
    if loaded.tokenizer is None:
        raise InputError(f"{loaded.source}: no tokenizer to encode the prompt with")
    tok = loaded.tokenizer
    if chat:
        template = chat_template(loaded)
        if template is None:
            raise InputError(f"{loaded.source}: the model carries no chat template (leave out --chat)")
        ids = tok.encode(render_chat(template, prompt), add_special_tokens=False).ids
    else:
        ids = [loaded.bos_id, *tok.encode(prompt, add_special_tokens=False).ids]
    if not prompt.strip():
        raise InputError("the prompt is empty")
    context = int(getattr(loaded.model.config, "max_position_embeddings", 0) or 0)
    if context and len(ids) >= context:
        raise InputError(f"the prompt has {len(ids)} tokens; the model's context holds {context}")
    capped = context and len(ids) + max_tokens > context
    if capped:  # the KV cache is sized to the context, never to an unbounded --max-tokens
        max_tokens = context - len(ids)
    stream = TextStream(tok, write or (lambda _s: None))
    g = generate_ids(loaded.model, ids, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                     seed=seed, stop=stop_ids(loaded.model), on_token=stream, fast=fast)
    stream.finish()
    steps = len(g.ids) - 1  # forward passes after the prefill
    stopped = "context" if capped and g.stopped == "max_tokens" else g.stopped
    return Generation(model=loaded.source, text=stream.text(), prompt_tokens=len(ids),
                      generated_tokens=len(g.ids), stopped=stopped, prefill_s=g.prefill_s,
                      decode_s=g.decode_s, path=g.path,
                      prefill_tokens_per_s=len(ids) / g.prefill_s if g.prefill_s > 0 else 0.0,
                      decode_tokens_per_s=steps / g.decode_s if steps and g.decode_s > 0 else 0.0,
                      token_ids=g.ids)


__all__ = ["Generated", "Generation", "chat_template", "check_sampling", "generate", "generate_ids", "pick",
           "render_chat", "stop_ids"]
