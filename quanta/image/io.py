"""Reading images through Pillow, with clear refusals and explicit conversions."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from quanta.errors import InputError


def load_image(path: Path | str) -> tuple[np.ndarray, bytes | None, list[str]]:
    """Read an image as uint8 ``(H, W)`` or ``(H, W, 3)``, its ICC profile, and notes on
    any conversion (palette, alpha, 16-bit, CMYK).

    Refuses missing, unreadable, truncated and zero-size files, and images beyond Pillow's
    decompression-bomb limit, with :class:`InputError`.
    """
    from PIL import Image

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
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


def read_metadata(path: Path | str) -> tuple[bytes | None, tuple[float, float] | None]:
    """The image's EXIF bytes (orientation included) and resolution in dots per inch, if any
    (read from the header only)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.info.get("exif")
            dpi = im.info.get("dpi")
    except (OSError, SyntaxError, ValueError):
        return None, None
    ok_dpi = tuple(float(v) for v in dpi) if isinstance(dpi, tuple) and len(dpi) == 2 else None
    return (exif if isinstance(exif, (bytes, bytearray)) and exif else None), ok_dpi
