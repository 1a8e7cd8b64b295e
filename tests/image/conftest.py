import pytest

from tests.conftest import debian_tool


@pytest.fixture(scope="session")
def djpeg() -> str:
    """libjpeg-turbo's ``djpeg`` (Debian's libjpeg-turbo-progs), the second decoder."""
    return debian_tool("djpeg", "libjpeg-turbo-progs")
