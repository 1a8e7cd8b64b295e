import json
import subprocess
import sys

import quanta
from quanta.cli.main import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"quanta {quanta.__version__}"


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["quanta"] == quanta.__version__
    assert data["usable"]["core"] is True
    assert set(data["parts"]) >= {"core", "audio", "image", "model"}


def test_demo_json_is_measured(capsys):
    assert main(["demo", "--json", "--no-model"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = res["core"]["data"]["rows"]
    assert [r["bits"] for r in rows] == list(range(2, 17))
    for r in rows:
        if r["bits"] >= 4:
            assert abs(r["rounding_db"] - r["law_db"]) < 0.2
        assert abs(r["tpdf_db"] - r["tpdf_expected_db"]) < 0.2
    audio = {r["method"]: r for r in res["audio"]["data"]["rows"]}
    assert audio["TPDF + designed (auto)"]["threshold_db"] < audio["TPDF"]["threshold_db"] - 20
    assert audio["TPDF"]["unweighted_db"] > audio["plain rounding"]["unweighted_db"]
    dr, theory = (res["audio"]["data"][k] for k in ("aes17_dynamic_range_db", "theory_dynamic_range_db"))
    assert abs(dr["tpdf"] - 94.1) < 0.3 and abs(theory["tpdf"] - 94.12) < 0.05
    img = res["image"]["data"]
    assert img["image"] == "kodim23.png"
    for q, p in zip(img["quanta"], img["pillow"]):
        assert abs(q["psnr_db"] - p["psnr_db"]) < 0.1 and abs(q["bytes"] / p["bytes"] - 1) < 0.02


def test_no_arguments_prints_help_and_exits_cleanly(capsys):
    assert main([]) == 0
    assert "Usage" in capsys.readouterr().out


def test_usage_error_names_the_option_and_help(capsys):
    assert main(["audio", "requantize", "a.wav", "b.wav", "--bits", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("quanta: usage error:") and "--bits" in err
    assert "quanta audio requantize --help" in err and len(err.splitlines()) == 1


def test_a_bug_exits_1_and_says_so(capsys, monkeypatch):
    import quanta.cli.main as cli

    def boom(**_):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(cli, "_version_of", lambda mod: 1 / 0)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "--debug" in err and len(err.strip().splitlines()) == 1


def test_debug_anywhere_shows_the_traceback(monkeypatch):
    import pytest

    import quanta.cli.main as cli

    monkeypatch.setattr(cli, "_version_of", lambda mod: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["info", "--debug"])


def test_usage_error_exits_2(capsys):
    assert main(["no-such-command"]) == 2
    assert main(["demo", "--no-such-flag"]) == 2


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "quanta.cli", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("quanta ")


def test_a_closed_pipe_ends_quietly():
    p = subprocess.Popen([sys.executable, "-m", "quanta.cli", "audio", "filters", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(10)
    p.stdout.close()
    _, err = p.communicate(timeout=60)
    assert p.returncode in (0, 141) and b"Traceback" not in err and b"internal error" not in err
