"""``quanta audio`` — requantize, analyze, generate, filters."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from quanta.cli.common import atomic_path, check_output, console, print_json, print_table, progress_bar

app = typer.Typer(help="Audio: requantize with dither and noise shaping; measure the result.",
                  no_args_is_help=True)


def _db(v: float) -> str:
    return "-inf" if v == -math.inf else f"{v:.2f}"


@app.command()
def requantize(
    src: Path = typer.Argument(..., help="Input audio file (WAV, FLAC, AIFF)."),
    dst: Path = typer.Argument(..., help="Output file; its extension picks the format."),
    bits: int = typer.Option(16, "--bits", "-b", help="Target depth, 1..24 bits."),
    dither: str = typer.Option("tpdf", help="none, rpdf, tpdf or hp-tpdf."),
    shape: str = typer.Option("auto", help="auto, none, designed[-ORDER], or a classic filter "
                              "(lipshitz, f-weighted, shibata, ...: see `quanta audio filters`)."),
    seed: int = typer.Option(0, help="Dither seed: the same seed gives the same bytes."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    force_dither: bool = typer.Option(False, "--force-dither",
                                      help="Dither even if the input already fits the target grid."),
    chunk: int = typer.Option(1 << 18, help="Frames per processing chunk."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Requantize SRC into DST at --bits, with dither and noise shaping."""
    from quanta.audio import io
    from quanta.audio.requantize import check_bits, requantize_file

    check_bits(bits)
    inf = io.info(src)
    fmt = io.format_for(dst)
    check_output(dst, force=force, inputs=(src,))
    with progress_bar(f"requantize → {bits} bits", inf.frames, enabled=not json_out) as adv, \
            atomic_path(dst) as tmp:
        rep = requantize_file(src, tmp, bits, dither=dither, shape=shape, seed=seed,
                              force_dither=force_dither, chunk_frames=chunk, out_format=fmt,
                              progress=adv)
    rep["output"] = str(dst)
    if json_out:
        print_json(rep)
        return
    rows = [["input", f"{src} ({rep['input_subtype']}, {rep['rate_hz']} Hz, "
             f"{rep['channels']} ch, {rep['seconds']:.2f} s)"],
            ["output", f"{dst} ({bits} bits)"]]
    if rep["exact_copy"]:
        rows.append(["method", f"exact copy: the input already fits {bits} bits "
                     "(--force-dither to dither anyway)"])
    else:
        rows.append(["dither", rep["dither"]])
        rows.append(["noise shaping", f"{rep['shape']} (order {rep['filter_order']})"])
        if "predicted_vs_unshaped_db" in rep:
            p = rep["predicted_vs_unshaped_db"]
            rows.append(["predicted vs unshaped", f"threshold-weighted {p['threshold_db']:+.1f} dB, "
                         f"total {p['total_db']:+.1f} dB, peak gain {p['peak_db']:+.1f} dB"])
    rows.append(["clipped samples", ", ".join(str(c) for c in rep["clipped"])])
    rows.append(["input peak", f"{_db(rep['input_peak_dbfs'])} dBFS"])
    rows.append(["time", f"{rep['wall_s']:.2f} s ({rep['seconds'] / max(rep['wall_s'], 1e-9):.0f}× "
                 "real time)"])
    print_table("requantize", ["", ""], rows, left=(0, 1))


@app.command()
def analyze(
    path: Path = typer.Argument(..., help="Audio file to measure."),
    reference: Path = typer.Option(None, "--reference", "-r",
                                   help="Reference (e.g. the original): measure the residual."),
    bits: int = typer.Option(None, help="Also report the AES17 dynamic range at this depth..."),
    dither: str = typer.Option("tpdf", help="...with this dither..."),
    shape: str = typer.Option("none", help="...and this noise shaping (at the file's rate)."),
    plot: Path = typer.Option(None, help="Write the residual spectrum as PNG (needs --reference)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing plot."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Peak, RMS, DC, clips, effective depth; with --reference, the residual's levels
    (threshold-weighted first, then unweighted, A-weighted, ITU-R 468) and SNR."""
    from quanta.audio.analyze import analyze_file, dynamic_range_db, plot_spectrum
    from quanta.errors import ConfigError

    if plot is not None:
        if reference is None:
            raise ConfigError("--plot needs --reference (it draws the residual)")
        check_output(plot, force=force, inputs=(path, reference))
    rep = analyze_file(path, reference)
    meter = rep.pop("_meter", None)
    if bits is not None:
        rep["dynamic_range"] = dynamic_range_db(bits, dither=dither, shape=shape,
                                                rate_hz=rep["rate_hz"])
    if plot is not None:
        with atomic_path(plot) as tmp:
            plot_spectrum(meter, tmp, title=f"residual of {path.name} vs {reference.name}")
    if json_out:
        print_json(rep)
        return
    console.print(f"{path}: {rep['rate_hz']} Hz, {rep['channels']} ch, {rep['seconds']:.2f} s, "
                  f"{rep['subtype']}")
    print_table("channels", ["channel", "peak dBFS", "RMS dBFS", "DC", "clips", "effective bits"],
                [[i, _db(c["peak_dbfs"]), _db(c["rms_dbfs"]), f"{c['dc']:.2e}", c["clips"],
                  c["effective_bits"] or "float"] for i, c in enumerate(rep["channels_stats"])])
    if "residual" in rep:
        r = rep["residual"]
        print_table("residual vs reference (dB re full-scale amplitude)",
                    ["measure", "level"],
                    [["threshold-weighted, 20 Hz–20 kHz", _db(r["threshold_db"])],
                     ["unweighted, whole band", _db(r["unweighted_db"])],
                     ["unweighted, 20 Hz–20 kHz", _db(r["unweighted_band_db"])],
                     ["A-weighted", _db(r["a_db"])],
                     ["ITU-R 468-weighted", _db(r["itu468_db"])],
                     ["peak", _db(r["peak_db"])],
                     ["SNR", _db(r["snr_db"])]])
    if "dynamic_range" in rep:
        d = rep["dynamic_range"]
        console.print(f"AES17 dynamic range at {d['bits']} bits, dither {d['dither']}, shaping "
                      f"{d['shape']}: {d['dynamic_range_db']:.2f} dB unweighted, "
                      f"{d['dynamic_range_a_db']:.2f} dB A-weighted")
    if plot is not None:
        console.print(f"wrote {plot}")


@app.command()
def generate(
    dst: Path = typer.Argument(..., help="Output file (.wav or .aiff, float samples)."),
    kind: str = typer.Option("music", help="sine, sweep, multitone or music."),
    seconds: float = typer.Option(10.0, help="Duration in seconds."),
    rate: int = typer.Option(48000, help="Sample rate in Hz."),
    channels: int = typer.Option(2, help="Channel count."),
    level: float = typer.Option(-1.0, help="Peak level in dBFS."),
    freq: float = typer.Option(997.0, help="Frequency of the sine in Hz."),
    seed: int = typer.Option(0, help="Seed for the music-like signal."),
    double: bool = typer.Option(False, "--double", help="64-bit float samples (default 32)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
) -> None:
    """Generate a float test signal."""
    import soundfile as sf

    from quanta.audio import generate as gen
    from quanta.audio import io

    fmt = io.format_for(dst)
    if fmt == "FLAC":
        from quanta.errors import ConfigError

        raise ConfigError("FLAC cannot hold float samples; use .wav or .aiff")
    gen._check(kind, seconds, rate, channels)
    check_output(dst, force=force)
    total = round(seconds * rate)
    with progress_bar(f"generate {kind}", total) as adv, atomic_path(dst) as tmp, \
            sf.SoundFile(tmp, "w", samplerate=rate, channels=channels, format=fmt,
                         subtype="DOUBLE" if double else "FLOAT") as f:
        for x in gen.blocks(kind, seconds=seconds, rate_hz=rate, channels=channels, seed=seed,
                            level_db=level, freq_hz=freq):
            f.write(x)
            adv(x.shape[0])
    console.print(f"wrote {dst} ({kind}, {seconds:g} s, {rate} Hz, {channels} ch)")


@app.command()
def filters(
    rate: int = typer.Option(48000, help="Sample rate in Hz."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Noise-shaping filters usable at --rate, with their predicted noise vs unshaped."""
    from quanta.audio.shaping import CLASSIC, design, predicted

    flts = [design(rate)] + [f for f in CLASSIC if abs(rate - f.rate_hz) / f.rate_hz <= 0.05]
    rows = [{"name": f.name, "order": f.order, "native_rate_hz": f.rate_hz,
             **predicted(f, rate)} for f in flts]
    if json_out:
        print_json(rows)
        return
    print_table(f"noise-shaping filters at {rate} Hz (dB relative to unshaped TPDF)",
                ["filter", "order", "threshold-weighted", "total", "peak gain"],
                [[r["name"], r["order"], f"{r['threshold_db']:+.2f}", f"{r['total_db']:+.2f}",
                  f"{r['peak_db']:+.2f}"] for r in rows])
