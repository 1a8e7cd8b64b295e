"""The medium contract, checked the same way on every registered medium (and on a toy one
registered here by one line): same seed → same bytes; progress as (done, total) ending at total;
strict JSON; bad input → a QuantaError and no output; an interrupted write leaves nothing."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import pytest

from quanta.errors import ConfigError, OutputError, QuantaError
from quanta.media import MEDIA, register
from quanta.outputs import leftovers
from tests.toy_medium import MEDIUM as TOY

register(TOY)  # the one line that adds a medium

NAMES = list(MEDIA)


def _bytes(p: Path) -> dict[str, bytes]:
    if p.is_dir():
        return {f.name: f.read_bytes() for f in sorted(p.iterdir())}
    return {"": p.read_bytes()}


def _out(medium, folder: Path, name: str = "out") -> Path:
    return folder / (name + medium.suffix)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return {n: MEDIA[n].module().example(tmp_path_factory.mktemp(n), seed=1) for n in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes_and_progress_ends_at_total(name, examples, tmp_path):
    m = MEDIA[name]
    calls: list[tuple[int, int]] = []
    a = m.write(examples[name], _out(m, tmp_path, "a"), seed=7, progress=lambda d, t: calls.append((d, t)))
    m.write(examples[name], _out(m, tmp_path, "b"), seed=7)
    assert _bytes(_out(m, tmp_path, "a")) == _bytes(_out(m, tmp_path, "b"))
    assert calls and calls[-1][0] == calls[-1][1]
    assert all(d2 >= d1 for (d1, _), (d2, _) in itertools.pairwise(calls))
    text = json.dumps(a.to_json(), allow_nan=False)  # strict JSON or this raises
    assert json.loads(text)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_and_writes_nothing(name, tmp_path):
    m = MEDIA[name]
    bad = tmp_path / ("garbage" + (Path(m.module().example.__doc__ or "").suffix or ".bin"))
    bad.write_bytes(b"\x00\x01 not a valid input \xff" * 10)
    with pytest.raises(QuantaError):
        m.write(bad, _out(m, tmp_path))
    assert not _out(m, tmp_path).exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("name", NAMES)
def test_interrupted_write_leaves_no_partial_output_and_keeps_the_old(name, examples, tmp_path):
    m = MEDIA[name]
    dst = _out(m, tmp_path)
    m.write(examples[name], dst)
    before = _bytes(dst)

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        m.write(examples[name], dst, force=True, progress=interrupt)
    assert _bytes(dst) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("name", NAMES)
def test_output_equal_to_input_is_refused(name, examples):
    with pytest.raises(OutputError):
        MEDIA[name].write(examples[name], examples[name], force=True)


@pytest.mark.parametrize("name", NAMES)
def test_a_misspelt_option_is_an_error_naming_it(name, examples, tmp_path):
    # issue 22: every medium's options are a frozen dataclass; a name it does not take is an
    # error naming it, and options of another type are refused before anything is written
    m = MEDIA[name]
    dst = tmp_path / f"out{m.suffix}"
    with pytest.raises(ConfigError, match="unknown option 'qualtiy'"):
        m.options(qualtiy=90)
    with pytest.raises(ConfigError, match="options must be"):
        m.write(examples[name], dst, {"bits": 4})
    assert not dst.exists()
    opts = m.options()
    assert dataclasses.is_dataclass(opts) and repr(opts) == repr(m.module().Options())
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.seed = 3


def test_toy_medium_appears_in_cli_help_and_info(capsys, examples, tmp_path):
    from quanta.cli.main import main

    assert main(["--help"]) == 0
    assert "toy" in capsys.readouterr().out
    assert main(["info", "--json"]) == 0
    assert "toy" in json.loads(capsys.readouterr().out)["parts"]
    out = tmp_path / "t.txt"
    assert main(["toy", "quantize", str(examples["toy"]), str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["values"] == 100 and out.exists()
