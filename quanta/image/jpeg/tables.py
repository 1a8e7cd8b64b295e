"""Quantization tables: T.81 Annex K, IJG quality scaling, presets, user tables.

Tables are 64 integers in natural (row-major) order; the file stores them in zigzag order.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from quanta.errors import ConfigError

#: T.81 Annex K, Table K.1 (luminance) and K.2 (chrominance), natural order.
ANNEX_K_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int32)
ANNEX_K_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
], dtype=np.int32)

#: Zigzag order: ZIGZAG[k] is the natural index of the k-th coefficient in the file.
ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
], dtype=np.int64)


#: N. Robidoux's table for ImageMagick (mozjpeg's default, cjpeg ``-quant-table 3``).
IMAGEMAGICK = np.array([
    16, 16, 16, 18, 25, 37, 56, 85,
    16, 17, 20, 27, 34, 40, 53, 75,
    16, 20, 24, 31, 43, 62, 91, 135,
    18, 27, 31, 40, 53, 74, 106, 156,
    25, 34, 43, 53, 69, 94, 131, 189,
    37, 40, 62, 74, 94, 124, 169, 238,
    56, 53, 91, 106, 131, 169, 226, 311,
    85, 75, 135, 156, 189, 238, 311, 418,
], dtype=np.int32)
#: Klein, Silverstein and Carney (1992), "Relevance of human vision to JPEG-DCT compression".
KLEIN = np.array([
    10, 12, 14, 19, 26, 38, 57, 86,
    12, 18, 21, 28, 35, 41, 54, 76,
    14, 21, 25, 32, 44, 63, 92, 136,
    19, 28, 32, 41, 54, 75, 107, 157,
    26, 35, 44, 54, 70, 95, 132, 190,
    38, 41, 63, 75, 95, 125, 170, 239,
    57, 54, 92, 107, 132, 170, 227, 312,
    86, 76, 136, 157, 190, 239, 312, 419,
], dtype=np.int32)

#: quanta's default: Klein's table moved a fifth of the way toward flat in log scale,
#: ``round(16^0.2 · KLEIN^0.8)`` — the perceptual shape keeps SSIMULACRA2's gains while the
#: finer high frequencies win back PSNR and SSIM (chosen on six Kodak images, all three
#: measures together, with the trellis; docs/BENCHMARKS.md).
QUANTA = np.array([
    11, 13, 14, 18, 24, 32, 44, 61,
    13, 18, 20, 25, 30, 34, 42, 56,
    14, 20, 23, 28, 36, 48, 65, 89,
    18, 25, 28, 34, 42, 55, 73, 99,
    24, 30, 36, 42, 52, 67, 87, 116,
    32, 34, 48, 55, 67, 83, 106, 139,
    44, 42, 65, 73, 87, 106, 134, 172,
    61, 56, 89, 99, 116, 139, 172, 218,
], dtype=np.int32)

#: Named presets: (luma base table, chroma base table), scaled by quality like Annex K.
#: The perceptual tables are published for luminance; they serve both components, as in cjpeg.
PRESETS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "annexk": (ANNEX_K_LUMA, ANNEX_K_CHROMA),
    "flat": (np.full(64, 16, dtype=np.int32), np.full(64, 16, dtype=np.int32)),
    "imagemagick": (IMAGEMAGICK, IMAGEMAGICK),
    "klein": (KLEIN, KLEIN),
    "quanta": (QUANTA, QUANTA),
}


def quality_scaling(quality: int) -> int:
    """libjpeg's ``jpeg_quality_scaling``: quality 1..100 → percentage scale factor."""
    if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ConfigError(f"quality must be an integer in 1..100, got {quality!r}")
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def scale_table(base: np.ndarray, quality: int, *, baseline: bool = True,
                scale: float | None = None) -> np.ndarray:
    """``(base·S + 50) // 100`` clamped to 1..255 (baseline) or 1..32767, as libjpeg does;
    ``scale`` (percent, continuous) replaces the quality's ``S`` (rounded to nearest then)."""
    if scale is None:
        s = quality_scaling(quality)
        t = (np.asarray(base, dtype=np.int64) * s + 50) // 100
    else:
        if not np.isfinite(scale) or scale <= 0:
            raise ConfigError(f"table scale must be a positive percentage, got {scale!r}")
        t = np.floor(np.asarray(base, dtype=np.float64) * scale / 100 + 0.5).astype(np.int64)
    return np.clip(t, 1, 255 if baseline else 32767).astype(np.int32)


def tables_for(quality: int, preset: str = "annexk", *,
               scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(luma, chroma) tables for ``quality`` (or a continuous ``scale`` in percent) from a
    named preset; read-only, made once per set of arguments (an encode asks for them twice,
    a batch for every image)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown table preset {preset!r} (choose from {', '.join(PRESETS)})")
    return _scaled(quality, preset, scale)


@functools.lru_cache(maxsize=256)
def _scaled(quality: int, preset: str, scale: float | None) -> tuple[np.ndarray, np.ndarray]:
    luma, chroma = PRESETS[preset]
    out = scale_table(luma, quality, scale=scale), scale_table(chroma, quality, scale=scale)
    for t in out:
        t.flags.writeable = False
    return out


def check_table(table: np.ndarray | list[int], name: str = "table") -> np.ndarray:
    """Validate a user table for baseline JPEG: 64 integers in 1..255."""
    t = np.asarray(table)
    if t.size != 64:
        raise ConfigError(f"{name} must have 64 entries, got {t.size}")
    if not np.issubdtype(t.dtype, np.integer):
        if not np.all(np.equal(np.mod(t, 1), 0)):
            raise ConfigError(f"{name} entries must be integers")
    t = t.astype(np.int64).ravel()
    if t.min() < 1 or t.max() > 255:
        raise ConfigError(f"{name} entries must be in 1..255 for baseline JPEG "
                          f"(got {t.min()}..{t.max()})")
    return t.astype(np.int32)


def load_tables(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read tables from a text file: 64 integers (both components) or 128 (luma, then chroma)."""
    p = Path(path)
    try:
        vals = [int(v) for v in p.read_text().replace(",", " ").split()]
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p}: cannot read quantization tables ({e})") from None
    if len(vals) == 64:
        t = check_table(vals, str(p))
        return t, t
    if len(vals) == 128:
        return check_table(vals[:64], f"{p} (luma)"), check_table(vals[64:], f"{p} (chroma)")
    raise ConfigError(f"{p}: expected 64 or 128 integers, got {len(vals)}")


def resolve_tables(spec: str) -> str | tuple[np.ndarray, np.ndarray]:
    """A preset name as it is, or (luma, chroma) tables read from the file ``spec``."""
    return spec if spec in PRESETS else load_tables(spec)
