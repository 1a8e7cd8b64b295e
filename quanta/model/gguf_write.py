"""Write GGUF files: re-quantize a GGUF's matrices to another GGML type with the ``gguf``
package's own numpy quantizer (how the benchmarks make llama.cpp-format peers, e.g. Q8_0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quanta.errors import ConfigError, InputError


def requantize_gguf(src: Path | str, dst: Path | str, qtype: str = "Q8_0") -> Path:
    """Copy ``src`` to ``dst`` with every 2-D tensor re-quantized to ``qtype`` (via float32)."""
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize, quantize

    try:
        target = GGMLQuantizationType[qtype]
    except KeyError:
        raise ConfigError(f"unknown GGML type {qtype!r}") from None
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputError(f"{src}: no such file")
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(dst, arch)
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = GGUFValueType(f.types[0])
        sub = GGUFValueType(f.types[-1]) if vtype == GGUFValueType.ARRAY and len(f.types) > 1 else None
        w.add_key_value(key, f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        arr = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        arr = arr.reshape(tuple(int(s) for s in reversed(t.shape)))
        if arr.ndim == 2 and arr.shape[1] % 32 == 0:
            w.add_tensor(t.name, quantize(arr, target), raw_dtype=target)
        else:
            w.add_tensor(t.name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst
