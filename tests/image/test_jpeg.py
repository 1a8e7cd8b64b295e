import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from quanta.core.measures import psnr_db
from quanta.errors import ConfigError, InputError
from quanta.image.jpeg import dct, encode, huffman
from quanta.image.jpeg.tables import ANNEX_K_LUMA, ZIGZAG, load_tables, quality_scaling, scale_table


def _decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _segments(data: bytes) -> dict[int, list[bytes]]:
    """Marker → payloads, up to SOS."""
    out: dict[int, list[bytes]] = {}
    i = 2
    while i < len(data):
        assert data[i] == 0xFF
        m = data[i + 1]
        n = int.from_bytes(data[i + 2:i + 4], "big")
        out.setdefault(m, []).append(data[i + 4:i + 2 + n])
        if m == 0xDA:
            break
        i += 2 + n
    return out


def _pillow(img, **kw) -> bytes:
    b = io.BytesIO()
    Image.fromarray(img).save(b, "JPEG", **kw)
    return b.getvalue()


@pytest.fixture(scope="module")
def kodim(shared_data):
    return np.asarray(Image.open(shared_data / "kodak" / "kodim23.png").convert("RGB"))


@pytest.mark.parametrize("q", range(1, 101))
def test_dqt_matches_pillow_for_every_quality(q):
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    ours = _segments(encode(img, quality=q, fast=True).data)[0xDB]
    theirs = _segments(_pillow(img, quality=q))[0xDB]
    assert b"".join(ours) == b"".join(theirs)


def test_standard_huffman_tables_match_pillow(kodim):
    ours = _segments(encode(kodim[:64, :64], optimize=False).data)[0xC4]
    theirs = _segments(_pillow(kodim[:64, :64], quality=75))[0xC4]
    assert b"".join(ours) == b"".join(theirs)


def test_quality_scaling():
    assert quality_scaling(50) == 100 and quality_scaling(10) == 500 and quality_scaling(90) == 20
    assert scale_table(ANNEX_K_LUMA, 100).max() == 1
    assert scale_table(ANNEX_K_LUMA, 1).max() == 255
    with pytest.raises(ConfigError):
        quality_scaling(0)


def test_dct_is_orthonormal_and_inverts():
    rng = np.random.default_rng(0)
    plane = rng.integers(0, 256, (16, 24)).astype(np.uint8)
    c = dct.forward(plane)
    back = dct.merge_8x8(dct.inverse(c), 16, 24)
    np.testing.assert_allclose(back, plane, atol=1e-3)
    np.testing.assert_allclose(np.sum(c**2), np.sum((plane.astype(np.float64) - 128) ** 2), rtol=1e-5)


def test_fused_transform_quantize_equals_the_core_grid_path():
    from quanta.image.jpeg.quantize import quantize_coefs, transform_quantize

    rng = np.random.default_rng(7)
    plane = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    plane[:16] = plane[:16] // 64 * 64  # flat areas: coefficients on ties and zeros
    for q in (1, 10, 50, 90, 100):
        table = scale_table(ANNEX_K_LUMA, q)
        want = quantize_coefs(dct.forward(plane), table)[:, ZIGZAG]
        assert np.array_equal(transform_quantize(plane, table), want)


def test_optimal_huffman_is_prefix_free_and_limited():
    rng = np.random.default_rng(1)
    freq = np.zeros(256, dtype=np.int64)
    freq[rng.choice(256, 162, replace=False)] = (rng.pareto(0.5, 162) * 100).astype(np.int64) + 1
    bits, vals = huffman.optimal_table(freq)
    assert len(bits) == 16 and sum(bits) == len(vals) == 162
    _codes, sizes = huffman.code_lookup((bits, vals))
    assert sizes.max() <= 16
    # Kraft: strictly below 1 (the all-ones code is reserved)
    assert sum(2.0 ** -int(sizes[v]) for v in vals) < 1.0
    # more frequent symbols never get longer codes
    order = np.argsort(-freq[vals], kind="stable")
    lens = sizes[np.array(vals)[order]]
    assert np.all(np.diff(lens) >= 0)


def test_close_to_pillow_on_kodak_image(kodim):
    for q in (50, 75, 90):
        ours = encode(kodim, quality=q, fast=True).data
        theirs = _pillow(kodim, quality=q, optimize=True)
        p_ours = psnr_db(kodim, np.asarray(_decode(ours).convert("RGB")))
        p_theirs = psnr_db(kodim, np.asarray(_decode(theirs).convert("RGB")))
        assert abs(p_ours - p_theirs) < 0.1
        assert abs(len(ours) / len(theirs) - 1) < 0.02


@st.composite
def images(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    gray = draw(st.booleans())
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    shape = (h, w) if gray else (h, w, 3)
    smooth = rng.integers(0, 256, shape).astype(np.float64)
    return np.clip(smooth, 0, 255).astype(np.uint8)


@settings(max_examples=120, deadline=None)
@given(images(), st.integers(1, 100), st.sampled_from(["4:4:4", "4:2:2", "4:2:0"]),
       st.booleans(), st.sampled_from([0, 1, 3]))
def test_every_file_decodes_with_pillow(img, q, sub, opt, restart):
    enc = encode(img, quality=q, subsampling=sub, optimize=opt, restart_interval=restart)
    im = _decode(enc.data)
    assert im.size == (img.shape[1], img.shape[0])
    assert im.mode == ("L" if img.ndim == 2 else "RGB")
    if q >= 90 and sub == "4:4:4":
        assert psnr_db(img, np.asarray(im)) > 25


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (3, 4097), (1, 1, 3), (7, 13, 3), (3, 4097, 3)])
def test_odd_sizes(shape):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, shape).astype(np.uint8)
    for restart in (0, 2):
        im = _decode(encode(img, restart_interval=restart).data)
        assert im.size == (shape[1], shape[0])


def test_flat_image_is_exact_at_q100():
    img = np.full((17, 9, 3), (10, 200, 90), dtype=np.uint8)
    out = np.asarray(_decode(encode(img, quality=100, subsampling="4:4:4").data))
    assert np.abs(out.astype(int) - img).max() <= 1


def test_restart_markers_present():
    img = np.random.default_rng(3).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    data = encode(img, restart_interval=1, subsampling="4:2:0").data
    assert b"\xff\xdd" in data
    scan = data[data.index(b"\xff\xda"):]
    assert sum(scan.count(bytes([0xFF, 0xD0 + k])) for k in range(8)) == 15  # 16 MCUs


def test_icc_profile_kept():
    icc = bytes(range(256)) * 300  # 76.8 kB: two APP2 chunks
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    im = _decode(encode(img, icc_profile=icc).data)
    assert im.info.get("icc_profile") == icc


def test_custom_tables_and_errors(tmp_path):
    img = np.zeros((8, 8), dtype=np.uint8)
    t = np.arange(1, 65)
    enc = encode(img, tables=(t, t))
    assert _segments(enc.data)[0xDB][0][1:] == t[ZIGZAG].astype(np.uint8).tobytes()
    bad = t.copy()
    bad[5] = 0
    with pytest.raises(ConfigError, match=r"1\.\.255"):
        encode(img, tables=(bad, t))
    big = t.copy()
    big[0] = 256
    with pytest.raises(ConfigError, match=r"1\.\.255"):
        encode(img, tables=(big, t))
    f = tmp_path / "t.txt"
    f.write_text(" ".join(map(str, t)))
    lt, ct = load_tables(f)
    assert lt.tolist() == t.tolist() == ct.tolist()
    f.write_text("1 2 3")
    with pytest.raises(ConfigError):
        load_tables(f)
    for preset in ("flat", "imagemagick", "klein"):
        assert _decode(encode(np.zeros((9, 9, 3), np.uint8), tables=preset).data).size == (9, 9)
    with pytest.raises(ConfigError):
        encode(img, tables="nope")
    with pytest.raises(InputError):
        encode(np.zeros((0, 5), np.uint8))
    with pytest.raises(InputError):
        encode(np.zeros((4, 4), np.uint16))
    with pytest.raises(ConfigError):
        encode(np.zeros((4, 4, 3), np.uint8), subsampling="4:1:1")


def test_padded_colour_conversion_and_downsampling_follow_libjpeg():
    from quanta.image.jpeg.color import downsample, pad_to, rgb_to_ycbcr

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (13, 21, 3), dtype=np.uint8)
    plain = rgb_to_ycbcr(rgb)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert np.abs(plain[0].astype(float) - y).max() <= 0.5 + 1e-4
    padded = rgb_to_ycbcr(rgb, 16, 32)
    for k in range(3):
        assert np.array_equal(padded[k], pad_to(plain[k], 16, 32))
    p = padded[1].astype(np.int64)
    cols = np.arange(16)
    want22 = (p[0::2, 0::2] + p[0::2, 1::2] + p[1::2, 0::2] + p[1::2, 1::2] + 1 + cols % 2) >> 2
    want21 = (p[:, 0::2] + p[:, 1::2] + cols % 2) >> 1
    assert np.array_equal(downsample(padded[1], 2, 2), want22)
    assert np.array_equal(downsample(padded[1], 2, 1), want21)
    with pytest.raises(ConfigError):
        rgb_to_ycbcr(rgb, 8, 8)


def test_saturated_colours_survive():
    """Cb of pure blue and Cr of pure red are 255.5 before rounding: they must stay 255, not
    wrap to 0 (which turned blue into green)."""
    colours = [(0, 0, 255), (255, 0, 0), (0, 255, 0), (255, 255, 255), (0, 0, 0), (255, 0, 255)]
    img = np.repeat(np.repeat(np.array(colours, dtype=np.uint8)[None], 16, axis=0), 16, axis=1)
    for kw in ({"fast": True}, {}):
        out = np.asarray(_decode(encode(img, quality=95, subsampling="4:4:4", **kw).data)).astype(int)
        assert np.abs(out - img).max() <= 8, kw


def test_code_lengths_are_the_lookup_sizes():
    from quanta.image.jpeg import huffman

    rng = np.random.default_rng(4)
    for table in (huffman.AC_LUMA, huffman.DC_CHROMA,
                  huffman.optimal_table(rng.integers(0, 1000, 256) * (rng.random(256) < 0.6))):
        assert np.array_equal(huffman.code_lengths(table), huffman.code_lookup(table)[1])
