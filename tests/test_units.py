import pytest

from quanta.errors import ConfigError
from quanta.units import parse_size


@pytest.mark.parametrize("text,expect", [("95MB", 95_000_000), ("90.5MiB", int(90.5 * 2**20)),
                                         ("1234", 1234), ("2 kB", 2000), ("1.5GiB", int(1.5 * 2**30))])
def test_parse_size(text, expect):
    assert parse_size(text) == expect


@pytest.mark.parametrize("text", ["", "MB", "-3MB", "5 parsecs", "0"])
def test_parse_size_refuses(text):
    with pytest.raises(ConfigError):
        parse_size(text)
