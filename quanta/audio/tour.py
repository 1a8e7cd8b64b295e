"""The audio part of ``quanta tour``: one music-like signal and one recorded clip requantized
from 24 down to 4 bits with plain rounding, TPDF dither (what SoX's ``dither`` does) and
quanta's noise shaping; the error's weighted levels, the dynamic range, its spectrum against
the hearing threshold, and excerpts to listen to."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from quanta.audio.analyze import SpectrumMeter, dynamic_range_db, residual_levels
from quanta.audio.levels import codes_per_unit
from quanta.audio.requantize import requantize
from quanta.progress import Progress, counter
from quanta.render.plots import Series, rd_plot, spectrum_plot
from quanta.render.tour import Player, SummaryRow, Table, TourSection, num

BITS = (24, 16, 12, 8, 4)
#: (label, dither, shaping, plot role)
METHODS = (
    ("plain rounding", "none", "none", "plain"),
    ("TPDF dither (as SoX dither)", "tpdf", "none", "peer"),
    ("quanta: TPDF + noise shaping", "tpdf", "auto", "quanta"),
)
RATE = 48000
LISTEN_BITS = (8, 4)


def _signals(seconds: float, clip: Path | None) -> list[tuple[str, np.ndarray, int]]:
    """The generated music-like signal and a recorded clip (``clip``, else the first file of
    the shared data's audio folder; a generated multitone when neither is there)."""
    import soundfile as sf

    from quanta.audio.generate import blocks
    from quanta.data import data_dir

    music = np.concatenate(list(blocks("music", seconds=seconds, rate_hz=RATE, channels=2, seed=0)))
    out = [("generated music", music, RATE)]
    folder = data_dir() / "audio"
    if clip is None and folder.is_dir():
        clip = next(iter(sorted(folder.glob("*.flac"))), None)
    if clip is not None and Path(clip).exists():
        x, rate = sf.read(
            clip, dtype="float64", always_2d=True, frames=int(seconds * sf.info(clip).samplerate)
        )
        out.append((f"recorded clip {Path(clip).name}", x, int(rate)))
    else:
        tones = np.concatenate(list(blocks("multitone", seconds=seconds, rate_hz=RATE, channels=2)))
        out.append(("generated multitone (no recorded clip found)", tones, RATE))
    return out


def _run(x: np.ndarray, rate: int, bits: int, dither: str, shape: str) -> np.ndarray:
    return requantize(x, bits, rate, dither=dither, shape=shape, seed=0) / codes_per_unit(bits)


def _db(value: float) -> str:
    """A level for the page: one decimal, or "exact" when there is no error at all."""
    return "exact" if value == float("-inf") else num(value, 1)


def _pair_table(title: str, by_method: dict, first: str, second: str) -> Table:
    """Methods × depths, each cell ``first / second`` (dB, one decimal)."""
    return Table(
        title,
        ["method", *[f"{b} bits" for b in BITS]],
        [
            [
                label,
                *[
                    f"{_db(by_method[label][str(b)][first])} / {_db(by_method[label][str(b)][second])}"
                    for b in BITS
                ],
            ]
            for label, *_ in METHODS
        ],
    )


def _wav(x: np.ndarray, rate: int, subtype: str) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    if subtype == "PCM_16":  # values on an N ≤ 16-bit grid: exact as 16-bit codes
        sf.write(buf, np.round(x * 32768).astype(np.int16), rate, format="WAV", subtype="PCM_16")
    else:
        sf.write(buf, np.round(x * 2**23).astype(np.int32) << 8, rate, format="WAV", subtype="PCM_24")
    return buf.getvalue()


def _spectrum_db(err: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The error's spectrum from 20 Hz up, in dB re full scale² per Hz."""
    m = SpectrumMeter(rate)
    m.add(err)
    f, p = m.spectrum()
    keep = f >= 20
    return f[keep], 10 * np.log10(np.maximum(p[keep] / (f[1] - f[0]), 1e-30))


def _levels(signals: list, tick) -> tuple[dict, list[Series]]:
    """Residual levels of every signal × method × depth, and the first signal's error spectra
    at 8 bits."""
    levels: dict[str, dict[str, dict[str, dict]]] = {}
    spectra: list[Series] = []
    for name, x, rate in signals:
        levels[name] = {}
        for label, dither, shape, role in METHODS:
            levels[name][label] = {}
            for bits in BITS:
                y = _run(x, rate, bits, dither, shape)
                lv = residual_levels(y, x, rate)
                levels[name][label][str(bits)] = {k: lv[k] for k in ("threshold_db", "a_db", "unweighted_db")}
                if name == signals[0][0] and bits == 8:
                    spectra.append(Series(label, *_spectrum_db(y - x, rate), role))
                tick()
    return levels, spectra


def _dynamic_range(seconds: float, tick) -> dict:
    """AES17 dynamic range of every method × depth (a −60 dBFS tone, notched out)."""
    dr: dict[str, dict[str, dict]] = {}
    for label, dither, shape, _ in METHODS:
        dr[label] = {}
        for bits in BITS:
            r = dynamic_range_db(bits, dither=dither, shape=shape, rate_hz=RATE, seconds=seconds)
            dr[label][str(bits)] = {k: r[k] for k in ("dynamic_range_db", "dynamic_range_a_db")}
            tick()
    return dr


def tour(
    *,
    quick: bool = True,
    progress: Progress | None = None,
    seconds: float | None = None,
    clip: Path | None = None,
) -> TourSection:
    """Measure the audio sweep (see the module docstring)."""
    from quanta.audio.weighting import threshold_weighting_db

    secs = seconds or (4.0 if quick else 10.0)
    signals = _signals(secs, clip)
    steps = len(signals) * len(BITS) * len(METHODS) + len(BITS) * len(METHODS)
    tick = counter(progress, steps)

    levels, spectra = _levels(signals, tick)
    dr = _dynamic_range(2.0 if quick else 4.0, tick)
    main = signals[0][0]
    rd = rd_plot(
        [
            Series(label, BITS, [levels[main][label][str(b)]["threshold_db"] for b in BITS], role)
            for label, _, _, role in METHODS
        ],
        xlabel="bits per sample",
        ylabel="threshold-weighted noise (dB re full scale)",
        title=f"audio: precision against audible noise ({main}, 48 kHz)",
    )
    f = np.asarray(spectra[0].xs)
    ref = float(np.median(np.asarray(spectra[1].ys)[(f > 900) & (f < 1100)]))
    thr = Series(
        "hearing threshold (shape, at the TPDF level at 1 kHz)",
        f,
        ref - threshold_weighting_db(f),
        "reference",
    )
    spec = spectrum_plot(
        spectra, thr, title="the error's spectrum at 8 bits: where the noise goes", rate_hz=RATE
    )
    tables = [
        _pair_table(
            f"{name}: threshold-weighted / A-weighted noise (dB re full scale)",
            levels[name],
            "threshold_db",
            "a_db",
        )
        for name, _, _ in signals
    ]
    tables.append(
        _pair_table(
            "dynamic range, AES17 (dB, unweighted / A-weighted)", dr, "dynamic_range_db", "dynamic_range_a_db"
        )
    )
    _, x, rate = signals[-1]
    n = int(2.0 * rate)
    excerpt = x[:n, :1]
    players = [Player("original (24-bit)", _wav(excerpt, rate, "PCM_24"))]
    for bits in LISTEN_BITS:
        for label, dither, shape, _ in METHODS:
            players.append(
                Player(
                    f"{bits} bits, {label}", _wav(_run(excerpt, rate, bits, dither, shape), rate, "PCM_16")
                )
            )
    q, t = METHODS[2][0], METHODS[1][0]
    summary = [
        SummaryRow(
            "audio",
            f"24 → {b} bits per sample ({num(100 * b / 24, 0)} % of the bytes)",
            f"audible (threshold-weighted) noise {_db(levels[main][q][str(b)]['threshold_db'])} dB "
            f"with quanta's shaping, {_db(levels[main][t][str(b)]['threshold_db'])} dB with TPDF",
        )
        for b in (16, 8)
    ]
    data = {
        "bits": list(BITS),
        "methods": [m[0] for m in METHODS],
        "seconds": secs,
        "signals": [s[0] for s in signals],
        "levels": levels,
        "dynamic_range": dr,
        "percent_of_bytes": {str(b): 100 * b / 24 for b in BITS},
        "listen_bits": list(LISTEN_BITS),
    }
    return TourSection(
        "audio",
        "Audio: bits per sample against audible noise",
        "Each signal is requantized from float to every depth with three methods; the "
        "error (output minus input) is weighted by the hearing threshold and by the A "
        "curve. Noise shaping moves the error to where hearing is least sensitive.",
        figures=[
            ("Threshold-weighted noise by depth (lower is better).", rd),
            ("Error spectra at 8 bits against the shape of the hearing threshold.", spec),
        ],
        tables=tables,
        players=players,
        summary=summary,
        data=data,
    )
