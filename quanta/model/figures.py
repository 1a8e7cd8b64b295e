"""The weight figures every model report carries (as :func:`quanta.model.apply.weight_stats`
measures them), as one base class — no torch needed to import it."""

from __future__ import annotations

from dataclasses import dataclass, fields

from quanta.reports import Report


@dataclass(frozen=True)
class WeightFigures(Report):
    """Bytes held for the weights (scales included), parameters, bits per weight over every
    matrix and over the quantized ones."""

    weight_bytes: int
    params: int
    bits_per_weight: float
    quantized_params: int
    bits_per_quantized_weight: float | None

    def rows(self) -> list[tuple[str, str]]:
        """A subclass's own fields first (what the model is), then the weight figures."""
        shared = {f.name for f in fields(WeightFigures)}
        names = [f.name for f in fields(self) if not f.name.startswith("_")
                 and not f.metadata.get("private")]
        pairs = list(zip(names, super().rows()))
        return [row for name, row in pairs if name not in shared] + \
            [row for name, row in pairs if name in shared]
