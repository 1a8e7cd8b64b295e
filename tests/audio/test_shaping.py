import numpy as np
import pytest

from quanta.audio.shaping import CLASSIC, classic, design, predicted, select
from quanta.errors import ConfigError


def test_classic_filters_by_rate():
    assert classic("shibata", 48000).order == 16
    assert classic("shibata", 44100).order == 20
    assert classic("gesemann", 44100).a != (1.0,)  # IIR
    assert classic("f-weighted", 48000).rate_hz == 46000
    with pytest.raises(ConfigError, match="exists only"):
        classic("shibata", 96000)
    with pytest.raises(ConfigError, match="unknown"):
        classic("magic", 48000)


def test_every_classic_filter_is_minimum_phase_and_monic():
    for f in CLASSIC:
        assert f.b[0] == 1.0 and f.a[0] == 1.0
        assert np.all(np.abs(np.roots(f.b)) < 1.0 + 1e-9), f.name
        assert np.all(np.abs(np.roots(f.a)) < 1.0), f.name


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 32000, 44100, 48000, 88200, 96000, 176400,
                                  192000, 384000])
def test_designed_filters_are_minimum_phase_and_within_bounds(rate):
    f = design(rate)
    p = predicted(f)
    assert np.all(np.abs(np.roots(f.b)) < 1.0)
    assert p["total_db"] <= (20.0 if rate >= 46000 else 24.0) + 1e-6
    assert p["peak_db"] <= 30.0 + 1e-6
    assert p["threshold_db"] < 0  # never worse than unshaped


def test_gain_bounds_are_respected():
    f = design(48000, max_total_gain_db=10, max_peak_gain_db=15)
    p = predicted(f)
    assert p["total_db"] <= 10 + 1e-6 and p["peak_db"] <= 15 + 1e-6
    assert p["threshold_db"] > predicted(design(48000))["threshold_db"]  # the bound costs gain


@pytest.mark.parametrize("rate,rival,margin", [(48000, "shibata", 4.0), (44100, "high-shibata", 3.0)])
def test_designed_beats_sox_best_filter_by_prediction(rate, rival, margin):
    ours, theirs = predicted(design(rate)), predicted(classic(rival, rate), rate)
    assert ours["threshold_db"] <= theirs["threshold_db"] - margin
    if rate == 48000:
        assert ours["total_db"] <= theirs["total_db"] and ours["peak_db"] <= theirs["peak_db"]


def test_high_rates_put_the_noise_above_20_khz():
    assert predicted(design(96000))["threshold_db"] < -30
    assert predicted(design(192000))["threshold_db"] < -35


def test_select():
    assert select("none", 48000, 16) is None
    assert select("auto", 48000, 16).name.startswith("designed")
    assert select("auto", 48000, 24) is None  # above 16 bits auto means no shaping
    assert select("designed-8", 48000, 16).order == 8
    assert select("lipshitz", 44100, 16).order == 5
    with pytest.raises(ConfigError):
        select("designed-x", 48000, 16)
