import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The shared test data: $QUANTA_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("QUANTA_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = data_dir()
    assert d.is_dir(), f"shared test data not found at {d} (set QUANTA_DATA)"
    return d
