import numpy as np
import pytest

from quanta.core import Grid, bits_per_element, choose_qparams, mse, psnr_db, snr_db, sqnr_theory_db
from quanta.core.sine import sine_snr_db
from quanta.errors import ConfigError


def test_theory():
    assert sqnr_theory_db(16) == pytest.approx(98.09, abs=0.01)
    assert sqnr_theory_db(8) == pytest.approx(6.0206 * 8 + 1.7609, abs=1e-3)


@pytest.mark.parametrize("bits", range(4, 17))
def test_full_scale_sine_follows_the_law(bits):
    r = sine_snr_db(bits)
    assert r["snr_db"] == pytest.approx(sqnr_theory_db(bits), abs=0.2)


@pytest.mark.parametrize("bits", [4, 8, 12, 16])
def test_tpdf_sine_costs_4_77_db(bits):
    r = sine_snr_db(bits, dither="tpdf")
    assert r["snr_db"] == pytest.approx(r["expected_db"], abs=0.2)


def test_snr_psnr_mse():
    ref = np.array([1.0, -1.0, 1.0, -1.0])
    test = ref + np.array([0.1, -0.1, 0.1, -0.1])
    assert mse(ref, test) == pytest.approx(0.01)
    assert snr_db(ref, test) == pytest.approx(20.0)
    assert psnr_db(ref, test, peak=1.0) == pytest.approx(20.0)
    assert snr_db(ref, ref) == float("inf")
    with pytest.raises(ConfigError):
        mse(ref, ref[:2])


def test_bits_per_element_counts_overhead():
    w = np.zeros((256, 512), dtype=np.float32)
    qp = choose_qparams(w, Grid(4, granularity="group", axis=1, group_size=128))
    assert bits_per_element(qp) == pytest.approx(4 + 16 / 128)
    qa = choose_qparams(w, Grid(4, symmetric=False, granularity="group", axis=1, group_size=32))
    assert bits_per_element(qa) == pytest.approx(4 + 32 / 32)
    assert bits_per_element(choose_qparams(w, Grid(8)), scale_bits=32) == pytest.approx(8 + 32 / w.size)
