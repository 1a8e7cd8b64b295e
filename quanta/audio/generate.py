"""Test signals, generated in float64 blocks (so long signals never sit whole in memory).

Kinds:
* "sine": one tone (``freq_hz``) at ``level_db`` dBFS peak.
* "sweep": a logarithmic sweep from 20 Hz to 20 kHz (or 0.45·rate) over the whole duration.
* "multitone": 10 log-spaced tones from 31.5 Hz to 16 kHz, equal amplitude, fixed phases.
* "music": a music-like mixture: chords of harmonic notes (random pitches, decaying envelopes)
  over pink noise, at full level for the first half and then fading exponentially to −90 dB —
  the low-level tail is where dither and noise shaping matter.

The same ``seed`` gives the same samples; channels differ (own noise, own panning of notes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal as sps

from quanta.core._checks import check_choice, check_finite_number
from quanta.errors import ConfigError
from quanta.progress import Progress
from quanta.reports import Report

KINDS = ("sine", "sweep", "multitone", "music")
_NOTE_S = 0.5  # seconds per chord in "music"


def validate(kind: str, seconds: float, rate_hz: int, channels: int, level_db: float = -1.0,
             freq_hz: float = 997.0) -> int:
    """Check a request; returns the frame count."""
    check_choice(kind, KINDS, "signal")
    check_finite_number(level_db, "level (dBFS)")
    if level_db > 0:
        raise ConfigError(f"level must be at most 0 dBFS, got {level_db}")
    check_finite_number(seconds, "duration (s)")
    if not 1000 <= rate_hz <= 768_000:
        raise ConfigError(f"sample rate must be 1 kHz..768 kHz, got {rate_hz}")
    freq = check_finite_number(freq_hz, "frequency (Hz)")
    if kind == "sine" and not 0 < freq < rate_hz / 2:
        raise ConfigError(f"frequency must be between 0 and half the sample rate, got {freq_hz} Hz")
    if not 1 <= channels <= 64:
        raise ConfigError(f"channels must be 1..64, got {channels}")
    if not 0 < seconds <= 24 * 3600:
        raise ConfigError(f"duration must be between 0 and 24 h, got {seconds} s")
    return round(seconds * rate_hz)


def blocks(kind: str, *, seconds: float, rate_hz: int = 48000, channels: int = 1,
           seed: int = 0, level_db: float = -1.0, freq_hz: float = 997.0,
           block_frames: int = 1 << 16) -> Iterator[np.ndarray]:
    """Yield ``(frames, channels)`` float64 blocks of the signal."""
    n = validate(kind, seconds, rate_hz, channels, level_db, freq_hz)
    amp = 10 ** (level_db / 20)
    if kind == "music":
        yield from _music(n, rate_hz, channels, seed, amp, block_frames)
        return
    for start in range(0, n, block_frames):
        t = (np.arange(start, min(n, start + block_frames)) / rate_hz)[:, None]
        if kind == "sine":
            x = np.sin(2 * np.pi * freq_hz * t)
        elif kind == "sweep":
            f0, f1 = 20.0, min(20000.0, 0.45 * rate_hz)
            dur = n / rate_hz
            k = np.log(f1 / f0)
            x = np.sin(2 * np.pi * f0 * dur / k * (np.exp(t * k / dur) - 1))
        else:
            freqs = np.geomspace(31.5, min(16000.0, 0.45 * rate_hz), 10)
            phases = np.arange(10) * 2.0
            x = np.sin(2 * np.pi * freqs * t + phases).sum(axis=1, keepdims=True) / 10
        yield np.repeat(amp * x, channels, axis=1)


def _music(n: int, fs: int, channels: int, seed: int, amp: float,
           block_frames: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    note = int(_NOTE_S * fs)
    # Pink noise: white noise through Kellet's 3-pole approximation, state carried per channel.
    b = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
    a = np.array([1, -2.494956002, 2.017265875, -0.522189400])
    zi = np.zeros((channels, 3))
    half = n // 2
    buf = np.zeros((0, channels))
    harm = np.arange(1, 7)
    for start in range(0, n, note):
        m = min(note, n - start)
        t = np.arange(m) / fs
        x = np.zeros((m, channels))
        env = np.exp(-t / (0.15 + 0.3 * rng.random()))
        for _ in range(3):
            f0 = 440.0 * 2 ** ((rng.integers(36, 85) - 69) / 12)
            hs = harm[harm * f0 < 0.45 * fs]
            tone = (np.sin(2 * np.pi * f0 * np.outer(t, hs) + rng.random(hs.size) * 6.283)
                    / hs).sum(axis=1) * env
            pan = rng.random(channels) * 0.6 + 0.4
            x += tone[:, None] * pan
        white = rng.normal(size=(channels, m))
        pink = np.empty_like(white)
        for c in range(channels):
            pink[c], zi[c] = sps.lfilter(b, a, white[c], zi=zi[c])
        x += 0.05 * pink.T
        idx = np.arange(start, start + m)
        fade_db = np.where(idx < half, 0.0, -90.0 * (idx - half) / max(1, n - half))
        x *= (amp * 0.3 * 10 ** (fade_db / 20))[:, None]
        buf = np.concatenate([buf, np.clip(x, -amp, amp)])
        while buf.shape[0] >= block_frames:
            yield buf[:block_frames]
            buf = buf[block_frames:]
    if buf.shape[0]:
        yield buf


def generate(kind: str, *, seconds: float, rate_hz: int = 48000, channels: int = 1,
             seed: int = 0, level_db: float = -1.0, freq_hz: float = 997.0) -> np.ndarray:
    """The whole signal as float64 ``(frames, channels)``."""
    parts = list(blocks(kind, seconds=seconds, rate_hz=rate_hz, channels=channels, seed=seed,
                        level_db=level_db, freq_hz=freq_hz))
    return np.concatenate(parts) if parts else np.zeros((0, channels))


@dataclass(frozen=True)
class GenerateReport(Report):
    """A generated test signal written to a file."""

    output: str
    kind: str
    seconds: float
    rate_hz: int
    channels: int
    level_db: float


def write(dst: Path | str, kind: str = "music", *, seconds: float = 10.0, rate_hz: int = 48000,
          channels: int = 2, seed: int = 0, level_db: float = -1.0, freq_hz: float = 997.0,
          double: bool = False, progress: Progress | None = None) -> GenerateReport:
    """Write the signal to ``dst`` (WAV or AIFF, 32- or 64-bit float), block by block."""
    from quanta.audio import io

    total = validate(kind, seconds, rate_hz, channels, level_db, freq_hz)
    done = 0
    with io.float_writer(dst, rate_hz=rate_hz, channels=channels, double=double) as f:
        for x in blocks(kind, seconds=seconds, rate_hz=rate_hz, channels=channels, seed=seed,
                        level_db=level_db, freq_hz=freq_hz):
            f.write(x)
            done += x.shape[0]
            if progress:
                progress(done, total)
    return GenerateReport(str(dst), kind, seconds, rate_hz, channels, level_db)
