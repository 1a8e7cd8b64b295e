from pathlib import Path

import pytest

from quanta.data import data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = data_dir()
    assert d.is_dir(), f"shared test data not found at {d} (set QUANTA_DATA)"
    return d
