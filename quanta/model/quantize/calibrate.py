"""Calibration: the data, and the layer-by-layer engine that feeds it to the quantizers.

Data: windows of a text (``--calib FILE``; by default a slice of WikiText-2 *valid* shipped in
the package, never the test split), tokenized whole and cut at seeded random offsets.

Engine (the GPTQ recipe, for any model whose blocks sit in one ``ModuleList``: Llama-family
``model.layers``, BERT ``encoder.layer``): the calibration windows run up to block 0, whose
inputs are kept; then for each block i: its Linear layers' input statistics are gathered by
running the kept inputs through block i with hooks, the block is quantized, and the kept inputs
are run through the *quantized* block to become block i+1's inputs. Peak memory is the weights
plus one block's activations for all windows — a streamed model's weights are read one block at a
time (:mod:`quanta.model.sources.stream`), so its peak is one float block, the quantized blocks
and the activations. Layers outside the blocks (a quantized head) get their statistics from one
whole-model pass at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quanta.errors import ConfigError, InputError
from quanta.memory import trim
from quanta.model.options import DEFAULT_LENGTH, DEFAULT_SAMPLES
from quanta.model.quantize.quantizers import LayerStats

CALIB_FILE = "wikitext2_valid_slice.txt"


def default_text() -> str:
    """The calibration text shipped with quanta (WikiText-2 valid, CC BY-SA 3.0; see
    ``quanta/model/data/README.md``)."""
    return resources.files("quanta.model").joinpath("data", CALIB_FILE).read_text(encoding="utf-8")


def calibration_windows(tokenizer: Any, text: str | None = None, *, samples: int = DEFAULT_SAMPLES,
                        length: int = DEFAULT_LENGTH, bos_id: int | None = None,
                        seed: int = 0) -> torch.Tensor:
    """``(samples, length)`` token windows at seeded random offsets of ``text`` (BOS first)."""
    if samples < 1 or length < 8:
        raise ConfigError("calibration needs at least 1 sample of at least 8 tokens")
    ids = _encode_whole(tokenizer, default_text() if text is None else text)
    if len(ids) < length + 1:
        raise InputError(f"the calibration text has {len(ids)} tokens; windows of {length} need more")
    starts = np.random.default_rng(seed).integers(0, len(ids) - length, samples)
    w = torch.tensor(np.stack([ids[s:s + length] for s in starts]), dtype=torch.long)
    if bos_id is not None:
        w[:, 0] = bos_id
    return w


def _encode_whole(tokenizer: Any, text: str) -> list[int]:
    """Token ids of the whole text (a tokenizer's own truncation switched off for the call)."""
    saved = getattr(tokenizer, "truncation", None)
    if saved:
        tokenizer.no_truncation()
    try:
        return tokenizer.encode(text).ids
    finally:
        if saved:
            tokenizer.enable_truncation(**{k: v for k, v in saved.items() if k != "strategy"},
                                        strategy=saved.get("strategy", "longest_first"))


def read_text(path: Path | str) -> str:
    """A calibration text file (UTF-8)."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read the calibration text ({type(e).__name__})") from None


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's list of repeated blocks and its dotted name."""
    for name in ("model.layers", "encoder.layer", "layers", "bert.encoder.layer"):
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            continue
        if isinstance(mod, nn.ModuleList) and len(mod):
            return name, mod
    raise ConfigError(f"{type(model).__name__}: no list of blocks found (model.layers or encoder.layer)")


class StopForwardError(Exception):
    pass


@torch.no_grad()  # not inference mode: the sensitivity pass back-propagates through these
def block_inputs(model: nn.Module, first: nn.Module, calib: torch.Tensor) -> tuple[list, dict]:
    """Each window's hidden states entering block 0, and the keyword arguments the model passes
    to its blocks (position embeddings, masks), captured once."""
    kept: list[torch.Tensor] = []
    kwargs: dict = {}

    def catch(_m: nn.Module, args: tuple, kw: dict) -> None:
        kept.append(args[0] if args else kw.pop("hidden_states"))
        if not kwargs:
            kwargs.update({k: v for k, v in kw.items() if k != "hidden_states"})
            kwargs["_extra_args"] = args[1:]
        raise StopForwardError

    hook = first.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        for x in calib:
            try:
                model(x[None], use_cache=False) if _takes_cache(model) else model(x[None])
            except StopForwardError:
                pass
    finally:
        hook.remove()
    return kept, kwargs


def _takes_cache(model: nn.Module) -> bool:
    return hasattr(getattr(model, "config", None), "use_cache")


def run_block(block: nn.Module, x: torch.Tensor, kwargs: dict) -> torch.Tensor:
    extra = kwargs.get("_extra_args", ())
    out = block(x, *extra, **{k: v for k, v in kwargs.items() if k != "_extra_args"})
    return out[0] if isinstance(out, tuple) else out


#: float32 bytes of a block's widest activation (the MLP's) the windows run through it together
#: may take: SmolLM2's 256-token windows go 8 at a time, an 8 B model's 2
BATCH_BYTES = 32 << 20
MAX_BATCH = 8


def _batches(xs: list[torch.Tensor], width: int) -> list[tuple[int, int]]:
    """(first, stop) of the groups of windows run together: windows of one shape, at most
    :data:`MAX_BATCH` of them and :data:`BATCH_BYTES` of a ``width``-wide activation."""
    if not xs:
        return []
    per = max(1, min(MAX_BATCH, BATCH_BYTES // max(4 * width * xs[0].shape[-2], 1)))
    out, a = [], 0
    while a < len(xs):
        b = a + 1
        while b < len(xs) and b - a < per and xs[b].shape == xs[a].shape:
            b += 1
        out.append((a, b))
        a = b
    return out


def run_windows(block: nn.Module, xs: list[torch.Tensor], kwargs: dict, *, width: int,
                keep: bool = True) -> None:
    """Run every window of ``xs`` (each ``(1, tokens, hidden)``) through ``block`` in groups
    (:func:`_batches`: fewer, larger products over the same rows); with ``keep`` each window's
    output replaces its input in ``xs`` (one copy of the activations)."""
    for a, b in _batches(xs, width):
        x = xs[a] if b == a + 1 else torch.cat(xs[a:b])
        out = run_block(block, x, kwargs)
        if keep:
            xs[a:b] = list(out.split(1)) if b > a + 1 else [out]


@torch.inference_mode()
def _shared_inputs(block: nn.Module, layers: list[tuple[str, nn.Linear]], x: torch.Tensor,
                   kwargs: dict) -> dict[str, str]:
    """For each layer, the first layer that receives the very same input tensor (Q, K and V
    share one; gate and up another), so that their statistics are gathered once."""
    seen: dict[int, tuple[str, torch.Tensor]] = {}  # tensors kept alive: no address reused
    owner: dict[str, str] = {}

    def record(n: str, t: torch.Tensor) -> None:
        owner[n] = seen.setdefault(t.data_ptr(), (n, t))[0]

    hooks = [lin.register_forward_pre_hook(lambda _m, args, n=n: record(n, args[0])) for n, lin in layers]
    try:
        run_block(block, x, kwargs)
    finally:
        for h in hooks:
            h.remove()
    return {n: owner.get(n, n) for n, _ in layers}


@torch.inference_mode()
def block_stats(block: nn.Module, layers: list[tuple[str, nn.Linear]], inputs: list[torch.Tensor],
                kwargs: dict, *, hessian: bool) -> dict[str, LayerStats]:
    """Input statistics of ``layers`` (inside ``block`` — or the whole model, with its inputs
    and ``kwargs={}``) over the kept inputs; layers fed the same tensor share one
    :class:`LayerStats`. A mixture's experts each see every token here
    (:func:`~quanta.model.sources.experts.every_token`)."""
    from quanta.model.sources.experts import every_token

    with every_token(block):  # a mixture's experts: statistics from every token, not the routed few
        owner = _shared_inputs(block, layers, inputs[0], kwargs) if inputs else {n: n for n, _ in layers}
        mods = dict(layers)
        stats = {n: LayerStats(mods[n].in_features, with_hessian=hessian) for n in set(owner.values())}
        hooks = [mods[n].register_forward_pre_hook(lambda _m, args, n=n: stats[n].add(args[0]))
                 for n in stats]
        try:
            run_windows(block, inputs, kwargs, width=_block_width(block), keep=False)
        finally:
            for h in hooks:
                h.remove()
    for st in stats.values():
        st.flush()  # whole sums: AWQ rescales them in place
    for n, _ in layers:  # the last layer quantized from shared sums may overwrite them (GPTQ)
        stats[owner[n]].users += 1
    return {n: stats[owner[n]] for n, _ in layers}


def _block_width(block: nn.Module) -> int:
    return max((max(getattr(m, "in_features", 1), getattr(m, "out_features", 1)) for m in block.modules()),
               default=1)


@contextmanager
def held_weights(block: nn.Module) -> Iterator[None]:
    """The block's quantized layers run as float products with the weights their file stores
    while the windows run through it (:meth:`~quanta.model.runtime.qlinear.QuantLinear.hold_weight`:
    each dequantized once, at most the float block's memory), and let go after."""
    held = [m for m in block.modules() if hasattr(m, "hold_weight")]
    for m in held:
        m.hold_weight(True)
    try:
        yield
    finally:
        for m in held:
            m.hold_weight(False)


@torch.inference_mode()
def layerwise(model: nn.Module, targets: list[tuple[str, nn.Linear]], calib: torch.Tensor,
              quantize_block: Callable[[list[tuple[str, nn.Linear]], dict[str, LayerStats]], None], *,
              hessian: bool, progress: Callable[[int, int], None] | None = None,
              outputs: Callable[[list[torch.Tensor]], None] | None = None,
              after: Callable[[int, nn.Module, list[torch.Tensor]], None] | None = None,
              start: int = 0, resumed: list[torch.Tensor] | None = None,
              ) -> list[tuple[str, nn.Linear]]:
    """Run the engine: for each block, gather its targets' statistics and call
    ``quantize_block(layers, stats)`` (which replaces them); returns the targets outside the
    blocks, left for the caller. ``outputs(hidden)``: also run the last (quantized) block and
    hand over each window's output. ``after(i, block, hidden)``: block ``i`` is finished and
    ``hidden`` enters the next one (a resumable run's checkpoint). ``start``, ``resumed``:
    blocks before ``start`` were finished by an earlier run (the caller restored them) and
    ``resumed`` are the activations entering block ``start``."""
    from quanta.model.sources.stream import load

    prefix, blocks = find_blocks(model)
    inputs, kwargs = block_inputs(model, blocks[0], calib)
    if start:
        inputs = list(resumed or [])
    rest = list(targets)
    for i, block in enumerate(blocks):
        name = f"{prefix}.{i}."
        mine = [(n, m) for n, m in rest if n.startswith(name)]
        rest = [(n, m) for n, m in rest if not n.startswith(name)]
        if i >= start:
            load(model, name[:-1])  # a streamed model's block is read now (quantized layers drop theirs)
            if mine:
                quantize_block(mine, block_stats(block, mine, inputs, kwargs, hessian=hessian))
            if i + 1 < len(blocks) or outputs or after:  # the last block's outputs: for those two
                with held_weights(block):
                    run_windows(block, inputs, kwargs, width=_block_width(block))
            if after:
                after(i, block, inputs)
            trim()  # the block's temporaries: back to the system
        if progress:
            progress(i + 1, len(blocks))
    if outputs:
        outputs(inputs)
    return rest
