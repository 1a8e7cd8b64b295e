"""Models' side of the medium contract (:mod:`quanta.media`): quantize a model into a quanta
folder, make an example input, and the demo section."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quanta.model.files import owns as owns_folder
from quanta.progress import Progress
from quanta.reports import DemoSection, Report

FLOAT_DTYPES = ("float32", "bfloat16", "float16")

FORMATS = ("quanta", "gguf")


def output_is_folder(*, format: str = "quanta", **_: Any) -> bool:
    """A quanta model is a folder; ``format="gguf"`` writes one file."""
    return format != "gguf"


def owns(path: Path) -> bool:
    """An existing output quanta wrote: a quanta model folder, or a GGUF file with its mark."""
    from quanta.model.gguf_export import wrote

    return owns_folder(path) if path.is_dir() else (path.suffix == ".gguf" and wrote(path))


__all__ = [
    "FLOAT_DTYPES",
    "FORMATS",
    "ModelFileReport",
    "calibration_for",
    "demo",
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
    group_size: int
    layers: int
    paths: dict
    bits_per_weight: float
    bits_per_quantized_weight: float | None
    weight_bytes: int
    folder_bytes: int
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0

    def rows(self) -> list[tuple[str, str]]:
        return [("input", self.input), ("output", self.output),
                ("method", f"{self.method}, {self.bits} bits, groups of {self.group_size}"),
                ("layers quantized", f"{self.layers} ({self.paths})"),
                ("bits per weight", f"{self.bits_per_weight:.2f} overall, "
                 f"{self.bits_per_quantized_weight or 0:.3f} in quantized layers"),
                ("on disk", f"{self.folder_bytes / 1e6:.1f} MB"),
                ("time, peak memory", f"{self.wall_s:.1f} s, {self.peak_rss_mb:.0f} MB peak RSS")]


def quantize_file(src: Path | str, dst: Path | str, *, seed: int = 0,
                  progress: Progress | None = None, bits: int = 4, group_size: int = 128,
                  method: str = "rtn", sym: bool = False, include: tuple[str, ...] = ("*",),
                  exclude: tuple[str, ...] = ("lm_head",), head: bool = False,
                  float_dtype: str = "float32", calib: str | Path | None = None,
                  calib_samples: int | None = None, calib_len: int | None = None,
                  format: str = "quanta", **_: Any) -> ModelFileReport:
    """Quantize the model ``src`` (GGUF, HF folder, bundled name) into the folder ``dst``
    (safetensors + JSON, no pickle). ``progress(layers_done, layers_total)``. Calibrated
    methods read windows of ``calib`` (a text file; default: the shipped WikiText-2 valid
    slice) at offsets drawn from ``seed``."""
    import time

    import torch

    from quanta.core._checks import check_choice
    from quanta.errors import ConfigError
    from quanta.model.apply import count_by_path, quantize_model
    from quanta.model.files import write_folder
    from quanta.model.load import load_model
    from quanta.model.quantizers import make_quantizer

    t0 = time.perf_counter()
    check_choice(float_dtype, FLOAT_DTYPES, "float dtype")
    check_choice(format, FORMATS, "format")
    kind = _gguf_kind(format, dst, bits, sym, group_size)
    sym = sym or kind in ("Q8_0", "Q4_0")  # llama.cpp's symmetric types
    quantizer = make_quantizer(method, bits=bits, group_size=group_size, sym=sym, storage=kind)
    loaded = load_model(src)
    if kind and loaded.kind != "gguf":
        raise ConfigError(f"{src}: --format gguf copies the tokenizer and metadata of a GGUF "
                          "source; this model is not one")
    if loaded.kind not in ("gguf", "hf-causal-lm"):
        raise ConfigError(f"{src}: saving quantized {loaded.kind} models is not supported "
                          "(use `quanta model eval --bits` to measure them)")
    windows = calibration_for(loaded, quantizer, calib, calib_samples, calib_len, seed)
    kept: dict[str, Any] = {}
    rep = quantize_model(loaded.model, quantizer, include=include, exclude=exclude, head=head,
                         calib=windows, progress=progress, on_layer=kept.__setitem__ if kind else None)
    if kind:
        return _timed(_export(loaded, kept, rep, quantizer, kind, src, dst), t0)
    out = write_folder(loaded.model, loaded.tokenizer, dst, report=rep, source=loaded.source,
                       float_dtype=getattr(torch, float_dtype))
    return _timed(ModelFileReport(
        input=str(src), output=str(dst), method=rep.method, bits=quantizer.bits,
        group_size=quantizer.group_size, layers=len(rep.layers), paths=count_by_path(loaded.model),
        bits_per_weight=rep.bits_per_weight, bits_per_quantized_weight=rep.bits_per_quantized_weight,
        weight_bytes=rep.weight_bytes, folder_bytes=sum(p.stat().st_size for p in out.iterdir())), t0)


def _timed(report: ModelFileReport, t0: float) -> ModelFileReport:
    """The report with the command's wall time and this process's peak resident memory."""
    import dataclasses
    import time

    from quanta.model.evaluate import peak_rss_mb

    return dataclasses.replace(report, wall_s=time.perf_counter() - t0, peak_rss_mb=peak_rss_mb())


def _gguf_kind(format: str, dst: Path | str, bits: int, sym: bool,
               group_size: int) -> str | None:
    from quanta.errors import ConfigError
    from quanta.model.gguf_export import gguf_type

    if format != "gguf":
        return None
    if Path(dst).suffix.lower() != ".gguf":
        raise ConfigError(f"{dst}: --format gguf writes one .gguf file (use a .gguf name)")
    return gguf_type(bits, sym, group_size)


def _export(loaded: Any, kept: dict, rep: Any, quantizer: Any, kind: str, src: Path | str,
            dst: Path | str) -> ModelFileReport:
    """Write the GGUF file: the kept layers, and the token embedding — on the layers' block type,
    or on Q8_0 when it is tied to the output head (then it is the most sensitive matrix of all,
    which llama.cpp also keeps at 6–8 bits)."""
    from quanta.model.apply import count_by_path
    from quanta.model.gguf_export import export
    from quanta.model.quantizers import make_quantizer

    tied = bool(getattr(loaded.model.config, "tie_word_embeddings", False))
    emb_kind = "Q8_0" if tied else kind
    emb_q = make_quantizer("rtn", bits=8 if tied else quantizer.bits, group_size=32,
                           sym=tied or quantizer.sym, storage=emb_kind)
    emb = emb_q.quantize(loaded.model.get_input_embeddings().weight.data, name="token_embd")
    cfg = loaded.model.config
    export(kept, emb, loaded.source, dst, kind=kind, embedding_kind=emb_kind,
           heads=(cfg.num_attention_heads, cfg.num_key_value_heads))
    size = Path(dst).stat().st_size
    params = rep.params
    return ModelFileReport(
        input=str(src), output=str(dst), method=rep.method, bits=quantizer.bits,
        group_size=quantizer.group_size, layers=len(rep.layers), paths=count_by_path(loaded.model),
        bits_per_weight=8.0 * size / max(params, 1), bits_per_quantized_weight=rep.bits_per_quantized_weight,
        weight_bytes=size, folder_bytes=size)


def calibration_for(loaded: Any, quantizer: Any, calib: str | Path | None, samples: int | None,
                    length: int | None, seed: int) -> Any:
    """Calibration windows for a quantizer that needs them (None otherwise)."""
    from quanta.errors import InputError
    from quanta.model.calibrate import DEFAULT_LENGTH, DEFAULT_SAMPLES, calibration_windows, read_text

    if not quantizer.needs_calibration:
        return None
    if loaded.tokenizer is None:
        raise InputError(f"{loaded.source}: no tokenizer to cut calibration windows with")
    text = None if calib is None else read_text(calib)
    return calibration_windows(loaded.tokenizer, text, samples=samples or DEFAULT_SAMPLES,
                               length=length or DEFAULT_LENGTH, bos_id=loaded.bos_id, seed=seed)


def example(folder: Path | str, *, seed: int = 0) -> Path:
    """A tiny seeded Llama as a Hugging Face folder (2 layers, hidden size 64)."""
    from quanta.model.tiny import write_hf_folder

    return write_hf_folder(Path(folder) / "tiny-llama", seed=seed)


CONFIGS = (("int8 g32 RTN", {"bits": 8, "group_size": 32}),
           ("int4 g128 RTN", {"bits": 4, "group_size": 128}),
           ("NF4 g128", {"bits": 4, "group_size": 128, "quantizer": "nf4"}))


def demo(*, quick: bool = True, chunks: int = 4) -> DemoSection:
    """SmolLM2-135M (the dequantized GGUF as reference) against int8 and int4 copies."""
    from quanta.model.apply import quantize_model, weight_stats
    from quanta.model.evaluate import evaluate_causal_lm, wikitext2_test_text, windows
    from quanta.model.load import load_model

    ref = load_model("smollm2")
    wins = windows(ref.tokenizer, wikitext2_test_text(), bos_id=ref.bos_id, n_chunks=chunks)
    base = evaluate_causal_lm(ref.model, wins, keep_logprobs=True)
    lp = base.pop("logprobs")
    rows = [{"model": "float32 reference (Q4_1 file dequantized)", **base, **weight_stats(ref.model)}]
    for name, cfg in CONFIGS:
        m = copy.deepcopy(ref.model)
        rep = quantize_model(m, **cfg)
        rows.append({"model": name, **evaluate_causal_lm(m, wins, reference=lp),
                     **{k: v for k, v in rep.to_json().items() if k != "layers"}})
        del m
    table = tuple((r["model"], f"{r['perplexity']:.2f}", f"{r['kld']:.5f}" if "kld" in r else "—",
                   f"{100 * r['top1_agreement']:.1f}%" if "kld" in r else "—",
                   f"{r['bits_per_weight']:.2f}", f"{r['weight_bytes'] / 1e6:.0f}",
                   f"{r['prefill_tokens_per_s']:.0f}") for r in rows)
    return DemoSection(
        heading=f"model: SmolLM2-135M-Instruct (stored as Q4_1, 4.9 bits/weight on disk; dequantized "
                f"= reference), WikiText-2 test, {chunks}×512 tokens (`quanta model eval` uses 40)",
        columns=("model", "PPL", "KLD", "top-1", "bits/weight", "MB", "prefill tok/s"),
        table=table, data={"chunks": chunks, "rows": rows})
