"""Mixed precision under a size budget: each tensor's format chosen from its measured
sensitivity by the core's allocator (:func:`quanta.core.allocate.allocate`).

Sensitivity comes from one pass of the float model over calibration windows, with gradients.
For a Linear layer ``y = W x`` the quantization error ``E = W − Ŵ`` moves its outputs by ``E x``;
to second order the model's loss (and its KL divergence to the float model) grows by

    ΔL ≈ ½ Σ_o ḡ²_o · (E H Eᵀ)_oo,

``H`` the mean of ``x xᵀ`` over the calibration tokens and ``ḡ²_o`` the mean squared gradient of
the per-token loss with respect to output ``o`` (a diagonal Fisher of the layer's outputs — the
sensitivity of HAWQ and SqueezeLLM, with GPTQ's input Hessian). The token embedding's error enters
the residual stream directly: ``ΔL ≈ ½ Σ_{v,d} Ḡ²_{v,d} E²_{v,d}``, ``Ḡ²`` the squared gradients
of the embedding's outputs summed per token id (over all tokens); a tied embedding is also the
output head and adds that layer's term. Each candidate format's ``E`` is its round-to-nearest
error, so the figures rank formats and tensors; the calibrated method applied afterwards (GPTQ)
lowers every term. A lattice type's error (a grid search per weight) is taken on a sample of a
large unit's rows (:func:`unit_losses`). The units add up, so the allocator minimises the
predicted ΔL under the byte budget.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quanta.errors import ConfigError
from quanta.model.arch import ARCHITECTURES, stacked
from quanta.model.formats.weight import WeightFormat
from quanta.model.quantize.pricing import price_stride
from quanta.model.quantize.quantizers import LayerStats, WeightQuantizer, quantizer_for, quantizers_for
from quanta.model.runtime.qembed import ties_head
from quanta.progress import Progress

EMBEDDING = "token_embd"  # the unit name of the token embedding (and a tied output head)


Candidates = Sequence[WeightFormat] | dict[str, Sequence[WeightFormat]]


def _for(candidates: Candidates, name: str) -> Sequence[WeightFormat]:
    """The candidates of unit ``name`` (one list for all units, or a list per unit name)."""
    return candidates[name] if isinstance(candidates, dict) else candidates


@dataclass
class Sensitivity:
    """What the calibrated pass measured: per layer the summed squared output gradients and the
    input statistics (with Hessian); per token id seen (``embedding_rows``, sorted) and dimension
    the embedding's summed squared gradients; the token count. The pass yields one of these per
    block and one for the embedding and head (:func:`sensitivities`)."""

    grad_sq: dict[str, torch.Tensor]
    inputs: dict[str, LayerStats]
    embedding_grad_sq: torch.Tensor | None
    tokens: int
    embedding_rows: torch.Tensor | None = None

    def layer_loss(self, name: str, err: torch.Tensor, first: int = 0,
                   h: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> float:
        """Predicted loss increase of the error ``err`` (``rows × in``: the layer's rows from
        ``first`` on, or the rows ``rows`` names) on layer ``name`` (``h``: its Hessian in
        float32, if the caller has it)."""
        return float(self.row_losses(name, err, first, h, rows).sum())

    def row_losses(self, name: str, err: torch.Tensor, first: int = 0,
                   h: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`layer_loss` row by row (float32, one figure per row of ``err``)."""
        h = self.inputs[name].hessian.to(torch.float32) if h is None else h
        g2 = self.grad_sq[name][first:first + err.shape[0]] if rows is None else self.grad_sq[name][rows]
        g2 = (g2 / self.tokens).to(torch.float32)
        return 0.5 * g2 * ((err @ h) * err).sum(1)

    def embedding_loss(self, err: torch.Tensor, *, tied: bool, first: int = 0,
                       h: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> float:
        """Predicted loss increase of the error ``err`` (the embedding's rows from ``first`` on, or
        the sorted rows ``rows`` names) on the embedding (and, tied, on the output head, ``h`` its
        Hessian if given)."""
        seen = self.embedding_rows
        if rows is None:
            sel = (seen >= first) & (seen < first + err.shape[0])
            e = err[seen[sel] - first]
        else:
            sel = torch.isin(seen, rows)
            e = err[torch.searchsorted(rows, seen[sel])]
        d = 0.5 * float(((self.embedding_grad_sq[sel] / self.tokens) * e * e).sum())
        return d + (self.layer_loss("lm_head", err, first, h, rows) if tied else 0.0)


def sensitivities(model: nn.Module, calib: torch.Tensor, names: Sequence[str], *,
                  progress: Progress | None = None) -> Iterator[tuple[list[str], Sensitivity]]:
    """The sensitivity pass, one block at a time: the windows ``calib`` (``(n, tokens)`` ids) run
    forward block by block (each block's inputs kept), the summed next-token loss is
    back-propagated through the output head in vocabulary slices, then through the blocks from
    the last to the first — each block read (a streamed model's), run again on its kept inputs
    with gradients, and released. Yields ``(layers, Sensitivity)`` for each block's layers among
    ``names`` while the block is still loaded (last block first), then ``([], …)`` with the
    embedding's gradients and the output head's statistics (measured when it is tied to the
    embedding or among ``names``). Memory: one float block, one block's inputs (the others wait in
    a temporary file), one slice of the head. The same figures as one autograd pass over the
    whole model, to float rounding (tested against it)."""
    from quanta.memory import trim
    from quanta.model.quantize.calibrate import block_inputs, find_blocks, run_block
    from quanta.model.sources.stream import load, release

    prefix, blocks = find_blocks(model)
    calib = torch.as_tensor(calib)
    head_name = _head_name(model)
    head_watched = head_name is not None and (ties_head(model) or head_name in names)
    outside = [n for n in names if not n.startswith(prefix + ".") and n != head_name]
    if outside:
        raise ConfigError(f"{outside[0]}: the sensitivity pass measures the blocks' layers and the head")
    steps, done = 2 * len(blocks) + 2, 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, steps)

    grads_on = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    spill = tempfile.TemporaryDirectory(prefix="quanta-sensitivity-")
    try:
        x, kwargs = block_inputs(model, blocks[0], calib)
        kept = []
        with torch.no_grad():
            for i, block in enumerate(blocks):
                load(model, f"{prefix}.{i}")
                kept.append(_spill(x, Path(spill.name) / f"{i}.npy"))
                for w, h in enumerate(x):
                    x[w] = run_block(block, h, kwargs)
                release(model, block)
                tick()
        g, head = _head_backward(model, x, calib, watch=head_watched)
        trim()
        tick()
        for i in reversed(range(len(blocks))):
            load(model, f"{prefix}.{i}")
            mine = [n for n in names if n.startswith(f"{prefix}.{i}.")]
            piece = _block_backward(model, blocks[i], mine, _unspill(kept[i]), g, kwargs)
            piece.tokens = calib.numel()
            yield mine, piece
            release(model, blocks[i])
            kept[i].unlink()
            trim()  # the block's temporaries: back to the system
            tick()
        rows, sq = _embedding_grads(model, blocks[0], calib, g)
        tick()
        yield [], Sensitivity(*head, sq, calib.numel(), rows)
    finally:
        spill.cleanup()
        for p, on in zip(model.parameters(), grads_on):
            p.requires_grad_(on)


def _spill(xs: list[torch.Tensor], path: Path) -> Path:
    """Each window's block input, kept on disk (float32, exactly) until the backward pass."""
    np.save(path, torch.stack(xs).numpy())
    return path


def _unspill(path: Path) -> list[torch.Tensor]:
    return list(torch.from_numpy(np.load(path)).unbind(0))


def _head_name(model: nn.Module) -> str | None:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return next((n for n, m in model.named_modules() if m is head), None) if head is not None else None


def _watch(layers: dict[str, nn.Module], stats: dict[str, LayerStats],
           grad_sq: dict[str, torch.Tensor]) -> list:
    """Hooks gathering each layer's input statistics (layers fed the same tensor in one window
    share one :class:`LayerStats`) and its summed squared output gradients; the last item is
    the window's map of seen inputs, for the caller to clear per window."""
    owner: dict[str, str] = {}
    seen: dict[int, tuple[str, torch.Tensor]] = {}  # the tensors kept alive: no address reused

    def pre(_m: nn.Module, args: tuple, n: str) -> None:
        x = args[0]
        o = owner.setdefault(n, seen.setdefault(x.data_ptr(), (n, x))[0])
        if o == n:
            stats.setdefault(n, LayerStats(x.shape[-1], with_hessian=True, dtype=torch.float32)).add(x)
        else:
            stats[n] = stats[o]

    def post(_m: nn.Module, _args: tuple, out: torch.Tensor, n: str) -> None:
        def grad(g: torch.Tensor) -> None:  # returns None: the gradient itself is left alone
            grad_sq[n] += (g.detach().float() ** 2).reshape(-1, g.shape[-1]).sum(0, dtype=torch.float64)

        out.register_hook(grad)

    hooks: list = [m.register_forward_pre_hook(lambda m, a, n=n: pre(m, a, n)) for n, m in layers.items()]
    hooks += [m.register_forward_hook(lambda m, a, o, n=n: post(m, a, o, n)) for n, m in layers.items()]
    return [*hooks, seen]


def _block_backward(model: nn.Module, block: nn.Module, names: list[str], xs: list[torch.Tensor],
                    gs: list[torch.Tensor], kwargs: dict) -> Sensitivity:
    """Run ``block`` again on each window's kept input with gradients, back-propagate the
    window's output gradient ``gs[w]`` (replaced by the input's), and gather its layers'
    figures."""
    from quanta.model.quantize.calibrate import run_block
    from quanta.model.sources.experts import every_token

    mods = dict(model.named_modules())
    layers = {n: mods[n] for n in names}
    grad_sq = {n: torch.zeros(m.out_features, dtype=torch.float64) for n, m in layers.items()}
    stats: dict[str, LayerStats] = {}
    *hooks, seen = _watch(layers, stats, grad_sq)
    try:
        for w, x in enumerate(xs):
            seen.clear()
            xi = x.detach().requires_grad_(True)
            with torch.enable_grad(), every_token(block):  # every expert's inputs; routed gradients
                out = run_block(block, xi, kwargs)
                out.backward(gs[w])
            gs[w] = xi.grad
    finally:
        for h in hooks:
            h.remove()
    for st in stats.values():
        st.flush()
    return Sensitivity(grad_sq, stats, None, 0)


def _head_backward(model: nn.Module, hs: list[torch.Tensor], calib: torch.Tensor, *,
                   watch: bool) -> tuple[list[torch.Tensor], tuple[dict, dict]]:
    """Each window's gradient of the summed next-token loss with respect to the last block's
    output, through the final norm and the head — the logits in slices of the head's rows
    (:func:`~quanta.model.sources.stream.row_slices`: a log-sum-exp pass, then the gradient
    pass), soft-capped where the config says so; with ``watch``, the head's input statistics and
    summed squared output gradients (keyed "lm_head")."""
    from quanta.model.arch import for_hf
    from quanta.model.sources.stream import row_slices

    norm = model.get_submodule(for_hf(type(model).__name__).final_norm)
    head = model.get_output_embeddings()
    cap = getattr(model.config, "final_logit_softcapping", None)
    bias = None if head.bias is None else head.bias.detach().float()
    grad_sq = torch.zeros(head.out_features, dtype=torch.float64)
    stats = LayerStats(head.in_features, with_hessian=True, dtype=torch.float32)

    def logits(z_in: torch.Tensor, a: int, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = z_in @ w.t()
        if bias is not None:
            raw = raw + bias[a:a + w.shape[0]]
        return raw, (torch.tanh(raw / cap) * cap if cap else raw)

    out = []
    for h, ids in zip(hs, calib):
        h = h.detach().requires_grad_(True)
        with torch.enable_grad():
            hn = norm(h)
        z_in = hn.detach().reshape(-1, hn.shape[-1]).float()
        if watch:
            stats.add(z_in)
        top = torch.full((z_in.shape[0],), -torch.inf)
        total = torch.zeros(z_in.shape[0])
        kept = []  # the window's logits, slice by slice (tokens × vocabulary floats in all)
        for a, w in row_slices(model, head):
            raw, z = logits(z_in, a, w)
            kept.append((raw, z))
            m = torch.maximum(top, z.max(1).values)
            total = total * torch.exp(top - m) + torch.exp(z - m[:, None]).sum(1)
            top = m
        lse = top + torch.log(total)
        target = ids[1:]
        gz_in = torch.zeros_like(z_in)
        for (a, w), (raw, z) in zip(row_slices(model, head), kept):
            dz = torch.exp(z - lse[:, None])
            dz[-1] = 0.0  # the last position predicts nothing
            hit = (target >= a) & (target < a + w.shape[0])
            dz[torch.nonzero(hit).reshape(-1), target[hit] - a] -= 1.0
            if cap:
                dz = dz * (1.0 - torch.tanh(raw / cap) ** 2)
            gz_in += dz @ w
            if watch:
                grad_sq[a:a + w.shape[0]] += (dz ** 2).sum(0, dtype=torch.float64)
        with torch.enable_grad():
            hn.backward(gz_in.view_as(hn))
        out.append(h.grad)
    return out, (({"lm_head": grad_sq}, {"lm_head": stats}) if watch else ({}, {}))


def _embedding_grads(model: nn.Module, first: nn.Module, calib: torch.Tensor,
                     gs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The token ids seen (sorted) and, per id and dimension, the summed squared gradients of
    the embedding's outputs — block 0's input gradients ``gs`` carried back through whatever the
    model does between its embedding and block 0 (a scale, or nothing)."""
    from quanta.model.quantize.calibrate import StopForwardError

    emb = model.get_input_embeddings()
    rows = torch.unique(calib)
    sq = torch.zeros(len(rows), emb.embedding_dim)
    caught: list[torch.Tensor] = []

    def catch(_m: nn.Module, args: tuple, kw: dict) -> None:
        caught.append(args[0] if args else kw["hidden_states"])
        raise StopForwardError

    hook = first.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        for ids, g in zip(calib, gs):
            with torch.no_grad():
                e = emb(ids[None])
            e = e.detach().requires_grad_(True)
            caught.clear()
            with torch.enable_grad():
                try:
                    model(inputs_embeds=e, use_cache=False)
                except StopForwardError:
                    pass
                ge = g if caught[0] is e else torch.autograd.grad(caught[0], e, g)[0]
            sq.index_add_(0, torch.searchsorted(rows, ids), ge.reshape(-1, ge.shape[-1]).float() ** 2)
    finally:
        hook.remove()
    return rows, sq


def measure(model: nn.Module, calib: torch.Tensor, names: Sequence[str], *,
            progress: Progress | None = None) -> Sensitivity:
    """The whole :func:`sensitivities` pass in one :class:`Sensitivity` (every layer's
    statistics kept: for small models and tests; :func:`measure_table` keeps one block's)."""
    grad_sq: dict[str, torch.Tensor] = {}
    inputs: dict[str, LayerStats] = {}
    last = None
    for _, piece in sensitivities(model, calib, names, progress=progress):
        grad_sq |= piece.grad_sq
        inputs |= piece.inputs
        last = piece
    return Sensitivity(grad_sq, inputs, last.embedding_grad_sq, last.tokens, last.embedding_rows)


def unit_shapes(model: nn.Module, names: Sequence[str], *, embedding: bool) -> dict[str, tuple[int, int]]:
    """The (rows, columns) of every unit the budget is shared among (Linear layers, the
    embedding) — shapes only: a streamed model's weights are not read."""
    mods = dict(model.named_modules())
    out = {n: (mods[n].out_features, mods[n].in_features) for n in names}
    if embedding:
        emb = model.get_input_embeddings()
        out[EMBEDDING] = (emb.num_embeddings, emb.embedding_dim)
    return out


def _reference(candidates: Sequence[WeightFormat], strides: list[int]) -> int | None:
    """The candidate a sampled type's price leans on: the fewest-bit one priced on every row."""
    whole = [j for j, k in enumerate(strides) if k == 1]
    return min(whole, key=lambda j: candidates[j].bits) if whole else None


def _rtn_error(x: torch.Tensor, fmt: WeightFormat, name: str) -> torch.Tensor:
    return x - quantizer_for("rtn", fmt).quantize(x, name=name).dequantize()


def _sampled(sens: Sensitivity, which: str, w: torch.Tensor, a: int, k: int, fmt: WeightFormat,
             name: str, h: torch.Tensor | None, ref_rows: torch.Tensor | None) -> np.ndarray:
    """One row slice's share of a sampled price (:func:`unit_losses`): ``fmt``'s and the
    reference's loss on the rows of the largest reference loss, the reference's on the other
    rows, and both formats' on every ``k``-th of those — or, with no reference, the even sample
    counted k times."""
    n = w.shape[0]
    even = torch.arange((-a) % k, n, k)
    top = torch.zeros(n, dtype=torch.bool)
    if ref_rows is not None:
        top[torch.topk(ref_rows, min(n, -(-len(even) // 4))).indices] = True
    even = even[~top[even]]
    took = torch.cat([top.nonzero()[:, 0], even]).sort().values
    lat = torch.zeros(n)
    lat[took] = sens.row_losses(which, _rtn_error(w[took], fmt, name), h=h, rows=took + a)
    if ref_rows is None:
        return np.array([float(lat.sum()) * k, 0.0, 0.0, 0.0, 0.0])
    return np.array([float(lat[top].sum()), float(ref_rows[top].sum()), float(ref_rows[~top].sum()),
                     float(lat[even].sum()), float(ref_rows[even].sum())])


def unit_losses(model: nn.Module, sens: Sensitivity, name: str,
                candidates: Sequence[WeightFormat]) -> np.ndarray:
    """Predicted loss increase of unit ``name`` in each candidate format (its round-to-nearest
    error); the weight in row slices (:func:`~quanta.model.sources.stream.row_slices`).

    A lattice type on a large unit (:func:`~quanta.model.quantize.pricing.price_stride`: k > 1)
    is priced on a sample of rows against a reference — the fewest-bit format priced on every row
    (a K-quant): the rows whose reference loss is largest (a quarter of the sample) exactly, and
    the rest by the ratio of the two formats' losses on every k-th row, times the reference's loss
    there; a few rows can hold most of a layer's loss (those that feed its most sensitive
    outputs), which an even sample alone would miss. The embedding's lookup term is taken on
    every row the text uses."""
    from quanta.model.sources.stream import row_slices

    tied = ties_head(model)
    emb = name == EMBEDDING
    module = model.get_input_embeddings() if emb else model.get_submodule(name)
    which = "lm_head" if emb else name
    h = sens.inputs[which].hessian.to(torch.float32) if which in sens.inputs else None  # once per unit
    strides = [price_stride(c, *module.weight.shape) for c in candidates]
    ref = _reference(candidates, strides)
    rowwise = not emb or tied  # a row-wise term (the layer's, or the tied head's) to sample
    acc = {j: np.zeros(5) for j, k in enumerate(strides) if k > 1}  # _sampled's sums
    row = np.zeros(len(candidates))
    for a, w in row_slices(model, module):
        ref_rows = None
        for j, c in enumerate(candidates):
            if strides[j] > 1:
                continue
            err = _rtn_error(w, c, name)
            if j == ref and rowwise:  # kept row by row for the sampled types
                ref_rows = sens.row_losses(which, err, a, h)
            if emb:
                row[j] += sens.embedding_loss(err, tied=tied, first=a, h=h)
            else:
                row[j] += float(ref_rows.sum()) if j == ref else sens.layer_loss(name, err, a, h)
        for j in acc:
            if emb:  # the lookup's term on the rows the text uses, all of them
                seen = sens.embedding_rows
                mine = seen[(seen >= a) & (seen < a + w.shape[0])]
                err = _rtn_error(w[mine - a], candidates[j], name)
                row[j] += sens.embedding_loss(err, tied=False, rows=mine)
            if rowwise:
                acc[j] += _sampled(sens, which, w, a, strides[j], candidates[j], name, h, ref_rows)
    for j, (exact, exact_ref, rest, num, den) in acc.items():
        # the even sample's ratio; the top rows' where a unit's few rows left the sample only those
        ratio = num / den if den > 0 else exact / exact_ref if exact_ref > 0 else 0.0
        row[j] += exact + rest * ratio
    return row


def loss_table(model: nn.Module, sens: Sensitivity, shapes: dict[str, tuple[int, int]],
               candidates: Candidates, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Predicted loss increase of each unit of ``shapes`` in each of its candidate formats, from
    a whole :func:`measure`."""
    table = {}
    for k, name in enumerate(shapes):
        table[name] = unit_losses(model, sens, name, _for(candidates, name))
        if progress:
            progress(k + 1, len(shapes))
    return table


def measure_table(model: nn.Module, calib: torch.Tensor, names: Sequence[str], candidates: Candidates, *,
                  embedding: bool, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """:func:`loss_table` straight from the pass (:func:`sensitivities`): each block's units
    are priced while the block is loaded and its statistics dropped after, so memory holds one
    block's Hessians, not the model's; the output head (when it is a unit) and the embedding
    (``embedding``) last."""
    table = {}
    head = _head_name(model)
    for mine, piece in sensitivities(model, calib, names, progress=progress):
        last = [*([head] if head in names else []), *([EMBEDDING] if embedding else [])]
        for n in (mine if piece.embedding_rows is None else last):  # a block's, or the final piece
            table[n] = unit_losses(model, piece, n, _for(candidates, n))
    return {n: table[n] for n in [*names, *([EMBEDDING] if embedding else [])]}


@dataclass(frozen=True)
class MixedPlan:
    """The chosen format per unit, with the predicted loss increase and the bytes."""

    choice: dict[str, WeightFormat]
    predicted_loss: float
    nbytes: int
    budget: int
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # each unit's (rows, cols)

    def bits_per_weight(self) -> dict[str, float]:
        """Stored bits per weight of each chosen format, over the units that took it."""
        acc: dict[str, list[int]] = {}
        for n, c in self.choice.items():
            rows, cols = self.shapes[n]
            a = acc.setdefault(c.label, [0, 0])
            a[0] += c.nbytes(rows, cols)
            a[1] += rows * cols
        return {label: 8.0 * b / max(w, 1) for label, (b, w) in acc.items()}

    def summary(self) -> dict[str, int]:
        """Units per format label."""
        out: dict[str, int] = {}
        for c in self.choice.values():
            out[c.label] = out.get(c.label, 0) + 1
        return dict(sorted(out.items()))

    def by_kind(self) -> dict[str, dict[str, int]]:
        """Units per format for each kind of tensor (``self_attn.q_proj``, ``token_embd``, ...)."""
        out: dict[str, dict[str, int]] = {}
        for name, c in self.choice.items():
            kind = re.sub(r"^.*?\.\d+\.", "", stacked(name))
            out.setdefault(kind, {})
            out[kind][c.label] = out[kind].get(c.label, 0) + 1
        return out


def choose(table: dict[str, np.ndarray], shapes: dict[str, tuple[int, int]],
           candidates: Candidates, budget: int, *, together: dict[str, str] | None = None) -> MixedPlan:
    """One candidate per unit (``shapes``: :func:`unit_shapes`): least predicted loss with the
    units' bytes within ``budget``. ``together``: unit → the group whose units take one format
    (a mixture's experts of one kind in one block, :meth:`~quanta.model.arch.Architecture.stack`:
    one GGUF tensor, one type): a group's losses add up, its rows too."""
    from quanta.core.allocate import allocate

    group = {n: (together or {}).get(n, n) for n in table}
    if len(set(group.values())) < len(group):
        members: dict[str, list[str]] = {}
        for n, g in group.items():
            members.setdefault(g, []).append(n)
        table = {g: np.sum([table[n] for n in ns], axis=0) for g, ns in members.items()}
        grouped = {g: (sum(shapes[n][0] for n in ns), shapes[ns[0]][1]) for g, ns in members.items()}
        cands = {g: _for(candidates, ns[0]) for g, ns in members.items()}
        plan = choose(table, grouped, cands, budget)
        return MixedPlan({n: plan.choice[g] for n, g in group.items()}, plan.predicted_loss, plan.nbytes,
                         plan.budget, {n: tuple(shapes[n]) for n in group})
    names = list(table)
    sizes = [[c.nbytes(*shapes[n]) for c in _for(candidates, n)] for n in names]
    least = sum(min(s) for s in sizes)
    if budget < least:
        raise ConfigError(f"the size target leaves {budget / 1e6:.2f} MB for the quantized tensors; "
                          f"the smallest formats need {least / 1e6:.2f} MB")
    a = allocate([table[n] for n in names], sizes, budget)
    choice = {n: _for(candidates, n)[int(j)] for n, j in zip(names, a.choice)}
    return MixedPlan(choice, float(a.distortion), int(a.size), int(budget),
                     {n: tuple(shapes[n]) for n in names})


_KINDS = tuple(k for a in ARCHITECTURES.values() for k in a.linears)
_LAYER = re.compile(r"\.(\d+)\.")


def bit_grid(mixed: dict) -> tuple[np.ndarray, list[str]]:
    """Bits per weight of every tensor inside the blocks, as a (tensor kinds × blocks) array
    (NaN where a kind is absent), and the kinds, from a plan as :func:`describe` gives it."""
    bpw = mixed["bits_per_weight"]
    layered = {stacked(n): bpw[label] for n, label in mixed["map"].items() if _LAYER.search(n)}
    blocks = 1 + max((int(_LAYER.search(n).group(1)) for n in layered), default=0)
    kinds = [k for k in _KINDS if any(n.endswith(k) for n in layered)] or sorted(
        {_LAYER.split(n, 1)[-1] for n in layered})
    grid = np.full((len(kinds), blocks), np.nan)
    for n, b in layered.items():
        grid[kinds.index(_LAYER.split(n, 1)[-1]), int(_LAYER.search(n).group(1))] = b
    return grid, kinds


def plot_map(mixed: dict, path: Path | str, title: str = "") -> Path:
    """Draw bits per weight of every tensor by layer (rows: tensor kinds; columns: blocks) from
    a plan as :func:`describe` gives it, to ``path`` (PNG, :func:`quanta.render.plots.heat_map`)."""
    from quanta.render.plots import heat_map

    grid, kinds = bit_grid(mixed)
    emb = mixed["map"].get(EMBEDDING)
    extra = f"; token embedding {emb}" if emb else ""
    return heat_map(grid, rows=[k.split(".")[-1] for k in kinds], xlabel="block",
                    title=title or f"bits per weight by tensor ({mixed['tensor_bytes'] / 1e6:.1f} MB of "
                    f"weights{extra})", label="bits per weight", png=path)


def plan_quantizers(plan: MixedPlan, method: str) -> dict[str, WeightQuantizer]:
    """The quantizer of each Linear unit (``method`` on the unit's chosen grid)."""
    return quantizers_for(method, {n: c for n, c in plan.choice.items() if n != EMBEDDING})


def describe(plan: MixedPlan) -> dict[str, Any]:
    """The plan as JSON: the map, each format's bits per weight, and the totals."""
    return {"map": {n: c.label for n, c in plan.choice.items()}, "summary": plan.summary(),
            "bits_per_weight": plan.bits_per_weight(),
            "by_kind": plan.by_kind(), "predicted_loss_increase": plan.predicted_loss,
            "tensor_bytes": plan.nbytes, "budget_bytes": plan.budget}


__all__ = [
    "EMBEDDING",
    "MixedPlan",
    "Sensitivity",
    "bit_grid",
    "choose",
    "describe",
    "loss_table",
    "measure",
    "measure_table",
    "plan_quantizers",
    "plot_map",
    "sensitivities",
    "unit_losses",
    "unit_shapes",
]
