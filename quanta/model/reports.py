"""The model package's reports, typed, strict JSON, no torch needed to import them: the weight
figures every one carries (:class:`WeightFigures`, as :func:`quanta.model.quantize.apply.weight_stats`
measures them), what a quantizing did (:class:`QuantizeReport`), what a model is
(:class:`ModelInfo`), how it measured (:class:`EvalReport`) and what ``quanta model quantize``
wrote (:class:`ModelFileReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

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


@dataclass(frozen=True)
class QuantizeReport(WeightFigures):
    """What :func:`quantize_model` did: each layer's settings, and the model's weight figures
    (bytes include scales; bits per weight over all matrices, and over the quantized ones)."""

    method: str = ""
    layers: dict = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        paths: dict[str, int] = {}
        for spec in self.layers.values():
            paths[spec["path"]] = paths.get(spec["path"], 0) + 1
        return [("method", self.method), ("layers quantized", f"{len(self.layers)} ({paths})"),
                ("bits per weight", f"{self.bits_per_weight:.2f} overall, "
                 f"{self.bits_per_quantized_weight or 0:.3f} in quantized layers"),
                ("weight bytes", f"{self.weight_bytes / 1e6:.1f} MB")]


@dataclass(frozen=True)
class ModelInfo(WeightFigures):
    """What a model is: its source, class, sizes, quantized layers and (GGUF) tensor types."""

    model: str = ""
    kind: str = ""
    architecture: str = ""
    file_bytes: int = 0
    quantized_layers: dict = field(default_factory=dict)
    description: str = ""
    gguf_tensor_types: dict | None = None
    gguf_name: str | None = None


@dataclass(frozen=True)
class EvalReport(WeightFigures):
    """A model's measured quality (quanta-ppl/1 or embedding similarity), size and speed."""

    model: str = ""
    kind: str = ""
    file_bytes: int = 0
    measures: dict = field(default_factory=dict)
    peak_rss_mb: float = 0.0

    def rows(self) -> list[tuple[str, str]]:
        def cell(v: Any) -> str:
            if isinstance(v, float):
                return f"{v:.5f}" if abs(v) < 1 else f"{v:.3f}"
            return str(v)

        head = [(k, cell(getattr(self, k))) for k in ("model", "kind", "file_bytes", "weight_bytes",
                                                       "params", "bits_per_weight")]
        return head + [(k, cell(v)) for k, v in self.measures.items()] + \
            [("peak_rss_mb", cell(self.peak_rss_mb))]


@dataclass(frozen=True)
class ModelFileReport(Report):
    """A quantized model folder: what went in, how, and the sizes."""

    input: str
    output: str
    method: str
    bits: int
    group_size: int | None
    layers: int
    paths: dict
    bits_per_weight: float
    bits_per_quantized_weight: float | None
    weight_bytes: int
    folder_bytes: int
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    mixed: dict | None = None
    embedding: str = "float"
    planned_bytes: int = 0  # the plan's predictions, made before any weight was read
    planned_s: float = 0.0
    planned_peak_mb: float = 0.0
    notes: tuple[str, ...] = ()  # what the output does not carry (the plan's notes)

    def rows(self) -> list[tuple[str, str]]:
        return [("input", self.input), ("output", self.output),
                ("method", f"{self.method}, mixed precision" if self.mixed else
                 f"{self.method}, {self.bits} bits, groups of "
                 f"{self.group_size or 'the largest of 128/64/32 that divides each layer'}"),
                ("layers quantized", f"{self.layers} ({self.paths}); token embedding: {self.embedding}"),
                ("bits per weight", f"{self.bits_per_weight:.2f} overall, "
                 f"{self.bits_per_quantized_weight or 0:.3f} in quantized layers"),
                *self._mixed_rows(),
                ("on disk", f"{self.folder_bytes / 1e6:.1f} MB (planned: {self.planned_bytes / 1e6:.1f} MB)"),
                ("time, peak memory", f"{self.wall_s:.1f} s, {self.peak_rss_mb:.0f} MB peak RSS (planned: "
                 f"~{self.planned_s:.0f} s, ~{self.planned_peak_mb:.0f} MB)"),
                *(("note", n) for n in self.notes)]


    def _mixed_rows(self) -> list[tuple[str, str]]:
        if not self.mixed:
            return []
        kinds = "; ".join(f"{k.split('.')[-1]} " + ", ".join(f"{n}×{c}" for c, n in v.items())
                          for k, v in self.mixed["by_kind"].items())
        return [("formats chosen", ", ".join(f"{n}×{c}" for c, n in self.mixed["summary"].items())),
                ("by tensor kind", kinds),
                ("predicted loss rise", f"{self.mixed['predicted_loss_increase']:.4f} nats/token "
                 f"({self.mixed['tensor_bytes'] / 1e6:.1f} MB of {self.mixed['budget_bytes'] / 1e6:.1f} MB "
                 "budget)")]
