"""JFIF markers around the entropy-coded scan (T.81 Annex B, JFIF 1.02)."""

from __future__ import annotations

import struct

import numpy as np

from quanta.image.jpeg.tables import ZIGZAG


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def app0_jfif(density: tuple[int, int] = (1, 1), unit: int = 0) -> bytes:
    return _segment(0xE0, b"JFIF\x00" + struct.pack(">BBBHHBB", 1, 1, unit, *density, 0, 0))


EXIF_HEADER = b"Exif\x00\x00"
MAX_SEGMENT = 65533  # payload bytes of one marker segment


def app1_exif(exif: bytes) -> bytes:
    """EXIF metadata in an APP1 segment (``Exif\\0\\0`` + TIFF); b"" if it cannot fit one."""
    payload = exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif
    return _segment(0xE1, payload) if len(payload) <= MAX_SEGMENT else b""


def density_from_dpi(dpi: tuple[float, float] | None) -> tuple[tuple[int, int], int]:
    """JFIF density and unit for a resolution in dots per inch (unit 0, 1:1 when unknown)."""
    if not dpi or min(dpi) <= 0:
        return (1, 1), 0
    return (min(65535, max(1, round(dpi[0]))), min(65535, max(1, round(dpi[1])))), 1


def app2_icc(icc: bytes) -> bytes:
    """The ICC profile in APP2 ``ICC_PROFILE`` chunks of at most 65519 bytes."""
    step = 65519
    chunks = [icc[i:i + step] for i in range(0, len(icc), step)] or [b""]
    return b"".join(_segment(0xE2, b"ICC_PROFILE\x00" + bytes([k + 1, len(chunks)]) + c)
                    for k, c in enumerate(chunks))


def dqt(tables: list[np.ndarray]) -> bytes:
    """One DQT segment holding 8-bit tables 0..n-1 (stored in zigzag order)."""
    payload = b"".join(bytes([i]) + np.asarray(t)[ZIGZAG].astype(np.uint8).tobytes()
                       for i, t in enumerate(tables))
    return _segment(0xDB, payload)


def sof0(height: int, width: int, comps: list[tuple[int, int, int, int]],
         progressive: bool = False) -> bytes:
    """Baseline (SOF0) or progressive (SOF2) frame header; comps: (id, h, v, table)."""
    payload = struct.pack(">BHHB", 8, height, width, len(comps))
    payload += b"".join(bytes([cid, (h << 4) | v, tq]) for cid, h, v, tq in comps)
    return _segment(0xC2 if progressive else 0xC0, payload)


def dht(tables: list[tuple[int, int, tuple[list[int], list[int]]]]) -> bytes:
    """One DHT segment; tables: (class 0=DC/1=AC, id, (bits, vals))."""
    payload = b"".join(bytes([(tc << 4) | th, *bits, *vals]) for tc, th, (bits, vals) in tables)
    return _segment(0xC4, payload)


def dri(interval: int) -> bytes:
    return _segment(0xDD, struct.pack(">H", interval))


def sos(comps: list[tuple[int, int, int]], ss: int = 0, se: int = 63, ah: int = 0,
        al: int = 0) -> bytes:
    """Scan header; comps: (id, dc table, ac table); spectral band ``ss..se`` and successive
    approximation bits ``ah``, ``al`` (baseline: 0, 63, 0, 0)."""
    payload = bytes([len(comps)]) + b"".join(bytes([cid, (td << 4) | ta]) for cid, td, ta in comps)
    return _segment(0xDA, payload + bytes([ss, se, (ah << 4) | al]))


SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
