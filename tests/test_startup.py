"""Issue 13: no JIT on the command path — the kernels are compiled at install, and a file
command imports nothing heavy it does not use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

HEAVY = ("numba", "llvmlite", "scipy", "torch", "pydantic", "matplotlib", "transformers", "dask")
PROBE = """
import sys
from quanta.cli.main import main
rc = main(sys.argv[1:])
print("RESULT", rc, ",".join(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _run(*args: str) -> tuple[int, list[str]]:
    r = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True,
                       text=True, timeout=120)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT")][-1].split(" ")
    return int(line[1]), (line[2].split(",") if len(line) > 2 and line[2] else [])


@pytest.mark.parametrize("kernels", ["quanta.core._kernels", "quanta.image.jpeg._kernels",
                                     "quanta.image.jpeg._scans", "quanta.audio._kernels"])
def test_kernels_are_compiled_extensions(kernels):
    import importlib

    mod = importlib.import_module(kernels)
    assert Path(mod.__file__).suffix in (".so", ".pyd"), mod.__file__


def test_file_commands_import_no_jit_and_nothing_heavy(tmp_path):
    wav = tmp_path / "in.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal((4410, 2)) * 0.1, 44100, subtype="PCM_24")
    png = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(png)
    for args in (["audio", "requantize", str(wav), str(tmp_path / "o.flac")],
                 ["image", "encode", str(png), str(tmp_path / "o.jpg")],
                 ["--version"]):
        rc, heavy = _run(*args)
        assert rc == 0 and heavy == [], (args, heavy)


BLAS_PROBE = """
import os, sys
from quanta.cli.main import main
rc = main(sys.argv[1:])
print("BLAS", rc, os.environ.get("OPENBLAS_NUM_THREADS", "unset"))
"""


@pytest.mark.parametrize("user", [None, "3"])
def test_image_and_audio_commands_run_numpys_blas_on_one_thread(tmp_path, user):
    import os

    png = tmp_path / "in.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(png)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if user:
        env["OPENBLAS_NUM_THREADS"] = user
    seen = {}
    for name, args in (("image", ["image", "encode", str(png), str(tmp_path / "o.jpg")]),
                       ("version", ["--version"])):
        r = subprocess.run([sys.executable, "-c", BLAS_PROBE, *args], capture_output=True, text=True,
                           timeout=120, env=env)
        line = [x for x in r.stdout.splitlines() if x.startswith("BLAS")][-1].split()
        assert line[1] == "0", r.stderr
        seen[name] = line[2]
    assert seen == ({"image": "1", "version": "unset"} if user is None else {"image": "3", "version": "3"})

