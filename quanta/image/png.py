"""The PNGs photographs and web images mostly are — 8-bit gray or RGB, not interlaced, one frame —
decoded into one array with no copy behind it (ISO/IEC 15948).

Pillow decodes a PNG into its own buffer, and ``np.asarray`` then copies it out: for a Kodak
image about 8.5 ms, more than a third of what encoding it as JPEG costs. :func:`decode` walks
the chunks, inflates the image data with libdeflate (the ``deflate`` package; the standard
library's zlib where it is missing) and undoes the row filters straight into the array
(:mod:`quanta.image._png`). Anything else — palettes, alpha, 16 bits, interlacing, animation,
and any file this reader does not find whole — is None, and the caller reads it through Pillow,
which also names what is wrong with a damaged file.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: IHDR colour types decoded here, with their samples per pixel (0: gray, 2: RGB)
CHANNELS = {0: 1, 2: 3}


def decode(data: bytes) -> np.ndarray | None:
    """uint8 ``(H, W)`` (gray) or ``(H, W, 3)`` (RGB) samples of the PNG file ``data`` — the
    same as Pillow's — when it is 8-bit gray or RGB, not interlaced, not animated, and its image
    data inflate whole to exactly its rows; None otherwise."""
    found = _chunks(data)
    if found is None:
        return None
    (width, height, channels), idat = found
    rowbytes = width * channels
    raw = _inflate(idat, height * (rowbytes + 1))
    if raw is None:
        return None
    from quanta.image import _png

    out = np.empty((height, width, channels) if channels > 1 else (height, width), dtype=np.uint8)
    if not _png.unfilter(np.frombuffer(raw, dtype=np.uint8), out.reshape(height, rowbytes), channels):
        return None
    return out


def _chunks(data: bytes) -> tuple[tuple[int, int, int], bytes] | None:
    """The header's (width, height, channels) and the image data (the IDAT chunks joined), when
    the header is one :func:`decode` reads and every chunk up to the last IDAT is whole."""
    if len(data) < 33 or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, method, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if (struct.unpack(">I", data[8:12])[0] != 13 or depth != 8 or colour not in CHANNELS or method
            or filtering or interlace or not 0 < width < 2**31 or not 0 < height < 2**31):
        return None
    parts: list[bytes] = []
    at, end = 33, len(data)
    while at + 12 <= end:
        length = struct.unpack(">I", data[at:at + 4])[0]
        kind = data[at + 4:at + 8]
        if at + 12 + length > end:
            return None  # cut short: Pillow says how
        if kind == b"IDAT":
            parts.append(data[at + 8:at + 8 + length])
        elif parts or kind in (b"IEND", b"acTL"):
            break  # the image data ended (they are consecutive), or there is none, or animation
        at += 12 + length
    if not parts or kind == b"acTL":
        return None
    return (width, height, CHANNELS[colour]), b"".join(parts)


def _inflate(idat: bytes, size: int) -> bytes | None:
    """The zlib stream ``idat`` inflated, when it holds exactly ``size`` bytes and its checksum
    holds; else None."""
    try:
        import deflate
    except ImportError:  # the standard library's zlib: slower, the same bytes
        try:
            d = zlib.decompressobj()
            raw = d.decompress(idat, size + 1)  # room for one byte more: all the input is read
            return raw if len(raw) == size and d.eof else None
        except zlib.error:
            return None
    try:
        raw = deflate.zlib_decompress(idat, size)
    except deflate.DeflateError:
        return None
    return raw if len(raw) == size else None
