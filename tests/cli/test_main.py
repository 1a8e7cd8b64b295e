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
    assert main(["demo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["bits"] for r in rows] == list(range(2, 17))
    for r in rows:
        if r["bits"] >= 4:
            assert abs(r["rounding_db"] - r["law_db"]) < 0.2
        assert abs(r["tpdf_db"] - r["tpdf_expected_db"]) < 0.2


def test_usage_error_exits_2(capsys):
    assert main(["no-such-command"]) == 2
    assert main(["demo", "--no-such-flag"]) == 2


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "quanta.cli", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("quanta ")
