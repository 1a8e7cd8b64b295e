"""Images' side of the medium contract (:mod:`quanta.media`): encode a file as JPEG, make an
example input, and the tour."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quanta.progress import Progress
from quanta.reports import Report, target_text

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".jpe")


@dataclass(frozen=True)
class EncodeReport(Report):
    """A JPEG written from an image file."""

    input: str
    output: str
    width: int
    height: int
    bytes: int
    bpp: float
    quality: int | None
    scale: float | None  # the tables' scale in percent, when a target chose it
    subsampling: str
    structure: str  # baseline or progressive
    path: str  # "best" (trellis, perceptual tables, scan choice) or "fast"
    target: dict | None  # the target search's result (kind, target, value, encodes, met)
    notes: list[str]

    def rows(self) -> list[tuple[str, str]]:
        settings = (f"q {self.quality}" if self.scale is None else f"table scale {self.scale:.1f} %")
        rows = [("input", self.input), ("output", self.output),
                ("size", f"{self.width}×{self.height}, {self.bytes} bytes, {self.bpp:.3f} bpp"),
                ("settings", f"{settings}, {self.subsampling}, {self.structure}, {self.path} path")]
        if self.target:
            t = self.target
            rows.append(("target", f"{t['kind']} {target_text(t['kind'], t['target'])}: reached "
                                   f"{target_text(t['kind'], t['value'])} in {t['encodes']} encodes "
                                   f"({'met' if t['met'] else 'NOT met'})"))
        return rows + [("note", n) for n in self.notes]


@dataclass(frozen=True, eq=False)
class Options:
    """``quanta image encode``'s options. quality: 1–100 (libjpeg's scale). subsampling:
    ``auto``, ``gray``, ``4:4:4``, ``4:2:2``, ``4:2:0``. tables: a table set's name, or a pair of
    8×8 arrays (luma, chroma), or None for the path's own. optimize: Huffman tables per image.
    restart_interval: MCUs between restart markers (0: none). progressive: None lets the
    encoder choose. fast: the fast path (no trellis, no scan search). target: ``(kind, value)``
    — size in bytes, PSNR in dB or a SSIMULACRA2 score (:mod:`quanta.image.jpeg.target`) — chosen
    instead of ``quality``. optimize_tables: design the tables for this image.

    Built, it has refused what is wrong for every image: the quality, the subsampling, the
    target."""

    quality: int = 75
    subsampling: str = "auto"
    tables: str | tuple[np.ndarray, np.ndarray] | None = None
    optimize: bool = True
    restart_interval: int = 0
    progressive: bool | None = None
    fast: bool = False
    target: tuple[str, float] | None = None
    optimize_tables: bool = False

    def __post_init__(self) -> None:
        from quanta.core._checks import check_choice
        from quanta.errors import ConfigError
        from quanta.image.jpeg.color import SUBSAMPLING
        from quanta.image.jpeg.tables import quality_scaling

        quality_scaling(self.quality)
        check_choice(self.subsampling, (*SUBSAMPLING, "auto", "gray"), "subsampling")
        if self.target is not None:
            from quanta.image.jpeg.target import KINDS

            kind, value = self.target
            if kind not in KINDS or not math.isfinite(value) or (kind != "ssimulacra2" and not value > 0):
                raise ConfigError(f"bad target {kind} {value!r}: a positive number is needed")
            if kind == "ssimulacra2" and value > 100:
                raise ConfigError(f"--target-ssimulacra2 {value:g}: scores go up to 100 (identical)")

    def encoder_settings(self) -> dict[str, Any]:
        """The keywords :func:`quanta.image.jpeg.encode` takes from these options."""
        return dict(quality=self.quality, subsampling=self.subsampling, tables=self.tables,
                    optimize=self.optimize, restart_interval=self.restart_interval,
                    progressive=self.progressive, fast=self.fast, optimize_tables=self.optimize_tables)


def quantize_file(src: Path | str, dst: Path | str, options: Options, *, seed: int = 0,
                  progress: Progress | None = None) -> EncodeReport:
    """Encode the image ``src`` as a JPEG into ``dst`` (the encoder is deterministic: ``seed``
    is accepted for the contract and unused). ``progress(stage, 3)``: read, encoded, written."""
    from quanta.errors import ConfigError
    from quanta.image.io import load_image, read_metadata
    from quanta.image.jpeg import encode
    from quanta.image.jpeg.encoder import check_dimensions

    if Path(dst).suffix.lower() not in JPEG_SUFFIXES:
        raise ConfigError(f"encode writes JPEG: name the output .jpg or .jpeg "
                          f"(not {Path(dst).suffix or 'without an extension'})")
    quality, target, fast = options.quality, options.target, options.fast
    img, icc, notes = load_image(src, check_size=check_dimensions)
    if target is not None and quality != 75:
        notes.append(f"-q {quality} ignored: the {target[0]} target chooses the tables' scale")
    exif, dpi = read_metadata(src, notes)
    _tick(progress, 1)
    kw = options.encoder_settings()
    reached = None
    if target is None:
        enc = encode(img, **kw, icc_profile=icc, exif=exif, dpi=dpi)
    else:
        from quanta.image.jpeg.target import search

        tried = {}

        def at(scale: float) -> bytes:
            tried[scale] = encode(img, **kw, scale=scale, icc_profile=icc, exif=exif, dpi=dpi)
            return tried[scale].data

        _, reached = search(at, img, *target)
        enc = tried[reached.scale]
    _tick(progress, 2)
    Path(dst).write_bytes(enc.data)
    _tick(progress, 3)
    return EncodeReport(str(src), str(dst), enc.width, enc.height, len(enc.data), enc.bits_per_pixel,
                        None if reached else quality, reached.scale if reached else None,
                        enc.subsampling,
                        "progressive" if enc.progressive else "baseline", "fast" if fast else "best",
                        None if reached is None else dict(reached.__dict__),
                        notes)


def _tick(progress: Progress | None, done: int) -> None:
    if progress:
        progress(done, 3)


def example(folder: Path | str, *, seed: int = 0) -> Path:
    """A 128×96 synthetic PNG."""
    from PIL import Image

    from quanta.image.io import synthetic_image

    p = Path(folder) / "example.png"
    Image.fromarray(synthetic_image(seed)).save(p)
    return p


def tour(**settings: Any) -> Any:
    """This medium's part of ``quanta tour`` (:mod:`quanta.image.tour`)."""
    from quanta.image.tour import tour as run

    return run(**settings)
