"""Quantities typed by people: sizes with units."""

from __future__ import annotations

import re

from quanta.errors import ConfigError

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]i?[bB]|[bB])?\s*$")
_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str | int) -> int:
    """Bytes from ``95MB``, ``90.5MiB``, ``1.2GB`` or a plain number of bytes."""
    m = _SIZE.match(str(text))
    if not m:
        raise ConfigError(f"size {text!r}: give bytes or a number with a unit (95MB, 90.5MiB)")
    n = float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]
    if n < 1:
        raise ConfigError(f"size {text!r} must be positive")
    return int(n)
