"""quanta's PNG reader (``quanta.image.png``) against Pillow's decoder: files written here row by
row with every filter type (so each of the five is exercised at 1 and 3 bytes per pixel), the
files it leaves to Pillow, and damaged files."""

from __future__ import annotations

import struct
import sys
import zlib
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image

from quanta.image import png
from quanta.image.io import load_image


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filtered(img: np.ndarray, types: list[int]) -> bytes:
    """The image's rows filtered with ``types`` (ISO/IEC 15948 §9), as a PNG encoder does."""
    h = img.shape[0]
    rows = img.reshape(h, -1).astype(np.int64)
    bpp = 1 if img.ndim == 2 else img.shape[2]
    out = bytearray()
    for y in range(h):
        x = rows[y]
        up = rows[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        pred = {1: left, 2: up, 3: (left + up) // 2, 4: _paeth(left, up, upleft)}.get(types[y], 0)
        out.append(types[y])
        out += ((x - pred) % 256).astype(np.uint8).tobytes()
    return bytes(out)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(img: np.ndarray, types: list[int], *, idat_parts: int = 1, colour: int | None = None,
         depth: int = 8, interlace: int = 0, extra: bytes = b"") -> bytes:
    h, w = img.shape[:2]
    colour = (0 if img.ndim == 2 else 2) if colour is None else colour
    stream = zlib.compress(_filtered(img, types), 6)
    cuts = np.linspace(0, len(stream), idat_parts + 1).astype(int)
    idat = b"".join(_chunk(b"IDAT", stream[a:b]) for a, b in pairwise(cuts))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace)
    return png.SIGNATURE + _chunk(b"IHDR", ihdr) + extra + idat + _chunk(b"IEND", b"")


def _pillow(data: bytes, tmp_path) -> np.ndarray:
    f = tmp_path / "oracle.png"
    f.write_bytes(data)
    with Image.open(f) as im:
        return np.asarray(im)


@pytest.mark.parametrize("shape", [(37, 29, 3), (23, 1, 3), (1, 17, 3), (31, 45), (5, 2)])
def test_every_filter_type_decodes_as_pillow_decodes_it(shape, tmp_path):
    rng = np.random.default_rng(sum(shape))
    # smooth gradients plus noise, so the predictors see what photographs give them
    ramp = np.add.outer(np.arange(shape[0]) * 7, np.arange(shape[1]) * 5)
    img = ramp.reshape(ramp.shape + (1,) * (len(shape) - 2)) + rng.integers(0, 90, shape)
    img = (img % 256).astype(np.uint8)
    types = list(rng.integers(0, 5, shape[0]))
    types[: min(5, shape[0])] = range(min(5, shape[0]))  # every type, the first row included
    data = _png(img, types, idat_parts=3)
    got = png.decode(data)
    assert got is not None and got.dtype == np.uint8
    assert np.array_equal(got, _pillow(data, tmp_path))
    assert np.array_equal(got, img)


def test_kodak_images_decode_as_pillow_decodes_them(shared_data):
    for p in sorted((shared_data / "kodak").glob("kodim0[1-3].png")):
        got = png.decode(p.read_bytes())
        with Image.open(p) as im:
            assert got is not None and np.array_equal(got, np.asarray(im.convert("RGB"))), p.name


def test_without_libdeflate_the_standard_zlib_gives_the_same_samples(monkeypatch):
    img = (np.arange(30 * 40 * 3).reshape(30, 40, 3) % 251).astype(np.uint8)
    data = _png(img, [4, 3, 1, 2, 0] * 6)
    monkeypatch.setitem(sys.modules, "deflate", None)  # "import deflate" fails
    assert np.array_equal(png.decode(data), img)


def test_files_it_does_not_read_are_left_to_pillow(tmp_path):
    img = np.zeros((4, 6, 3), np.uint8)
    rgba = np.zeros((4, 6, 4), np.uint8)
    types = [0] * 4
    assert png.decode(_png(rgba, types, colour=6)) is None  # alpha: Pillow composites it
    assert png.decode(_png(img, types, interlace=1)) is None  # Adam7
    assert png.decode(_png(img, types, depth=16)) is None
    assert png.decode(_png(img, types, extra=_chunk(b"acTL", b"\0\0\0\1\0\0\0\0"))) is None
    assert png.decode(b"GIF89a" + b"\0" * 40) is None
    pal = tmp_path / "p.png"
    Image.fromarray(img).convert("P").save(pal)
    assert png.decode(pal.read_bytes()) is None


def test_damaged_files_are_left_to_pillow():
    img = (np.arange(20 * 30 * 3).reshape(20, 30, 3) % 256).astype(np.uint8)
    good = _png(img, [1] * 20)
    assert png.decode(good) is not None
    assert png.decode(good[: len(good) // 2]) is None  # cut inside the image data
    assert png.decode(_png(img, [0] * 19 + [5])) is None  # PNG has no filter type 5
    at = good.index(b"IDAT") + 20
    flipped = good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1:]  # checksum no longer holds
    assert png.decode(flipped) is None
    short = _png(img[:19], [1] * 19)  # the header says 20 rows, the data holds 19
    short = short[:16] + struct.pack(">I", 30) + struct.pack(">I", 20) + short[24:]
    assert png.decode(short) is None


def test_load_image_reads_an_rgb_png_without_pillow_decoding_it(tmp_path, monkeypatch):
    img = (np.arange(16 * 24 * 3).reshape(16, 24, 3) % 253).astype(np.uint8)
    f = tmp_path / "a.png"
    f.write_bytes(_png(img, [4] * 16))

    def refuse(self, *args, **kwargs):
        raise AssertionError("Pillow decoded the pixels")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", refuse)
    got, icc, notes = load_image(f)
    assert np.array_equal(got, img) and icc is None and notes == []


def test_load_image_still_refuses_a_truncated_png_in_one_line(tmp_path):
    from quanta.errors import InputError

    img = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)  # 4.8 kB of data
    f = tmp_path / "cut.png"
    f.write_bytes(_png(img, [1] * 40)[:3000])
    with pytest.raises(InputError, match=r"cut\.png: cannot read image"):
        load_image(f)


def _forced_pillow(monkeypatch):
    import quanta.image.io as io

    monkeypatch.setattr(io, "_png_file", lambda p: None)


def test_profile_exif_and_resolution_are_what_pillow_reports(tmp_path, monkeypatch):
    from quanta.image.io import read_metadata

    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x010F] = "quanta"
    f = tmp_path / "meta.png"
    img.save(f, icc_profile=b"not really a profile, but bytes" * 40, exif=exif.tobytes(), dpi=(300, 150))
    fast = load_image(f), read_metadata(f)
    _forced_pillow(monkeypatch)
    slow = load_image(f), read_metadata(f)
    assert np.array_equal(fast[0][0], slow[0][0]) and fast[0][1:] == slow[0][1:]
    assert fast[1] == slow[1] and fast[1][1] == pytest.approx((300, 150), abs=0.05)
    assert fast[1][0].startswith(b"Exif\0\0") and fast[0][1].startswith(b"not really")


def test_a_damaged_chunk_before_the_data_is_refused_as_pillow_refuses_it(tmp_path, monkeypatch):
    from quanta.errors import InputError

    img = (np.arange(12 * 10 * 3).reshape(12, 10, 3) % 256).astype(np.uint8)
    data = bytearray(_png(img, [1] * 12, extra=_chunk(b"pHYs", struct.pack(">IIB", 3000, 3000, 1))))
    data[data.index(b"pHYs") + 4] ^= 1  # the chunk no longer matches its CRC
    assert png.decode(bytes(data)) is None
    f = tmp_path / "crc.png"
    f.write_bytes(bytes(data))
    with pytest.raises(InputError) as fast:
        load_image(f)
    _forced_pillow(monkeypatch)
    with pytest.raises(InputError) as slow:
        load_image(f)
    assert str(fast.value) == str(slow.value) and "Pillow" in str(fast.value)


def test_pillows_pixel_limit_holds(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from quanta.errors import InputError

    f = tmp_path / "big.png"
    f.write_bytes(_png(np.zeros((120, 100), np.uint8), [0] * 120))
    assert load_image(f)[0].shape == (120, 100)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(InputError, match="too large"):
        load_image(f)


def test_encoding_a_png_does_not_load_pillow(tmp_path):
    import subprocess

    f = tmp_path / "a.png"
    f.write_bytes(_png((np.arange(16 * 24 * 3).reshape(16, 24, 3) % 253).astype(np.uint8), [4] * 16))
    code = ("import sys; from pathlib import Path; from quanta.image.medium import Options, quantize_file; "
            f"quantize_file({str(f)!r}, {str(tmp_path / 'a.jpg')!r}, Options()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'PIL'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]" and (tmp_path / "a.jpg").stat().st_size > 0


def test_the_reader_and_io_agree_on_the_signature():
    import quanta.image.io as io

    assert io.SIGNATURE == png.SIGNATURE  # one constant: io re-exports the reader's


def test_damaged_files_are_read_as_pillow_reads_them_or_left_to_it():
    # 600 seeded corruptions (flipped bits, cuts, inserted bytes) of an RGB and a gray file:
    # quanta's reader gives Pillow's samples or hands the file to Pillow, never other samples
    # and never a picture of a file Pillow refuses
    import io
    import warnings

    rng = np.random.default_rng(0)
    files = []
    for shape in ((23, 31, 3), (17, 9)):
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        b = io.BytesIO()
        Image.fromarray(arr).save(b, "PNG", dpi=(72, 72))
        files.append(b.getvalue())
    read = 0
    for t in range(600):
        data = bytearray(files[t % 2])
        kind = t % 3
        if kind == 0:
            data[rng.integers(8, len(data))] ^= 1 << rng.integers(0, 8)
        elif kind == 1:
            data = data[: rng.integers(8, len(data))]
        else:
            at = rng.integers(8, len(data))
            data[at:at] = bytes(rng.integers(0, 256, rng.integers(1, 20), dtype=np.uint8))
        ours = png.decode(bytes(data))
        if ours is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(bytes(data))) as im:
                im.load()
                assert np.array_equal(ours, np.asarray(im)), t
        read += 1
    assert read  # some damage (a chunk CRC after the data, say) leaves the picture whole


def _photo(h: int, w: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(h), np.arange(w))[..., None] * np.array([1, 2, 3])
    return ((ramp + rng.integers(0, 40, (h, w, 3))) % 256).astype(np.uint8)


def test_a_file_read_ahead_is_handed_over_once_with_the_samples_a_read_gives(tmp_path):
    img = _photo(120, 90)
    p = tmp_path / "a.png"
    Image.fromarray(img).save(p)
    png.read_ahead(str(p))
    data, head, samples = png.ahead(str(tmp_path / "." / "a.png"))  # the same file, spelt otherwise
    assert data == p.read_bytes() and (head.width, head.height) == (90, 120)
    assert np.array_equal(samples, img) and samples.flags.writeable
    assert png.ahead(str(p))[2] is None  # handed over once: a second caller decodes its own
    arr, icc, notes = load_image(p)
    assert np.array_equal(arr, img) and icc is None and notes == []


def test_a_file_changed_after_it_was_read_ahead_is_read_again(tmp_path):
    p = tmp_path / "a.png"
    Image.fromarray(_photo(64, 48, seed=1)).save(p)
    png.read_ahead(str(p))
    png._AHEAD[str(p)][1].join()  # the first file read whole
    changed = _photo(50, 40, seed=2)
    Image.fromarray(changed).save(p)
    assert png.ahead(str(p)) is None
    assert np.array_equal(load_image(p)[0], changed)


def test_a_file_read_ahead_that_this_reader_does_not_take_is_left_to_pillow(tmp_path):
    p = tmp_path / "photo.png"  # a JPEG under a PNG's name
    Image.fromarray(_photo(40, 30)).save(p, format="JPEG", quality=90)
    png.read_ahead(str(p))
    data, head, samples = png.ahead(str(p))
    assert data == p.read_bytes() and head is None and samples is None
    with Image.open(p) as im:
        assert np.array_equal(load_image(p)[0], np.asarray(im.convert("RGB")))
    assert png.ahead(str(tmp_path / "never-read-ahead.png")) is None
