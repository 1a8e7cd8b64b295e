"""Llama 3's rotary scaling in GGUF: the ``rope_freqs`` tensor.

Llama 3.1+ stretches the rotary embedding's low frequencies (transformers' ``rope_type:
"llama3"``: ``factor``, ``low_freq_factor``, ``high_freq_factor``,
``original_max_position_embeddings``). llama.cpp keeps no such keys: its converter writes one
float32 ``rope_freqs.weight`` of ``head_dim / 2`` factors, and every inverse frequency is divided
by its factor. :func:`factors` makes that tensor from a config as the converter does;
:func:`parameters` finds a config's parameters again from a file's factors, so that a GGUF file
loads with transformers' own llama3 rope (and the tokens it gives are checked against the factors
it was read from: anything else is refused in one line).
"""

from __future__ import annotations

import math

import numpy as np

#: the tensor's name in a GGUF file (gguf-py's MODEL_TENSOR.ROPE_FREQS)
NAME = "rope_freqs.weight"


def rope_params(config: dict) -> dict:
    """A Hugging Face config's rotary parameters (``rope_parameters`` or ``rope_scaling``; {} for none)."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return rope if isinstance(rope, dict) else {}


def rope_type(config: dict) -> str:
    """Its rotary scaling: "default", "linear", "llama3", …"""
    rope = rope_params(config)
    return str(rope.get("rope_type") or rope.get("type") or "default")


def rope_theta(config: dict) -> float:
    """Its rotary base (``rope_theta``, in ``rope_parameters`` in newer configs)."""
    rope = config.get("rope_parameters")
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    return float(theta or config.get("rope_theta") or 10000.0)


def _inv_freq(theta: float, head_dim: int) -> np.ndarray:
    import torch

    # float32 as the converter computes it (torch), so that the factors are its bytes
    return (1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))).numpy()


def factors(params: dict, theta: float, head_dim: int) -> np.ndarray:
    """The ``rope_freqs`` factors of llama3 rope ``params`` (float32, ``head_dim / 2``): 1 for
    wavelengths below ``original / high_freq_factor``, ``factor`` above ``original /
    low_freq_factor``, and the interpolation between."""
    factor = float(params.get("factor", 8.0))
    low = float(params.get("low_freq_factor", 1.0))
    high = float(params.get("high_freq_factor", 4.0))
    old = float(params.get("original_max_position_embeddings", 8192))
    out = []
    for freq in _inv_freq(theta, head_dim):
        wavelen = 2 * math.pi / float(freq)
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, np.float32)


def parameters(f: np.ndarray, theta: float, head_dim: int) -> dict | None:
    """llama3 rope parameters whose :func:`factors` are ``f`` (to 1e-5), or None. Llama 3.1's
    (low 1, high 4, original 8192) are tried first; otherwise the factors fix the rest: in the
    interpolated band ``s = (1/f − 1/factor) / (1 − 1/factor)`` is linear in the frequency,
    ``s = a·freq + b``, reaching 1 by the fastest frequency left at 1 and 0 by the slowest at
    ``factor`` — the band's points (or those ends) give ``a`` and ``b``, and (low, high,
    original) matter only up to one common scale (low = 1)."""
    f = np.asarray(f, np.float64)
    if f.shape != (head_dim // 2,) or not np.all(np.isfinite(f)) or f.min() < 1 or f.max() == 1:
        return None
    top = float(f.max())
    trials = [{"factor": top, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}]
    freq = _inv_freq(theta, head_dim).astype(np.float64)
    band = (f > 1 + 1e-6) & (f < top * (1 - 1e-6))
    pts = list(zip(freq[band], (1 / f[band] - 1 / top) / (1 - 1 / top)))
    ends = [(float(freq[f <= 1 + 1e-6].min()), 1.0)] if (f <= 1 + 1e-6).any() else []
    ends += [(float(freq[f >= top * (1 - 1e-6)].max()), 0.0)]
    pairs = [pts] if len(pts) >= 2 else [[*pts, e] for e in ends] if pts else [ends]
    lines = [np.polyfit(*zip(*pair), 1) for pair in pairs if len(pair) >= 2]
    for a, b in lines:
        if a > 0 and b < 0:
            high = 1 - 1 / b
            old = a * 2 * math.pi * (high - 1)
            trials.append({"factor": top, "low_freq_factor": 1.0, "high_freq_factor": float(high),
                           "original_max_position_embeddings": round(old) if abs(old - round(old)) < 1e-3
                           else float(old)})
    for p in trials:
        if np.allclose(factors(p, theta, head_dim), f, rtol=1e-5, atol=0):
            return {"rope_type": "llama3", **p}
    return None
