import numpy as np
import pytest
from scipy import signal

from quanta.core import FeedbackState, dither_noise, error_feedback_quantize, noise_gain_db
from quanta.errors import ConfigError

N = 1 << 20
# A 9-tap error filter of the E-weighted kind (Wannamaker's 9-tap design at 44.1 kHz).
E9 = [1.0, -2.412, 3.370, -3.937, 4.174, -3.353, 2.205, -1.281, 0.569]


def _music_like(n, seed=0):
    rng = np.random.default_rng(seed)
    x = signal.lfilter([1.0], [1.0, -0.98], rng.normal(size=n))
    return x / np.max(np.abs(x)) * 20000.0  # in LSB, well inside 16-bit range


def _check_spectrum(b, a=None, tol_db=1.0, floor_db=-20.0):
    x = _music_like(N)
    y, _ = error_feedback_quantize(x, b=b, a=a, dither=dither_noise(N, "tpdf", seed=1)[:, 0])
    f, p = signal.welch(y - x, fs=1.0, nperseg=512, return_onesided=True, scaling="density")
    _, h = signal.freqz(b, [1.0] if a is None else a, worN=f, fs=1.0)
    expected = np.abs(h) ** 2 * 0.25 * 2  # white error of variance 1/4, one-sided density
    band = (f > 0) & (f < 0.5) & (10 * np.log10(np.abs(h) ** 2) > floor_db)
    dev = 10 * np.log10(p[band] / expected[band])
    assert np.max(np.abs(dev)) < tol_db, f"worst deviation {np.max(np.abs(dev)):.2f} dB"


def test_fir_noise_spectrum_follows_the_filter():
    _check_spectrum(E9)


def test_iir_noise_spectrum_follows_the_filter():
    b, a = [1.0, -1.6, 0.8], [1.0, -0.5, 0.2]
    _check_spectrum(b, a)


def test_plain_rounding_when_filter_is_one():
    x = np.random.default_rng(0).normal(size=10_000) * 100
    y, st = error_feedback_quantize(x)
    np.testing.assert_array_equal(y, np.floor(x + 0.5).astype(np.int32))
    assert st.clipped == 0


@pytest.mark.parametrize("a", [None, [1.0, -0.5, 0.2]])
def test_chunked_equals_whole_bytes(a):
    x = _music_like(50_000, seed=3)
    d = dither_noise(50_000, "tpdf", seed=4)[:, 0]
    whole, st_whole = error_feedback_quantize(x, b=E9, a=a, dither=d)
    state, parts, pos = None, [], 0
    for n in (1, 17, 4096, 10_000, 35_886):
        part, state = error_feedback_quantize(x[pos:pos + n], b=E9, a=a, dither=d[pos:pos + n],
                                              state=state)
        parts.append(part)
        pos += n
    assert pos == x.size
    assert np.concatenate(parts).tobytes() == whole.tobytes()
    np.testing.assert_array_equal(state.e_hist, st_whole.e_hist)


def test_clipping_is_counted_and_never_wraps():
    x = np.array([0.0, 200.0, -300.0, 50.0, 127.4, -128.6])
    y, st = error_feedback_quantize(x, qmin=-128, qmax=127)
    assert y.tolist() == [0, 127, -128, 50, 127, -128]
    assert st.clipped == 3


def test_noise_gain():
    p, peak = noise_gain_db([1.0, -1.0])
    assert p == pytest.approx(10 * np.log10(2), abs=0.01) and peak == pytest.approx(6.02, abs=0.01)


def test_bad_filters_and_state():
    with pytest.raises(ConfigError):
        error_feedback_quantize(np.zeros(4), b=[0.5, 1.0])
    with pytest.raises(ConfigError):
        error_feedback_quantize(np.zeros(4), b=[1.0, 0.5], state=FeedbackState(np.zeros(3), np.zeros(0)))
    with pytest.raises(ConfigError):
        error_feedback_quantize(np.zeros(4), dither=np.zeros(3))


def test_segments_with_one_filter_are_the_plain_kernel_and_switch_where_told():
    """``error_feedback_segments``: one set of taps gives ``error_feedback_quantize``'s codes
    exactly, however the segments are cut; different taps take effect at each segment's end."""
    from quanta.core.feedback import FeedbackState, error_feedback_segments

    rng = np.random.default_rng(4)
    x = rng.standard_normal(9000) * 50
    d = rng.random(9000) - rng.random(9000)
    b = np.array([1.0, -1.4, 0.7, -0.1])
    ref, ref_state = error_feedback_quantize(x, b=b, dither=d)
    for ends in ([9000], [1, 4096, 4097, 8999, 9000]):
        out = np.empty(9000, dtype=np.int32)
        st = error_feedback_segments(x, np.repeat(b[None, 1:], len(ends), 0), np.array(ends), dither=d,
                                     state=FeedbackState.zeros(b, np.ones(1)), out=out)
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(st.e_hist, ref_state.e_hist)
    flat = np.zeros(3)  # second half unshaped: plain dithered rounding there
    out = np.empty(9000, dtype=np.int32)
    error_feedback_segments(x, np.stack([b[1:], flat]), np.array([4500, 9000]), dither=d,
                            state=FeedbackState.zeros(b, np.ones(1)), out=out)
    np.testing.assert_array_equal(out[:4500], ref[:4500])
    np.testing.assert_array_equal(out[4500:], np.floor(x[4500:] + d[4500:] + 0.5).astype(np.int32))
    with pytest.raises(ConfigError):
        error_feedback_segments(x, b[None, 1:], np.array([8000]), state=FeedbackState.zeros(b, np.ones(1)),
                                out=out)
