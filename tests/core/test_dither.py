import numpy as np
import pytest
from scipy import signal

from quanta.core import DitherSource, dither_noise
from quanta.errors import ConfigError

N = 400_000
OFFSETS = np.linspace(0, 0.95, 20)  # fractional positions of a constant input between two levels


def _error_moments(kind):
    """Mean and variance of round(c + d) - c for constant inputs c across one step."""
    d = dither_noise(N, kind, seed=5)[:, 0]
    stats = []
    for c in OFFSETS:
        e = np.floor(c + d + 0.5) - c
        stats.append((e.mean(), e.var()))
    return np.array(stats)


def test_tpdf_error_mean_and_variance_do_not_depend_on_the_input():
    # Theory: mean 0, variance 1/12 + 1/6 = 1/4 LSB² for every input.
    # Tolerance: 0.01 LSB (mean) and 0.005 LSB² (variance) — above 5 standard errors at N=400k.
    m = _error_moments("tpdf")
    np.testing.assert_allclose(m[:, 0], 0.0, atol=0.01)
    np.testing.assert_allclose(m[:, 1], 0.25, atol=0.005)


def test_rpdf_makes_the_mean_independent_but_not_the_variance():
    m = _error_moments("rpdf")
    np.testing.assert_allclose(m[:, 0], 0.0, atol=0.01)
    assert np.ptp(m[:, 1]) > 0.05  # the second moment still follows the input: the test can tell


def test_no_dither_error_follows_the_input():
    """Without dither the core's quantizer makes an error that is a function of the input."""
    from quanta.core.feedback import error_feedback_quantize

    m = []
    for c in OFFSETS:
        q, _ = error_feedback_quantize(np.full(64, c), dither=None)
        m.append(float(np.mean(q - c)))
    assert np.ptp(m) > 0.9


def test_pdfs_and_ranges():
    r = dither_noise(N, "rpdf", seed=1)[:, 0]
    t = dither_noise(N, "tpdf", seed=1)[:, 0]
    h = dither_noise(N, "hp-tpdf", seed=1)[:, 0]
    assert r.min() >= -0.5 and r.max() < 0.5 and abs(r.var() - 1 / 12) < 0.002
    assert t.min() > -1 and t.max() < 1 and abs(t.var() - 1 / 6) < 0.003
    assert h.min() > -1 and h.max() < 1 and abs(h.var() - 1 / 6) < 0.003


def test_hp_tpdf_is_high_pass_and_tpdf_white():
    f, pt = signal.welch(dither_noise(N, "tpdf", seed=2)[:, 0], nperseg=1024)
    _, ph = signal.welch(dither_noise(N, "hp-tpdf", seed=2)[:, 0], nperseg=1024)
    low, high = f < 0.05, f > 0.45
    assert 10 * np.log10(pt[low].mean() / pt[high].mean()) == pytest.approx(0, abs=0.5)
    assert 10 * np.log10(ph[high].mean() / ph[low].mean()) > 15


def test_channels_are_independent_and_seeded():
    d = dither_noise(N, "tpdf", channels=2, seed=3)
    assert abs(np.corrcoef(d[:, 0], d[:, 1])[0, 1]) < 0.01
    np.testing.assert_array_equal(d, dither_noise(N, "tpdf", channels=2, seed=3))
    assert not np.array_equal(d, dither_noise(N, "tpdf", channels=2, seed=4))


@pytest.mark.parametrize("kind", ["rpdf", "tpdf", "hp-tpdf", "none"])
def test_chunked_stream_equals_whole(kind):
    whole = DitherSource(kind, 3, seed=9).draw(10_000)
    src = DitherSource(kind, 3, seed=9)
    parts = [src.draw(n) for n in (1, 999, 4000, 0, 5000)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_unknown_kind():
    with pytest.raises(ConfigError):
        DitherSource("gaussian")
