"""Audio's side of the medium contract (:mod:`quanta.media`): requantize a file, make an
example input, and the demo section."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from quanta.progress import Progress
from quanta.reports import DemoSection


def quantize_file(src: Path | str, dst: Path | str, *, seed: int = 0,
                  progress: Progress | None = None, **options: Any):
    """Requantize ``src`` into ``dst`` (options: bits, dither, shape, force_dither, chunk_frames,
    out_format): :func:`quanta.audio.requantize.requantize_file`."""
    from quanta.audio.requantize import requantize_file

    return requantize_file(src, dst, seed=seed, progress=progress, **options)


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


METHODS = (("plain rounding", "none", "none"), ("RPDF", "rpdf", "none"), ("TPDF", "tpdf", "none"),
           ("TPDF + shibata", "tpdf", "shibata"), ("TPDF + designed (auto)", "tpdf", "auto"))


def demo(*, quick: bool = True, seconds: float | None = None) -> DemoSection:
    """A generated music-like signal at 48 kHz to 16 bits: each method's measured residual,
    and the AES17 dynamic range against theory."""
    from quanta.audio.analyze import analyze_file, dynamic_range_db, theory_dynamic_range_db
    from quanta.audio.generate import write
    from quanta.audio.requantize import requantize_file

    seconds = seconds or (4.0 if quick else 10.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "music.wav"
        write(src, "music", seconds=seconds, rate_hz=48000, channels=2)
        for label, dither, shape in METHODS:
            dst = Path(tmp) / f"{dither}-{shape}.wav"
            rep = requantize_file(src, dst, 16, dither=dither, shape=shape, force_dither=True)
            lv = analyze_file(dst, src).residual
            rows.append({"method": label, "filter": rep.shape, **{k: lv[k] for k in
                         ("threshold_db", "a_db", "unweighted_db", "peak_db")}})
    tpdf = next(r for r in rows if r["method"] == "TPDF")["threshold_db"]
    table = tuple((r["method"], f"{r['threshold_db']:.2f}", f"{r['threshold_db'] - tpdf:+.2f}",
                   f"{r['a_db']:.2f}", f"{r['unweighted_db']:.2f}", f"{r['peak_db']:.2f}") for r in rows)
    dr = {d: dynamic_range_db(16, dither=d)["dynamic_range_db"] for d in ("none", "rpdf", "tpdf")}
    theory = {d: theory_dynamic_range_db(16, d) for d in dr}
    note = ("AES17 dynamic range at 16 bits (20 Hz–20 kHz), measured (theory): " + ", ".join(
        f"{name} {dr[d]:.2f} ({theory[d]:.2f}) dB" for name, d in
        (("rounding", "none"), ("RPDF", "rpdf"), ("TPDF", "tpdf"))))
    return DemoSection(
        heading=f"audio: {seconds:g} s of music-like stereo at 48 kHz → 16 bits; residual in dB re "
                "full scale",
        columns=("method", "threshold-weighted", "vs TPDF", "A-weighted", "unweighted", "peak"),
        table=table, notes=(note,),
        data={"seconds": seconds, "rows": rows, "aes17_dynamic_range_db": dr,
              "theory_dynamic_range_db": theory})


def tour(**settings: Any) -> Any:
    """This medium's part of ``quanta tour`` (:mod:`quanta.audio.tour`)."""
    from quanta.audio.tour import tour as run

    return run(**settings)
