"""Write GGUF files by rewriting another one tensor by tensor (metadata and tokenizer copied):
re-quantize its matrices to another GGML type with the ``gguf`` package's numpy quantizer (how
the benchmarks make llama.cpp-format peers, e.g. Q8_0), or redraw them (``unbinned``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import ConfigError, InputError

#: Per tensor: (name, the reader's tensor, its float32 values) → (array, raw GGML type or None).
Rewrite = Callable[[str, Any, np.ndarray], tuple[np.ndarray, Any]]


def rewrite_gguf(src: Path | str, dst: Path | str, rewrite: Rewrite, *,
                 progress: Callable[[int, int], None] | None = None,
                 extra: dict[str, str] | None = None, checksum: bool = False) -> Path:
    """Copy ``src``'s metadata to ``dst`` and each tensor through ``rewrite`` (written in place);
    ``extra``: string metadata added; ``checksum``: add the tensors' sha256
    (:func:`quanta.model.formats.integrity.gguf_digest`, verified when quanta reads the file)."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputError(f"{src}: no such file")
    r = GGUFReader(src)
    w = GGUFWriter(dst, r.fields["general.architecture"].contents())
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = GGUFValueType(f.types[0])
        sub = GGUFValueType(f.types[-1]) if vtype == GGUFValueType.ARRAY and len(f.types) > 1 else None
        w.add_key_value(key, f.contents(), vtype, sub_type=sub)
    for key, value in (extra or {}).items():
        w.add_key_value(key, value, GGUFValueType.STRING)
    written = []
    for i, t in enumerate(r.tensors):
        arr = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        arr = arr.reshape(tuple(int(s) for s in reversed(t.shape)))
        out, raw = rewrite(t.name, t, arr)
        w.add_tensor(t.name, out, raw_dtype=raw) if raw is not None else w.add_tensor(t.name, out)
        written.append((t.name, out))
        if progress:
            progress(i + 1, len(r.tensors))
    if checksum:
        from quanta.model.formats.integrity import GGUF_KEY, gguf_digest

        w.add_key_value(GGUF_KEY, gguf_digest(written), GGUFValueType.STRING)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
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
