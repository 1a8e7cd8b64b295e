"""Quantities typed by people: sizes with units, and sizes printed for people."""

from __future__ import annotations

import math
import re

from quanta.errors import ConfigError

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT](?:i?[bB])?|[bB])?\s*$")
_UNITS = {"b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str | int) -> int:
    """Bytes from ``95MB``, ``90.5MiB``, ``1.2GB``, ``150k`` (k, M, G alone: ×1000, as
    ImageMagick's ``150kb``), ``1e5`` or a plain number of bytes."""
    m = _SIZE.match(str(text))
    if not m:
        raise ConfigError(f"size {text!r}: give bytes or a number with a unit (95MB, 90.5MiB, 150k)")
    n = float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]
    if not math.isfinite(n) or n < 1:
        raise ConfigError(f"size {text!r}: at least 1 byte is needed")
    return int(n)


def format_size(n_bytes: float) -> str:
    """A size for people: ``812 B``, ``20.5 kB``, ``3.75 MB``, ``1.20 GB`` (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n_bytes) >= scale:
            value = n_bytes / scale
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"
    return f"{int(n_bytes)} B"
