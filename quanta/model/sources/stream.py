"""Hugging Face folders read block by block: memory holds one block's weights, not the model's.

:func:`open_streamed` builds the transformers model from ``config.json`` with every parameter on
PyTorch's ``meta`` device (a shape, no storage) beside a :class:`TensorStore` over the folder's
safetensors files. Code that needs weights asks for them by module name and gives them back:

* :func:`load` reads the parameters under a name (a block, a layer) as float32;
* :func:`release` returns a module's parameters to ``meta`` (a Linear replaced by its quantized
  form, a block measured and done with);
* the token embedding is never read whole: a lookup reads just the rows its ids name (a memory
  map), and whatever needs the whole table — quantizing it, measuring it, a tied head's logits —
  walks it in row slices (:func:`row_slices`, :func:`quantize_rows`);
* :func:`finish` reads whatever an output still needs that is on ``meta`` (float layers, an
  untied float head) before it is written.

A model loaded whole (a GGUF file, a quanta folder, a model built in memory) goes through the
same calls: they read nothing and release nothing, and the slices are views of its tensors. The
slice size does not depend on the source, so a streamed and a loaded model give the same bytes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quanta.errors import InputError
from quanta.model.quantize import cost
from quanta.model.sources.reading import SAFETENSORS_ITEMSIZE

_TORCH = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
_NUMPY = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16}
#: a row slice holds at most this many bytes of float32 (SmolLM2's whole embedding is one slice;
#: ``--max-memory`` may make it smaller: :func:`slices`)
SLICE_BYTES = cost.SLICE_BYTES


class TensorStore:
    """The tensors of a folder's safetensors files
    (:func:`~quanta.model.sources.reading.safetensors_entries`), read on demand as float32:
    whole, by rows, or a set of rows through a memory map."""

    def __init__(self, entries: dict[str, dict]) -> None:
        bad = sorted({e["dtype"] for e in entries.values()} - set(_TORCH))
        if bad:
            raise InputError(f"safetensors dtype {bad[0]} is not supported (F32, F16, BF16, F64)")
        self.entries = entries
        self._maps: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def read(self, name: str, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Rows ``start:stop`` of tensor ``name`` (all rows by default), float32."""
        e = self.entries[name]
        shape = e["shape"]
        rows = shape[0] if shape else 1
        stop = rows if stop is None else min(stop, rows)
        row_bytes = math.prod(shape[1:]) * SAFETENSORS_ITEMSIZE[e["dtype"]]
        buf = bytearray((stop - start) * row_bytes)
        with open(e["file"], "rb") as f:
            f.seek(e["start"] + start * row_bytes)
            if f.readinto(buf) != len(buf):
                raise InputError(f"{e['file']}: {name} is cut short")
        dtype = _TORCH[e["dtype"]]
        t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        return t.to(torch.float32).reshape((stop - start, *shape[1:]) if shape else ())

    def rows(self, name: str, ids: torch.Tensor) -> torch.Tensor:
        """The rows ``ids`` (1-D) of the matrix ``name``, float32, read through a memory map
        (only the pages holding them)."""
        m = self._maps.get(name)
        if m is None:
            e = self.entries[name]
            m = np.memmap(e["file"], dtype=_NUMPY[e["dtype"]], mode="r", offset=e["start"],
                          shape=tuple(e["shape"]))
            self._maps[name] = m
        sel = torch.from_numpy(np.ascontiguousarray(m[ids.numpy()]))
        return (sel.view(torch.bfloat16) if m.dtype == np.uint16 else sel).float()


class Streamed:
    """A meta model's store, the stored name of each of its parameters, and its embedding."""

    def __init__(self, model: nn.Module, store: TensorStore, names: dict[str, str], embedding: str) -> None:
        self.store, self.names, self.embedding = store, names, embedding
        mod = model.get_submodule(embedding)
        self._hooks = [mod.register_forward_pre_hook(self._lookup), mod.register_forward_hook(self._done)]

    def _lookup(self, mod: nn.Module, args: tuple) -> tuple:
        """Before a lookup: the embedding holds just the rows its ids name, ids renumbered."""
        ids = args[0]
        uniq, inv = torch.unique(ids, return_inverse=True)
        if uniq.numel() and (int(uniq[0]) < 0 or int(uniq[-1]) >= mod.weight.shape[0]):
            raise IndexError(f"token id outside 0..{mod.weight.shape[0] - 1}")
        mod._quanta_meta = mod.weight, getattr(mod, "padding_idx", None)  # type: ignore[assignment]
        rows = self.store.rows(self.names[self.embedding + ".weight"], uniq)
        mod._parameters["weight"] = nn.Parameter(rows, requires_grad=False)
        mod.padding_idx = None  # an index of the whole table; only gradients of the table use it
        return (inv.view(ids.shape), *args[1:])

    def _done(self, mod: nn.Module, _args: tuple, _out: torch.Tensor) -> None:
        mod._parameters["weight"], mod.padding_idx = mod._quanta_meta  # type: ignore[attr-defined]
        del mod._quanta_meta

    def unhook(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []


def streamed(model: nn.Module) -> Streamed | None:
    """The model's :class:`Streamed`, or None for a model loaded whole."""
    return getattr(model, "_quanta_streamed", None)


@contextlib.contextmanager
def _meta_parameters() -> Iterator[None]:
    """Modules built inside get their parameters on ``meta`` (buffers, such as rotary tables,
    stay real)."""
    register = nn.Module.register_parameter

    def on_meta(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(self, name, param)
        if param is not None:
            self._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=False)

    nn.Module.register_parameter = on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


def open_streamed(folder: Path, cls: Any, config: Any, entries: dict[str, dict]) -> nn.Module | None:
    """The model of class ``cls`` (an ``AutoModel…``) and ``config`` with its parameters on
    ``meta``, streamed from the tensors ``entries`` of ``folder``; None when the files do not name
    every parameter as the model does (the caller loads it whole)."""
    from quanta.model.sources.experts import split_experts

    with _meta_parameters():
        model = split_experts(cls.from_config(config, dtype=torch.float32))
    model.eval()
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    emb = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    head = next((n for n, m in model.named_modules() if m is model.get_output_embeddings()), None) \
        if hasattr(model, "get_output_embeddings") else None
    names = {}
    for n, p in model.named_parameters():
        if n in entries and tuple(entries[n]["shape"]) == tuple(p.shape):
            names[n] = n
        elif tied and head and n == head + ".weight" and emb + ".weight" in entries:
            names[n] = emb + ".weight"
        else:
            return None
    store = TensorStore(entries)
    for n, b in model.named_buffers():
        if n in entries:  # a stored buffer (rare): read now, it is small
            set_tensor(model, n, store.read(n).to(b.dtype), buffer=True)
    for n, p in model.named_parameters():  # norms and biases: read now, they are small
        if p.ndim < 2:
            set_tensor(model, n, store.read(names[n]))
    model._quanta_streamed = Streamed(model, store, names, emb)  # type: ignore[assignment]
    return model


def set_tensor(model: nn.Module, name: str, value: torch.Tensor, *, buffer: bool = False) -> None:
    """Make ``value`` the parameter (or buffer) called ``name`` (dotted) of ``model``."""
    parent, _, leaf = name.rpartition(".")
    mod = model.get_submodule(parent) if parent else model
    if buffer:
        mod._buffers[leaf] = value
    else:
        mod._parameters[leaf] = nn.Parameter(value, requires_grad=False)


def _under(name: str, prefix: str) -> bool:
    return not prefix or name == prefix or name.startswith(prefix + ".")


def load(model: nn.Module, prefix: str) -> None:
    """Read every parameter under the module name ``prefix`` ("" is the whole model) that is
    still on ``meta`` (nothing for a model loaded whole)."""
    s = streamed(model)
    if s is None:
        return
    for n, p in list(model.named_parameters()):
        if p.is_meta and _under(n, prefix):
            if n == s.embedding + ".weight":
                s.unhook()
            set_tensor(model, n, s.store.read(s.names[n]))


def release(model: nn.Module, module: nn.Module) -> None:
    """Return ``module``'s own parameters (recursively) to ``meta`` (nothing for a model loaded
    whole): its float weights are done with."""
    if streamed(model) is None:
        return
    for m in module.modules():
        for k, p in list(m._parameters.items()):
            if p is not None and not p.is_meta:
                m._parameters[k] = nn.Parameter(torch.empty(p.shape, device="meta"), requires_grad=False)


def finish(model: nn.Module, *, embedding: bool = True) -> None:
    """Read whatever is still on ``meta`` before the model is written or used whole (but the
    token embedding without ``embedding``: a GGUF export quantizes it in slices); a tied head
    left float shares the embedding's tensor again."""
    s = streamed(model)
    if s is None:
        return
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = head if isinstance(head, nn.Linear) else None  # (a quantized head holds no float weight)
    emb = model.get_input_embeddings()
    emb_w = emb.weight if isinstance(emb, nn.Embedding) else None
    tied = head is not None and s.names.get(_param_name(model, head)) == s.embedding + ".weight"
    for n, p in list(model.named_parameters()):
        skip = (tied and p is head.weight) or (not embedding and p is emb_w)
        if p.is_meta and not skip:
            load(model, n)
    if tied and head.weight.is_meta and emb_w is not None and not emb.weight.is_meta:
        head.weight = emb.weight


def _param_name(model: nn.Module, module: nn.Module) -> str:
    return next((n + ".weight" for n, m in model.named_modules() if m is module), "")


def row_slices(model: nn.Module, module: str | nn.Module) -> Iterator[tuple[int, torch.Tensor]]:
    """``(first row, rows)`` of a module's weight matrix in slices of at most
    :data:`SLICE_BYTES` of float32: read from the store for a streamed model's meta weight, views
    of the weight otherwise."""
    mod = model.get_submodule(module) if isinstance(module, str) else module
    w = mod.weight
    rows, cols = w.shape
    step = max(1, SLICE_BYTES // (4 * max(cols, 1)))
    s = streamed(model)
    for a in range(0, rows, step):
        if w.is_meta and s is not None:
            yield a, s.store.read(s.names[_param_name(model, mod)], a, a + step)
        else:
            yield a, w.data[a:a + step].float()


def deferred(model: nn.Module, name: str, dtype: torch.dtype) -> Any:
    """The parameter ``name`` of a streamed model, still unread, as a
    :class:`~quanta.model.formats.safetensors_out.Deferred` in ``dtype``: a matrix's row slices
    read from the source and converted as the writer asks for them (an untied float head of
    128,256 rows is never in memory whole; a norm read at once); None when it is not such a
    parameter."""
    from quanta.model.formats.safetensors_out import Deferred
    from quanta.model.formats.spill import raw_bytes

    s = streamed(model)
    if s is None or name not in s.names:
        return None
    p = model.get_parameter(name)
    if not p.is_meta:
        return None
    if p.ndim == 2 and name.endswith(".weight"):
        module = model.get_submodule(name.rpartition(".")[0])

        def chunks() -> Iterator[memoryview]:
            for _, w in row_slices(model, module):
                yield raw_bytes(w.to(dtype))[0]
    else:  # a norm or a bias (released with its block): small, read at once
        def chunks() -> Iterator[memoryview]:
            yield raw_bytes(s.store.read(s.names[name]).to(dtype))[0]

    size = torch.empty((), dtype=dtype).element_size()
    return Deferred(raw_bytes(torch.empty((0,), dtype=dtype))[1], tuple(p.shape), p.numel() * size, chunks)


@contextlib.contextmanager
def slices(nbytes: int) -> Iterator[None]:
    """Row slices of at most ``nbytes`` (float32) while the ``with`` block runs (the plan's,
    :attr:`~quanta.model.quantize.plan.QuantPlan.slice_bytes`); the same codes at any size."""
    global SLICE_BYTES
    before, SLICE_BYTES = SLICE_BYTES, nbytes
    try:
        yield
    finally:
        SLICE_BYTES = before


def quantize_rows(quantizer: Any, model: nn.Module, module: str | nn.Module, *, stats: Any = None,
                  name: str = "") -> Any:
    """``quantizer.quantize`` of a module's weight, slice by slice (:func:`row_slices`; every
    weight quantizer treats rows independently), as one
    :class:`~quanta.model.quantize.quantizers.QuantizedWeight`."""
    import dataclasses

    from quanta.memory import trim

    mod = model.get_submodule(module) if isinstance(module, str) else module
    codes, parts = None, []
    for a, w in row_slices(model, mod):
        part = quantizer.quantize(w, stats=stats, name=name)
        del w
        trim()  # the slice and its temporaries: back to the system before the next is read
        if a == 0 and len(part.codes) == mod.weight.shape[0]:
            return part  # one slice: the matrix itself
        if codes is None:  # every slice's codes go straight into one table (no list to concatenate)
            codes = torch.empty((mod.weight.shape[0], part.codes.shape[1]), dtype=part.codes.dtype)
        codes[a:a + len(part.codes)] = part.codes
        parts.append(dataclasses.replace(part, codes=torch.empty(0, dtype=part.codes.dtype)))
    first = parts[0]
    return dataclasses.replace(first, codes=codes, scales=torch.cat([p.scales for p in parts]),
                               zeros=None if first.zeros is None else torch.cat([p.zeros for p in parts]))


__all__ = ["SLICE_BYTES", "Streamed", "TensorStore", "deferred", "finish", "load", "open_streamed",
           "quantize_rows", "release", "row_slices", "set_tensor", "slices", "streamed"]
