"""What ``quanta image`` starts before its CLI is imported (``quanta.image.hint``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from quanta import memory
from quanta.image import hint, png
from quanta.media import MEDIA


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    out = {}
    for name, (h, w) in {"big": (500, 600), "big2": (520, 600), "small": (100, 100)}.items():
        out[name] = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(out[name])
    out["jpeg"] = tmp_path / "big.jpg"
    Image.open(out["big"]).save(out["jpeg"], quality=90)
    return out


def test_the_large_input_is_the_one_png_of_an_encode(files, tmp_path):
    big = str(files["big"])
    assert hint.large_input(["encode", big, "out.jpg"]) == (big, 300_000)
    assert hint.large_input(["encode", "-q", "80", big, "--force", "out.jpg", "--fast"]) == (big, 300_000)
    assert hint.large_input(["encode", str(files["small"]), "out.jpg"]) is None  # too small to pay
    assert hint.large_input(["encode", str(files["jpeg"]), "out.jpg"]) is None  # Pillow's to read
    assert hint.large_input(["encode", str(tmp_path / "missing.png"), "out.jpg"]) is None
    assert hint.large_input(["encode", big, str(files["big2"]), "-o", "out"]) is None  # a batch
    assert hint.large_input(["encode", big, "--output=out"]) is None
    assert hint.large_input(["encode", big, "out.jpg", "--jobs", "2"]) is None
    assert hint.large_input(["compare", big, big]) is None
    assert hint.large_input([]) is None


def test_an_encode_of_a_large_png_keeps_freed_memory_and_reads_the_file_ahead(files, monkeypatch):
    asked = []
    monkeypatch.setattr(memory, "keep_freed", lambda: asked.append(1))  # not the test process's heap
    MEDIA["image"].start_ahead(["encode", str(files["big"]), "out.jpg"])
    assert asked == [1]
    early = png.ahead(str(files["big"]))
    assert early is not None and np.array_equal(early[2], np.asarray(Image.open(files["big"])))
    MEDIA["image"].start_ahead(["encode", str(files["small"]), "out.jpg"])
    assert asked == [1] and png.ahead(str(files["small"])) is None
    MEDIA["audio"].start_ahead(["requantize", str(files["big"]), "out.flac"])  # no head start there
    assert asked == [1]


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes: POSIX only")
def test_a_pipe_on_the_command_line_is_never_read(files, tmp_path):
    import os

    fifo = tmp_path / "in.png"
    os.mkfifo(fifo)  # opening it to read would wait for a writer: the guess must not touch it
    assert hint.large_input(["encode", str(fifo), "out.jpg"]) is None
    big = str(files["big"])
    assert hint.large_input(["encode", big, str(fifo), "out.jpg"]) == (big, 300_000)
