"""The PNGs photographs and web images mostly are — 8-bit gray or RGB, not interlaced, one frame —
read without Pillow: header, metadata and samples, into one array with no copy behind it
(ISO/IEC 15948).

Pillow decodes a PNG into its own buffer, and ``np.asarray`` then copies it out: for a Kodak
image about 8.5 ms, more than a third of what encoding it as JPEG costs, and importing Pillow
costs a command another 15 ms. :func:`header` walks the chunks (each one before the image data
checked against its CRC, as Pillow checks them), keeps what quanta carries into a JPEG — the
ICC profile, EXIF, the resolution — as Pillow reports them; :func:`pixels` inflates the image data with
libdeflate (the ``deflate`` package; the standard library's zlib where it is missing) and undoes
the row filters straight into the array (:mod:`quanta.image._png`). Anything else — palettes,
alpha, 16 bits, interlacing, animation, very large images, and any file this reader does not
find whole — is None, and the caller reads it through Pillow, which also names what is wrong
with a damaged file.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where pixels are decoded: a header costs no numpy import
    import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: IHDR colour types read here, with their samples per pixel (0: gray, 2: RGB)
CHANNELS = {0: 1, 2: 3}
#: Pillow's limits, so that a file over them goes to Pillow and gets its answer: its
#: decompression-bomb warning (the default of ``Image.MAX_IMAGE_PIXELS``, which quanta refuses
#: at) and the largest ICC profile it inflates (``PngImagePlugin.MAX_TEXT_CHUNK``)
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3
MAX_PROFILE = 1024 * 1024


@dataclass(frozen=True)
class Header:
    """What a PNG's chunks before its image data say, as Pillow's ``info`` has it."""

    width: int
    height: int
    channels: int
    icc_profile: bytes | None
    exif: bytes | None  # with the "Exif\0\0" header Pillow puts in front
    dpi: tuple[float, float] | None
    idat: tuple[tuple[int, int], ...]  # (start, end) of each IDAT chunk's data


def decode(data: bytes) -> np.ndarray | None:
    """The uint8 ``(H, W)`` (gray) or ``(H, W, 3)`` (RGB) samples — the same as Pillow's — of
    the PNG file ``data``, when :func:`header` reads it and :func:`pixels` decodes it; None
    otherwise."""
    h = header(data)
    return None if h is None else pixels(data, h)


def header(data: bytes) -> Header | None:
    """The header of a PNG this module reads: 8-bit gray or RGB, not interlaced, not animated,
    within Pillow's pixel limit, every chunk up to the last IDAT whole and those before the
    first IDAT matching their CRC, an ICC profile that inflates within :data:`MAX_PROFILE`.
    None for any other file."""
    size = image_size(data)
    if size is None:
        return None
    width, height, channels = size
    walked = _chunks(data)
    if walked is None:
        return None
    found, idat = walked
    icc = _profile(found[b"iCCP"]) if b"iCCP" in found else None
    phys = found.get(b"pHYs")
    if icc is False or (phys is not None and len(phys) < 9):
        return None
    dpi = None
    if phys is not None and phys[8] == 1:  # pixels per metre
        px, py = struct.unpack(">II", phys[:8])
        dpi = (px * 0.0254, py * 0.0254)
    exif = b"Exif\x00\x00" + found[b"eXIf"] if b"eXIf" in found else None
    return Header(width, height, channels, icc, exif, dpi, tuple(idat))


#: the bytes :func:`image_size` needs: the signature and the IHDR chunk (its CRC excluded)
HEAD_BYTES = 29


def image_size(head: bytes) -> tuple[int, int, int] | None:
    """(width, height, channels) from a file's first :data:`HEAD_BYTES` bytes when its IHDR is
    one this module reads (8-bit gray or RGB, not interlaced, within Pillow's pixel limit);
    None otherwise — a caller need not read further."""
    if len(head) < HEAD_BYTES or not head.startswith(SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, method, filtering, interlace = struct.unpack(">IIBBBBB", head[16:29])
    limit = _pixel_limit()
    if (struct.unpack(">I", head[8:12])[0] != 13 or depth != 8 or colour not in CHANNELS or method
            or filtering or interlace or width * height == 0 or (limit and width * height > limit)):
        return None
    return width, height, CHANNELS[colour]


def _pixel_limit() -> int | None:
    """Pillow's decompression-bomb limit: its own where Pillow is loaded (a caller may have set
    it), else its default."""
    import sys

    pil = sys.modules.get("PIL.Image")
    return getattr(pil, "MAX_IMAGE_PIXELS", MAX_PIXELS) if pil is not None else MAX_PIXELS


def _chunks(data: bytes) -> tuple[dict[bytes, bytes], list[tuple[int, int]]] | None:
    """The chunks before the image data (by type; a repeated one: the last, as in Pillow) and
    where each IDAT chunk's data lies; None when a chunk is cut short, one before the image
    data fails its CRC, the file is animated or has no image data."""
    found: dict[bytes, bytes] = {}
    idat: list[tuple[int, int]] = []
    at, end = 8, len(data)
    while at + 12 <= end:
        length = struct.unpack(">I", data[at:at + 4])[0]
        kind = data[at + 4:at + 8]
        if at + 12 + length > end:
            return None  # cut short: Pillow says how
        if kind == b"IDAT":
            idat.append((at + 8, at + 8 + length))
        elif idat or kind == b"IEND":
            break  # the image data ended (they are consecutive), or there is none
        else:
            crc = struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0]
            if zlib.crc32(data[at + 4:at + 8 + length]) != crc or kind == b"acTL":
                return None  # a damaged chunk (Pillow refuses the file), or animation
            found[kind] = data[at + 8:at + 8 + length]
        at += 12 + length
    return (found, idat) if idat else None


def _profile(chunk: bytes) -> bytes | bool | None:
    """An iCCP chunk's profile, inflated; False when Pillow would not read it as it is."""
    name = chunk.find(b"\0")
    if name < 0 or name + 1 >= len(chunk) or chunk[name + 1] != 0:
        return False
    d = zlib.decompressobj()
    try:
        profile = d.decompress(chunk[name + 2:], MAX_PROFILE)
    except zlib.error:
        return False
    return False if d.unconsumed_tail else profile


def pixels(data: bytes, h: Header) -> np.ndarray | None:
    """The samples of the PNG file ``data`` whose :func:`header` is ``h``, when its image data
    inflate whole to exactly its rows and every row names a PNG filter; else None."""
    import numpy as np

    out = np.empty(_shape(h), dtype=np.uint8)
    return out if _decode_into(data, h, out.reshape(h.height, h.width * h.channels)) else None


def _shape(h: Header) -> tuple[int, ...]:
    return (h.height, h.width, h.channels) if h.channels > 1 else (h.height, h.width)


def _decode_into(data: bytes, h: Header, out: object) -> bool:
    """Inflate ``data``'s image data and undo its row filters into ``out`` (any writable 2-D
    buffer of ``h.height`` rows of ``h.width · h.channels`` bytes): whether it held exactly its
    rows, every one naming a PNG filter."""
    rowbytes = h.width * h.channels
    raw = _inflate(b"".join(data[a:b] for a, b in h.idat), h.height * (rowbytes + 1))
    if raw is None:
        return False
    from quanta.image import _png

    return bool(_png.unfilter(raw, out, h.channels))


#: files being read ahead (:func:`read_ahead`): path → (the file's identity when it was
#: asked for, the reading thread, its result once done)
_AHEAD: dict[str, tuple[tuple[int, ...] | None, threading.Thread, list]] = {}


def read_ahead(path: str) -> None:
    """Start reading the PNG file ``path`` — its bytes, :func:`header` and samples — on a
    background thread, for :func:`ahead` to hand over when the command gets to it (the
    ``quanta`` process starts this before it has imported its CLI: :mod:`quanta.image.hint`).
    Needs no numpy; the inflating and unfiltering release the interpreter."""
    path = os.path.abspath(path)
    box: list = []
    thread = threading.Thread(target=_read_into, args=(path, box), name="quanta-read-ahead", daemon=True)
    _AHEAD[path] = (_identity(path), thread, box)
    thread.start()


def _read_into(path: str, box: list) -> None:
    try:
        with open(path, "rb") as f:
            data = f.read()
        h = header(data)
        samples = None
        if h is not None:
            rowbytes = h.width * h.channels
            buf = bytearray(h.height * rowbytes)
            samples = buf if _decode_into(data, h, memoryview(buf).cast("B", (h.height, rowbytes))) else None
        box.append((data, h, samples))
    except Exception:  # nothing handed over: the command reads the file itself, and says what is wrong
        box.clear()


def ahead(path: str) -> tuple[bytes, Header | None, np.ndarray | None] | None:
    """What :func:`read_ahead` read of ``path`` — the file's bytes, its :func:`header` (None: not
    a PNG this module reads) and samples (None: the image data did not decode) — once it is
    done, when the file is still the one it read (device, inode, size and modification time);
    None when nothing was read ahead, the read failed or the file changed. The samples are
    handed over once (a later call decodes them again)."""
    entry = _AHEAD.get(os.path.abspath(path)) if _AHEAD else None
    if entry is None:
        return None
    known, thread, box = entry
    thread.join()
    if not box or known is None or _identity(path) != known:
        return None
    data, h, samples = box[0]
    if h is None or samples is None:
        return data, h, None
    box[0] = (data, h, None)  # the samples are handed over once: the caller owns them
    import numpy as np

    return data, h, np.frombuffer(samples, dtype=np.uint8).reshape(_shape(h))


def _identity(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


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
