"""``quanta model`` — quantize, eval, info."""

from __future__ import annotations

from pathlib import Path

import typer

from quanta.cli.common import console, print_json, print_table, progress_bar

app = typer.Typer(help="Neural networks: quantize weights, run them on the CPU, measure the cost.",
                  no_args_is_help=True)

MODEL_HELP = "A .gguf file, a quanta folder, a Hugging Face folder, or smollm2 / minilm."


def _quantize(model, bits: int, group_size: int, method: str, sym: bool, include: str,
              exclude: str, head: bool, quiet: bool) -> dict:
    from quanta.model.apply import quantize_model

    with progress_bar(f"quantize {method} {bits}-bit", 1, enabled=not quiet) as adv:
        return quantize_model(model, bits=bits, group_size=group_size, method=method, sym=sym,
                              include=tuple(p for p in include.split(",") if p),
                              exclude=tuple(p for p in exclude.split(",") if p), head=head,
                              progress=lambda i, n: adv(1 / n))


@app.command()
def quantize(
    model: str = typer.Argument(..., help=MODEL_HELP),
    out: Path = typer.Option(..., "--output", "-o", help="Output folder."),
    bits: int = typer.Option(4, help="2..8 bits per weight."),
    group_size: int = typer.Option(128, help="Inputs per scale group (0: one group per row)."),
    method: str = typer.Option("rtn", help="rtn, mse, hqq or nf4."),
    sym: bool = typer.Option(False, "--sym/--asym", help="Symmetric grid (no zero point)."),
    include: str = typer.Option("*", help="Comma-separated name patterns of layers to quantize."),
    exclude: str = typer.Option("lm_head", help="Comma-separated name patterns to leave float."),
    head: bool = typer.Option(False, "--head", help="Quantize the output head too (untied)."),
    float_dtype: str = typer.Option("float32", help="Storage of what stays float (embeddings, "
                                    "norms): float32, bfloat16 or float16."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output folder."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Quantize MODEL's Linear layers and save a folder of safetensors + JSON config."""
    import torch

    from quanta.errors import ConfigError
    from quanta.model.apply import count_by_path
    from quanta.model.files import save_quantized
    from quanta.model.load import load_model
    from quanta.model.quantizers import METHODS

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    if float_dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"--float-dtype must be float32, bfloat16 or float16, not {float_dtype!r}")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    loaded = load_model(model)
    if loaded.kind not in ("gguf", "hf-causal-lm"):
        raise ConfigError(f"{model}: saving quantized {loaded.kind} models is not supported "
                          "(use `quanta model eval --bits` to measure them)")
    rep = _quantize(loaded.model, bits, group_size, method, sym, include, exclude, head, json_out)
    save_quantized(loaded.model, loaded.tokenizer, out, report=rep, source=loaded.source, force=force,
                   float_dtype=getattr(torch, float_dtype))
    size = sum(p.stat().st_size for p in out.iterdir())
    summary = {"output": str(out), "layers": len(rep["layers"]), "paths": count_by_path(loaded.model),
               "bits_per_weight": rep["bits_per_weight"],
               "bits_per_quantized_weight": rep["bits_per_quantized_weight"],
               "weight_bytes": rep["weight_bytes"], "folder_bytes": size}
    if json_out:
        print_json(summary)
        return
    console.print(f"wrote {out}: {summary['layers']} layers quantized ({summary['paths']}), "
                  f"{summary['bits_per_weight']:.2f} bits/weight overall "
                  f"({summary['bits_per_quantized_weight']:.3f} in quantized layers), "
                  f"{size / 1e6:.1f} MB on disk")


@app.command("eval")
def eval_(
    model: str = typer.Argument(..., help=MODEL_HELP),
    reference: str = typer.Option(None, "--reference", "-r", help="Float reference for KLD/top-1."),
    chunks: int = typer.Option(40, help="Windows of --ctx tokens."),
    ctx: int = typer.Option(512, help="Window length in tokens."),
    bits: int = typer.Option(None, help="Quantize MODEL in memory first (then the float MODEL is "
                             "the reference unless --reference is given)."),
    group_size: int = typer.Option(128, help="With --bits: inputs per group."),
    method: str = typer.Option("rtn", help="With --bits: rtn, mse, hqq or nf4."),
    sym: bool = typer.Option(False, "--sym/--asym", help="With --bits: symmetric grid."),
    speed: bool = typer.Option(True, "--speed/--no-speed", help="Measure decode tokens/s."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Evaluate MODEL with the quanta-ppl/1 protocol (encoders: embedding cosine similarity)."""
    import copy

    from quanta.errors import ConfigError
    from quanta.model import evaluate as ev
    from quanta.model.apply import weight_stats
    from quanta.model.load import load_model

    if chunks < 1 or ctx < 4:
        raise ConfigError("need --chunks ≥ 1 and --ctx ≥ 4")
    loaded = load_model(model)
    ref_model = load_model(reference).model if reference else None
    if bits is not None:
        if ref_model is None:
            ref_model = copy.deepcopy(loaded.model)
        _quantize(loaded.model, bits, group_size, method, sym, "*", "lm_head", False, json_out)
    m = loaded.model
    stats = weight_stats(m)
    path = Path(loaded.source)
    file_bytes = path.stat().st_size if path.is_file() else sum(
        p.stat().st_size for p in path.iterdir() if p.is_file())
    rep: dict = {"model": loaded.source, "kind": loaded.kind, **stats, "file_bytes": file_bytes}
    if loaded.kind == "hf-encoder":
        text = ev.test_text()
        sentences = [s.strip() for s in text.splitlines() if len(s.strip()) > 40][:64]
        emb = ev.sentence_embeddings(m, loaded.tokenizer, sentences)
        if ref_model is not None:
            ref = ev.sentence_embeddings(ref_model, loaded.tokenizer, sentences)
            rep["cosine_similarity_mean"] = float((emb * ref).sum(-1).mean())
            rep["cosine_similarity_min"] = float((emb * ref).sum(-1).min())
        rep["sentences"] = len(sentences)
    else:
        bos = getattr(m.config, "bos_token_id", None)
        bos = 1 if bos is None else int(bos if not isinstance(bos, list) else bos[0])
        wins = ev.windows(loaded.tokenizer, ev.test_text(), bos_id=bos, n_ctx=ctx, n_chunks=chunks)
        with progress_bar("evaluate", chunks, enabled=not json_out) as adv:
            rep.update(ev.evaluate_causal_lm(m, wins, reference=ref_model,
                                             progress=lambda i, n: adv(1)))
        if speed:
            rep["decode_tokens_per_s"] = ev.decode_speed(m, wins[0:1, :32], 32)
    rep["peak_rss_mb"] = ev.peak_rss_mb()
    if json_out:
        print_json(rep)
        return
    rows = [[k, f"{v:.5f}" if isinstance(v, float) and abs(v) < 1 else
             (f"{v:.3f}" if isinstance(v, float) else str(v))]
            for k, v in rep.items() if k != "protocol"]
    print_table(f"eval: {loaded.source}", ["measure", "value"], rows)
    if "protocol" in rep:
        console.print(rep["protocol"])


@app.command()
def info(
    model: str = typer.Argument(..., help=MODEL_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Architecture, parameters, weight bytes and quantization of MODEL."""
    from collections import Counter

    from quanta.model.apply import count_by_path, weight_stats
    from quanta.model.load import load_model

    loaded = load_model(model)
    rep = {"model": loaded.source, "kind": loaded.kind, "class": type(loaded.model).__name__,
           **weight_stats(loaded.model), "quantized_layers": count_by_path(loaded.model)}
    if loaded.kind == "gguf":
        rep["gguf_tensor_types"] = dict(Counter(loaded.info["tensor_types"].values()))
        rep["gguf_name"] = loaded.info["metadata"].get("name")
    if json_out:
        print_json(rep)
        return
    print_table(f"model: {loaded.source}", ["field", "value"], [[k, str(v)] for k, v in rep.items()])
