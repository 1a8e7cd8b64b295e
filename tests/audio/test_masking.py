"""The masking model (psychoacoustic model 1, vectorized) and the noise-to-mask ratio."""

import numpy as np
import pytest

from quanta.audio.generate import generate
from quanta.audio.masking import (
    FULL_SCALE_SPL,
    bark,
    frame_length,
    frames_of,
    line_power,
    line_power_db,
    masking_threshold,
    masking_threshold_db,
    nmr_frames,
    nmr_summary,
    spreading,
    threshold_power,
)
from quanta.audio.weighting import threshold_db
from tests.audio import pm1_reference

RATE = 48000


def _tone(freq_hz: float, level_dbfs: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq_hz * t)


def _at(fr, thr, freq_hz: float) -> float:
    return float(thr[len(thr) // 2][np.argmin(np.abs(fr.freqs_hz - freq_hz))])


def test_the_spreading_function_is_the_standards():
    """ISO 11172-3 model 1's spreading function, written out here independently."""
    def sf(dz, lv):
        if -3 <= dz < -1:
            return 17 * dz - 0.4 * lv + 11
        if -1 <= dz < 0:
            return (0.4 * lv + 6) * dz
        if 0 <= dz < 1:
            return -17 * dz
        if 1 <= dz < 8:
            return -(dz - 1) * (17 - 0.15 * lv) - 17
        return -np.inf

    for dz in (-3.0, -2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 3.5, 7.5, 8.0, -3.5):
        a, b = spreading(dz)
        for lv in (20.0, 60.0, 90.0):
            assert float(a + b * lv) == pytest.approx(sf(dz, lv)) if np.isfinite(a) else sf(dz, lv) == -np.inf


def test_a_tone_masks_around_itself_more_upward_than_downward():
    tone = _tone(1000, -20)  # 76 dB SPL with a full-scale sine at 96
    fr, thr = masking_threshold(tone, RATE)
    p = line_power_db(tone, fr)[len(thr) // 2]
    assert p.max() == pytest.approx(FULL_SCALE_SPL - 20, abs=1.5)  # scalloping of the line grid
    # at the tone: its level + the tonal index −6.025 − 0.275·z(1 kHz) (≈ −8.4 dB), within 1.5 dB
    assert _at(fr, thr, 1000) == pytest.approx(76 - 6.025 - 0.275 * float(bark(1000)), abs=1.5)
    assert _at(fr, thr, 1200) > _at(fr, thr, 800) + 15  # masking spreads upward
    assert _at(fr, thr, 4000) == pytest.approx(float(threshold_db(4000)), abs=0.5)  # out of reach: quiet


def test_a_louder_masker_spreads_further_up_and_noise_masks_more_than_a_tone():
    quiet, loud = (masking_threshold(_tone(1000, lv), RATE) for lv in (-40, 0))
    # 40 dB louder, and its upper slope flattens (17 − 0.15·L dB/Bark): at 1.5 kHz, dz − 1 Bark
    # past the slope's knee, 40 + (dz − 1) · 0.15 · 40 dB higher (within the half-Bark lattice)
    dz = float(bark(1500) - bark(1000))
    assert _at(*loud, 1500) - _at(*quiet, 1500) == pytest.approx(40 + (dz - 1) * 0.15 * 40, abs=1.0)
    rng = np.random.default_rng(1)
    # a critical band of noise at 4 kHz (15 lines) against a tone of the same power there
    noise = np.fft.irfft(np.where(np.abs(np.fft.rfftfreq(RATE, 1 / RATE) - 4000) < 300,
                                  np.exp(2j * np.pi * rng.random(RATE // 2 + 1)), 0), RATE)
    noise *= np.sqrt(np.mean(_tone(4000, -20) ** 2) / np.mean(noise**2))
    fr_t, thr_t = masking_threshold(_tone(4000, -20), RATE)
    _fr_n, thr_n = masking_threshold(noise, RATE)
    # masking index −2.025 − 0.175·z against −6.025 − 0.275·z: 5.7 dB more at 4 kHz (z = 17.3),
    # less the ~3 dB lost as the noise's energy falls in two critical bands (mean over frames)
    k = np.argmin(np.abs(fr_t.freqs_hz - 4000))
    assert thr_n[:, k].mean() > thr_t[:, k].mean() + 2.5


def test_frames_scale_with_the_rate():
    assert [frame_length(r) for r in (44100, 48000, 88200, 96000, 192000)] == [1024, 1024, 2048, 2048, 4096]
    _fr, thr = masking_threshold(_tone(1000, -20, 0.3), 96000)
    assert thr.shape[1] == 2048 // 2 + 1 and np.all(np.isfinite(thr))


def test_nmr_follows_the_noise_level_and_uses_the_reference_threshold():
    rng = np.random.default_rng(3)
    music = _tone(440, -12) + _tone(2500, -24) + 0.01 * rng.standard_normal(RATE)
    hiss = 1e-4 * rng.standard_normal(RATE)
    t, nmr = nmr_frames(hiss, music, RATE)
    _, louder = nmr_frames(10 * hiss, music, RATE)
    np.testing.assert_allclose(louder, nmr + 20, atol=1e-9)  # noise power ×100: +20 dB exactly
    assert len(t) == len(nmr) and np.all(np.diff(t) > 0)
    # the music against its own mask: far above it; silence against music's mask: nothing
    assert np.median(nmr_frames(music, music, RATE)[1]) > 5
    assert np.median(nmr_frames(np.zeros(RATE), music, RATE)[1]) < -200
    s = nmr_summary(np.array([-3.0, -1.0, 2.0, 4.0]))
    assert s == {"nmr_median_db": 0.5, "nmr_p95_db": pytest.approx(3.7), "nmr_frames_above_0db": 0.5,
                 "nmr_frames": 4}


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
def test_the_compiled_model_is_the_numpy_transliteration(rate):
    """The compiled frame loop against the module's first, whole-array numpy implementation
    (``tests/audio/pm1_reference.py``) on music, a tone and silence: the same threshold, to
    rounding; and a frame's threshold the same whether computed alone or with others."""
    music = generate("music", seconds=2, rate_hz=rate, channels=1, seed=7, level_db=-3)
    for x in (np.ravel(music), _tone(3000, -6, 0.5)[: rate // 2], np.zeros(rate // 4)):
        fr = frames_of(len(x), rate)
        p = line_power(x, fr)
        got = 10 * np.log10(threshold_power(p, fr.freqs_hz))
        np.testing.assert_allclose(got, pm1_reference.threshold_db(10 * np.log10(p), fr.freqs_hz), atol=1e-9)
        alone = threshold_power(p[3:5], fr.freqs_hz)
        np.testing.assert_array_equal(alone, threshold_power(p, fr.freqs_hz)[3:5])
        assert np.allclose(masking_threshold_db(10 * np.log10(p), fr.freqs_hz), got, atol=1e-9)
