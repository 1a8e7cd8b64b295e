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


@pytest.mark.parametrize("text,expect", [("10k", 10_000), ("150kb", 150_000), ("1e5", 100_000),
                                         ("2M", 2_000_000)])
def test_parse_size_takes_what_people_type(text, expect):  # probe 2026-12-05, L1
    assert parse_size(text) == expect


def test_a_size_under_one_byte_says_so():
    with pytest.raises(ConfigError, match="at least 1 byte"):
        parse_size("0.5")


@pytest.mark.parametrize("n,text", [(812, "812 B"), (20_480, "20.5 kB"), (3_754_000, "3.75 MB"),
                                    (1.2e9, "1.20 GB")])
def test_format_size(n, text):
    from quanta.units import format_size

    assert format_size(n) == text
