"""``quanta audio`` — requantize, analyze, generate, filters: parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from quanta.cli.common import (
    CLUSTER,
    JOBS,
    OUTPUT,
    RECURSIVE,
    BatchOptions,
    plot_path,
    print_json,
    print_table,
    progress_bar,
    run_files,
    show,
    write_plot,
)

app = typer.Typer(help="Audio: requantize with dither and noise shaping; measure the result.",
                  no_args_is_help=True)


@app.command()
def requantize(
    paths: list[Path] = typer.Argument(..., help="SRC DST (the output's extension picks the format), "
                                       "or with -o: input files, folders and patterns (WAV, FLAC, AIFF)."),
    bits: int = typer.Option(16, "--bits", "-b", help="Target depth, 1..24 bits."),
    dither: str = typer.Option("tpdf", help="none, rpdf, tpdf or hp-tpdf."),
    shape: str = typer.Option("auto", help="auto, adaptive (re-fitted every ~21 ms to the music's "
                              "masking threshold), none, designed[-ORDER], or a classic filter "
                              "(lipshitz, f-weighted, shibata, ...: see `quanta audio filters`)."),
    seed: int = typer.Option(0, help="Dither seed: the same seed gives the same bytes."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    force_dither: bool = typer.Option(False, "--force-dither",
                                      help="Dither even if the input already fits the target grid."),
    chunk: int = typer.Option(1 << 18, help="Frames per processing chunk."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    output: Path = OUTPUT,
    recursive: bool = RECURSIVE,
    jobs: int = JOBS,
    cluster: str = CLUSTER,
    out_format: str = typer.Option(None, "--format", help="A batch's output format: wav, flac or "
                                   "aiff (default: each input's own)."),
) -> None:
    """Requantize SRC into DST at --bits, with dither and noise shaping (or many files: -o)."""
    from quanta.audio.medium import Options

    options = Options(bits=bits, dither=dither, shape=shape, force_dither=force_dither, chunk_frames=chunk)
    run_files("audio", paths, BatchOptions(output, recursive, jobs, cluster), options, force=force,
              json_out=json_out, seed=seed, label=f"requantize → {bits} bits",
              suffix_for=_suffix_for(out_format, output))


def _suffix_for(out_format: str | None, output: Path | None) -> Any:
    """A batch output's extension: ``--format``'s, else the input's own."""
    from quanta.errors import ConfigError

    formats = {"wav": ".wav", "flac": ".flac", "aiff": ".aiff", "aif": ".aif"}
    if out_format is None:
        return lambda src: src.suffix.lower()
    if output is None:
        raise ConfigError("--format applies to a batch (-o OUTDIR); DST's extension picks the format")
    if out_format.lower() not in formats:
        raise ConfigError(f"unknown --format {out_format!r} (choose from wav, flac, aiff)")
    return lambda src: formats[out_format.lower()]


@app.command()
def analyze(
    path: Path = typer.Argument(..., help="Audio file to measure."),
    reference: Path = typer.Option(None, "--reference", "-r",
                                   help="Reference (e.g. the original): measure the residual."),
    bits: int = typer.Option(None, help="Also report the AES17 dynamic range at this depth..."),
    dither: str = typer.Option("tpdf", help="...with this dither..."),
    shape: str = typer.Option("none", help="...and this noise shaping (at the file's rate)."),
    plot: Path = typer.Option(None, help="Write the residual spectrum as PNG (needs --reference)."),
    nmr_plot: Path = typer.Option(None, "--nmr-plot", help="Write the noise-to-mask ratio per frame "
                                  "over time as PNG (needs --reference)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing plot."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Peak, RMS, DC, clips, effective depth; with --reference, the residual's levels
    (threshold-weighted first, then unweighted, A-weighted, ITU-R 468), SNR and its
    noise-to-mask ratio against the reference's masking threshold (per frame: median, 95th
    percentile, share above 0 dB)."""
    from quanta.audio.analyze import analyze_file, plot_nmr, plot_spectrum
    from quanta.errors import ConfigError
    for name, value in (("--plot", plot), ("--nmr-plot", nmr_plot)):
        if value is not None and reference is None:
            raise ConfigError(f"{name} needs --reference (it draws the residual)")
    plot = plot_path(plot, force=force, inputs=(path, reference))
    nmr_plot = plot_path(nmr_plot, force=force, inputs=(path, reference))
    if plot is not None and plot == nmr_plot:
        raise ConfigError("--plot and --nmr-plot name the same file")
    with progress_bar("analyze", enabled=not json_out) as progress:
        rep = analyze_file(path, reference, dynamic_range_bits=bits, dither=dither, shape=shape,
                           progress=progress)
    write_plot(plot, lambda tmp: plot_spectrum(rep.meter, tmp, title=f"residual of {path.name} vs "
                                                                  f"{reference.name}"))
    write_plot(nmr_plot, lambda tmp: plot_nmr(rep.nmr_series, tmp, title=f"noise-to-mask ratio of "
                                              f"{path.name} against {reference.name}"))
    show(rep, json_out, title=f"analyze {path.name}")


@app.command()
def generate(
    dst: Path = typer.Argument(..., help="Output file (.wav or .aiff, float samples)."),
    kind: str = typer.Option("music", help="sine, sweep, multitone or music."),
    seconds: float = typer.Option(10.0, help="Duration in seconds."),
    rate: int = typer.Option(48000, help="Sample rate in Hz."),
    channels: int = typer.Option(2, help="Channel count."),
    level: float = typer.Option(-1.0, help="Peak level in dBFS (≤ 0)."),
    freq: float = typer.Option(997.0, help="Frequency of the sine in Hz."),
    seed: int = typer.Option(0, help="Seed for the music-like signal."),
    double: bool = typer.Option(False, "--double", help="64-bit float samples (default 32)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Generate a float test signal."""
    from quanta.audio import generate as gen
    from quanta.outputs import atomic_output, check_output

    check_output(dst, force=force)
    with progress_bar(f"generate {kind}", enabled=not json_out) as progress, atomic_output(dst) as tmp:
        rep = gen.write(tmp, kind, seconds=seconds, rate_hz=rate, channels=channels, seed=seed,
                        level_db=level, freq_hz=freq, double=double, progress=progress)
    show(rep.with_output(dst), json_out, title="generate")


@app.command()
def filters(
    rate: int = typer.Option(48000, help="Sample rate in Hz."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Noise-shaping filters usable at --rate, with their predicted noise vs unshaped."""
    from quanta.audio.shaping import filters_at

    rows = filters_at(rate)
    if json_out:
        print_json(rows)
        return
    print_table(f"noise-shaping filters at {rate} Hz (dB relative to unshaped TPDF)",
                ["filter", "order", "threshold-weighted", "total", "peak gain"],
                [[r["name"], r["order"], f"{r['threshold_db']:+.2f}", f"{r['total_db']:+.2f}",
                  f"{r['peak_db']:+.2f}"] for r in rows])
