"""The model part of ``quanta tour``: SmolLM2-135M (the bundled float reference) at 8, 4, 3
and 2 bits with quanta's methods, and under a size budget (mixed precision at the uniform 4-bit
model's bits per weight); bytes, KL divergence, perplexity and recovery on WikiText-2 test
windows, the rate–distortion plot and the per-layer bit map of the budgeted model; that model
written as a folder and run on quanta's compiled kernels (as ``generate`` and ``eval`` run it):
decode speed and fidelity there beside PyTorch's."""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path
from typing import Any

from quanta.progress import Progress, counter
from quanta.render.plots import Series, heat_map, rd_plot
from quanta.render.tour import SummaryRow, Table, TourSection, num

BITS = (8, 4, 3, 2)
#: method → the bit widths it runs at: quick (round to nearest; with the budgeted mixed precision
#: that is two methods in about two minutes) and full (every method quanta has)
METHODS = {
    True: {"rtn": BITS},
    False: {"rtn": BITS, "hqq": (4,), "nf4": (4,), "imatrix": (4,), "gptq": (4, 3), "awq+gptq": (4,)},
}
ROLES = {
    "rtn": "plain",
    "hqq": "quanta-alt",
    "nf4": "quanta-alt",
    "imatrix": "quanta-alt",
    "gptq": "quanta",
    "awq+gptq": "quanta-alt",
    "mixed": "peer",
}


def _configs(
    loaded: Any,
    plan_methods: dict,
    calib: Any,
    reference: Any,
    group_size: int,
    tick: Any,
) -> dict[str, dict[str, dict]]:
    """Every method × width: quantize a copy, measure it. The token embedding (8 bits, one scale
    per row, as ``quanta model quantize`` stores it) is quantized once and shared by the copies."""
    from quanta.model.eval.harness import sweep
    from quanta.model.quantize.apply import quantize_model
    from quanta.model.quantize.recipe import embedding_quantizer
    from quanta.model.runtime.qembed import quantize_embedding

    base = copy.deepcopy(loaded.model)
    quantize_embedding(base, embedding_quantizer(None, 8, None, False))
    rows: dict[str, dict[str, dict]] = {m: {} for m in plan_methods}
    candidates = [((method, bits), partial(quantize_model, quantizer=method, bits=bits, group_size=group_size,
                                           calib=calib))
                  for method, widths in plan_methods.items() for bits in widths]
    for trial in sweep(reference, base, candidates):
        (method, bits), rep = trial.name, trial.made
        rows[method][str(bits)] = {
            "bits": bits,
            "weight_bytes": rep.weight_bytes,
            "bits_per_weight": rep.bits_per_weight,
            "quantize_seconds": trial.seconds,
            **trial.score.figures(),
        }
        tick()
    return rows


#: decode speed: new tokens after a prompt of this many (greedy, the KV cache)
DECODE_PROMPT, DECODE_TOKENS = 32, 32


def _on_kernels(loaded: Any, model: Any, rep: Any, reference: Any) -> dict:
    """The budgeted model as ``quanta model quantize`` writes it — a folder — run on quanta's
    compiled kernels (what ``generate`` and ``eval`` run): decode speed and fidelity there, beside
    the same weights' PyTorch path and the float model's decode speed. ``{"ran": False, "why": …}``
    where the kernels do not run this architecture."""
    import tempfile

    from quanta.model.eval.evaluate import decode_speed
    from quanta.model.formats.folder import write_folder
    from quanta.model.runtime.native import Unsupported
    from quanta.model.runtime.native_folder import open_folder

    prompt = reference.windows[0:1, :DECODE_PROMPT]
    out: dict = {"decode_prompt_tokens": DECODE_PROMPT, "decode_new_tokens": DECODE_TOKENS,
                 "float_decode_tokens_per_s": decode_speed(loaded.model, prompt, DECODE_TOKENS),
                 "pytorch_decode_tokens_per_s": decode_speed(model, prompt, DECODE_TOKENS)}
    with tempfile.TemporaryDirectory(prefix="quanta-tour-") as tmp:
        folder = write_folder(model, loaded.tokenizer, Path(tmp) / "q", report=rep, source=loaded.source)
        try:
            lm = open_folder(folder, verify=False)  # written just above: its checksum is not rehashed
        except Unsupported as e:
            return {**out, "ran": False, "why": str(e)}
        from quanta.model.runtime._dispatch import build_name

        out.update(ran=True, build=build_name(), threads=lm.threads)
        out["decode_tokens_per_s"] = decode_speed(lm, prompt, DECODE_TOKENS)
        out.update(reference.score(lm).figures())
    return out


def _budgeted(
    loaded: Any,
    calib: Any,
    target_bpw: float,
    reference: Any,
    group_size: int,
    sensitivity_windows: int,
) -> tuple[dict, dict]:
    """Mixed precision (round to nearest) at ``target_bpw``: the measured model (and the same
    model on the compiled kernels, ``"on_kernels"``) and the plan."""
    from quanta.model.quantize.apply import quantize_model
    from quanta.model.quantize.mixed import describe, plan_quantizers
    from quanta.model.quantize.recipe import embedding_quantizer, mixed_plan

    plan = mixed_plan(loaded, calib[:sensitivity_windows], "rtn", "folder", ("*",), (), target_bpw=target_bpw)
    m = copy.deepcopy(loaded.model)
    rep = quantize_model(
        m,
        "rtn",
        bits=4,
        group_size=group_size,
        plan=plan_quantizers(plan, "rtn"),
        embedding=embedding_quantizer(plan, 4, None, False),
    )
    out = {
        "target_bits_per_weight": target_bpw,
        "weight_bytes": rep.weight_bytes,
        "bits_per_weight": rep.bits_per_weight,
        **reference.score(m).figures(),
    }
    out["on_kernels"] = _on_kernels(loaded, m, rep, reference)
    return out, describe(plan)


def tour(
    *,
    quick: bool = True,
    progress: Progress | None = None,
    source: str = "smollm2",
    chunks: int | None = None,
    ctx: int | None = None,
    calib_samples: int | None = None,
    methods: dict[str, tuple[int, ...]] | None = None,
    group_size: int = 128,
    encoder: str | None = None,
) -> TourSection:
    """Measure the model sweep (see the module docstring)."""
    from quanta.model.eval.evaluate import wikitext2_test_text, windows
    from quanta.model.eval.harness import Reference
    from quanta.model.quantize.apply import weight_stats
    from quanta.model.quantize.calibrate import calibration_windows
    from quanta.model.sources.load import load_model

    plan_methods = methods or METHODS[quick]
    loaded = load_model(source)
    n_chunks, n_ctx = chunks or (4 if quick else 8), ctx or (256 if quick else 512)
    wins = windows(
        loaded.tokenizer, wikitext2_test_text(), bos_id=loaded.bos_id, n_ctx=n_ctx, n_chunks=n_chunks
    )
    calib = calibration_windows(
        loaded.tokenizer,
        samples=calib_samples or (16 if quick else 24),
        length=min(256, n_ctx),
        bos_id=loaded.bos_id,
    )
    encoder = encoder if encoder is not None else (None if quick else "minilm")
    steps = sum(len(b) for b in plan_methods.values()) + 2 + (len(ENCODER_CONFIGS) if encoder else 0)
    tick = counter(progress, steps)

    ref = Reference(loaded.model, wins)
    reference = {"perplexity": ref.perplexity, **weight_stats(loaded.model)}
    tick()
    rows = _configs(loaded, plan_methods, calib, ref, group_size, tick)
    uniform = (
        rows["rtn"]["4"] if "4" in rows.get("rtn", {}) else next(iter(next(iter(rows.values())).values()))
    )
    mixed, plan_json = _budgeted(
        loaded, calib, uniform["bits_per_weight"], ref, group_size, 8 if quick else 16
    )
    tick()
    sec = _section(
        source,
        ref.measured.protocol,
        reference,
        rows,
        mixed,
        plan_json,
        {"windows": n_chunks, "context": n_ctx, "methods": {k: list(v) for k, v in plan_methods.items()}},
    )
    if encoder:
        table, sec.data["encoder"] = _encoder(encoder, tick)
        sec.tables.append(table)
    return sec


#: the sentence encoder's configurations in the full tour: (method, bits)
ENCODER_CONFIGS = (("rtn", 8), ("rtn", 4), ("gptq", 4))


def _encoder(name: str, tick: Any) -> tuple[Table, dict]:
    """The sentence encoder (full tour): mean cosine similarity of its sentence embeddings to
    the float model's, per configuration (groups of 128, calibrated on the shipped text)."""
    from quanta.model.eval.evaluate import wikitext2_test_text
    from quanta.model.eval.harness import EncoderReference, sweep
    from quanta.model.quantize.apply import quantize_model, weight_stats
    from quanta.model.quantize.calibrate import calibration_windows
    from quanta.model.sources.load import load_model

    ref = load_model(name)
    text = wikitext2_test_text()
    calib = calibration_windows(
        ref.tokenizer, samples=32, length=128, bos_id=ref.tokenizer.token_to_id("[CLS]")
    )
    rows = {}
    candidates = [((method, bits), partial(quantize_model, quantizer=method, bits=bits, group_size=128,
                                           calib=calib)) for method, bits in ENCODER_CONFIGS]
    for trial in sweep(EncoderReference(ref.model, ref.tokenizer, text), ref.model, candidates):
        (method, bits), s = trial.name, trial.score
        rows[f"{method} {bits}"] = {
            "method": method,
            "bits": bits,
            "bits_per_weight": trial.made.bits_per_weight,
            "cosine_mean": s.cosine_mean,
            "cosine_min": s.cosine_min,
            "sentences": s.sentences,
        }
        tick()
    ref_bpw = weight_stats(ref.model)["bits_per_weight"]
    table = Table(
        f"sentence encoder ({name}): cosine similarity of embeddings to the float model",
        ["method", "bits", "bits/weight", "mean cosine", "lowest cosine"],
        [["float32 reference", "32", num(ref_bpw, 2), "1", "1"]]
        + [
            [
                v["method"],
                str(v["bits"]),
                num(v["bits_per_weight"], 2),
                num(v["cosine_mean"], 4),
                num(v["cosine_min"], 4),
            ]
            for v in rows.values()
        ],
    )
    return table, {"model": name, "reference_bits_per_weight": ref_bpw, "results": rows}


def _row(label: str, bits: str, v: dict) -> list[str]:
    return [
        label,
        bits,
        str(v["weight_bytes"]),
        num(v["bits_per_weight"], 2),
        num(v["kld"], 4),
        num(v["top1_percent"], 1),
        num(v["perplexity"], 2),
        num(v["recovery_percent"], 1),
    ]


def _kernels_table(reference: dict, mixed: dict) -> Table:
    """The budgeted model's decode speed and fidelity on PyTorch and on the compiled kernels."""
    k = mixed["on_kernels"]
    title = (f"the budgeted model as a folder: decode speed ({k['decode_new_tokens']} new tokens after "
             f"{k['decode_prompt_tokens']}, greedy) and fidelity, PyTorch against quanta's compiled kernels")
    rows = [["float32 reference, PyTorch", num(k["float_decode_tokens_per_s"], 1), "—",
             num(reference["perplexity"], 2)],
            ["budgeted model, PyTorch", num(k["pytorch_decode_tokens_per_s"], 1), num(mixed["kld"], 4),
             num(mixed["perplexity"], 2)]]
    if k["ran"]:
        rows.append([f"budgeted model, compiled kernels ({k['build']}, {k['threads']} threads)",
                     num(k["decode_tokens_per_s"], 1), num(k["kld"], 4), num(k["perplexity"], 2)])
    else:
        rows.append([f"compiled kernels: not run ({k['why']})", "—", "—", "—"])
    return Table(title, ["path", "decode tokens/s", "KLD", "perplexity"], rows)


def _section(
    source: str, protocol: str, reference: dict, rows: dict, mixed: dict, plan_json: dict, setup: dict
) -> TourSection:
    from quanta.model.quantize.mixed import bit_grid

    grid, kinds = bit_grid(plan_json)
    series = [
        Series(meth, [v["bits_per_weight"] for v in r.values()], [v["kld"] for v in r.values()], ROLES[meth])
        for meth, r in rows.items()
    ]
    series.append(
        Series("rtn, mixed precision under the budget", [mixed["bits_per_weight"]], [mixed["kld"]], "peer")
    )
    rd = rd_plot(
        series,
        xlabel="bits per weight (scales included)",
        ylabel="KL divergence to the float model",
        title="model: bits per weight against fidelity",
        logy=True,
    )
    bitmap = heat_map(
        grid,
        rows=[k.split(".")[-1] for k in kinds],
        xlabel="block",
        label="bits per weight",
        title=f"bits per weight chosen under a budget of {num(mixed['target_bits_per_weight'], 2)}",
    )
    ref_row = [
        "float32 reference",
        "32",
        str(reference["weight_bytes"]),
        num(reference["bits_per_weight"], 2),
        "—",
        "—",
        num(reference["perplexity"], 2),
        "—",
    ]
    table = Table(
        "every configuration: bytes, fidelity and perplexity",
        ["method", "bits", "weight bytes", "bits/weight", "KLD", "top-1 %", "perplexity", "recovery %"],
        [ref_row]
        + [_row(meth, str(v["bits"]), v) for meth, r in rows.items() for v in r.values()]
        + [_row("rtn, mixed (budget)", "mixed", mixed)],
    )
    tables = [table, _kernels_table(reference, mixed)]
    candidates = {k: r["4"] for k, r in rows.items() if "4" in r} | {"rtn, mixed under the budget": mixed}
    best_name = min(candidates, key=lambda k: candidates[k]["kld"])
    best = candidates[best_name]
    share = 100 * best["bits_per_weight"] / reference["bits_per_weight"]
    summary = [
        SummaryRow(
            "model",
            f"{num(reference['bits_per_weight'], 2)} → {num(best['bits_per_weight'], 2)} "
            f"bits per weight ({num(share, 1)} % of the bytes, {best_name})",
            f"perplexity recovery {num(best['recovery_percent'], 1)} %, KLD {num(best['kld'], 4)}, "
            f"top-1 agreement {num(best['top1_percent'], 1)} %",
        )
    ]
    data = {
        "model": str(source),
        "reference": reference,
        "protocol": protocol,
        **setup,
        "bits": list(BITS),
        "results": rows,
        "mixed": mixed,
        "mixed_plan": {k: plan_json[k] for k in ("map", "bits_per_weight", "tensor_bytes", "budget_bytes")},
        "summary_point": {"method": best_name, **best, "percent_of_bytes": share},
    }
    return TourSection(
        "model",
        "Neural networks: bits per weight against fidelity",
        "The language model's weights are quantized with each method and width; every copy is "
        "scored on the same WikiText-2 test windows against the float model: KL divergence of "
        "the next-token distributions, top-1 agreement, perplexity, and recovery (the float "
        "model's perplexity over the quantized model's). The model quantized under the budget is "
        "then written as a folder and run on quanta's compiled kernels, as quanta model generate "
        "and eval run it: its decode speed and fidelity there, beside PyTorch's.",
        figures=[
            ("KL divergence against bits per weight, every method (log scale).", rd),
            ("Per-layer bits chosen under the budget (mixed precision).", bitmap),
        ],
        tables=tables,
        summary=summary,
        data=data,
    )
