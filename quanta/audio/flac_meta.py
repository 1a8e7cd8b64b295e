"""Carry a FLAC file's tags and pictures into another FLAC file.

libsndfile keeps only a fixed set of text fields; a FLAC file's VORBIS_COMMENT block holds any
tag (ReplayGain, ISRC, MusicBrainz ids, repeated ARTIST fields, …) and its PICTURE blocks hold
cover art. :func:`copy_tags` replaces the destination's comment and picture blocks by the
source's, byte for byte (FLAC format: ``fLaC``, then metadata blocks with a 4-byte header —
last-block flag, 7-bit type, 24-bit length — then the audio frames).
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

STREAMINFO, PADDING, VORBIS_COMMENT, PICTURE = 0, 1, 4, 6
CARRIED = (VORBIS_COMMENT, PICTURE)


def read_blocks(path: Path | str) -> tuple[list[tuple[int, bytes]], int]:
    """The metadata blocks ``(type, payload)`` of a FLAC file and the offset of its audio."""
    with open(path, "rb") as f:
        if f.read(4) != b"fLaC":
            raise ValueError(f"{path}: not a FLAC file")
        blocks, last = [], False
        while not last:
            head = f.read(4)
            if len(head) < 4:
                raise ValueError(f"{path}: truncated metadata")
            last, kind = bool(head[0] & 0x80), head[0] & 0x7F
            size = struct.unpack(">I", b"\x00" + head[1:])[0]
            payload = f.read(size)
            if len(payload) < size:
                raise ValueError(f"{path}: truncated metadata block")
            blocks.append((kind, payload))
        return blocks, f.tell()


def _header(blocks: list[tuple[int, bytes]]) -> bytes:
    out = [b"fLaC"]
    for i, (kind, payload) in enumerate(blocks):
        flag = 0x80 if i == len(blocks) - 1 else 0
        out.append(bytes([flag | kind]) + struct.pack(">I", len(payload))[1:] + payload)
    return b"".join(out)


def copy_tags(src: Path | str, dst: Path | str) -> int:
    """Put ``src``'s comment and picture blocks into ``dst`` (rewritten through a temporary
    file beside it); returns how many blocks were carried."""
    carried = [b for b in read_blocks(src)[0] if b[0] in CARRIED]
    if not carried:
        return 0
    blocks, audio_at = read_blocks(dst)
    kept = [b for b in blocks if b[0] not in (*CARRIED, PADDING)]
    tmp = Path(f"{dst}.meta")
    try:
        with open(dst, "rb") as fin, open(tmp, "wb") as fout:
            fout.write(_header(kept[:1] + carried + kept[1:]))
            fin.seek(audio_at)
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return len(carried)
