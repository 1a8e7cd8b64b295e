"""Reading and writing audio files through soundfile (libsndfile) — a thin, honest wrapper.

Samples are float64 in [-1, 1): full scale 1.0 ↔ ``2**(N-1)`` codes of an N-bit file. Integer
files are written from integer codes computed by quanta (libsndfile would floor floats), left-
justified in 32 bits so that libsndfile's own conversion to the container is exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from quanta.audio.levels import check_bits
from quanta.errors import ConfigError, InputError

#: Container precision in bits of each integer subtype libsndfile knows.
SUBTYPE_BITS = {"PCM_U8": 8, "PCM_S8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
FLOAT_SUBTYPES = {"FLOAT": 32, "DOUBLE": 64}
METADATA = ("title", "copyright", "software", "artist", "comment", "date", "album", "license",
            "tracknumber", "genre")
# libsndfile's header log says "data : N (should be M)" when a WAV/AIFF data chunk is cut short.
_TRUNCATED = re.compile(r"^\s*(data|SSND)\s*:\s*\d+\s*\(should be", re.MULTILINE)
_EXACT_IN_FLOAT32 = {"PCM_U8", "PCM_S8", "PCM_16", "PCM_24", "FLOAT"}
_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".aif": "AIFF", ".aiff": "AIFF", ".aifc": "AIFF"}


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds: rate in Hz, channels, frames, container format/subtype, bits."""

    path: Path
    rate_hz: int
    channels: int
    frames: int
    format: str
    subtype: str
    bits: int | None  # container precision for integer subtypes; None for float
    metadata: dict

    @property
    def seconds(self) -> float:
        return self.frames / self.rate_hz if self.rate_hz else 0.0


def info(path: Path | str) -> AudioInfo:
    """Read a file's header (raises :class:`InputError` for missing or unreadable files)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    try:
        with sf.SoundFile(p) as f:
            meta = {k: getattr(f, k) for k in METADATA if getattr(f, k, "")}
            if _TRUNCATED.search(f.extra_info or ""):
                raise InputError(f"{p}: truncated (the header promises more audio than the file holds)")
            return AudioInfo(p, f.samplerate, f.channels, f.frames, f.format, f.subtype,
                             SUBTYPE_BITS.get(f.subtype), meta)
    except sf.LibsndfileError as e:
        raise InputError(f"{p}: cannot read audio ({_why(e)})") from None
    except RuntimeError as e:
        raise InputError(f"{p}: cannot read audio ({e})") from None


def _why(e: Exception) -> str:
    return str(getattr(e, "error_string", "") or e).strip().splitlines()[0]


def read(path: Path | str) -> tuple[np.ndarray, AudioInfo]:
    """The whole file as float64 ``(frames, channels)``, checked for NaN/Inf, with its info."""
    inf = info(path)
    chunks = list(blocks(path, 1 << 20))
    x = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, inf.channels))
    return x, inf


def blocks(path: Path | str, frames: int) -> Iterator[np.ndarray]:
    """Yield float blocks of up to ``frames`` frames, ``(n, channels)``; checks NaN/Inf.

    float32 when that holds the file's samples exactly (8/16/24-bit integer and 32-bit float
    files), float64 otherwise.
    """
    p = Path(path)
    try:
        with sf.SoundFile(p) as f:
            dtype = "float32" if f.subtype in _EXACT_IN_FLOAT32 else "float64"
            pos = 0
            while True:
                x = f.read(frames, dtype=dtype, always_2d=True)
                if x.shape[0] == 0:
                    break
                if not np.isfinite(x).all():
                    bad = pos + int(np.argmax(~np.isfinite(x).all(axis=1)))
                    raise InputError(f"{p}: non-finite sample (NaN or Inf) at frame {bad}")
                pos += x.shape[0]
                yield x
            if pos < f.frames:
                raise InputError(f"{p}: truncated (read {pos} of {f.frames} frames)")
    except sf.LibsndfileError as e:
        raise InputError(f"{p}: cannot read audio ({_why(e)})") from None
    except RuntimeError as e:
        raise InputError(f"{p}: cannot read audio ({e})") from None


def prefetch(it: Iterator[np.ndarray], depth: int = 2) -> Iterator[np.ndarray]:
    """Run ``it`` in a background thread, ``depth`` items ahead (reading overlaps processing).

    Exceptions raised by ``it`` re-raise in the consumer.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def run() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()


def format_for(path: Path | str) -> str:
    """libsndfile major format for a file name (WAV, FLAC or AIFF)."""
    ext = Path(path).suffix.lower()
    if ext not in _FORMATS:
        raise ConfigError(f"{path}: unknown audio extension {ext!r} (use .wav, .flac or .aiff)")
    return _FORMATS[ext]


def subtype_for(fmt: str, bits: int) -> str:
    """The smallest integer subtype of ``fmt`` that holds ``bits`` bits."""
    check_bits(bits)
    if bits <= 8:
        return "PCM_U8" if fmt == "WAV" else "PCM_S8"
    return "PCM_16" if bits <= 16 else "PCM_24"


class CodeWriter:
    """Write integer codes of ``bits`` bits to a file whose subtype holds them.

    ``write(codes)`` takes ``(frames, channels)`` integer codes in ``[-2**(bits-1), 2**(bits-1)-1]``.
    """

    def __init__(self, path: Path | str, *, rate_hz: int, channels: int, bits: int,
                 fmt: str | None = None, subtype: str | None = None,
                 metadata: dict | None = None) -> None:
        self.bits = bits
        fmt = fmt or format_for(path)
        subtype = subtype or subtype_for(fmt, bits)
        self.container_bits = SUBTYPE_BITS[subtype]
        if bits > self.container_bits:
            raise ConfigError(f"{subtype} cannot hold {bits}-bit codes")
        if fmt == "FLAC" and subtype not in ("PCM_S8", "PCM_16", "PCM_24"):
            raise ConfigError(f"FLAC cannot store {subtype}")
        try:
            self._f = sf.SoundFile(path, "w", samplerate=rate_hz, channels=channels, format=fmt,
                                   subtype=subtype)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise ConfigError(f"{path}: cannot write {fmt}/{subtype} ({_why(e)})") from None
        for k, v in (metadata or {}).items():
            try:
                setattr(self._f, k, v)
            except (RuntimeError, sf.LibsndfileError):
                pass  # not every container stores every field

    def write(self, codes: np.ndarray) -> None:
        """Write ``(frames, channels)`` codes, left-justified in 16 or 32 bits."""
        if self.container_bits <= 16:  # libsndfile takes int16 as is (8-bit: the high byte)
            self._f.write(np.left_shift(codes.astype(np.int16), 16 - self.bits))
        else:
            self._f.write(np.left_shift(codes.astype(np.int32), 32 - self.bits))

    def close(self) -> None:
        # soundfile's close() first calls sf_write_sync, an fsync: durability is not asked
        # for (callers rename a finished temporary file), and the fsync costs ~0.2 s/100 MB.
        self._f.flush = lambda: None
        self._f.close()

    def __enter__(self) -> CodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def float_writer(path: Path | str, *, rate_hz: int, channels: int, double: bool = False) -> sf.SoundFile:
    """An open soundfile for float samples (WAV or AIFF: FLAC cannot hold floats)."""
    fmt = format_for(path)
    if fmt == "FLAC":
        raise ConfigError("FLAC cannot hold float samples; use .wav or .aiff")
    try:
        return sf.SoundFile(path, "w", samplerate=rate_hz, channels=channels, format=fmt,
                            subtype="DOUBLE" if double else "FLOAT")
    except (sf.LibsndfileError, RuntimeError) as e:
        raise ConfigError(f"{path}: cannot write {fmt} float ({_why(e)})") from None
