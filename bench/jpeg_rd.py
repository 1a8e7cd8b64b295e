"""Rate–distortion of quanta's JPEG encoder against Pillow (libjpeg-turbo) and jpegli, on the 24
Kodak images, in one run.

    python bench/jpeg_rd.py [--qualities 50,60,70,80,90] [--images N] [--threads 2]

Every encoder writes each image at each quality (4:2:0 for the peers; quanta's default chooses
it per image, and picks 4:2:0 for every Kodak image at these qualities); Pillow decodes every
file. Per image,
the Bjøntegaard delta rate (VCEG-M33 cubic fit) of each encoder's curve against Pillow
``optimize=True`` on SSIMULACRA2, SSIM (BT.601 luma) and PSNR (RGB); the table gives the mean
over images (negative: fewer bytes at equal quality). Speed: the 24 images encoded at q75 by
``--threads`` worker threads, megapixels per second (best of 3), and one 9.4-megapixel image
(kodim01 tiled 4×6) encoded alone. Target searches: ``--target-ssimulacra2 70`` and
``--target-size`` (each image's Pillow q75 size) on every image, with the encodes each took.

Peers: Pillow's encoder (baseline with optimized tables, and progressive); jpegli through the
``pyjpegli`` wheel, installed into ``~/.cache/quanta/bench-peers`` on first run (skipped with a
note when it cannot be installed). Prints tables (the summary last), writes
bench/out/jpeg_rd.json and the mean RD curves to bench/out/jpeg_rd.png.
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._util import machine, megapixels_per_s, write_json  # noqa: E402
from quanta.image import metrics  # noqa: E402
from quanta.image.curve import decode, pillow_encode  # noqa: E402
from quanta.image.jpeg import encode  # noqa: E402
from quanta.image.rd import RDCurve  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

PEERS = Path.home() / ".cache" / "quanta" / "bench-peers"


def jpegli():
    """pyjpegli's module, installed beside the cache on first use; None when unavailable."""
    sys.path.insert(0, str(PEERS))
    try:
        return importlib.import_module("pyjpegli")
    except ImportError:
        pass
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(PEERS),
                        "pyjpegli==0.3.2"], capture_output=True, text=True)
    if r.returncode:
        print(f"jpegli skipped: pip could not install pyjpegli ({r.stderr.strip()[-200:]})")
        return None
    importlib.invalidate_caches()
    return importlib.import_module("pyjpegli")


def _jpegli_encode(img: np.ndarray, q: int) -> bytes:
    mod = jpegli()
    return mod.encode(np.ascontiguousarray(img).tobytes(), img.shape[1], img.shape[0], q)


ENCODERS = {
    "pillow": lambda img, q: pillow_encode(img, q, optimize=True),
    "pillow progressive": lambda img, q: _pillow_progressive(img, q),
    "jpegli": _jpegli_encode,
    "quanta --fast": lambda img, q: encode(img, quality=q, fast=True).data,
    "quanta": lambda img, q: encode(img, quality=q).data,
    "quanta --optimize-tables": lambda img, q: encode(img, quality=q, optimize_tables=True).data,
}


def _pillow_progressive(img: np.ndarray, q: int) -> bytes:
    b = io.BytesIO()
    Image.fromarray(img).save(b, "JPEG", quality=q, subsampling=2, optimize=True, progressive=True)
    return b.getvalue()


def kodak(n: int) -> list[tuple[str, Path]]:
    from quanta.data import data_dir

    files = sorted((data_dir() / "kodak").glob("kodim*.png"))
    if len(files) != 24:
        raise SystemExit(f"expected 24 Kodak images in {data_dir() / 'kodak'}, found {len(files)}")
    return [(f.stem, f) for f in files[:n]]


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def ssim_luma(ref: np.ndarray, test: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(metrics.luma(ref), metrics.luma(test), data_range=255))


def points(job: tuple[str, str, Path, list[int]]) -> tuple[str, str, list[dict]]:
    """One encoder's curve on one image (run in a worker process)."""
    name, stem, path, qualities = job
    img = _load(path)
    out = []
    for q in qualities:
        data = ENCODERS[name](img, q)
        dec = decode(data)
        out.append({"quality": q, "bytes": len(data), "psnr_db": metrics.psnr_rgb_db(img, dec),
                    "ssim_luma": ssim_luma(img, dec), "ssimulacra2": metrics.ssimulacra2(img, dec)})
    return name, stem, out


def targets(job: tuple[str, Path]) -> dict:
    """``--target-ssimulacra2 70`` and ``--target-size`` (Pillow's q75 bytes) on one image."""
    from quanta.image.jpeg.target import search

    stem, path = job
    img = _load(path)
    size = len(pillow_encode(img, 75))
    out = {"image": stem}
    for kind, t in (("ssimulacra2", 70.0), ("size", float(size))):
        _, r = search(lambda s: encode(img, scale=s).data, img, kind, t)
        out[kind] = {"target": t, "value": r.value, "encodes": r.encodes, "met": r.met}
    return out


def bd(ref: list[dict], test: list[dict], key: str) -> float:
    return RDCurve.of(test).bd_rate(RDCurve.of(ref), key)


def large_image(fn, img: np.ndarray, repeat: int = 3) -> float:
    fn(img)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(img)
        best = min(best, time.perf_counter() - t0)
    return img.shape[0] * img.shape[1] / 1e6 / best


def plot(curves: dict[str, dict[str, list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for name, per_image in curves.items():
        stems = list(per_image)
        n = len(per_image[stems[0]])
        bpp = [np.mean([8 * per_image[s][k]["bytes"] / 393216 for s in stems]) for k in range(n)]
        for ax, key, label in ((axes[0], "ssimulacra2", "SSIMULACRA2"),
                               (axes[1], "psnr_db", "PSNR (dB, RGB)")):
            ax.plot(bpp, [np.mean([per_image[s][k][key] for s in stems]) for k in range(n)], "o-", ms=3,
                    label=name)
            ax.set_xlabel("bits per pixel (mean over images)")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.suptitle("Kodak, 4:2:0, q 50–90: mean rate–distortion curves")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--qualities", default="50,60,70,80,90")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    qs = [int(q) for q in args.qualities.split(",")]
    files = kodak(args.images)
    names = [n for n in ENCODERS if n != "jpegli" or jpegli() is not None]
    t0 = time.perf_counter()
    curves: dict[str, dict[str, list[dict]]] = {n: {} for n in names}
    with ProcessPoolExecutor(args.threads) as pool:
        for name, stem, pts in pool.map(points, [(n, s, p, qs) for n in names for s, p in files]):
            curves[name][stem] = pts
        searched = list(pool.map(targets, files))
    measure_s = time.perf_counter() - t0
    bd_rows, bd_res = [], {}
    for name in names[1:]:
        res = {key: float(np.mean([bd(curves["pillow"][s], curves[name][s], key) for s, _ in files]))
               for key in ("ssimulacra2", "ssim_luma", "psnr_db")}
        bd_res[name] = res
        bd_rows.append([name, f"{res['ssimulacra2']:+.2f}%", f"{res['ssim_luma']:+.2f}%",
                        f"{res['psnr_db']:+.2f}%"])
    imgs = [_load(p) for _, p in files]
    big = np.ascontiguousarray(np.tile(imgs[0], (6, 4, 1)))  # kodim01 (512×768): 3072×3072
    speed = {name: megapixels_per_s(imgs, lambda i, n=name: ENCODERS[n](i, 75), args.threads)
             for name in names}
    single = {name: large_image(lambda i, n=name: ENCODERS[n](i, 75), big)
              for name in names if name != "quanta --optimize-tables"}
    tgt_rows = []
    for kind in ("ssimulacra2", "size"):
        got = [t[kind] for t in searched]
        tgt_rows.append([kind, f"{sum(g['met'] for g in got)}/{len(got)}",
                         str(max(g["encodes"] for g in got)),
                         f"{np.mean([g['encodes'] for g in got]):.1f}",
                         f"{min(g['value'] / g['target'] for g in got):.4f} … "
                         f"{max(g['value'] / g['target'] for g in got):.4f}"])
    write_json("jpeg_rd", {"qualities": qs, "images": [s for s, _ in files], "curves": curves,
                           "bd_rate_vs_pillow": bd_res, "speed_mp_s": speed,
                           "single_image_mp_s": single, "single_image_shape": list(big.shape),
                           "targets": searched, "threads": args.threads, "measure_s": measure_s})
    plot(curves, ROOT / "bench" / "out" / "jpeg_rd.png")
    print_table(f"target searches on {len(files)} images (value / target: min … max)",
                ["target", "met", "most encodes", "mean encodes", "value ÷ target"], tgt_rows)
    print_table(f"encode speed at q75 ({machine()})",
                ["encoder", f"{len(imgs)} images, {args.threads} threads (MP/s)",
                 f"one {big.shape[1]}×{big.shape[0]} image (MP/s)"],
                [[n, f"{speed[n]:.1f}", f"{single[n]:.1f}" if n in single else ""] for n in names])
    print_table(f"BD-rate against Pillow optimize=True, 4:2:0, q {qs[0]}–{qs[-1]}, mean of "
                f"{len(files)} Kodak images (negative: smaller files at equal quality)",
                ["encoder", "SSIMULACRA2", "SSIM (luma)", "PSNR"], bd_rows)
    console.print(f"measured in {measure_s:.0f} s; wrote bench/out/jpeg_rd.json, bench/out/jpeg_rd.png")


if __name__ == "__main__":
    main()
