"""The tour's fixtures: a small tour written once, and a real headless Chromium (Debian's
``chromium`` package, installed here when missing — the browser tests never skip)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import debian_tool
from tests.model.conftest import tiny  # noqa: F401  (the tiny GGUF fixture, shared)

#: where the browser test keeps its screenshot of the page
ARTIFACTS = Path(os.environ.get("QUANTA_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "test-artifacts"))


@pytest.fixture(scope="session")
def chromium() -> str:
    return shutil.which("chromium-browser") or debian_tool("chromium", "chromium")


@pytest.fixture(scope="session")
def small_tour(tmp_path_factory, tiny):  # noqa: F811
    """A tour on small inputs: 1 s of audio, two 96×128 images, the tiny GGUF model."""
    from PIL import Image

    from quanta.image.io import synthetic_image
    from quanta.render.tour import run_tour

    _, model_path = tiny
    folder = tmp_path_factory.mktemp("tour-in")
    images = []
    for i in range(2):
        p = folder / f"img{i}.png"
        Image.fromarray(synthetic_image(i, (96, 128))).save(p)
        images.append(p)
    out = tmp_path_factory.mktemp("tour-out")
    settings = {"audio": {"seconds": 1.0},
                "image": {"images": images, "qualities": (30, 50, 75, 95)},
                "model": {"source": str(model_path), "chunks": 2, "ctx": 64, "calib_samples": 4,
                          "methods": {"rtn": (8, 4), "hqq": (4,)}, "group_size": 32}}
    results = run_tour(out, quick=True, settings=settings)
    return out, results, np.asarray(Image.open(images[0]).convert("RGB"))
