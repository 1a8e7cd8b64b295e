"""``smollm2-unbinned``: a float SmolLM2 without the bundled file's 4-bit grid.

The bundled SmolLM2 weights are Q4_1 (asymmetric 4-bit in blocks of 32; the embedding Q8_0), so
any asymmetric 4-bit grid in blocks of 32 finds them again almost exactly and 4-bit comparisons
on that file are distorted. Here each weight is redrawn uniformly inside its own quantization
bin: ``w + d·(u − ½)``, with ``d`` the scale of the weight's block and ``u`` uniform on [0, 1)
from a seeded numpy generator (tensors in file order). The result is written once as an F32
GGUF (tokenizer and metadata copied) into the user's cache, and llama.cpp reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import InputError

NAME = "smollm2-unbinned"
SEED = 0
#: GGML block types whose block starts with its float16 scale ``d`` (sizes from GGML's table)
_STARTS_WITH_D = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")


def cache_dir() -> Path:
    """``$QUANTA_CACHE``, else ``$XDG_CACHE_HOME/quanta``, else ``~/.cache/quanta``."""
    env = os.environ.get("QUANTA_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quanta"


def path(seed: int = SEED) -> Path:
    """Where the unbinned file lives (it may not exist yet)."""
    return cache_dir() / f"SmolLM2-135M-Instruct.unbinned-seed{seed}.F32.gguf"


def block_scales(t: Any) -> np.ndarray | None:
    """The float16 scale ``d`` of every block of a block-quantized tensor (None for floats)."""
    from gguf import GGMLQuantizationType

    from quanta.model.formats.weight import BLOCK_TYPES

    kind = GGMLQuantizationType(t.tensor_type).name
    if kind in ("F32", "F16", "BF16"):
        return None
    if kind not in _STARTS_WITH_D:
        raise InputError(f"tensor {t.name}: unbinning supports {', '.join(_STARTS_WITH_D)}, not {kind}")
    raw = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1, BLOCK_TYPES[kind].type_size)
    return raw[:, :2].copy().view(np.float16).astype(np.float32)[:, 0]


def unbin_gguf(src: Path | str, dst: Path | str, *, seed: int = SEED, progress: Any = None) -> Path:
    """Write ``dst``: ``src`` with every block-quantized weight redrawn inside its bin (F32)."""
    from quanta.model.formats.gguf_rewrite import rewrite_gguf

    rng = np.random.default_rng(seed)

    def redraw(name: str, t: Any, arr: np.ndarray) -> tuple[np.ndarray, Any]:
        d = block_scales(t)
        if d is None:
            return arr, None
        u = rng.random(arr.size, dtype=np.float64).astype(np.float32)
        noise = (d[:, None] * (u.reshape(d.size, -1) - 0.5)).reshape(arr.shape)
        return (arr + noise).astype(np.float32), None

    return rewrite_gguf(src, dst, redraw, progress=progress)


def ensure(seed: int = SEED) -> Path:
    """The unbinned file, built on first use (atomically) from the bundled SmolLM2."""
    from quanta.model.sources.reading import bundled
    from quanta.outputs import atomic_output

    p = path(seed)
    if p.exists():
        return p
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(p) as tmp:
        unbin_gguf(bundled("smollm2"), tmp, seed=seed)
    return p
