"""``quanta model`` — quantize, eval, info: parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from quanta.cli.common import (
    plot_path,
    print_json,
    print_table,
    progress_bar,
    run_file_command,
    show,
    write_plot,
)

app = typer.Typer(help="Neural networks: quantize weights, run them on the CPU, measure the cost.",
                  no_args_is_help=True)

NO_VERIFY = typer.Option(False, "--no-verify", help="Skip the checksums quanta writes into its own "
                         "folders and GGUF files (a damaged file is refused otherwise).")

MODEL_HELP = ("A .gguf file, a quanta folder, a Hugging Face folder, or smollm2 / smollm2-unbinned / "
              "minilm.")


def _method_help() -> str:
    from quanta.model.quantize.quantizers import QUANTIZERS

    return "; ".join(f"{n}: {c.summary or c.__doc__.splitlines()[0]}" for n, c in QUANTIZERS.items())


def _patterns(s: str) -> tuple[str, ...]:
    return tuple(p for p in s.split(",") if p)


@app.command()
def quantize(
    model: str = typer.Argument(..., help=MODEL_HELP),
    out: Path = typer.Option(..., "--output", "-o", help="Output folder, or .gguf file with "
                             "--format gguf (replaced with --force only if quanta wrote it)."),
    bits: int = typer.Option(4, "--bits", "-b", help="Bits per weight (2..8; nf4: 4). With a calibrated "
                             "method and no --group-size: the size of that uniform file, its bytes shared "
                             "out by each tensor's measured sensitivity (--format gguf --bits 4/5: "
                             "llama.cpp's Q4_0/Q5_0 file, as --type Q4_0/Q5_0; --uniform: every layer at "
                             "--bits)."),
    group_size: int = typer.Option(None, help="Inputs per scale group (0: one group per row; "
                                   "default: per layer the largest of 128, 64, 32 that divides its "
                                   "inputs; GGUF: 32)."),
    uniform: bool = typer.Option(False, "--uniform", help="Every layer at --bits (no sharing out)."),
    method: str = typer.Option("gptq", help="Quantizer (see `quanta model methods`)."),
    sym: bool = typer.Option(False, "--sym/--asym", help="Symmetric grid (no zero point)."),
    include: str = typer.Option("*", help="Comma-separated name patterns of layers to quantize."),
    exclude: str = typer.Option("lm_head", help="Comma-separated name patterns to leave float."),
    head: bool = typer.Option(False, "--head", help="Quantize the output head too (untied)."),
    float_dtype: str = typer.Option("float32", help="Storage of what stays float (embeddings, "
                                    "norms): float32, bfloat16 or float16."),
    calib: Path = typer.Option(None, "--calib", help="Calibration text for calibrated methods "
                               "(default: a WikiText-2 valid slice shipped with quanta)."),
    calib_samples: int = typer.Option(64, help="Calibration windows."),
    calib_len: int = typer.Option(256, help="Tokens per calibration window."),
    seed: int = typer.Option(0, help="Seed of the calibration windows' offsets."),
    format: str = typer.Option("quanta", "--format", help="quanta (a folder of safetensors + JSON), "
                               "gguf (one file llama.cpp runs: Q8_0, Q5_0/Q5_1, Q4_0/Q4_1 in groups "
                               "of 32; with a target or --type also IQ4_NL and, on rows of 256, the "
                               "K-quants Q2_K…Q6_K, IQ4_XS and the lattice types IQ2_XXS…IQ3_S) or "
                               "compressed-tensors (the folder llm-compressor writes: transformers and "
                               "vLLM load it; integer grids, one scheme, the embedding float)."),
    type_: str = typer.Option(None, "--type", help="A llama.cpp file type (IQ2_XXS/XS/S/M, IQ3_XXS/XS/S/M, "
                              "Q2_K, Q3_K_S/M/L, IQ4_XS, "
                              "Q4_0, Q4_K_S/M, Q5_K_S/M, Q6_K, Q8_0, …): a GGUF no larger than llama.cpp's, "
                              "each tensor's type (K-quants included) chosen by its measured sensitivity; "
                              "with --uniform, llama.cpp's own type for each tensor. Implies --format gguf."),
    target_size: str = typer.Option(None, "--target-size", help="Mixed precision: the output's size "
                                    "(bytes, or 95MB, 90.5MiB); each tensor's format chosen from its "
                                    "measured sensitivity."),
    target_bpw: float = typer.Option(None, "--target-bpw", help="Mixed precision: mean bits per "
                                     "weight over the tensors it chooses for."),
    plot: Path = typer.Option(None, "--plot", help="With a target: draw the chosen bits per tensor "
                              "by layer (PNG)."),
    embedding_bits: int = typer.Option(None, "--embedding-bits", help="quanta format: the token "
                                       "embedding's bits (default 8, a scale per row: the tied head "
                                       "runs the int8 kernel; 2..7 in groups of 32; 0: keep float)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder quanta wrote."),
    no_verify: bool = NO_VERIFY,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan — each tensor's format, "
                                 "method and why, the predicted size — and write nothing."),
    resume: bool = typer.Option(False, "--resume", help="Keep each finished block in OUT.quanta-work "
                                "beside the output, and continue an interrupted run of the same command "
                                "from there (the same bytes as a run never interrupted); removed when "
                                "the run finishes."),
    max_memory: str = typer.Option(None, "--max-memory", help="Resident memory the run may take "
                                   "(6GB, 5.5GiB): the plan reads the embedding and head in smaller "
                                   "slices to fit, or refuses before any work (the output is the same)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Quantize MODEL's Linear layers into a quanta folder (safetensors + JSON), or, with --format,
    one GGUF file or a compressed-tensors folder."""
    from quanta.errors import ConfigError
    from quanta.model.options import Options
    from quanta.units import parse_size

    if type_ is not None and format == "quanta":
        format = "gguf"
    if format != "gguf" and out.suffix.lower() == ".gguf":
        raise ConfigError(f"{out}: a .gguf name needs --format gguf (otherwise a quanta folder is "
                          "written: name it without .gguf)")
    options = Options(bits=bits, group_size=group_size, method=method, sym=sym, include=_patterns(include),
                      exclude=_patterns(exclude), head=head, float_dtype=float_dtype, calib=calib,
                      calib_samples=calib_samples, calib_len=calib_len, format=format,
                      target_size=None if target_size is None else parse_size(target_size),
                      target_bpw=target_bpw, embedding_bits=embedding_bits, uniform=uniform,
                      verify=not no_verify, type=type_, work=_work_folder(out) if resume else None,
                      max_memory=None if max_memory is None else parse_size(max_memory))
    if dry_run:
        _dry_run(model, options, json_out)
        return
    plot = _plot_target(plot, options.mixed, force, (out, Path(model)))
    label = f"quantize {method} " + (type_ or (f"to {target_size or f'{target_bpw} bpw'}" if options.mixed
                                               else f"{bits}-bit"))
    rep = run_file_command("model", Path(model), out, options, force=force, json_out=json_out, seed=seed,
                           label=label)
    if plot is not None:
        from quanta.model.quantize.mixed import plot_map

        write_plot(plot, lambda tmp: plot_map(rep.mixed, tmp, title=f"{out.name}: bits per weight by tensor"))


def _work_folder(out: Path) -> Path:
    """``--resume``'s work folder beside the output (not for standard output)."""
    from quanta.errors import ConfigError
    from quanta.model.quantize.resume import work_folder

    if str(out) == "-":
        raise ConfigError("--resume keeps its work beside the output: give an output path, not -")
    return work_folder(out)


def _dry_run(model: str, options: Any, json_out: bool) -> None:
    """``quantize --dry-run``: the plan made from the source's metadata (the options were
    checked as they were built) and printed (a table of tensors grouped by role, format and
    reason, or ``--json``)."""
    from quanta.model.quantize.plan import plan_for, read_layout

    layout = read_layout(model)
    plan = plan_for(layout, options)  # with the options the family needs (options_for)
    if json_out:
        print_json(plan)
        return
    groups: dict[tuple, list] = {}
    for e in plan.entries:
        groups.setdefault((e.role, e.format, e.method or "—", e.reason), []).append(e)
    rows = [[*key[:3], len(es), f"{sum(e.nbytes for e in es) / 1e6:.2f}", key[3]]
            for key, es in groups.items()]
    print_table(f"plan: {plan.source} ({plan.architecture}) → {plan.format}", ["role", "format", "method",
                "tensors", "MB", "why"], rows, left=(0, 1, 2, 5))
    bound = "about " if plan.refine else ""
    refine = {"target": "the measured sensitivity chooses each tensor's format within the target",
              "default sharing": "the uniform file's bytes are shared out by measured sensitivity"}
    print(f"predicted size: {bound}{plan.predicted_bytes:,} bytes"
          + (f"; {refine[plan.refine]}" if plan.refine else "")
          + ("; calibration windows are read first" if plan.needs_calibration else ""))
    cost = plan.cost
    print(f"predicted cost (estimate, ± 30 %): ~{cost.seconds:.0f} s, ~{cost.peak_bytes / 1e9:.2f} GB "
          "peak resident memory on this machine class (quanta.model.quantize.cost)")
    if options.max_memory is not None:
        print(f"--max-memory {options.max_memory / 1e9:.2f} GB: the embedding and head read in "
              f"{plan.slice_bytes >> 20} MB slices")
    for note in plan.notes:
        print(f"note: {note}")


def _plot_target(plot: Path | None, mixed: bool, force: bool, others: tuple[Path, ...]) -> Path | None:
    """``--plot``'s path, checked before any work (it needs a target; it is replaced only with
    --force)."""
    from quanta.errors import ConfigError

    if plot is not None and not mixed:
        raise ConfigError("--plot draws the mixed-precision map: give --target-size or --target-bpw")
    return plot_path(plot, force=force, inputs=others)


@app.command()
def methods(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The registered weight quantizers."""
    from quanta.model.quantize.quantizers import QUANTIZERS

    rows = [{"method": n, "bits": f"{c.min_bits}..{c.max_bits}", "calibration": c.needs_calibration,
             "summary": c.summary or (c.__doc__ or "").splitlines()[0]} for n, c in QUANTIZERS.items()]
    if json_out:
        print_json(rows)
        return
    print_table("weight quantizers", ["method", "bits", "calibration", "summary"],
                [list(r.values()) for r in rows], left=(0, 3))


@app.command("eval")
def eval_(
    model: str = typer.Argument(..., help=MODEL_HELP),
    reference: str = typer.Option(None, "--reference", "-r", help="Float reference for KLD/top-1."),
    chunks: int = typer.Option(40, help="Windows of --ctx tokens."),
    ctx: int = typer.Option(512, help="Window length in tokens."),
    bits: int = typer.Option(None, help="Quantize MODEL in memory first (then the float MODEL is "
                             "the reference unless --reference is given)."),
    group_size: int = typer.Option(128, help="With --bits: inputs per group."),
    method: str = typer.Option("rtn", help="With --bits: the quantizer."),
    sym: bool = typer.Option(False, "--sym/--asym", help="With --bits: symmetric grid."),
    calib: Path = typer.Option(None, "--calib", help="With --bits and a calibrated method: the "
                               "calibration text."),
    calib_samples: int = typer.Option(64, help="Calibration windows."),
    calib_len: int = typer.Option(256, help="Tokens per calibration window."),
    speed: bool = typer.Option(True, "--speed/--no-speed", help="Measure decode tokens/s."),
    eager: bool = typer.Option(False, "--eager", help="Run MODEL's PyTorch model instead of quanta's "
                               "compiled kernels (a GGUF file's: its weights-only error)."),
    no_verify: bool = NO_VERIFY,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Evaluate MODEL with the quanta-ppl/1 protocol (encoders: embedding cosine similarity)."""
    _check_eval(model, reference, chunks, ctx, calib, calib_samples, calib_len)  # before torch loads
    import copy

    from quanta.model.eval.harness import evaluate_loaded
    from quanta.model.quantize.apply import quantize_model
    from quanta.model.quantize.quantizers import make_quantizer
    from quanta.model.quantize.recipe import calibration_for
    from quanta.model.sources.load import load_model

    quantizer = None if bits is None else make_quantizer(method, bits=bits, group_size=group_size, sym=sym)
    with progress_bar("load", enabled=not json_out):
        # a GGUF model runs on the compiled kernels (the reference stays the PyTorch model)
        loaded = load_model(model, verify=not no_verify, native=not eager and quantizer is None)
        ref_model = _reference(load_model(reference, verify=not no_verify), loaded) if reference else None
    if quantizer is not None:
        ref_model = ref_model if ref_model is not None else copy.deepcopy(loaded.model)
        windows = calibration_for(loaded, quantizer, calib, calib_samples, calib_len, 0)
        with progress_bar(f"quantize {method} {bits}-bit", enabled=not json_out) as progress:
            quantize_model(loaded.model, quantizer, calib=windows, progress=progress)
    with progress_bar("evaluate", enabled=not json_out) as progress:
        rep = evaluate_loaded(loaded, reference=ref_model, chunks=chunks, ctx=ctx, speed=speed,
                              progress=progress)
    show(rep, json_out, title=f"eval: {loaded.source}")


def _check_eval(model: str, reference: str | None, chunks: int, ctx: int, calib: Path | None,
                calib_samples: int, calib_len: int) -> None:
    """``eval``'s options, refused before any model is loaded."""
    from quanta.errors import ConfigError, InputError
    from quanta.model.sources.reading import check_source

    check_source(model)
    if reference is not None:
        check_source(reference, "reference")
    if chunks < 1:
        raise ConfigError(f"--chunks {chunks}: give at least 1")
    if ctx < 16:
        raise ConfigError(f"--ctx {ctx}: give at least 16 tokens")
    if calib_samples < 1 or calib_len < 1:
        raise ConfigError("--calib-samples and --calib-len: give at least 1")
    if calib is not None and not calib.is_file():
        raise InputError(f"{calib}: no such calibration text file")


def _reference(ref: Any, loaded: Any) -> Any:
    """The reference's model, once it is known to be comparable: a causal LM over the same
    vocabulary."""
    from quanta.errors import InputError

    if ref.kind == "hf-encoder" or not hasattr(ref.model, "lm_head"):
        raise InputError(f"{ref.source}: the reference is an encoder; KLD needs a causal language model")
    vocab = getattr(ref.model.config, "vocab_size", None)
    ours = getattr(getattr(loaded.model, "config", None), "vocab_size", None)
    if vocab and ours and vocab != ours:
        raise InputError(f"{ref.source}: the reference's vocabulary ({vocab} tokens) differs from the "
                         f"model's ({ours})")
    return ref.model


@app.command()
def generate(
    model: str = typer.Argument(..., help=MODEL_HELP),
    prompt: str = typer.Argument(None, help="The prompt; - reads it from standard input."),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Tokens to generate at most."),
    temperature: float = typer.Option(0.7, help="Sampling temperature (0: greedy, always the most "
                                      "likely token)."),
    top_p: float = typer.Option(0.9, "--top-p", help="Nucleus sampling: draw from the smallest set "
                                "of tokens whose probability reaches this."),
    seed: int = typer.Option(0, help="Seed of the sampler (same seed, same text)."),
    chat: bool = typer.Option(False, "--chat", help="Wrap the prompt in the chat template the model "
                              "carries (SmolLM2 has one)."),
    eager: bool = typer.Option(False, "--eager", help="Run the model's own forward at every step "
                               "instead of quanta's lean decode path (same tokens, slower)."),
    verbose: bool = typer.Option(False, "--verbose", help="Say which decode path ran, and why."),
    no_verify: bool = NO_VERIFY,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (text, token counts, "
                                  "tokens/s) instead of streaming."),
) -> None:
    """Generate text from MODEL, streamed as it comes; tokens/s on standard error at the end."""
    import sys

    from quanta.errors import InputError
    from quanta.model.runtime.generate import check_sampling
    from quanta.model.runtime.generate import generate as run
    from quanta.model.sources.load import load_model

    check_sampling(max_tokens, temperature, top_p)
    if prompt is None:
        raise InputError("give a PROMPT (or - to read it from standard input)")
    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise InputError("the prompt is empty")
    with progress_bar("load", enabled=not json_out):
        # a quanta Llama folder loads lite: no transformers import
        # a GGUF file runs on the compiled kernels, mapped: no PyTorch (--eager: the PyTorch model)
        loaded = load_model(model, lite=not eager, verify=not no_verify, native=not eager)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    rep = run(loaded, prompt, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
              chat=chat, write=None if json_out else write, fast=not eager)
    if json_out:
        print_json(rep)
        return
    sys.stdout.write("\n")
    print(f"{rep.prompt_tokens} prompt tokens at {rep.prefill_tokens_per_s:.1f} tokens/s, "
          f"{rep.generated_tokens} generated at {rep.decode_tokens_per_s:.1f} tokens/s "
          f"(stopped: {rep.stopped})", file=sys.stderr)
    if verbose:
        print(f"decode path: {rep.path}", file=sys.stderr)
        why = loaded.info.get("native")
        if why and not eager:
            print(f"compiled kernels not used: {why}", file=sys.stderr)


@app.command()
def info(
    model: str = typer.Argument(..., help=MODEL_HELP),
    no_verify: bool = NO_VERIFY,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Architecture, parameters, weight bytes and quantization of MODEL."""
    from quanta.model.sources.load import describe, load_model

    with progress_bar("load", enabled=not json_out):
        rep = describe(load_model(model, verify=not no_verify))
    show(rep, json_out, title=f"model: {rep.model}")
