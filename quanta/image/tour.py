"""The image part of ``quanta tour``: three Kodak images as JPEG at qualities 30–95, Pillow
(libjpeg-turbo) against quanta's ``--fast`` path (libjpeg's choices) and quanta's default
(trellis, its tables, chroma fitted to the decoder, the smaller scan structure), with every
table preset measured on the default path; bytes, SSIMULACRA2 and PSNR, the RD curves, and
crops of the same image at the same bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from quanta.image.curve import decode, pillow_encode, rd_point
from quanta.image.jpeg import encode
from quanta.image.jpeg.encoder import TABLES
from quanta.image.jpeg.tables import PRESETS
from quanta.image.rd import RDCurve, mean_bd_rate, mean_curve
from quanta.progress import Progress, counter
from quanta.render.plots import Series, rd_plot
from quanta.render.tour import ImageRow, SummaryRow, Table, TourSection, num

IMAGES = ("kodim05.png", "kodim14.png", "kodim23.png")
QUALITIES = {True: (30, 50, 75, 95), False: (30, 40, 50, 60, 70, 75, 80, 85, 90, 95)}
CROP = 128


def _load(images: list[Path] | None) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    from quanta.data import data_dir
    from quanta.image.io import synthetic_image

    paths = images or [data_dir() / "kodak" / n for n in IMAGES]
    if all(Path(p).exists() for p in paths):
        return [(Path(p).name, np.asarray(Image.open(p).convert("RGB"))) for p in paths]
    return [(f"synthetic {i} (Kodak images not found)", synthetic_image(i, (384, 512))) for i in range(3)]


def _point(img: np.ndarray, data: bytes) -> dict:
    return rd_point(img, data, 0.0, perceptual=True)


def _ours(preset: str | None = None, fast: bool = False):
    return lambda img, q: encode(img, quality=q, tables=preset, fast=fast).data


def _mean_curve(points: list[list[dict]], key: str) -> list[float]:
    return mean_curve([RDCurve.of(p) for p in points], key)


def _bd(ref: list[list[dict]], test: list[list[dict]]) -> float | None:
    """Mean over images of the BD-rate (%) of ``test`` against ``ref`` on SSIMULACRA2 (an image
    whose curves' qualities do not overlap has none and is left out)."""
    return mean_bd_rate([RDCurve.of(r) for r in ref], [RDCurve.of(t) for t in test], "ssimulacra2",
                        skip_disjoint=True)


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def _busiest(img: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size``² window with the most detail (luma variance)."""
    y = img.mean(axis=2) if img.ndim == 3 else img.astype(float)
    best, at = -1.0, (0, 0)
    for i in range(0, max(1, y.shape[0] - size + 1), size // 2):
        for j in range(0, max(1, y.shape[1] - size + 1), size // 2):
            v = float(np.var(y[i : i + size, j : j + size]))
            if v > best:
                best, at = v, (i, j)
    return at


def _same_bytes(img: np.ndarray, budget: int) -> tuple[int, bytes]:
    """quanta's highest quality whose file fits ``budget`` bytes (bisection on quality)."""
    lo, hi, best = 1, 100, (1, encode(img, quality=1).data)
    while lo <= hi:
        mid = (lo + hi) // 2
        data = encode(img, quality=mid).data
        if len(data) <= budget:
            best, lo = (mid, data), mid + 1
        else:
            hi = mid - 1
    return best


def tour(
    *,
    quick: bool = True,
    progress: Progress | None = None,
    images: list[Path] | None = None,
    qualities: tuple[int, ...] | None = None,
) -> TourSection:
    """Measure the JPEG sweep (see the module docstring)."""
    imgs = _load(images)
    qs = tuple(qualities or QUALITIES[quick])
    trial = imgs[:1] if quick else imgs  # images the preset choice is measured on
    steps = len(imgs) * len(qs) * 3 + len(trial) * len(qs) * (len(PRESETS) - 1) + 1
    tick = counter(progress, steps)

    def sweep(fn, which) -> list[list[dict]]:
        """Every image × quality, measured in threads (the metric's array work releases the GIL)."""
        from concurrent.futures import ThreadPoolExecutor

        from quanta.threads import threads

        def one(img: np.ndarray, q: int) -> dict:
            point = {"quality": q, **_point(img, fn(img, q))}
            tick()
            return point

        with ThreadPoolExecutor(threads()) as pool:
            jobs = [[pool.submit(one, img, q) for q in qs] for _, img in which]
            return [[j.result() for j in row] for row in jobs]

    pillow = sweep(lambda img, q: pillow_encode(img, q), imgs)
    fast = sweep(_ours(fast=True), imgs)
    default = sweep(_ours(), imgs)
    presets, runs = {}, {}
    for name in PRESETS:
        runs[name] = default[: len(trial)] if name == TABLES else sweep(_ours(name), trial)
        presets[name] = _bd(pillow[: len(trial)], runs[name])
    default_label = "quanta (default)"
    series = {
        "Pillow (libjpeg-turbo), optimize": pillow,
        "quanta --fast (libjpeg's choices)": fast,
        default_label: default,
    }
    roles = dict(zip(series, ("peer", "quanta-alt", "quanta")))
    rd = rd_plot(
        [
            Series(k, _mean_curve(v, "bpp"), _mean_curve(v, "ssimulacra2"), roles[k])
            for k, v in series.items()
        ],
        xlabel="bits per pixel (mean over the images)",
        ylabel="SSIMULACRA2 (higher is better)",
        title="images: bytes against perceived quality (JPEG, 4:2:0)",
    )
    bd = {k: _bd(pillow, v) for k, v in series.items() if v is not pillow}
    tables = [
        Table(
            f"{name}: bytes / SSIMULACRA2 / PSNR (dB) by quality",
            ["encoder", *[f"q {q}" for q in qs]],
            [
                [
                    label,
                    *[f"{p['bytes']} / {num(p['ssimulacra2'], 1)} / {num(p['psnr_db'], 1)}" for p in pts[i]],
                ]
                for label, pts in series.items()
            ],
        )
        for i, (name, _) in enumerate(imgs)
    ]
    tables.append(
        Table(
            "BD-rate on SSIMULACRA2 against Pillow (%, negative: fewer bytes for the same quality)",
            ["encoder", "BD-rate %"],
            [[k, num(v, 1)] for k, v in bd.items()],
        )
    )
    tables.append(
        Table(
            f"table presets on the default path, BD-rate against Pillow on {len(trial)} image(s) (%)",
            ["preset", "BD-rate %"],
            [[k, num(v, 1)] for k, v in presets.items()],
        )
    )
    name, img = imgs[0]
    ref_data = pillow_encode(img, 50)
    q_best, ours = _same_bytes(img, len(ref_data))
    i, j = _busiest(img, CROP)
    crop = (slice(i, i + CROP), slice(j, j + CROP))
    same = {
        "pillow_quality": 50,
        "pillow": _point(img, ref_data),
        "quanta_quality": q_best,
        "quanta": _point(img, ours),
        "crop_at": [i, j],
    }
    tick()
    crops = ImageRow(
        f"{name}, the same bytes: hover to zoom",
        [
            ("original", _png(img[crop])),
            (
                f"Pillow q 50: {same['pillow']['bytes']} bytes, "
                f"SSIMULACRA2 {num(same['pillow']['ssimulacra2'], 1)}",
                _png(decode(ref_data)[crop]),
            ),
            (
                f"quanta q {q_best}: {same['quanta']['bytes']} bytes, SSIMULACRA2 "
                f"{num(same['quanta']['ssimulacra2'], 1)}",
                _png(decode(ours)[crop]),
            ),
        ],
    )
    k75 = qs.index(75) if 75 in qs else len(qs) // 2
    mean_bpp = _mean_curve(default, "bpp")[k75]
    summary = [
        SummaryRow(
            "images",
            f"24 → {num(mean_bpp, 2)} bits per pixel (JPEG q {qs[k75]}, "
            f"{num(100 * mean_bpp / 24, 1)} % of the bytes)",
            f"SSIMULACRA2 {num(_mean_curve(default, 'ssimulacra2')[k75], 1)} (Pillow "
            f"{num(_mean_curve(pillow, 'ssimulacra2')[k75], 1)}); BD-rate against Pillow "
            f"{num(bd[default_label], 1)} %",
        )
    ]
    data = {
        "images": [n for n, _ in imgs],
        "qualities": list(qs),
        "curves": series,
        "bd_rate_ssimulacra2": bd,
        "presets_bd_rate": presets,
        "default_tables": TABLES,
        "same_bytes": same,
        "summary_point": {
            "quality": qs[k75],
            "bpp": mean_bpp,
            "percent_of_bytes": 100 * mean_bpp / 24,
            "ssimulacra2": _mean_curve(default, "ssimulacra2")[k75],
            "pillow_ssimulacra2": _mean_curve(pillow, "ssimulacra2")[k75],
        },
        "crop": CROP,
        "uncompressed_bits_per_pixel": 24,
    }
    return TourSection(
        "image",
        "Images: bytes against perceived quality",
        "Each image is encoded as JPEG over a range of qualities by Pillow and by quanta; "
        "quality is SSIMULACRA2 (a perceptual score, 100 = identical) and PSNR over RGB.",
        figures=[("Mean bits per pixel against mean SSIMULACRA2 over the images.", rd)],
        tables=tables,
        images=[crops],
        summary=summary,
        data=data,
    )
