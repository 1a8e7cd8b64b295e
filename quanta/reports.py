"""Typed reports: what every medium returns, and the one way they become JSON.

A report is a frozen dataclass. :meth:`Report.to_json` gives a dict that ``json.dumps`` writes
as *strict* JSON: ``NaN`` and ``±Infinity`` (a silent file's peak level, say) become ``null``,
numpy scalars and arrays become numbers and lists, paths become strings. :meth:`Report.rows`
gives ``(label, text)`` pairs for a two-column table.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any


def jsonable(obj: Any) -> Any:
    """``obj`` with every value JSON can hold strictly: non-finite floats → ``None``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return obj.to_json() if hasattr(obj, "to_json") else jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if type(obj).__module__ == "numpy":
        return jsonable(obj.tolist())
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON text (``allow_nan=False``: a non-finite number is a bug, not output)."""
    return json.dumps(jsonable(obj), indent=2, allow_nan=False)


def fmt(value: Any) -> str:
    """A value for a table cell: floats with 2–5 significant decimals, ``-inf`` spelled out."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-inf" if value < 0 else ("inf" if value > 0 else "nan")
        return f"{value:.5f}" if 0 < abs(value) < 0.01 else f"{value:.2f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return str(value)


#: how a target's value reads, by kind
_TARGET_UNITS = {"size": lambda v: f"{round(v):,} bytes", "psnr": lambda v: f"{v:.2f} dB"}


def target_text(kind: str, value: float) -> str:
    """A target's value for people: ``3,754 bytes``, ``38.20 dB``, ``81.35``."""
    return _TARGET_UNITS.get(kind, lambda v: f"{v:.2f}")(float(value))


@dataclasses.dataclass(frozen=True)
class Report:
    """Base of every report: strict JSON and a plain two-column rendering."""

    def to_json(self) -> dict:
        """The report as a dict of JSON-safe values (non-finite numbers → ``None``)."""
        return jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                         if not f.metadata.get("private")})

    def rows(self) -> list[tuple[str, str]]:
        """``(field, text)`` pairs in field order (fields starting with ``_`` are private)."""
        return [(f.name.replace("_", " "), fmt(getattr(self, f.name)))
                for f in dataclasses.fields(self)
                if not f.name.startswith("_") and not f.metadata.get("private")]

    def with_output(self, path: Any) -> Report:
        """The same report naming ``path`` as its output (work is written to a temporary path
        first, then moved there); reports without an ``output`` field are returned as they are."""
        if any(f.name == "output" for f in dataclasses.fields(self)):
            return dataclasses.replace(self, output=str(path))
        return self

    @property
    def title(self) -> str:
        """A heading for the report's table."""
        return type(self).__name__.removesuffix("Report").lower() or "report"


def private(**kw: Any) -> Any:
    """A dataclass field kept out of JSON and tables (a live object a caller may still use)."""
    return dataclasses.field(repr=False, compare=False, metadata={"private": True}, **kw)
