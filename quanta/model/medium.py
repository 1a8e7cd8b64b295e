"""Models' side of the medium contract (:mod:`quanta.media`): quantize a model into a quanta
folder, make an example input, and the tour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quanta.model.options import Options
from quanta.model.quantize.recipe import EMBEDDING_METHOD
from quanta.model.reports import ModelFileReport
from quanta.progress import Phases, Progress


def owns(path: Path) -> bool:
    """An existing output quanta wrote: a quanta model folder, a compressed-tensors folder with
    quanta's mark, or a GGUF file with its mark."""
    from quanta.model.formats import compressed
    from quanta.model.formats.folder import owns as owns_folder
    from quanta.model.formats.gguf_export import wrote

    if path.is_dir():
        return owns_folder(path) or compressed.owns(path)
    return path.suffix == ".gguf" and wrote(path)


__all__ = [
    "Options",
    "example",
    "owns",
    "quantize_file",
]


def quantize_file(src: Path | str, dst: Path | str, options: Options, *, seed: int = 0,
                  progress: Progress | None = None) -> ModelFileReport:
    """Quantize the model ``src`` (GGUF, HF folder, bundled name) into the folder ``dst``
    (safetensors + JSON, no pickle) or, with ``format="gguf"``, the GGUF file ``dst``.
    ``progress(done, total)``. Calibrated methods read windows of ``calib`` (a text file;
    default: the shipped WikiText-2 valid slice) at offsets drawn from ``seed``.

    target_size (bytes) or target_bpw (bits per weight over the tensors
    it chooses for): mixed precision — each tensor's format chosen from its measured sensitivity
    (:mod:`quanta.model.quantize.mixed`); the report's ``mixed`` holds the map.

    The plain ``bits`` with a calibrated method, a quanta folder, no group size and no target
    (unless ``uniform``): the bytes of that uniform file — every layer at ``bits`` in the
    default groups, the embedding at 8 bits per row — are shared out by the same sensitivity:
    each layer at ``bits`` in groups of 128, 64 or 32 or at 5 to 8 bits per row, and for a family
    the compiled kernels run also symmetric groups of 32 at more bits and the IQ4_NL codebook
    (:func:`quanta.model.formats.weight.default_formats`), the embedding at 4 bits in groups of 64 or
    32, symmetric groups of 32 there, or 5 to 8 bits per row (unless ``embedding_bits`` fixes it).

    embedding_bits: the token embedding's bits in a quanta folder (default 8, one symmetric
    scale per row — a tied embedding is also the output head, the most sensitive matrix, which
    then runs PyTorch's int8 kernel; 2–7: groups of 32, 4 keeps the int4 kernel; 0 keeps it
    float). A GGUF file stores it in Q8_0 when tied, else in the layers' type; with a target,
    the plan chooses."""
    import time

    from quanta.model.quantize.plan import options_for, plan_for, read_layout

    t0 = time.perf_counter()
    # the plan refuses a source, an architecture or a format it cannot honour before torch is
    # imported and before the load (a refusal is a fraction of a second)
    layout = read_layout(src)
    o = options_for(layout, options)
    qplan = plan_for(layout, o)

    import torch

    from quanta.errors import ConfigError
    from quanta.model.formats.folder import write_folder
    from quanta.model.formats.spill import Spill
    from quanta.model.formats.weight import ggml_format
    from quanta.model.quantize.apply import count_by_path, quantize_model
    from quanta.model.quantize.mixed import EMBEDDING, plan_quantizers
    from quanta.model.quantize.quantizers import make_quantizer, quantizer_for, quantizers_for
    from quanta.model.quantize.recipe import (
        calibration_for,
        embedding_label,
        embedding_method,
        embedding_quantizer,
        mixed_json,
        mixed_plan,
    )
    from quanta.model.runtime.qlinear import QuantLinear
    from quanta.model.sources.load import load_model

    mixed, kind, shared = qplan.mixed, qplan.kind, qplan.shared
    if kind and Path(dst).suffix.lower() != ".gguf":
        raise ConfigError(f"{dst}: --format gguf writes one .gguf file (use a .gguf name)")
    quantizer = quantizer_for(o.method, ggml_format(kind)) if kind else \
        make_quantizer(o.method, bits=o.bits, group_size=qplan.group_size, sym=qplan.sym)
    from quanta.model.sources import stream

    work = None
    if o.work is not None:  # another run's work folder is refused before the source is read
        from quanta.model.quantize.resume import WorkFolder

        work = WorkFolder.open(o.work, src=str(src), options=options.run_settings(), seed=seed)
    loaded = load_model(src, verify=o.verify, stream=True)
    windows = calibration_for(loaded, quantizer, o.calib, o.calib_samples, o.calib_len, seed, force=mixed)
    phases = Phases(progress)
    with stream.slices(qplan.slice_bytes), Spill(Path(dst).parent) as spill:  # layers done wait there
        plan = mixed_plan(loaded, windows, o.method, o.format, o.include, o.excluded, phases,
                          budget=qplan.unit_budget, default_bits=o.bits if shared else None,
                          embedding=o.embedding_bits is None, work=work,
                          lattice=qplan.lattice) if mixed or shared else None
        emb_method = embedding_method(o.method, loaded.model, windows)
        kept: dict[str, Any] = {}
        heads: list = []  # the tied head's input statistics, as the engine gathers them
        compressed = o.format == "compressed-tensors"
        # --type … --uniform: llama.cpp's type for each layer, as the plan decided it
        preset = {n: ggml_format(f) for n, f in qplan.layer_formats().items()} \
            if o.type and plan is None else None
        layer_q = plan_quantizers(plan, o.method) if plan is not None else \
            quantizers_for(o.method, preset) if preset else None
        if kind:  # each layer's GGUF blocks, packed and parked as it is made
            from quanta.model.arch import for_hf
            from quanta.model.formats.gguf_export import PackedLayers

            kept = PackedLayers(spill, for_hf(type(loaded.model).__name__), loaded.model.config.to_dict(),
                                lambda n: (layer_q or {}).get(n, quantizer).storage or kind)
        rep = quantize_model(loaded.model, quantizer, include=o.include, exclude=o.exclude, head=o.head,
                             calib=windows if quantizer.needs_calibration or mixed else None,
                             progress=phases.next(), on_layer=kept if kind else
                             kept.__setitem__ if compressed else None, plan=layer_q,
                             embedding=None if kind or compressed else embedding_quantizer(
                                 plan if mixed or o.embedding_bits is None else None, quantizer.bits,
                                 o.embedding_bits, o.head, emb_method),
                             on_head=heads.append if kind else None, work=work, runnable=False,
                             shelve=QuantLinear.drop if kind else None if compressed else
                             (lambda m: m.park(spill)))
        mix = mixed_json(plan)
        if kind:
            emb_kind = plan.choice[EMBEDDING].label if plan else qplan.embedding_format()
            report = _export(loaded, kept, rep, quantizer, kind, emb_kind, src, dst, mix, emb_method,
                             windows, qplan.record(mix and mix["map"]), heads[0] if heads else None, spill)
            if work is not None:
                work.remove()  # the run finished: only the output's rename is left
            return _timed(report, t0, qplan)
        from quanta.model.runtime.generate import chat_template

        if compressed:
            from quanta.model.formats import compressed as ct

            stream.finish(loaded.model)  # a streamed model's float tensors that the output keeps
            out = ct.write(loaded.model, kept, loaded.tokenizer, dst,
                           float_dtype=getattr(torch, o.float_dtype), chat_template=chat_template(loaded))
        else:
            extra = {k: v for k, v in (("mixed", mix), ("chat_template", chat_template(loaded)),
                                       ("plan", qplan.record(mix and mix["map"]))) if v}
            out = write_folder(loaded.model, loaded.tokenizer, dst, report=rep, source=loaded.source,
                               float_dtype=getattr(torch, o.float_dtype), extra=extra or None, spill=spill)
        if work is not None:
            work.remove()  # the run finished: only the output's rename is left
        return _timed(ModelFileReport(
            input=str(src), output=str(dst), method=layers_method(rep), bits=quantizer.bits,
            group_size=quantizer.group_size, layers=len(rep.layers) - ("embedding" in rep.layers),
            paths=count_by_path(loaded.model),
            bits_per_weight=rep.bits_per_weight, bits_per_quantized_weight=rep.bits_per_quantized_weight,
            weight_bytes=rep.weight_bytes, folder_bytes=sum(p.stat().st_size for p in out.iterdir()),
            mixed=mix, embedding=embedding_label(rep.layers.get("embedding"))), t0, qplan)


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

    from quanta.model.eval.evaluate import peak_rss_mb

    return dataclasses.replace(report, wall_s=time.perf_counter() - t0, peak_rss_mb=peak_rss_mb(),
                               planned_bytes=plan.predicted_bytes, planned_s=plan.cost.seconds,
                               planned_peak_mb=plan.cost.peak_bytes / 1e6, notes=plan.notes)


def _export(loaded: Any, kept: dict, rep: Any, quantizer: Any, kind: str, emb_kind: str, src: Path | str,
            dst: Path | str, mix: dict | None, emb_method: str = EMBEDDING_METHOD,
            windows: Any = None, plan_record: dict | None = None, head: Any = None,
            spill: Any = None) -> ModelFileReport:
    """Write the GGUF file: the kept layers in their types, and the token embedding in
    ``emb_kind`` — the sensitivity pass's type, else the plan's (the layers' block type, or Q8_0
    when it is tied to the output head: then it is the most sensitive matrix of all, which
    llama.cpp also keeps at 6–8 bits); ``head``: the head's input statistics, if the engine
    gathered them."""
    from quanta.memory import trim
    from quanta.model.arch import for_hf
    from quanta.model.formats.gguf_export import export, matrix_blocks
    from quanta.model.formats.weight import BLOCK_TYPES
    from quanta.model.quantize.apply import count_by_path, head_stats
    from quanta.model.quantize.mixed import EMBEDDING
    from quanta.model.quantize.quantizers import make_quantizer
    from quanta.model.runtime.generate import chat_template
    from quanta.model.sources import stream

    kinds = {n: spec.get("type", kind) for n, spec in rep.layers.items()}
    kinds[EMBEDDING] = emb_kind
    t = BLOCK_TYPES[emb_kind]
    emb_q = make_quantizer(emb_method, bits=t.bits, group_size=t.group, sym=t.sym, storage=t.name)
    stats = (head or head_stats(loaded.model, windows)) if emb_q.needs_calibration else None
    emb = stream.quantize_rows(emb_q, loaded.model, loaded.model.get_input_embeddings(), stats=stats,
                               name=EMBEDDING)
    if spill is not None:  # its blocks parked now: the codes and scales leave memory before the writing
        emb = spill.put(matrix_blocks(emb, emb_kind, None, {}))
        trim()
    stream.finish(loaded.model, embedding=False)  # float tensors a streamed model has not read yet
    cfg = loaded.model.config
    norms = {n: p.detach().float().numpy() for n, p in loaded.model.named_parameters() if p.ndim == 1}
    export(kept, emb, loaded.source, dst, kinds=kinds, family=for_hf(type(loaded.model).__name__),
           config=cfg.to_dict(), floats=norms, plan=plan_record, model=loaded.model,
           chat_template=chat_template(loaded), spill=spill)
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
    from quanta.model.sources.tiny import write_hf_folder

    return write_hf_folder(Path(folder) / "tiny-llama", seed=seed)


def tour(**settings: Any) -> Any:
    """This medium's part of ``quanta tour`` (:mod:`quanta.model.eval.tour`)."""
    from quanta.model.eval.tour import tour as run

    return run(**settings)
