import numpy as np
import pytest
import soundfile as sf

from quanta.audio import io
from quanta.audio.levels import effective_bits
from quanta.errors import ConfigError, InputError


@pytest.mark.parametrize("ext,bits", [(".wav", 8), (".wav", 12), (".wav", 16), (".wav", 24),
                                      (".flac", 8), (".flac", 16), (".flac", 24), (".aiff", 16),
                                      (".aiff", 24), (".wav", 1)])
def test_codes_round_trip_exactly(tmp_path, ext, bits):
    rng = np.random.default_rng(bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    codes = rng.integers(lo, hi + 1, size=(1000, 2)).astype(np.int32)
    codes[0] = [lo, hi]  # both extremes, the negative one included
    p = tmp_path / f"x{ext}"
    with io.CodeWriter(p, rate_hz=44100, channels=2, bits=bits) as w:
        w.write(codes[:500])
        w.write(codes[500:])
    x, inf = io.read(p)
    assert inf.rate_hz == 44100 and inf.channels == 2 and inf.frames == 1000
    np.testing.assert_array_equal(x * (1 << (bits - 1)), codes)
    assert effective_bits(x) <= bits


def test_float_and_32_bit_files_read(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (300, 3))
    for subtype in ("FLOAT", "DOUBLE", "PCM_32"):
        p = tmp_path / f"{subtype}.wav"
        sf.write(p, x, 96000, subtype=subtype)
        y, inf = io.read(p)
        assert y.shape == (300, 3) and inf.rate_hz == 96000
        np.testing.assert_allclose(y, x, atol=1e-7)


def test_metadata_is_kept(tmp_path):
    p = tmp_path / "m.wav"
    with io.CodeWriter(p, rate_hz=8000, channels=1, bits=16,
                       metadata={"title": "Test tone", "artist": "quanta"}) as w:
        w.write(np.zeros((10, 1), dtype=np.int32))
    assert io.info(p).metadata == {"title": "Test tone", "artist": "quanta"}


def test_shared_clips_read(shared_data):
    files = sorted((shared_data / "audio").glob("*.flac"))
    assert len(files) == 13
    rates = set()
    for f in files:
        x, inf = io.read(f)
        assert x.shape == (inf.frames, inf.channels) and np.all(np.abs(x) <= 1)
        assert effective_bits(x) <= inf.bits
        rates.add(inf.rate_hz)
    assert min(rates) <= 8000 and max(rates) >= 192000


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        io.info(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 3)
    with pytest.raises(InputError, match="cannot read"):
        io.read(junk)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.5]), 8000, subtype="FLOAT")
    with pytest.raises(InputError, match="non-finite"):
        io.read(nan)
    with pytest.raises(ConfigError):
        io.format_for("x.mp3")
    with pytest.raises(ConfigError):
        io.subtype_for("WAV", 25)


def test_truncated_file_is_an_error(tmp_path):
    p = tmp_path / "t.wav"
    sf.write(p, np.zeros(10000), 8000, subtype="PCM_16")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"truncated|cannot read"):
        io.read(p)
