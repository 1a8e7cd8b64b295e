from pathlib import Path

import pytest

from quanta.data import data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = data_dir()
    assert d.is_dir(), f"shared test data not found at {d} (set QUANTA_DATA)"
    return d


def debian_tool(command: str, package: str) -> str:
    """The path of ``command``, installing Debian's ``package`` with apt-get when it is missing
    (test oracles and peers are set up by the tests, never runtime dependencies)."""
    import os
    import shutil
    import subprocess

    found = shutil.which(command)
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env, capture_output=True)
    found = shutil.which(command)
    assert found, f"{package} could not be installed"
    return found
