"""Rate–distortion curves: quanta's encoder and Pillow's over a range of qualities."""

from __future__ import annotations

import io
import time

import numpy as np

from quanta.image import metrics
from quanta.image.jpeg import encode


def decode(data: bytes) -> np.ndarray:
    """A JPEG's pixels (RGB, or gray for a gray file)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB" if im.mode != "L" else "L"))


def pillow_encode(img: np.ndarray, quality: int, *, subsampling: str = "4:2:0",
                  optimize: bool = True) -> bytes:
    """Pillow's (libjpeg-turbo's) JPEG at the same settings."""
    from PIL import Image

    b = io.BytesIO()
    sub = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}[subsampling]
    Image.fromarray(img).save(b, "JPEG", quality=quality, subsampling=sub, optimize=optimize)
    return b.getvalue()


def rd_point(img: np.ndarray, data: bytes, seconds: float, *, perceptual: bool = False) -> dict:
    """One point of a curve: bytes, bits per pixel, PSNR (RGB and luma), encode seconds; with
    ``perceptual``, SSIMULACRA2 too (slow: about half a second per Kodak image)."""
    dec = decode(data)
    h, w = img.shape[:2]
    out = {"bytes": len(data), "bpp": metrics.bits_per_pixel(len(data), w, h),
           "psnr_db": metrics.psnr_rgb_db(img, dec), "psnr_luma_db": metrics.psnr_luma_db(img, dec),
           "encode_s": seconds}
    if perceptual:
        out["ssimulacra2"] = metrics.ssimulacra2(img, dec)
    return out


def curve(img: np.ndarray, qualities: list[int], *, subsampling: str = "4:2:0",
          optimize: bool = True, fast: bool = False) -> dict[str, list[dict]]:
    """RD points (bpp, PSNR) for quanta (its default path, or ``fast``: libjpeg's choices) and
    Pillow at each quality (validated: 1..100)."""
    from quanta.image.jpeg.tables import quality_scaling

    for q in qualities:
        quality_scaling(q)
    out: dict[str, list[dict]] = {"quanta": [], "pillow": []}
    for q in qualities:
        t0 = time.perf_counter()
        ours = encode(img, quality=q, subsampling=subsampling, optimize=optimize, fast=fast).data
        t1 = time.perf_counter()
        theirs = pillow_encode(img, q, subsampling=subsampling, optimize=optimize)
        t2 = time.perf_counter()
        out["quanta"].append({"quality": q, **rd_point(img, ours, t1 - t0)})
        out["pillow"].append({"quality": q, **rd_point(img, theirs, t2 - t1)})
    return out


def curve_bd_rate(res: dict[str, list[dict]]) -> float | None:
    """BD-rate (%, PSNR, VCEG-M33) of quanta's curve against Pillow's; None under 4 points."""
    from quanta.image.rd import RDCurve

    q, p = RDCurve.of(res["quanta"]), RDCurve.of(res["pillow"])
    if min(len(q.points), len(p.points)) < 4:
        return None
    return q.bd_rate(p, "psnr_db", rate="bpp")


def plot_curve(res: dict[str, list[dict]], path, title: str = "") -> None:
    """Draw the curves (bits per pixel against PSNR) as a PNG at ``path``
    (:func:`quanta.render.plots.rd_plot`: quanta's curve in its role, the others as peers)."""
    from quanta.render.plots import Series, rd_plot

    rd_plot([Series(name, [p["bpp"] for p in pts], [p["psnr_db"] for p in pts],
                    "quanta" if name == "quanta" else "peer") for name, pts in res.items()],
            xlabel="bits per pixel", ylabel="PSNR (dB, RGB)", title=title or "rate–distortion", png=path)
