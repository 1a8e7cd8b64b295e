import numpy as np
import pytest

from quanta.audio.analyze import SpectrumMeter, analyze_file, channel_stats, residual_levels
from quanta.audio.generate import KINDS, generate
from quanta.audio.weighting import a_weighting_db, itu468_weighting_db, threshold_weighting_db
from quanta.errors import ConfigError


def test_weighting_reference_points():
    assert a_weighting_db(1000.0) == pytest.approx(0.0, abs=0.01)
    assert a_weighting_db(100.0) == pytest.approx(-19.1, abs=0.1)
    assert a_weighting_db(10000.0) == pytest.approx(-2.5, abs=0.1)
    assert itu468_weighting_db(1000.0) == pytest.approx(0.0, abs=0.1)
    assert itu468_weighting_db(6300.0) == pytest.approx(12.2, abs=0.1)
    assert threshold_weighting_db(1000.0) == pytest.approx(0.0, abs=1e-9)
    assert threshold_weighting_db(3500.0) > 8  # most sensitive region
    assert threshold_weighting_db(18000.0) < -60


def test_white_noise_spectrum_sums_to_its_power():
    rng = np.random.default_rng(0)
    m = SpectrumMeter(48000)
    for _ in range(4):
        m.add(rng.normal(scale=0.01, size=(50_000, 2)))
    _, p = m.spectrum()
    assert np.sum(p) == pytest.approx(1e-4, rel=0.02)
    lv = m.levels()
    assert lv["unweighted_db"] == pytest.approx(-40.0, abs=0.05)
    assert lv["unweighted_band_db"] == pytest.approx(-40 + 10 * np.log10(19980 / 24000), abs=0.1)


def test_tone_levels_follow_the_weightings():
    fs = 48000
    t = np.arange(fs * 2) / fs
    for freq in (100.0, 1000.0, 6300.0):
        x = 0.1 * np.sin(2 * np.pi * freq * t)
        lv = residual_levels(x, np.zeros_like(x), fs)
        base = 20 * np.log10(0.1 / np.sqrt(2))
        assert lv["unweighted_db"] == pytest.approx(base, abs=0.01)
        assert lv["a_db"] - base == pytest.approx(float(a_weighting_db(freq)), abs=0.15)
        assert lv["itu468_db"] - base == pytest.approx(float(itu468_weighting_db(freq)), abs=0.15)


def test_channel_stats():
    x = np.zeros((1000, 2))
    x[:, 0] = 0.5
    x[10, 1] = -1.0
    x[11, 1] = 32767 / 32768
    s = channel_stats(x, bits=16)
    assert s[0]["peak_dbfs"] == pytest.approx(-6.02, abs=0.01) and s[0]["dc"] == 0.5
    assert s[0]["clips"] == 0 and s[1]["clips"] == 2
    assert s[0]["effective_bits"] == 2 and s[1]["effective_bits"] == 16


def test_analyze_file_with_reference(tmp_path):
    import soundfile as sf

    x = generate("sine", seconds=1, rate_hz=44100, channels=2, level_db=-6)
    sf.write(tmp_path / "ref.wav", x, 44100, subtype="DOUBLE")
    sf.write(tmp_path / "q.wav", np.round(x * 128) / 128, 44100, subtype="DOUBLE")
    rep = analyze_file(tmp_path / "q.wav", tmp_path / "ref.wav")
    r = rep.residual
    # 8-bit rounding of a sine: SNR ≈ 6.02·8 + 1.76 − 6 dB
    assert r["snr_db"] == pytest.approx(49.9 - 6.0, abs=1.0)
    assert set(r) >= {"threshold_db", "a_db", "itu468_db", "unweighted_db", "peak_db"}


@pytest.mark.parametrize("kind", KINDS)
def test_generator_kinds(kind):
    x = generate(kind, seconds=1.3, rate_hz=32000, channels=2, seed=4, level_db=-3)
    assert x.shape == (41600, 2) and np.all(np.isfinite(x))
    assert np.max(np.abs(x)) <= 10 ** (-3 / 20) + 1e-12
    np.testing.assert_array_equal(x, generate(kind, seconds=1.3, rate_hz=32000, channels=2,
                                               seed=4, level_db=-3))


def test_music_fades_to_minus_90_db():
    x = generate("music", seconds=20, rate_hz=16000, seed=0)[:, 0]
    head = np.sqrt(np.mean(x[:16000 * 5] ** 2))
    tail = np.sqrt(np.mean(x[-1600:] ** 2))
    assert 20 * np.log10(tail / head) < -75


def test_generator_rejects_bad_requests():
    with pytest.raises(ConfigError):
        generate("noise", seconds=1)
    with pytest.raises(ConfigError):
        generate("sine", seconds=-1)


def test_noise_to_mask_ratio_against_the_reference(tmp_path):
    """The NMR of a requantized file is measured against the reference's masking threshold:
    8 bits leave noise about 48 dB (8 bits × 6.02) above 16 bits' against the same mask."""
    import soundfile as sf

    from quanta.audio.requantize import requantize_file

    x = generate("music", seconds=2, rate_hz=44100, channels=2, seed=2, level_db=-3)
    sf.write(tmp_path / "ref.wav", x, 44100, subtype="DOUBLE")
    nmr = {}
    for bits in (8, 16):
        requantize_file(tmp_path / "ref.wav", tmp_path / f"q{bits}.wav", bits, shape="none", seed=1)
        rep = analyze_file(tmp_path / f"q{bits}.wav", tmp_path / "ref.wav")
        nmr[bits] = rep.residual
        times, values = rep.nmr_series
        assert len(times) == len(values) == rep.residual["nmr_frames"] and "nmr_series" not in rep.to_json()
    assert nmr[8]["nmr_median_db"] - nmr[16]["nmr_median_db"] == pytest.approx(48.2, abs=1.0)
    assert nmr[16]["nmr_median_db"] < -20 and nmr[16]["nmr_frames_above_0db"] == 0.0
    assert nmr[8]["nmr_p95_db"] >= nmr[8]["nmr_median_db"]
