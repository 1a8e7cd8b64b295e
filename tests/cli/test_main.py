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
    assert main(["demo", "--json", "--seconds", "3", "--no-model"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = res["core"]
    assert [r["bits"] for r in rows] == list(range(2, 17))
    for r in rows:
        if r["bits"] >= 4:
            assert abs(r["rounding_db"] - r["law_db"]) < 0.2
        assert abs(r["tpdf_db"] - r["tpdf_expected_db"]) < 0.2
    audio = {r["method"]: r for r in res["audio"]["rows"]}
    assert audio["TPDF + designed (auto)"]["threshold_db"] < audio["TPDF"]["threshold_db"] - 20
    assert audio["TPDF"]["unweighted_db"] > audio["plain rounding"]["unweighted_db"]
    assert abs(res["audio"]["aes17_dynamic_range_db"]["tpdf"] - 94.1) < 0.3
    img = res["image"]
    assert img["image"] == "kodim23.png"
    for q, p in zip(img["quanta"], img["pillow"]):
        assert abs(q["psnr_db"] - p["psnr_db"]) < 0.1 and abs(q["bytes"] / p["bytes"] - 1) < 0.02


def test_usage_error_exits_2(capsys):
    assert main(["no-such-command"]) == 2
    assert main(["demo", "--no-such-flag"]) == 2


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "quanta.cli", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("quanta ")
