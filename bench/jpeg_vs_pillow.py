"""quanta's JPEG encoder against Pillow (libjpeg-turbo) on the 24 Kodak images, in one run.

    python bench/jpeg_vs_pillow.py [--qualities 50,75,90] [--threads 2] [--repeat 3]

Quality: Annex K tables, 4:2:0, optimized Huffman tables on both sides; every file decoded
by Pillow; PSNR over RGB. Speed: all 24 images encoded at quality 75 by ``--threads`` worker
threads (the machine's cores), best of ``--repeat`` passes, in megapixels per second, for
quanta and for Pillow with and without optimize. Prints tables, writes
bench/out/jpeg_vs_pillow.json.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._util import machine, megapixels_per_s, write_json  # noqa: E402
from quanta.image.curve import pillow_encode  # noqa: E402
from quanta.image.jpeg import encode  # noqa: E402
from quanta.image.metrics import psnr_rgb_db  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402


def kodak() -> list[tuple[str, np.ndarray]]:
    from quanta.data import data_dir

    data = data_dir() / "kodak"
    files = sorted(data.glob("kodim*.png"))
    if len(files) != 24:
        raise SystemExit(f"expected 24 Kodak images in {data}, found {len(files)}")
    return [(f.stem, np.asarray(Image.open(f).convert("RGB"))) for f in files]


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--qualities", default="50,75,90")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    qs = [int(q) for q in args.qualities.split(",")]
    imgs = kodak()
    per_q, rows = [], []
    for q in qs:
        dps, ratios, ours_total, theirs_total = [], [], 0, 0
        for _, img in imgs:
            ours = encode(img, quality=q, subsampling="4:2:0", fast=True).data
            theirs = pillow_encode(img, q, subsampling="4:2:0", optimize=True)
            dps.append(psnr_rgb_db(img, decode(ours)) - psnr_rgb_db(img, decode(theirs)))
            ratios.append(len(ours) / len(theirs))
            ours_total += len(ours)
            theirs_total += len(theirs)
        r = {"quality": q, "psnr_diff_mean_db": float(np.mean(dps)),
             "psnr_diff_max_abs_db": float(np.max(np.abs(dps))),
             "size_ratio_total": ours_total / theirs_total,
             "size_ratio_min": float(np.min(ratios)), "size_ratio_max": float(np.max(ratios)),
             "quanta_bytes": ours_total, "pillow_bytes": theirs_total}
        per_q.append(r)
        rows.append([q, f"{r['psnr_diff_mean_db']:+.3f}", f"{r['psnr_diff_max_abs_db']:.3f}",
                     f"{100 * (r['size_ratio_total'] - 1):+.2f}%",
                     f"{100 * (r['size_ratio_min'] - 1):+.2f}% … {100 * (r['size_ratio_max'] - 1):+.2f}%"])
    print_table("quanta vs Pillow, 24 Kodak images, Annex K tables, 4:2:0, optimize=True",
                ["quality", "PSNR Δ mean (dB)", "|PSNR Δ| max", "size Δ (total)",
                 "size Δ per image"], rows)
    pics = [i for _, i in imgs]
    encoders = {"quanta": lambda i: encode(i, quality=75, fast=True),
                "pillow": lambda i: pillow_encode(i, 75, optimize=False),
                "pillow_optimize": lambda i: pillow_encode(i, 75, optimize=True)}
    speed = {k: megapixels_per_s(pics, fn, args.threads, args.repeat) for k, fn in encoders.items()}
    print_table(f"encode speed, 24 Kodak images at q75, {args.threads} threads ({machine()})",
                ["encoder", "MP/s"], [[k, f"{v:.1f}"] for k, v in speed.items()])
    console.print(f"quanta / Pillow(optimize): {speed['quanta'] / speed['pillow_optimize']:.3f}")
    path = write_json("jpeg_vs_pillow", {"quality": per_q, "speed_mp_s": speed,
                                         "threads": args.threads})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
