import json

import numpy as np
import pytest
from PIL import Image

from quanta.cli.main import main
from quanta.core.feedback import error_diffusion
from quanta.errors import ConfigError, InputError
from quanta.image import metrics
from quanta.image.io import load_image
from quanta.image.posterize import bayer, posterize


@pytest.fixture
def photo(shared_data, tmp_path):
    src = shared_data / "kodak" / "kodim04.png"
    img = np.asarray(Image.open(src).convert("RGB"))[:128, :160]
    p = tmp_path / "photo.png"
    Image.fromarray(img).save(p)
    return p, img


def test_bayer_matrix():
    b = bayer(8)
    assert sorted(b.ravel().tolist()) == list(range(64))
    assert b[0, 0] == 0 and b[0, 1] == 32


@pytest.mark.parametrize("dither", ["none", "ordered", "fs"])
def test_posterize_levels_and_mean(photo, dither):
    _, img = photo
    out = posterize(img, 2, dither=dither)
    levels = {0, 85, 170, 255}
    assert set(np.unique(out).tolist()) <= levels
    if dither != "none":  # dither keeps the local mean: blurred images stay close
        from scipy.ndimage import uniform_filter

        blur = lambda a: uniform_filter(a.astype(float), size=(9, 9, 1))  # noqa: E731
        plain = np.abs(blur(posterize(img, 2)) - blur(img)).mean()
        assert np.abs(blur(out) - blur(img)).mean() < plain


def test_error_diffusion_keeps_the_mean():
    x = np.full((64, 64), 0.3)  # 30% grey on a 0/1 grid
    codes = error_diffusion(x, qmin=0, qmax=1)
    assert set(np.unique(codes).tolist()) == {0, 1}
    assert codes.mean() == pytest.approx(0.3, abs=0.01)


def test_posterize_bad_bits():
    with pytest.raises(ConfigError):
        posterize(np.zeros((2, 2), np.uint8), 8)
    with pytest.raises(ConfigError):
        posterize(np.zeros((2, 2), np.uint8), 2, dither="blue")


def test_metrics():
    a = np.zeros((32, 32, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255
    assert metrics.psnr_rgb_db(a, b) == pytest.approx(10 * np.log10(255**2 / (255**2 / 3072)))
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.bits_per_pixel(1000, 100, 10) == 8.0
    # BD-rate of a curve against itself shifted to use 10% more bits at equal quality
    r = [0.5, 1.0, 1.5, 2.0, 2.5]
    q = [30.0, 33.0, 35.0, 36.5, 37.5]
    assert metrics.bd_rate(r, q, [x * 1.1 for x in r], q) == pytest.approx(10.0, abs=1e-6)
    with pytest.raises(ConfigError):
        metrics.bd_rate(r[:3], q[:3], r[:3], q[:3])


def test_ssimulacra2_orders_quality(photo):
    _, img = photo
    import io

    from quanta.image.jpeg import encode

    def dec(q):
        return np.asarray(Image.open(io.BytesIO(encode(img, quality=q).data)).convert("RGB"))

    hi, lo = metrics.ssimulacra2(img, dec(90)), metrics.ssimulacra2(img, dec(10))
    assert hi > lo and hi > 50


def test_load_image_conversions(tmp_path):
    rgba = tmp_path / "a.png"
    Image.new("RGBA", (4, 3), (255, 0, 0, 0)).save(rgba)
    img, _, notes = load_image(rgba)
    assert img.shape == (3, 4, 3) and "alpha" in notes[0] and img[0, 0].tolist() == [255, 255, 255]
    pal = tmp_path / "p.png"
    Image.new("P", (5, 5), 3).save(pal)
    assert load_image(pal)[0].shape == (5, 5, 3)
    g16 = tmp_path / "g16.png"
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(g16)
    img, _, notes = load_image(g16)
    assert img.dtype == np.uint8 and img.max() == 255 and "16-bit" in notes[0]
    cmyk = tmp_path / "c.jpg"
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(cmyk)
    assert load_image(cmyk)[0].shape == (4, 4, 3)


def test_load_image_refusals(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "none.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(InputError):
        load_image(junk)
    trunc = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)).save(trunc)
    trunc.write_bytes(trunc.read_bytes()[:400])
    with pytest.raises(InputError):
        load_image(trunc)


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    p = tmp_path / "big.png"
    PILImage.new("L", (300, 300)).save(p)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(InputError, match="too large"):
        load_image(p)


def test_cli_encode_compare_curve_posterize(photo, tmp_path, capsys):
    src, _ = photo
    out = tmp_path / "o.jpg"
    assert main(["image", "encode", str(src), str(out), "-q", "80", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["bytes"] == out.stat().st_size and Image.open(out).size == (160, 128)
    assert main(["image", "encode", str(src), str(out)]) == 2  # exists
    assert "exists" in capsys.readouterr().err
    assert main(["image", "compare", str(src), str(out), "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert 30 < cmp["psnr_db"] < 60 and 0.8 < cmp["ssim"] <= 1 and "ssimulacra2" in cmp
    png = tmp_path / "rd.png"
    assert main(["image", "curve", str(src), "--qualities", "30,50,70,90", "--plot", str(png),
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["quanta"]) == 4 and res["bd_rate_percent"] < -5  # the default path saves bytes
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["image", "curve", str(src), "--qualities", "30,50,70,90", "--fast", "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["bd_rate_percent"]) < 3  # libjpeg's choices
    post = tmp_path / "p.png"
    assert main(["image", "posterize", str(src), str(post), "--bits", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["levels_per_channel"] <= 8


@pytest.mark.parametrize("args,msg", [
    (["-q", "0"], "quality"), (["-q", "101"], "quality"), (["--subsampling", "4:1:1"], "subsampling"),
    (["--tables", "missing.txt"], "cannot read"),
])
def test_cli_encode_bad_options(photo, tmp_path, capsys, args, msg):
    src, _ = photo
    out = tmp_path / "o.jpg"
    assert main(["image", "encode", str(src), str(out), *args]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err and not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_cli_encode_bad_tables_file(photo, tmp_path, capsys):
    src, _ = photo
    t = tmp_path / "t.txt"
    t.write_text(" ".join(["0"] * 64))
    assert main(["image", "encode", str(src), str(tmp_path / "o.jpg"), "--tables", str(t)]) == 2
    assert "1..255" in capsys.readouterr().err


def test_cli_encode_unreadable(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert main(["image", "encode", str(bad), str(tmp_path / "o.jpg")]) == 2
    assert not (tmp_path / "o.jpg").exists()
