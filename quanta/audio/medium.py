"""Audio's side of the medium contract (:mod:`quanta.media`): requantize a file, make an
example input, and the tour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quanta.progress import Progress


def quantize_file(src: Path | str, dst: Path | str, *, seed: int = 0,
                  progress: Progress | None = None, bits: int = 16, dither: str = "tpdf",
                  shape: Any = "auto", force_dither: bool = False, chunk_frames: int | None = None,
                  out_format: str | None = None) -> Any:
    """Requantize ``src`` into ``dst``: :func:`quanta.audio.requantize.requantize_file` (a
    chunk of ``None``: its default)."""
    from quanta.audio.requantize import DEFAULT_CHUNK, requantize_file

    return requantize_file(src, dst, bits, dither=dither, shape=shape, seed=seed, force_dither=force_dither,
                           chunk_frames=DEFAULT_CHUNK if chunk_frames is None else chunk_frames,
                           out_format=out_format, progress=progress)


def check_options(*, bits: int = 16, dither: str = "tpdf", shape: Any = "auto",
                  chunk_frames: int | None = None, **_: Any) -> None:
    """Refuse options that are wrong for every file (a batch checks them once, before any
    work): the bit depth, the dither kind, a filter name that exists at no rate, the chunk."""
    from quanta.audio.levels import check_bits
    from quanta.audio.shaping import CLASSIC
    from quanta.core._checks import check_choice
    from quanta.core.dither import KINDS
    from quanta.errors import ConfigError

    check_bits(bits)
    check_choice(dither, KINDS, "dither")
    if chunk_frames is not None and chunk_frames < 1:
        raise ConfigError("chunk size must be positive")
    if isinstance(shape, str) and not (shape in ("auto", "none") or shape.startswith("designed")
                                       or any(f.name == shape for f in CLASSIC)):
        raise ConfigError(f"unknown noise-shaping filter {shape!r}")


def example(folder: Path | str, *, seed: int = 0) -> Path:
    """A 0.5-second, 44.1 kHz stereo float WAV of the music-like signal."""
    from quanta.audio.generate import write

    p = Path(folder) / "example.wav"
    write(p, "music", seconds=0.5, rate_hz=44100, channels=2, seed=seed)
    return p


def tour(**settings: Any) -> Any:
    """This medium's part of ``quanta tour`` (:mod:`quanta.audio.tour`)."""
    from quanta.audio.tour import tour as run

    return run(**settings)
