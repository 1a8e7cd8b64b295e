"""The ``quanta`` process (``quanta.cli.launch``): what it starts before the CLI changes no output,
and nothing that goes wrong there stops a command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from quanta.cli import launch
from quanta.image.jpeg import encode
from quanta.media import Medium


def test_a_large_png_encoded_by_the_process_is_the_encoders_bytes(tmp_path):
    rng = np.random.default_rng(7)
    img = np.clip(np.add.outer(np.arange(520), np.arange(640))[..., None] // 5
                  + rng.integers(0, 30, (520, 640, 3)), 0, 255).astype(np.uint8)
    src, dst = tmp_path / "a.png", tmp_path / "a.jpg"
    Image.fromarray(img).save(src)
    r = subprocess.run([sys.executable, "-m", "quanta.cli", "image", "encode", str(src), str(dst)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert dst.read_bytes() == encode(img).data


def test_a_failing_head_start_leaves_the_command_to_run(monkeypatch):
    def broken(self, args):
        raise RuntimeError("a bug in a guess")

    monkeypatch.setattr(Medium, "start_ahead", broken)
    launch._head_start(["image", "encode", "a.png", "b.jpg"])  # swallowed: the command runs as it would
    launch._head_start([])
    launch._head_start(["no-such-medium"])


def test_ctrl_c_while_the_cli_is_imported_exits_130_in_one_line(monkeypatch, capsys):
    import pytest

    def stop(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(launch, "_head_start", stop)
    with pytest.raises(SystemExit) as e:
        launch.main_exit()
    assert e.value.code == 130 and capsys.readouterr().err == "quanta: interrupted\n"


def test_the_process_sets_what_its_imports_made_out_of_the_collectors_way(monkeypatch):
    import gc

    import quanta.cli.main as cli_main

    seen = {}
    monkeypatch.setattr(cli_main, "main_exit", lambda: seen.update(frozen=gc.get_freeze_count(),
                                                                   enabled=gc.isenabled()))
    monkeypatch.setattr(launch, "_head_start", lambda args: None)
    try:
        launch.main_exit()
    finally:
        gc.unfreeze()  # this test process's objects back in the collector's sight
    assert seen["frozen"] > 1000 and seen["enabled"]
