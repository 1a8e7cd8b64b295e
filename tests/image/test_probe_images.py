"""Images under the probe of 2026-12-05 (issue 23): H4 (JPEG's real size limit), M18 (EXIF too
large for one segment), L3 (what a read drops is said)."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from quanta.cli.main import main


@pytest.mark.parametrize("size", [(65501, 1), (1, 65535)])
def test_a_side_over_65500_pixels_is_refused_before_decoding(size, tmp_path, capsys):
    src = tmp_path / "wide.png"
    Image.new("RGB", size).save(src)
    assert main(["image", "encode", str(src), str(tmp_path / "w.jpg")]) == 2
    assert "at most 65500 pixels" in capsys.readouterr().err and not (tmp_path / "w.jpg").exists()


def test_65500_pixels_is_written_and_read_back(tmp_path):
    src = tmp_path / "edge.png"
    Image.new("RGB", (65500, 1), (10, 200, 30)).save(src)
    assert main(["image", "encode", str(src), str(tmp_path / "e.jpg"), "--fast"]) == 0
    with Image.open(tmp_path / "e.jpg") as im:
        im.load()
        assert im.size == (65500, 1)


def test_exif_too_large_for_one_segment_keeps_orientation_and_says_so(tmp_path, capsys):
    exif = Image.Exif()
    exif[0x0112] = 3  # Orientation: upside down
    exif[0x010F] = "TestCam"
    exif[0x010E] = "x" * 70000  # an ImageDescription past one APP1 segment
    src = tmp_path / "big.png"
    Image.new("RGB", (16, 16)).save(src, exif=exif.tobytes())
    assert main(["image", "encode", str(src), str(tmp_path / "b.jpg"), "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("EXIF larger than one JPEG segment" in n for n in notes)
    with Image.open(tmp_path / "b.jpg") as im:
        got = im.getexif()
    assert got[0x0112] == 3 and got[0x010F] == "TestCam" and 0x010E not in got


def _png16(path, arr):
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def test_dropped_frames_and_16_bit_colour_are_noted(tmp_path):
    from quanta.image.io import load_image

    frames = [Image.new("RGB", (8, 8), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert "3 frames: only the first was read" in load_image(tmp_path / "anim.gif")[2]
    rgb16 = _png16(tmp_path / "rgb16.png", np.random.default_rng(0).integers(0, 65535, (8, 8, 3)))
    assert "16-bit samples rounded to 8 bits" in load_image(rgb16)[2]
