"""Models' side of the medium contract (:mod:`quanta.media`): quantize a model into a quanta
folder, make an example input, and the tour."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quanta.model.recipe import EMBEDDING_METHOD
from quanta.progress import Progress
from quanta.reports import Report

FLOAT_DTYPES = ("float32", "bfloat16", "float16")

FORMATS = ("quanta", "gguf")


def output_is_folder(*, format: str = "quanta", **_: Any) -> bool:
    """A quanta model is a folder; ``format="gguf"`` writes one file."""
    return format != "gguf"


def owns(path: Path) -> bool:
    """An existing output quanta wrote: a quanta model folder, or a GGUF file with its mark."""
    from quanta.model.files import owns as owns_folder
    from quanta.model.gguf_export import wrote

    return owns_folder(path) if path.is_dir() else (path.suffix == ".gguf" and wrote(path))


__all__ = [
    "FLOAT_DTYPES",
    "FORMATS",
    "ModelFileReport",
    "example",
    "output_is_folder",
    "owns",
    "quantize_file",
]


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
                 f"~{self.planned_s:.0f} s, ~{self.planned_peak_mb:.0f} MB)")]


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


def quantize_file(src: Path | str, dst: Path | str, *, seed: int = 0,
                  progress: Progress | None = None, bits: int = 4, group_size: int | None = None,
                  method: str = "gptq", sym: bool = False, include: tuple[str, ...] = ("*",),
                  exclude: tuple[str, ...] = ("lm_head",), head: bool = False,
                  float_dtype: str = "float32", calib: str | Path | None = None,
                  calib_samples: int | None = None, calib_len: int | None = None,
                  format: str = "quanta", target_size: str | int | None = None,
                  target_bpw: float | None = None, embedding_bits: int | None = None,
                  uniform: bool = False, verify: bool = True) -> ModelFileReport:
    """Quantize the model ``src`` (GGUF, HF folder, bundled name) into the folder ``dst``
    (safetensors + JSON, no pickle) or, with ``format="gguf"``, the GGUF file ``dst``.
    ``progress(done, total)``. Calibrated methods read windows of ``calib`` (a text file;
    default: the shipped WikiText-2 valid slice) at offsets drawn from ``seed``.

    target_size (bytes, or "95MB", "90.5MiB") or target_bpw (bits per weight over the tensors
    it chooses for): mixed precision — each tensor's format chosen from its measured sensitivity
    (:mod:`quanta.model.mixed`); the report's ``mixed`` holds the map.

    The plain ``bits`` with a calibrated method, a quanta folder, no group size and no target
    (unless ``uniform``): the bytes of that uniform file — every layer at ``bits`` in the
    default groups, the embedding at 8 bits per row — are shared out by the same sensitivity:
    each layer at ``bits`` in groups of 128, 64 or 32 or at 5 to 8 bits per row
    (:func:`quanta.model.formats.default_formats`), the embedding at 4 bits in groups of 64 or
    32 or 5 to 8 bits per row (unless ``embedding_bits`` fixes it).

    embedding_bits: the token embedding's bits in a quanta folder (default 8, one symmetric
    scale per row — a tied embedding is also the output head, the most sensitive matrix, which
    then runs PyTorch's int8 kernel; 2–7: groups of 32, 4 keeps the int4 kernel; 0 keeps it
    float). A GGUF file stores it in Q8_0 when tied, else in the layers' type; with a target,
    the plan chooses."""
    import time

    import torch

    from quanta.errors import ConfigError
    from quanta.model.apply import count_by_path, quantize_model
    from quanta.model.files import write_folder
    from quanta.model.load import load_model
    from quanta.model.mixed import plan_quantizers
    from quanta.model.plan import Options as PlanOptions
    from quanta.model.plan import plan_for, read_layout
    from quanta.model.quantizers import make_quantizer
    from quanta.model.recipe import (
        Phases,
        calibration_for,
        embedding_label,
        embedding_method,
        embedding_quantizer,
        mixed_json,
        mixed_plan,
    )

    t0 = time.perf_counter()
    options = dict(bits=bits, group_size=group_size, method=method, sym=sym, include=include,
                   exclude=exclude, head=head, float_dtype=float_dtype, calib=calib,
                   calib_samples=calib_samples, calib_len=calib_len, format=format,
                   target_size=target_size, target_bpw=target_bpw, embedding_bits=embedding_bits,
                   uniform=uniform)
    check_options(**options)
    # the plan refuses a source, an architecture or a format it cannot honour before the load
    qplan = plan_for(read_layout(src), PlanOptions.of(options))
    mixed, kind, shared = qplan.mixed, qplan.kind, qplan.shared
    if kind and Path(dst).suffix.lower() != ".gguf":
        raise ConfigError(f"{dst}: --format gguf writes one .gguf file (use a .gguf name)")
    quantizer = make_quantizer(method, bits=bits, group_size=qplan.group_size, sym=qplan.sym, storage=kind)
    loaded = load_model(src, verify=verify)
    windows = calibration_for(loaded, quantizer, calib, calib_samples, calib_len, seed, force=mixed)
    phases = Phases(progress)
    plan = mixed_plan(loaded, windows, method, format, include, exclude, phases, budget=qplan.unit_budget,
                      default_bits=bits if shared else None,
                      embedding=embedding_bits is None) if mixed or shared else None
    emb_method = embedding_method(method, loaded.model, windows)
    kept: dict[str, Any] = {}
    rep = quantize_model(loaded.model, quantizer, include=include, exclude=exclude, head=head,
                         calib=windows if quantizer.needs_calibration or mixed else None,
                         progress=phases.next(), on_layer=kept.__setitem__ if kind else None,
                         plan=None if plan is None else plan_quantizers(plan, method),
                         embedding=None if kind else embedding_quantizer(
                             plan if mixed or embedding_bits is None else None, quantizer.bits,
                             embedding_bits, head, emb_method))
    mix = mixed_json(plan)
    if kind:
        return _timed(_export(loaded, kept, rep, quantizer, kind, src, dst, plan, mix, emb_method,
                               windows, qplan.record(mix and mix["map"])), t0, qplan)
    from quanta.model.generate import chat_template

    extra = {k: v for k, v in (("mixed", mix), ("chat_template", chat_template(loaded)),
                               ("plan", qplan.record(mix and mix["map"]))) if v}
    out = write_folder(loaded.model, loaded.tokenizer, dst, report=rep, source=loaded.source,
                       float_dtype=getattr(torch, float_dtype), extra=extra or None)
    return _timed(ModelFileReport(
        input=str(src), output=str(dst), method=layers_method(rep), bits=quantizer.bits,
        group_size=quantizer.group_size, layers=len(rep.layers) - ("embedding" in rep.layers),
        paths=count_by_path(loaded.model),
        bits_per_weight=rep.bits_per_weight, bits_per_quantized_weight=rep.bits_per_quantized_weight,
        weight_bytes=rep.weight_bytes, folder_bytes=sum(p.stat().st_size for p in out.iterdir()),
        mixed=mix, embedding=embedding_label(rep.layers.get("embedding"))), t0, qplan)


def check_options(*, bits: int = 4, group_size: int | None = None, method: str = "gptq",
                  sym: bool = False, float_dtype: str = "float32", calib: str | Path | None = None,
                  calib_samples: int | None = None, calib_len: int | None = None, format: str = "quanta",
                  target_size: str | int | None = None, target_bpw: float | None = None,
                  embedding_bits: int | None = None, **_: Any) -> None:
    """Every option that can be wrong whatever the model is, refused in one line before the
    model is read (sizes parsed, ranges and combinations checked, the calibration file found)."""
    import math

    from quanta.core._checks import check_bits, check_choice
    from quanta.errors import ConfigError, InputError
    from quanta.units import parse_size

    check_choice(float_dtype, FLOAT_DTYPES, "float dtype")
    check_choice(format, FORMATS, "format")
    if target_size is not None and target_bpw is not None:
        raise ConfigError("give --target-size or --target-bpw, not both")
    if target_size is not None:
        parse_size(target_size)
    if target_bpw is not None and not (math.isfinite(float(target_bpw)) and 1.0 <= float(target_bpw) <= 32.0):
        raise ConfigError(f"--target-bpw {target_bpw}: give 1 to 32 bits per weight")
    if embedding_bits is not None and embedding_bits != 0:
        check_bits(int(embedding_bits), 2, 8, "embedding bits")
    if group_size is not None and group_size < 0:
        raise ConfigError(f"--group-size {group_size}: give 0 (one group per row) or a positive number")
    for name, value in (("--calib-samples", calib_samples), ("--calib-len", calib_len)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} {value}: give at least 1")
    if calib is not None and not Path(calib).is_file():
        raise InputError(f"{calib}: no such calibration text file")
    from quanta.model.formats import BLOCK, gguf_type
    from quanta.model.methods import METHODS

    check_choice(method, tuple(METHODS), "method")
    m = METHODS[method]
    check_bits(bits, m.min_bits, m.max_bits, f"{method} bits")  # as the quantizer checks it
    if format == "gguf" and target_size is None and target_bpw is None:
        gguf_type(bits, sym, BLOCK if group_size is None else group_size)  # a type llama.cpp has


def layers_method(rep: Any) -> str:
    """The rounding of the quantized layers, as the user asked for it (the token embedding's own
    rounding — the clipping search "mse" when nothing calibrates it — is in its label)."""
    names = sorted({spec["method"] for name, spec in rep.layers.items() if name != "embedding"})
    return "+".join(names) or rep.method


def _timed(report: ModelFileReport, t0: float, plan: Any) -> ModelFileReport:
    """The report with the command's wall time, this process's peak resident memory and the
    plan's predictions of size, time and memory."""
    import dataclasses
    import time

    from quanta.model.evaluate import peak_rss_mb

    return dataclasses.replace(report, wall_s=time.perf_counter() - t0, peak_rss_mb=peak_rss_mb(),
                               planned_bytes=plan.predicted_bytes, planned_s=plan.cost.seconds,
                               planned_peak_mb=plan.cost.peak_bytes / 1e6)


def _export(loaded: Any, kept: dict, rep: Any, quantizer: Any, kind: str, src: Path | str,
            dst: Path | str, plan: Any, mix: dict | None, emb_method: str = EMBEDDING_METHOD,
            windows: Any = None, plan_record: dict | None = None) -> ModelFileReport:
    """Write the GGUF file: the kept layers in their types, and the token embedding — on the
    plan's type, else on the layers' block type, or on Q8_0 when it is tied to the output head
    (then it is the most sensitive matrix of all, which llama.cpp also keeps at 6–8 bits)."""
    from quanta.model.apply import count_by_path, head_stats
    from quanta.model.arch import for_hf
    from quanta.model.formats import BLOCK_TYPES
    from quanta.model.gguf_export import export
    from quanta.model.mixed import EMBEDDING
    from quanta.model.qembed import ties_head
    from quanta.model.quantizers import make_quantizer

    tied = ties_head(loaded.model)
    kinds = {n: spec.get("type", kind) for n, spec in rep.layers.items()}
    kinds[EMBEDDING] = plan.choice[EMBEDDING].label if plan else ("Q8_0" if tied else kind)
    t = BLOCK_TYPES[kinds[EMBEDDING]]
    emb_q = make_quantizer(emb_method, bits=t.bits, group_size=t.group, sym=t.sym, storage=t.name)
    stats = head_stats(loaded.model, windows) if emb_q.needs_calibration else None
    emb = emb_q.quantize(loaded.model.get_input_embeddings().weight.data, name=EMBEDDING, stats=stats)
    cfg = loaded.model.config
    norms = {n: p.detach().float().numpy() for n, p in loaded.model.named_parameters() if p.ndim == 1}
    export(kept, emb, loaded.source, dst, kinds=kinds, family=for_hf(type(loaded.model).__name__),
           config=cfg.to_dict(), floats=norms, plan=plan_record)
    size = Path(dst).stat().st_size
    return ModelFileReport(
        input=str(src), output=str(dst), method=layers_method(rep), bits=quantizer.bits,
        group_size=quantizer.group_size, layers=len(rep.layers) - ("embedding" in rep.layers),
        paths=count_by_path(loaded.model),
        bits_per_weight=8.0 * size / max(rep.params, 1),
        bits_per_quantized_weight=rep.bits_per_quantized_weight, weight_bytes=size, folder_bytes=size,
        mixed=mix, embedding=kinds[EMBEDDING])


def example(folder: Path | str, *, seed: int = 0) -> Path:
    """A tiny seeded Llama as a Hugging Face folder (2 layers, hidden size 64)."""
    from quanta.model.tiny import write_hf_folder

    return write_hf_folder(Path(folder) / "tiny-llama", seed=seed)


def tour(**settings: Any) -> Any:
    """This medium's part of ``quanta tour`` (:mod:`quanta.model.tour`)."""
    from quanta.model.tour import tour as run

    return run(**settings)
