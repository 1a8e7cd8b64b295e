"""``quanta image`` — encode, compare, curve, posterize."""

from __future__ import annotations

from pathlib import Path

import typer

from quanta.cli.common import atomic_path, check_output, console, print_json, print_table

app = typer.Typer(help="Images: a JPEG encoder whose quantization is ours; posterize; metrics.",
                  no_args_is_help=True)


def _tables(spec: str):
    """A preset name, or (luma, chroma) tables read from a file."""
    from quanta.image.jpeg.tables import PRESETS, load_tables

    return spec if spec in PRESETS else load_tables(spec)


@app.command()
def encode(
    src: Path = typer.Argument(..., help="Input image (anything Pillow reads)."),
    dst: Path = typer.Argument(..., help="Output .jpg file."),
    quality: int = typer.Option(75, "--quality", "-q", help="1..100 (IJG scaling, as libjpeg)."),
    subsampling: str = typer.Option("4:2:0", help="4:4:4, 4:2:2 or 4:2:0."),
    tables: str = typer.Option("annexk", help="annexk, flat, imagemagick, klein, or a text file "
                               "of 64 (or 128: luma then chroma) integers 1..255."),
    optimize: bool = typer.Option(True, "--optimize/--no-optimize",
                                  help="Huffman tables from the image's statistics."),
    restart: int = typer.Option(0, help="Restart interval in MCUs (0: none)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Encode SRC as a baseline JPEG."""
    from quanta.image.io import load_image
    from quanta.image.jpeg import encode as jpeg_encode
    from quanta.image.jpeg.tables import quality_scaling

    quality_scaling(quality)  # validates
    tbl = _tables(tables)
    check_output(dst, force=force, inputs=(src,))
    img, icc, notes = load_image(src)
    enc = jpeg_encode(img, quality=quality, subsampling=subsampling, tables=tbl, optimize=optimize,
                      restart_interval=restart, icc_profile=icc)
    with atomic_path(dst) as tmp:
        tmp.write_bytes(enc.data)
    rep = {"input": str(src), "output": str(dst), "width": enc.width, "height": enc.height,
           "bytes": len(enc.data), "bpp": enc.bits_per_pixel, "quality": quality,
           "subsampling": subsampling if enc.components == 3 else "gray", "notes": notes}
    if json_out:
        print_json(rep)
        return
    for n in notes:
        console.print(f"note: {n}")
    console.print(f"wrote {dst}: {enc.width}×{enc.height}, {len(enc.data)} bytes, "
                  f"{enc.bits_per_pixel:.3f} bpp (q {quality}, {rep['subsampling']})")


@app.command()
def compare(
    ref: Path = typer.Argument(..., help="Reference image."),
    dist: Path = typer.Argument(..., help="Distorted image (same size)."),
    no_ssimulacra2: bool = typer.Option(False, "--no-ssimulacra2", help="Skip SSIMULACRA2 (slow)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """PSNR (RGB, luma), SSIM, SSIMULACRA2 and bits per pixel of DIST against REF."""
    from quanta.errors import InputError
    from quanta.image import metrics
    from quanta.image.io import load_image

    a, _, _ = load_image(ref)
    b, _, _ = load_image(dist)
    if a.ndim != b.ndim:  # compare gray against colour as colour
        a = a if a.ndim == 3 else a[..., None].repeat(3, axis=2)
        b = b if b.ndim == 3 else b[..., None].repeat(3, axis=2)
    if a.shape != b.shape:
        raise InputError(f"sizes differ: {ref} is {a.shape[1]}×{a.shape[0]}, "
                         f"{dist} is {b.shape[1]}×{b.shape[0]}")
    rep = {"psnr_db": metrics.psnr_rgb_db(a, b), "psnr_luma_db": metrics.psnr_luma_db(a, b),
           "ssim": metrics.ssim(a, b),
           "bpp": metrics.bits_per_pixel(dist.stat().st_size, a.shape[1], a.shape[0])}
    if not no_ssimulacra2:
        rep["ssimulacra2"] = metrics.ssimulacra2(a if a.ndim == 3 else a[..., None].repeat(3, 2),
                                                 b if b.ndim == 3 else b[..., None].repeat(3, 2))
    if json_out:
        print_json(rep)
        return
    print_table(f"{dist.name} vs {ref.name}", ["metric", "value"],
                [[k, f"{v:.4f}" if k in ("ssim", "bpp") else f"{v:.2f}"] for k, v in rep.items()])


@app.command()
def curve(
    src: Path = typer.Argument(..., help="Input image."),
    qualities: str = typer.Option("10,20,30,40,50,60,70,75,80,85,90,95",
                                  help="Comma-separated qualities."),
    subsampling: str = typer.Option("4:2:0", help="4:4:4, 4:2:2 or 4:2:0."),
    plot: Path = typer.Option(None, help="Write the RD plot (PNG)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing plot."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rate–distortion of quanta's encoder against Pillow's, with the BD-rate."""
    from quanta.errors import ConfigError
    from quanta.image.curve import curve as rd_curve
    from quanta.image.curve import plot_curve
    from quanta.image.io import load_image
    from quanta.image.metrics import bd_rate

    try:
        qs = [int(q) for q in qualities.split(",")]
    except ValueError:
        raise ConfigError(f"bad --qualities {qualities!r}: comma-separated integers") from None
    for q in qs:
        if not 1 <= q <= 100:
            raise ConfigError(f"quality {q} is outside 1..100")
    if plot is not None:
        check_output(plot, force=force, inputs=(src,))
    img, _, _ = load_image(src)
    res = rd_curve(img, qs, subsampling=subsampling)
    bd = None
    if len(qs) >= 4:
        bd = bd_rate([p["bpp"] for p in res["pillow"]], [p["psnr_db"] for p in res["pillow"]],
                     [p["bpp"] for p in res["quanta"]], [p["psnr_db"] for p in res["quanta"]])
    if plot is not None:
        with atomic_path(plot) as tmp:
            plot_curve(res, tmp, title=f"{src.name}: quanta vs Pillow ({subsampling})")
    if json_out:
        print_json({**res, "bd_rate_percent": bd})
        return
    rows = [[q["quality"], f"{q['bpp']:.3f}", f"{q['psnr_db']:.2f}", f"{p['bpp']:.3f}",
             f"{p['psnr_db']:.2f}", f"{100 * (q['bytes'] / p['bytes'] - 1):+.1f}%"]
            for q, p in zip(res["quanta"], res["pillow"])]
    print_table(f"{src.name}: quanta vs Pillow, optimize=True, {subsampling}",
                ["quality", "quanta bpp", "quanta PSNR", "Pillow bpp", "Pillow PSNR", "size Δ"],
                rows)
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
    import numpy as np
    from PIL import Image

    from quanta.errors import ConfigError
    from quanta.image import metrics
    from quanta.image.io import load_image
    from quanta.image.posterize import posterize as run

    if dst.suffix.lower() != ".png":
        raise ConfigError(f"{dst}: posterize writes PNG (use a .png name)")
    check_output(dst, force=force, inputs=(src,))
    img, _, notes = load_image(src)
    out = run(img, bits, dither=dither)
    with atomic_path(dst) as tmp:
        Image.fromarray(out).save(tmp, format="PNG")
    rep = {"output": str(dst), "bits": bits, "dither": dither,
           "levels_per_channel": len(np.unique(out)) if out.size else 0,
           "psnr_db": metrics.psnr_rgb_db(img, out), "notes": notes}
    if json_out:
        print_json(rep)
        return
    console.print(f"wrote {dst}: {bits} bits/channel, dither {dither}, PSNR {rep['psnr_db']:.2f} dB")



