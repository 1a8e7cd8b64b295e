"""The one rate–distortion curve type: BD-rate against a reference, means over images."""

import pytest

from quanta.errors import ConfigError
from quanta.image.rd import RDCurve, mean_bd_rate, mean_curve


def _curve(scale: float, shift: float = 0.0) -> RDCurve:
    return RDCurve.of({"bytes": scale * b, "bpp": scale * b / 1e4, "psnr_db": q + shift}
                      for b, q in ((1000, 30), (2000, 34), (4000, 37), (8000, 40), (16000, 43)))


def test_bd_rate_of_a_curve_that_spends_10_percent_fewer_bytes():
    ref, test = _curve(1.0), _curve(0.9)
    assert test.bd_rate(ref) == pytest.approx(-10.0, abs=1e-6)
    assert test.bd_rate(ref, rate="bpp") == pytest.approx(-10.0, abs=1e-6)  # the same on one image
    assert ref.bd_rate(ref) == pytest.approx(0.0, abs=1e-9)
    assert ref.bd_rate(test) == pytest.approx(100 / 0.9 - 100, abs=1e-6)


def test_mean_over_images_and_disjoint_curves():
    refs, tests = [_curve(1.0), _curve(1.0)], [_curve(0.9), _curve(0.8)]
    assert mean_bd_rate(refs, tests) == pytest.approx(-15.0, abs=1e-6)
    disjoint = _curve(1.0, shift=50.0)  # no quality in common with the reference
    with pytest.raises(ConfigError, match="overlap"):
        mean_bd_rate([_curve(1.0)], [disjoint])
    assert mean_bd_rate([_curve(1.0), _curve(1.0)], [disjoint, _curve(0.9)], skip_disjoint=True) == \
        pytest.approx(-10.0, abs=1e-6)
    assert mean_bd_rate([_curve(1.0)], [disjoint], skip_disjoint=True) is None
    with pytest.raises(ConfigError, match="4 points"):
        RDCurve.of(_curve(1.0).points[:3]).bd_rate(_curve(1.0))
    assert mean_curve([_curve(1.0), _curve(0.5)], "bytes") == [750.0, 1500.0, 3000.0, 6000.0, 12000.0]
