"""``quanta image`` — encode, compare, curve, posterize: parse, call, print."""

from __future__ import annotations

from pathlib import Path

import typer

from quanta.cli.common import (
    CLUSTER,
    JOBS,
    OUTPUT,
    RECURSIVE,
    BatchOptions,
    console,
    plot_path,
    print_json,
    print_table,
    run_files,
    show,
    write_plot,
)

app = typer.Typer(help="Images: a JPEG encoder whose quantization is ours; posterize; metrics.",
                  no_args_is_help=True)


@app.command()
def encode(
    paths: list[Path] = typer.Argument(..., help="SRC DST (a .jpg), or with -o: input images, folders "
                                       "and patterns (anything Pillow reads)."),
    quality: int = typer.Option(75, "--quality", "-q", help="1..100 (IJG scaling, as libjpeg)."),
    subsampling: str = typer.Option("auto", help="4:4:4, 4:2:2, 4:2:0, or auto: 4:4:4 where the "
                                    "chroma holds more detail than its quantization keeps, else "
                                    "4:2:0 (--fast: 4:2:0)."),
    tables: str = typer.Option(None, help="quanta, annexk, flat, imagemagick, klein, or a text file of 64 "
                               "(or 128: luma then chroma) integers 1..255 (default: quanta; "
                               "--fast: annexk)."),
    optimize_tables: bool = typer.Option(False, "--optimize-tables", help="Adjust the tables to the "
                                         "image, band by band (least bits + λ·error; slower)."),
    fast: bool = typer.Option(False, "--fast", help="libjpeg's path: Annex K tables, rounding to "
                              "nearest, baseline (about 6x faster, larger files)."),
    progressive: bool = typer.Option(None, "--progressive/--baseline",
                                     help="Scan structure (default: the smaller file; --fast: "
                                     "baseline)."),
    target_size: str = typer.Option(None, "--target-size", help="Largest file size instead of a "
                                    "quality: bytes or with a unit (150kB, 1.5MB, 200KiB)."),
    target_ssimulacra2: float = typer.Option(None, "--target-ssimulacra2",
                                             help="SSIMULACRA2 score to reach (±1)."),
    target_psnr: float = typer.Option(None, "--target-psnr", help="PSNR (dB, RGB) to reach."),
    optimize: bool = typer.Option(True, "--optimize/--no-optimize",
                                  help="Huffman tables from the image's statistics."),
    restart: int = typer.Option(0, help="Restart interval in MCUs (0: none; baseline files)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    output: Path = OUTPUT,
    recursive: bool = RECURSIVE,
    jobs: int = JOBS,
    cluster: str = CLUSTER,
) -> None:
    """Encode SRC as a JPEG (or many images: -o OUTDIR): trellis quantization, perceptual
    tables and the smaller scan structure unless --fast."""
    from quanta.errors import ConfigError
    from quanta.image.jpeg.tables import resolve_tables
    from quanta.image.medium import Options
    from quanta.units import parse_size

    targets = [(k, v) for k, v in (("size", target_size), ("ssimulacra2", target_ssimulacra2),
                                   ("psnr", target_psnr)) if v is not None]
    if len(targets) > 1:
        raise ConfigError("give one of --target-size, --target-ssimulacra2, --target-psnr")
    target = None
    if targets:
        kind, value = targets[0]
        target = (kind, float(parse_size(value)) if kind == "size" else float(value))
    options = Options(quality=quality, subsampling=subsampling,
                      tables=None if tables is None else resolve_tables(tables), optimize=optimize,
                      restart_interval=restart, progressive=progressive, fast=fast, target=target,
                      optimize_tables=optimize_tables)
    run_files("image", paths, BatchOptions(output, recursive, jobs, cluster), options, force=force,
              json_out=json_out, label="encode")


@app.command()
def compare(
    ref: Path = typer.Argument(..., help="Reference image."),
    dist: Path = typer.Argument(..., help="Distorted image (same size)."),
    no_ssimulacra2: bool = typer.Option(False, "--no-ssimulacra2", help="Skip SSIMULACRA2 (slow)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """PSNR (RGB, luma), SSIM, SSIMULACRA2 and bits per pixel of DIST against REF."""
    from quanta.image.io import load_image
    from quanta.image.metrics import compare as run

    rep = run(load_image(ref)[0], load_image(dist)[0], n_bytes=dist.stat().st_size,
              with_ssimulacra2=not no_ssimulacra2)
    show(rep, json_out, title=f"{dist.name} vs {ref.name}")


@app.command()
def curve(
    src: Path = typer.Argument(..., help="Input image."),
    qualities: str = typer.Option("10,20,30,40,50,60,70,75,80,85,90,95",
                                  help="Comma-separated qualities."),
    subsampling: str = typer.Option("4:2:0", help="4:4:4, 4:2:2 or 4:2:0."),
    fast: bool = typer.Option(False, "--fast", help="quanta's --fast path (libjpeg's choices)."),
    plot: Path = typer.Option(None, help="Write the RD plot (PNG)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing plot."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rate–distortion of quanta's encoder against Pillow's, with the BD-rate."""
    from quanta.errors import ConfigError
    from quanta.image.curve import curve as rd_curve
    from quanta.image.curve import curve_bd_rate, plot_curve
    from quanta.image.io import load_image
    try:
        qs = [int(q) for q in qualities.split(",")]
    except ValueError:
        raise ConfigError(f"bad --qualities {qualities!r}: comma-separated integers") from None
    plot = plot_path(plot, force=force, inputs=(src,))
    res = rd_curve(load_image(src)[0], qs, subsampling=subsampling, fast=fast)
    bd = curve_bd_rate(res)
    write_plot(plot, lambda tmp: plot_curve(res, tmp, title=f"{src.name}: quanta vs Pillow ({subsampling})"))
    if json_out:
        print_json({**res, "bd_rate_percent": bd})
        return
    rows = [[q["quality"], f"{q['bpp']:.3f}", f"{q['psnr_db']:.2f}", f"{p['bpp']:.3f}",
             f"{p['psnr_db']:.2f}", f"{100 * (q['bytes'] / p['bytes'] - 1):+.1f}%"]
            for q, p in zip(res["quanta"], res["pillow"])]
    print_table(f"{src.name}: quanta vs Pillow, optimize=True, {subsampling}",
                ["quality", "quanta bpp", "quanta PSNR", "Pillow bpp", "Pillow PSNR", "size Δ"], rows)
    if bd is not None:
        console.print(f"BD-rate (PSNR, VCEG-M33 cubic fit), quanta vs Pillow: {bd:+.2f}%")


@app.command()
def posterize(
    src: Path = typer.Argument(..., help="Input image."),
    dst: Path = typer.Argument(..., help="Output .png file."),
    bits: int = typer.Option(..., "--bits", "-b", help="Bits per channel, 1..7."),
    dither: str = typer.Option("fs", help="none, ordered (Bayer 8×8) or fs (Floyd–Steinberg)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Reduce SRC to 2^bits levels per channel, with dither, and write a PNG."""
    from quanta.image.posterize import posterize_file
    from quanta.outputs import atomic_output, check_output

    check_output(dst, force=force, inputs=(src,))
    with atomic_output(dst) as tmp:
        rep = posterize_file(src, tmp, bits=bits, dither=dither)
    show(rep.with_output(dst), json_out, title="posterize")
