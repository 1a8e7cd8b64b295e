"""Write GGUF files tensor by tensor through a rewrite: from another GGUF file (metadata and
tokenizer copied) — re-quantize its matrices to another GGML type with the ``gguf`` package's
numpy quantizer (how the benchmarks make llama.cpp-format peers, e.g. Q8_0), or redraw them
(``unbinned``) — or from metadata and tensors made elsewhere (:func:`write_gguf`; a Hugging Face
model's: :mod:`quanta.model.formats.gguf_hf`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import ConfigError, InputError

#: Per tensor: (name, the reader's tensor, its float32 values) → (array — or its bytes parked in
#: the writer's spill file —, raw GGML type or None).
Rewrite = Callable[[str, Any, np.ndarray], tuple[Any, Any]]


def rewrite_gguf(src: Path | str, dst: Path | str, rewrite: Rewrite, *,
                 progress: Callable[[int, int], None] | None = None,
                 extra: dict[str, str] | None = None, checksum: bool = False, spill: Any = None) -> Path:
    """Copy ``src``'s metadata to ``dst`` and each tensor through ``rewrite`` (written in place);
    ``extra``: string metadata added; ``checksum``: add the tensors' sha256
    (:func:`quanta.model.formats.integrity.gguf_digest`, verified when quanta reads the file);
    ``spill``: as :func:`write_gguf`'s."""
    from gguf import GGUFReader, GGUFValueType
    from gguf.quants import dequantize

    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: no such file")
    r = GGUFReader(src)
    fields = []
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = GGUFValueType(f.types[0])
        sub = GGUFValueType(f.types[-1]) if vtype == GGUFValueType.ARRAY and len(f.types) > 1 else None
        fields.append((key, f.contents(), vtype, sub))

    def tensors() -> Iterator[tuple[str, Any, np.ndarray]]:
        for t in r.tensors:
            arr = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
            yield t.name, t, arr.reshape(tuple(int(s) for s in reversed(t.shape)))

    return write_gguf(dst, r.fields["general.architecture"].contents(), fields, tensors(), rewrite,
                      count=len(r.tensors), progress=progress, extra=extra, checksum=checksum, spill=spill)


def write_gguf(dst: Path | str, arch: str, fields: list[tuple],
               tensors: Iterable[tuple[str, Any, np.ndarray]], rewrite: Rewrite, *, count: int = 0,
               progress: Callable[[int, int], None] | None = None, extra: dict[str, str] | None = None,
               checksum: bool = False, spill: Any = None) -> Path:
    """Write ``dst``: metadata ``fields`` (``(key, value, GGUFValueType, item type or None)``)
    and each of ``tensors`` (name, a reader's tensor or None, float32 values) through
    ``rewrite``; ``extra``/``checksum`` as :func:`rewrite_gguf`'s.

    Each rewritten tensor is parked in a spill file (``spill``, or one of its own beside
    ``dst``) as it is made — a rewrite may also return one parked already — and the file is
    written from there once the header is known: memory holds one tensor, not the model."""
    from gguf import GGUFValueType, GGUFWriter

    from quanta.model.formats.spill import Parked, Spill

    dst = Path(dst)
    own = spill is None
    spill = Spill(dst.parent) if own else spill
    try:
        w = GGUFWriter(dst, arch)
        for key, value, vtype, sub in fields:
            w.add_key_value(key, value, vtype, sub_type=sub)
        for key, value in (extra or {}).items():
            w.add_key_value(key, value, GGUFValueType.STRING)
        parked = []
        for i, (name, t, arr) in enumerate(tensors):
            out, raw = rewrite(name, t, arr)
            p = out if isinstance(out, Parked) else spill.put(out)
            w.add_tensor_info(name, p.shape, np.dtype(p.dtype), p.nbytes, raw_dtype=raw)
            parked.append((name, p))
            if progress:
                progress(i + 1, count)
        if checksum:
            from quanta.model.formats.integrity import GGUF_KEY, digest_of_hashes

            sums = digest_of_hashes((n, p.sha256) for n, p in parked)
            w.add_key_value(GGUF_KEY, sums, GGUFValueType.STRING)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for _, p in parked:  # one tensor in memory at a time
            w.write_tensor_data(spill.read(p))
        w.close()
    finally:
        if own:
            spill.close()
    return dst


def requantize_gguf(src: Path | str, dst: Path | str, qtype: str = "Q8_0") -> Path:
    """Copy ``src`` to ``dst`` with every 2-D tensor re-quantized to ``qtype`` (via float32)."""
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    try:
        target = GGMLQuantizationType[qtype]
    except KeyError:
        raise ConfigError(f"unknown GGML type {qtype!r}") from None

    def requantize(name: str, t: Any, arr: np.ndarray) -> tuple[np.ndarray, Any]:
        if arr.ndim == 2 and arr.shape[1] % 32 == 0:
            return quantize(arr, target), target
        return arr, None

    return rewrite_gguf(src, dst, requantize)
