"""Reading images — the common PNGs by :mod:`quanta.image.png`, everything else through
Pillow — with clear refusals and explicit conversions."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quanta.errors import InputError
from quanta.image.png import SIGNATURE as SIGNATURE  # what a PNG file starts with (re-exported)
from quanta.image.png import Header


def load_image(path: Path | str, *, check_size: Callable[[int, int], None] | None = None,
               ) -> tuple[np.ndarray, bytes | None, list[str]]:
    """Read an image as uint8 ``(H, W)`` or ``(H, W, 3)``, its ICC profile, and notes on
    any conversion (palette, alpha, 16-bit, CMYK, frames after the first).

    Refuses missing, unreadable, truncated and zero-size files, and images beyond Pillow's
    decompression-bomb limit, with :class:`InputError`. ``check_size(width, height)`` runs on
    the header's size before any pixel is decoded (an encoder's limits). The PNGs
    :mod:`quanta.image.png` reads are read without Pillow (the same samples and profile).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    png = _png_file(p)
    if png is not None:
        head, data, arr = png
        if check_size is not None:
            check_size(head.width, head.height)
        if arr is None:
            from quanta.image.png import pixels

            arr = pixels(data, head)
        if arr is not None:
            return arr, head.icc_profile, []
    return _load_with_pillow(p, check_size)


def _png_file(p: Path) -> tuple[Header, bytes, np.ndarray | None] | None:
    """The header (:class:`quanta.image.png.Header`), bytes and — when the file was read ahead
    (:func:`quanta.image.png.read_ahead`) — samples of a PNG file :mod:`quanta.image.png`
    reads; None for every other file (Pillow reads those, and says what is wrong with them)."""
    from quanta.image.png import HEAD_BYTES, ahead, header, image_size

    early = ahead(str(p))
    if early is not None:
        data, head, arr = early
        return None if head is None else (head, data, arr)
    try:
        with open(p, "rb") as f:
            first = f.read(HEAD_BYTES)
            if image_size(first) is None:  # not a PNG this reader takes: Pillow reads the file
                return None
            data = first + f.read()
    except OSError:
        return None
    head = header(data)
    return None if head is None else (head, data, None)


def _load_with_pillow(p: Path, check_size: Callable[[int, int], None] | None,
                      ) -> tuple[np.ndarray, bytes | None, list[str]]:
    from PIL import Image

    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                if check_size is not None:
                    check_size(*im.size)
                _header_notes(im, notes)
                im.load()
                icc = im.info.get("icc_profile")
                arr = _to_8bit(im, notes)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{p}: too large ({e})".split(" could be")[0]) from None
    except Image.UnidentifiedImageError:
        raise InputError(f"{p}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{p}: cannot read image ({e})") from None
    if arr.size == 0:
        raise InputError(f"{p}: image has zero size")
    return arr, icc, notes


def _header_notes(im: Any, notes: list[str]) -> None:
    """What the header says will be lost: frames after the first, 16-bit colour samples."""
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        notes.append(f"{frames} frames: only the first was read")
    raw = im.tile[0][3] if im.tile and len(im.tile[0]) > 3 else None
    raw = raw[0] if isinstance(raw, tuple) and raw else raw
    if im.mode == "RGB" and isinstance(raw, str) and "16" in raw:
        notes.append("16-bit samples rounded to 8 bits")


def _to_8bit(im, notes: list[str]) -> np.ndarray:
    from PIL import Image

    mode = im.mode
    if mode in ("RGB", "L"):
        return np.asarray(im)
    if mode == "1":
        notes.append("bilevel image converted to 8-bit grayscale")
        return np.asarray(im.convert("L"))
    if mode in ("P", "PA"):
        notes.append("palette image converted to RGB")
        im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
        mode = im.mode
        if mode == "RGB":
            return np.asarray(im)
    if mode in ("RGBA", "LA", "La", "RGBa"):
        notes.append("alpha channel dropped (composited on white)")
        base = "RGB" if mode.startswith("RGB") else "L"
        bg = Image.new(base, im.size, 255 if base == "L" else (255, 255, 255))
        bg.paste(im.convert(base + "A"), mask=im.convert(base + "A").getchannel("A"))
        return np.asarray(bg)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im).astype(np.int64)
        if a.min() < 0 or a.max() > 65535:
            raise InputError(f"32-bit integer samples ({a.min()}..{a.max()}) are not an image "
                             "quanta can encode")
        notes.append("16-bit samples rounded to 8 bits")
        return np.clip((a * 255 + 32767) // 65535, 0, 255).astype(np.uint8)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        notes.append(f"{mode} converted to RGB")
        return np.asarray(im.convert("RGB"))
    raise InputError(f"image mode {mode!r} is not supported (8-bit gray or RGB expected)")


def read_metadata(path: Path | str, notes: list[str] | None = None,
                  ) -> tuple[bytes | None, tuple[float, float] | None]:
    """The image's EXIF bytes (orientation included) and resolution in dots per inch, if any
    (read from the header only). EXIF too large for one JPEG segment (64 kB) keeps its small
    tags — orientation, camera, dates — and drops the large ones (a note in ``notes`` says so)."""
    png = _png_file(Path(path))
    if png is not None and (png[0].exif is None or len(png[0].exif) <= EXIF_ROOM):
        return png[0].exif, png[0].dpi
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.info.get("exif")
            dpi = im.info.get("dpi")
            if isinstance(exif, (bytes, bytearray)) and len(exif) > EXIF_ROOM:
                exif = _small_exif(im.getexif(), notes if notes is not None else [])
    except (OSError, SyntaxError, ValueError):
        return None, None
    ok_dpi = tuple(float(v) for v in dpi) if isinstance(dpi, tuple) and len(dpi) == 2 else None
    return (exif if isinstance(exif, (bytes, bytearray)) and exif else None), ok_dpi


#: EXIF bytes one APP1 segment holds (65,533 payload bytes less the ``Exif\0\0`` header)
EXIF_ROOM = 65533 - 6
#: a tag value longer than this (bytes) is dropped from an EXIF that does not fit
LARGE_TAG = 1024


def _small_exif(exif: Any, notes: list[str]) -> bytes | None:
    """The main image's tags whose values are short; the rest named in a note."""
    from PIL import Image

    small, dropped = Image.Exif(), []
    for tag, value in exif.items():
        size = len(value) if isinstance(value, (bytes, str, tuple)) else 0
        (dropped.append(tag) if size > LARGE_TAG else small.__setitem__(tag, value))
    data = small.tobytes()
    if len(data) > EXIF_ROOM:
        notes.append("EXIF larger than one JPEG segment: dropped")
        return None
    notes.append(f"EXIF larger than one JPEG segment: {len(dropped)} large tag(s) dropped, the rest "
                 "(orientation included) kept")
    return data


def synthetic_image(seed: int = 0, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A colour test image: gradients, a checkerboard and seeded noise (uint8 RGB)."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(seed).integers(0, 48, size=(h, w, 3))
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), ((x // 8 + y // 8) % 2) * 200], -1)
    return np.clip(base + noise, 0, 255).astype(np.uint8)
