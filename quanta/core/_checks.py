"""One validator per concept, so that every medium's messages read alike.

Each medium passes its own range and its own word for the thing checked; the core owns the
wording. Every check raises :class:`quanta.errors.ConfigError` (or :class:`InputError` for data)
with a one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from quanta.errors import ConfigError, InputError


def check_bits(bits: Any, lo: int, hi: int, what: str = "bits") -> int:
    """``bits`` as an int in ``lo..hi``, else a :class:`ConfigError` naming the range."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise ConfigError(f"{what} must be an integer in {lo}..{hi}, got {bits!r}")
    return int(bits)


def check_choice(value: Any, choices: Iterable[str], what: str) -> str:
    """``value`` if it is one of ``choices``, else a :class:`ConfigError` listing them."""
    options = tuple(choices)
    if value not in options:
        raise ConfigError(f"unknown {what} {value!r} (choose from {', '.join(options)})")
    return value


def check_finite_number(value: Any, what: str) -> float:
    """``value`` as a finite float (NaN and ±Inf refused)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return v


def check_same_shape(a: Any, b: Any, what: str = "arrays") -> None:
    """Refuse two arrays of different shapes (both shapes in the message)."""
    sa, sb = tuple(np.shape(a)), tuple(np.shape(b))
    if sa != sb:
        raise ConfigError(f"{what} differ in shape: {sa} vs {sb}")


def check_finite_array(x: Any, what: str) -> None:
    """Refuse an array holding NaN or ±Inf (numpy arrays or torch tensors)."""
    if type(x).__module__.startswith("torch"):
        import torch

        ok = bool(torch.isfinite(x).all())
    else:
        ok = bool(np.isfinite(np.asarray(x)).all())
    if not ok:
        raise InputError(f"{what} holds NaN or Inf values")
