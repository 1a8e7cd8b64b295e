"""Audio's side of the medium contract (:mod:`quanta.media`): requantize a file, make an
example input, and the tour."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quanta.progress import Progress


@dataclass(frozen=True)
class Options:
    """``quanta audio requantize``'s options. bits: the output's bit depth (8–24, or 32).
    dither: ``tpdf``, ``rpdf``, ``none`` … (:data:`quanta.core.dither.KINDS`). shape: ``auto``,
    ``adaptive`` (masking-driven, :mod:`quanta.audio.adaptive`), ``none``, ``designed[-ORDER]``,
    a classic filter's name (:data:`quanta.audio.shaping.CLASSIC`) or a
    :class:`quanta.audio.shaping.ShapingFilter`. force_dither: dither even where the input
    already sits on the output grid. chunk_frames: frames per chunk (None: the default).
    out_format: the container (None: from the output's name).

    Built, it has refused what is wrong for every file: the bit depth, the dither kind, a filter
    name that exists at no rate, the chunk."""

    bits: int = 16
    dither: str = "tpdf"
    shape: Any = "auto"
    force_dither: bool = False
    chunk_frames: int | None = None
    out_format: str | None = None

    def __post_init__(self) -> None:
        from quanta.audio.levels import check_bits
        from quanta.audio.shaping import CLASSIC
        from quanta.core._checks import check_choice
        from quanta.core.dither import KINDS
        from quanta.errors import ConfigError

        check_bits(self.bits)
        check_choice(self.dither, KINDS, "dither")
        if self.chunk_frames is not None and self.chunk_frames < 1:
            raise ConfigError("chunk size must be positive")
        s = self.shape
        if isinstance(s, str) and not (s in ("auto", "none", "adaptive") or s.startswith("designed")
                                       or any(f.name == s for f in CLASSIC)):
            raise ConfigError(f"unknown noise-shaping filter {s!r}")


def quantize_file(src: Path | str, dst: Path | str, options: Options, *, seed: int = 0,
                  progress: Progress | None = None) -> Any:
    """Requantize ``src`` into ``dst``: :func:`quanta.audio.requantize.requantize_file`."""
    from quanta.audio.requantize import DEFAULT_CHUNK, requantize_file

    o = options
    return requantize_file(src, dst, o.bits, dither=o.dither, shape=o.shape, seed=seed,
                           force_dither=o.force_dither,
                           chunk_frames=DEFAULT_CHUNK if o.chunk_frames is None else o.chunk_frames,
                           out_format=o.out_format, progress=progress)


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
