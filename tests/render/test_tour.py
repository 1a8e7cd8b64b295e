"""Issue 12: `quanta tour` — the page, its numbers, a real browser, and independent re-measurements."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from quanta.cli.main import main
from tests.render.conftest import ARTIFACTS

NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")


class _Text(HTMLParser):
    """Visible text: everything outside <style>, <script> and <svg>."""

    def __init__(self) -> None:
        super().__init__()
        self.skip = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "svg"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("style", "script", "svg"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def _numbers(obj) -> list[float]:
    if isinstance(obj, bool) or obj is None:
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _numbers(v)]
    return []


def test_results_hold_every_medium_and_a_summary(small_tour):
    out, results, _ = small_tour
    assert set(results["media"]) == {"audio", "image", "model"}
    assert {r["medium"] for r in results["summary"]} == {"audio", "images", "model"}
    strict = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert strict["quanta_tour"] is True
    audio = results["media"]["audio"]["levels"]["generated music"]
    # noise shaping lowers the audible noise at every depth it can act on
    shaped, tpdf = audio["quanta: TPDF + noise shaping"], audio["TPDF dither (as SoX dither)"]
    for bits in ("16", "8"):
        assert shaped[bits]["threshold_db"] < tpdf[bits]["threshold_db"] - 5
    model = results["media"]["model"]["results"]["rtn"]
    assert model["8"]["kld"] < model["4"]["kld"]
    # the budgeted model ran as a folder on the compiled kernels: their activations' rounding
    # adds little to the weights' own KL divergence
    mixed = results["media"]["model"]["mixed"]
    k = mixed["on_kernels"]
    assert k["ran"] and k["decode_tokens_per_s"] > 0 and k["threads"] >= 1
    assert k["kld"] == pytest.approx(mixed["kld"], rel=0.1, abs=1e-4)


def test_every_number_on_the_page_is_in_results_json(small_tour):
    out, _, _ = small_tour
    page = (out / "index.html").read_text()
    parser = _Text()
    parser.feed(page)
    text = " ".join(parser.parts)
    raw = (out / "results.json").read_text()
    values = np.array(_numbers(json.loads(raw)))
    tokens = NUMBER.findall(text)
    assert len(tokens) > 100
    missing = []
    for tok in tokens:
        if tok in raw:
            continue
        digits = len(tok.split(".")[1]) if "." in tok else 0
        if not np.any(np.abs(np.round(values, digits) - float(tok)) < 0.5 * 10**-digits + 1e-9):
            missing.append(tok)
    assert not missing, f"numbers on the page but not in results.json: {missing[:20]}"


def test_page_loads_in_headless_chromium(small_tour, chromium):
    out, _, _ = small_tour
    url = (out / "index.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
             "--virtual-time-budget=20000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="selfcheck"[^>]*>(.*?)</pre>', dom.stdout, re.S)
    assert found and found.group(1).strip(), f"the page's self-check did not run: {dom.stderr[-2000:]}"
    check = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert check["errors"] == []
    assert len(check["images"]) >= 3 and all(i["width"] > 0 for i in check["images"]), check["images"]
    assert len(check["audio"]) >= 7 and all(a["duration"] > 0.1 for a in check["audio"]), check["audio"]
    assert len(check["plots"]) >= 5 and all(w > 100 for w in check["plots"]), check["plots"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "tour.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1280,2400", url],
                   capture_output=True, timeout=180)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_audio_point_recomputed_through_the_cli(small_tour, tmp_path):
    from quanta.audio.analyze import analyze_file
    from quanta.audio.generate import write

    _, results, _ = small_tour
    src = tmp_path / "music.wav"
    write(src, "music", seconds=1.0, rate_hz=48000, channels=2, seed=0, double=True)
    out = tmp_path / "out.wav"
    assert main(["audio", "requantize", str(src), str(out), "--bits", "8", "--dither", "tpdf", "--shape",
                 "none", "--seed", "0"]) == 0
    measured = analyze_file(out, src).residual["threshold_db"]
    shown = results["media"]["audio"]["levels"]["generated music"]["TPDF dither (as SoX dither)"]["8"]
    assert measured == pytest.approx(shown["threshold_db"], abs=0.05)


def test_image_point_recomputed_with_pillow_and_ssimulacra2(small_tour, tmp_path):
    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    _, results, img = small_tour
    Image.fromarray(img).save(tmp_path / "ref.png")
    Image.fromarray(img).save(tmp_path / "q50.jpg", quality=50, optimize=True, subsampling=2)
    Image.open(tmp_path / "q50.jpg").convert("RGB").save(tmp_path / "dec.png")
    score = compute_ssimulacra2(str(tmp_path / "ref.png"), str(tmp_path / "dec.png"))
    point = next(p for p in results["media"]["image"]["curves"]["Pillow (libjpeg-turbo), optimize"][0]
                 if p["quality"] == 50)
    assert point["bytes"] == (tmp_path / "q50.jpg").stat().st_size
    assert score == pytest.approx(point["ssimulacra2"], abs=1e-6)


def test_model_point_recomputed_through_the_cli(small_tour, tiny, tmp_path, capsys):
    _, results, _ = small_tour
    _, model_path = tiny
    q = tmp_path / "q4"
    assert main(["model", "quantize", str(model_path), "-o", str(q), "--bits", "4", "--group-size", "32",
                 "--method", "rtn"]) == 0
    capsys.readouterr()
    assert main(["model", "eval", str(q), "--reference", str(model_path), "--chunks", "2", "--ctx", "64",
                 "--no-speed", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)["measures"]
    shown = results["media"]["model"]["results"]["rtn"]["4"]
    assert measured["kld"] == pytest.approx(shown["kld"], rel=0.02)
    assert measured["perplexity"] == pytest.approx(shown["perplexity"], rel=0.01)


def test_cli_writes_the_page_and_guards_the_folder(tmp_path, capsys):
    out = tmp_path / "tour"
    args = ["tour", "--quick", "--skip", "image,model", "--out", str(out)]
    assert main(args) == 0
    assert (out / "index.html").exists() and "page:" in capsys.readouterr().out
    assert main(args) == 2  # exists: needs --force
    assert main([*args, "--force"]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["tour", "--quick", "--skip", "image,model", "--out", str(mine), "--force"]) == 2
    assert (mine / "notes.txt").read_text() == "keep"
    assert main(["tour", "--quick", "--skip", "pictures", "--out", str(tmp_path / "x")]) == 2
    assert "no such medium" in capsys.readouterr().err


def test_without_shared_data_the_tour_falls_back_to_generated_inputs(tmp_path, monkeypatch):
    from quanta.audio.tour import _signals
    from quanta.image.tour import _load

    monkeypatch.setenv("QUANTA_DATA", str(tmp_path / "absent"))
    names = [name for name, _, _ in _signals(0.5, None)]
    assert names[0] == "generated music" and "no recorded clip found" in names[1]
    imgs = _load(None)
    assert len(imgs) == 3 and all("Kodak images not found" in n for n, _ in imgs)
    assert all(a.ndim == 3 and a.dtype == np.uint8 for _, a in imgs)
