"""Masking-driven, time-varying noise shaping (``--shape adaptive``)."""

import numpy as np
import pytest

from quanta.audio.adaptive import (
    MAX_PEAK_GAIN_DB,
    ORDER,
    AdaptiveShaper,
    design,
    shaper_length,
    taps_from_reflection,
    total_gain_db,
)
from quanta.audio.analyze import nmr, residual_levels
from quanta.audio.generate import generate
from quanta.audio.masking import frames_of, line_power, nmr_summary, threshold_power
from quanta.audio.requantize import Requantizer, requantize
from quanta.core.feedback import noise_gain_db
from tests.audio.adaptive_reference import levinson

RATE = 48000


@pytest.fixture(scope="module")
def music():
    return generate("music", seconds=3, rate_hz=RATE, channels=2, seed=5, level_db=-1)


def test_levinson_and_the_step_up_agree_and_stay_minimum_phase():
    rng = np.random.default_rng(0)
    r = np.fft.irfft(rng.random((5, 257)) + 0.01, axis=1)[:, :9]  # autocorrelations of positive spectra
    a, k = levinson(r)
    np.testing.assert_allclose(taps_from_reflection(k), a, atol=1e-12)
    assert np.all(np.abs(k) < 1) and np.all(np.abs(np.roots(a[0])) < 1)


@pytest.fixture(scope="module")
def designed(music):
    """The music's first channel: frames, thresholds (linear) and each frame's filter."""
    fr = frames_of(len(music), RATE)
    thr = threshold_power(line_power(music[:, 0], fr), fr.freqs_hz)
    k = design(thr, fr.freqs_hz, RATE, order=ORDER, max_total_gain_db=total_gain_db(RATE))
    return fr, thr, k


def _check_least_regularised(freqs, thr, k, max_total, max_peak):
    """Every filter minimum-phase and within both bounds; and each the least regularised one
    that is: its total gain within 0.06 dB of its bound, or its peak within 1 dB of its bound,
    or the unregularised fit (the numpy oracle's Levinson) already within both. Returns the
    share of frames of each kind."""
    assert np.all(np.abs(k) < 1)
    a = taps_from_reflection(k)
    total = 10 * np.log10((a ** 2).sum(axis=1))
    assert np.all(total <= max_total + 1e-9)
    band = (freqs >= 20) & (freqs <= 20000)
    kinds = []
    for i in range(len(k)):
        t_fine, peak = noise_gain_db(a[i])
        # noise_gain_db: a mean over a half-spectrum grid and a peak on 8193 points (the kernel: 257)
        assert abs(t_fine - total[i]) < 0.01 and peak <= max_peak + 0.5
        w = np.where(band, thr[i, band].min() / thr[i], 0.0)
        r = np.fft.irfft(w, n=2 * (w.size - 1))[:k.shape[1] + 1] * (w.size - 1)
        r[0] *= 1 + 1e-12
        a_free, _ = levinson(r)
        kind = "total" if total[i] >= max_total - 0.06 else "peak" if peak >= max_peak - 1.0 else \
            "free" if np.allclose(a_free, a[i], atol=1e-6) else "none"
        kinds.append(kind)
    assert "none" not in kinds
    return {kind: kinds.count(kind) / len(kinds) for kind in set(kinds)}


def test_each_frames_filter_stays_within_the_bounds_and_uses_the_budget(designed):
    fr, thr, k = designed
    assert k.shape == (len(fr.start), ORDER)
    kinds = _check_least_regularised(fr.freqs_hz, thr[::5], k[::5], total_gain_db(RATE), MAX_PEAK_GAIN_DB)
    assert kinds.get("total", 0) > 0.9  # on music the noise budget binds


def test_the_design_takes_the_peak_bound_and_the_free_fit_when_they_decide():
    """Synthetic thresholds: a 100-dB tilt under a loose total bound (the peak bound decides)
    and a gentle ripple under a loose one (the unregularised fit is within both)."""
    fr = frames_of(4096, RATE)
    f = fr.freqs_hz
    tilt = 10 ** (np.linspace(0, 10, f.size))[None, :].repeat(2, axis=0)
    ripple = (1 + 0.3 * np.cos(f / 3000.0))[None, :].repeat(2, axis=0)
    k = design(tilt, f, RATE, order=ORDER, max_total_gain_db=60.0, max_peak_gain_db=20.0)
    assert _check_least_regularised(f, tilt, k, 60.0, 20.0) == {"peak": 1.0}
    k = design(ripple, f, RATE, order=8, max_total_gain_db=60.0, max_peak_gain_db=60.0)
    assert _check_least_regularised(f, ripple, k, 60.0, 60.0) == {"free": 1.0}


def test_no_frames_filter_predicts_more_noise_to_mask_than_flat_noise(designed):
    """The fall-back to flat noise is built into the design: per frame, the predicted noise
    over the threshold, Σ |A(f)|² / T(f) over 20 Hz – 20 kHz, is at most flat noise's Σ 1 / T(f)."""
    fr, thr, k = designed
    band = (fr.freqs_hz >= 20) & (fr.freqs_hz <= 20000)
    h = np.abs(np.fft.rfft(taps_from_reflection(k), n=2 * (fr.freqs_hz.size - 1), axis=1)) ** 2
    shaped = (h[:, band] / thr[:, band]).sum(axis=1)
    flat = (1 / thr[:, band]).sum(axis=1)
    assert np.all(shaped <= flat * (1 + 1e-9))
    assert np.median(shaped / flat) < 0.5  # and on music it helps


def test_chunked_equals_whole_and_the_seed_decides(music):
    whole = requantize(music, 16, RATE, shape="adaptive", seed=3)
    for chunk in (777, 4096, 30000):
        rq = Requantizer(16, 2, RATE, shaper="adaptive", seed=3)
        parts = [rq.process(music[i:i + chunk]) for i in range(0, len(music), chunk)]
        rq.close()
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert not np.array_equal(requantize(music, 16, RATE, shape="adaptive", seed=4), whole)


def test_it_lowers_the_noise_to_mask_ratio_against_the_fixed_filter(music):
    """On the generated music, 16 bits: the median NMR at least 3 dB below the fixed
    threshold-weighted filter's (measured 2026-12-06: about 9 dB), the total noise within the
    bound, and on digital silence no more threshold-weighted noise than the fixed filter."""
    got = {}
    for shape in ("auto", "adaptive"):
        y = requantize(music, 16, RATE, shape=shape, seed=1) / 32768.0
        got[shape] = (nmr_summary(nmr(y, music, RATE)[1]), residual_levels(y, music, RATE))
    assert got["adaptive"][0]["nmr_median_db"] < got["auto"][0]["nmr_median_db"] - 3
    tpdf = residual_levels(requantize(music, 16, RATE, shape="none", seed=1) / 32768.0, music, RATE)
    assert got["adaptive"][1]["unweighted_db"] - tpdf["unweighted_db"] <= total_gain_db(RATE) + 0.5
    silence = np.zeros((RATE, 2))
    thr = {s: residual_levels(requantize(silence, 16, RATE, shape=s) / 32768.0, silence, RATE)["threshold_db"]
           for s in ("auto", "adaptive")}
    assert thr["adaptive"] <= thr["auto"] + 0.5


def test_at_eight_bits_it_is_never_worse_than_flat_dither(music):
    """8 bits: the median NMR of adaptive shaping below plain TPDF's, on music and on its fade."""
    quiet = music * 10 ** (-40 / 20)
    for x in (music, quiet):
        got = {s: nmr_summary(nmr(requantize(x, 8, RATE, shape=s, seed=2) / 128.0, x, RATE)[1])
               for s in ("none", "adaptive")}
        assert got["adaptive"]["nmr_median_db"] < got["none"]["nmr_median_db"]


def test_eight_bits_keep_the_noise_bound_lower():
    """Noise 32 dB over an 8-bit step clips (a sixth of full scale): at 8 bits the bound is 24 dB."""
    assert total_gain_db(44100, 8) == 24.0 and total_gain_db(44100, 16) == 32.0
    assert AdaptiveShaper(44100, 8).max_total_gain_db == 24.0


def test_the_shaper_plans_every_sample_of_a_chunk():
    s = AdaptiveShaper(44100)
    assert s.hop == 1024 and s.order == ORDER
    for n in (100, 1000, 512, 3):
        taps, ends = s.plan(np.zeros(n))
        assert ends[-1] == n and np.all(np.diff(ends) > 0) and taps.shape == (len(ends), ORDER)


def test_the_shapers_frames_stay_near_21_ms_at_every_rate():
    assert [shaper_length(r) for r in (8000, 16000, 22050, 32000, 44100, 48000, 96000, 192000)] == \
        [128, 256, 512, 512, 1024, 1024, 2048, 4096]


def test_at_eight_bits_no_shared_clip_is_worse_than_flat_dither(shared_data):
    """Every clip of ../shared/data/audio with more than 8 bits (8 to 192 kHz, speech and music),
    requantized to 8 bits: adaptive shaping's median NMR at most plain TPDF's."""
    import soundfile as sf

    for path in sorted((shared_data / "audio").glob("*.flac")):
        if sf.info(path).subtype in ("PCM_S8", "PCM_U8"):
            continue
        x, rate = sf.read(path, dtype="float64", always_2d=True)
        got = {s: np.median(nmr(requantize(x, 8, rate, shape=s, seed=1) / 128.0, x, rate)[1])
               for s in ("none", "adaptive")}
        assert got["adaptive"] <= got["none"], (path.name, got)
