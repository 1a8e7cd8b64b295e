"""Golden digests on a real model (issue 22, deliverable 1): SmolLM2-135M quantized by commands
whose bytes a refactor must keep, each reduced to one sha256 (as ``tests/golden`` does for the
tiny model; too slow for ``make test``).

    python bench/golden_smollm2.py            # check against bench/golden_smollm2.json
    python bench/golden_smollm2.py --update   # rewrite it (say why in the commit)

Cases: RTN 4-bit ``--uniform`` to a quanta folder; RTN to a GGUF (Q4_1); the plain default
(GPTQ, the uniform file's bytes shared out by sensitivity) with ``--full``, about 4 minutes.
Each line also shows the plan's predictions (size, time, peak memory: :mod:`quanta.model.quantize.cost`)
beside what the command measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.golden.cases import digest  # noqa: E402

PINNED = Path(__file__).with_suffix(".json")
QUANTA = [sys.executable, "-m", "quanta.cli"]
#: each case runs as its own command, in a fresh process, as a user runs it
CASES = {
    "smollm2-rtn-uniform": ("smol", ["--method", "rtn", "--uniform"]),
    "smollm2-rtn-gguf-q4_1": ("smol.gguf", ["--method", "rtn", "--format", "gguf"]),
    "smollm2-gptq-default": ("smol-default", []),
}


def main() -> None:
    import subprocess

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--full", action="store_true", help="Also the GPTQ default (about 4 minutes).")
    args = ap.parse_args()
    pinned = json.loads(PINNED.read_text()) if PINNED.exists() else {}
    got, failed = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (out, options) in CASES.items():
            if name == "smollm2-gptq-default" and not args.full:
                continue
            t0 = time.perf_counter()
            cmd = [*QUANTA, "model", "quantize", "smollm2", "-o", str(Path(tmp) / out), *options, "--json"]
            run = subprocess.run(cmd, check=True, capture_output=True, text=True)
            rep = json.loads(run.stdout)
            got[name] = digest(Path(tmp) / out)
            same = pinned.get(name) == got[name]
            failed += [] if same or args.update else [name]
            state = "same" if same else ("new" if name not in pinned else "CHANGED")
            print(f"{name}: {got[name][:16]}… {state} ({time.perf_counter() - t0:.1f} s); size "
                  f"{rep['folder_bytes']:,} planned {rep['planned_bytes']:,}; time {rep['wall_s']:.1f} s "
                  f"planned ~{rep['planned_s']:.0f} s; peak {rep['peak_rss_mb']:.0f} MB planned "
                  f"~{rep['planned_peak_mb']:.0f} MB")
    if args.update:
        PINNED.write_text(json.dumps({**pinned, **got}, indent=2) + "\n")
        print(f"wrote {PINNED}")
    elif failed:
        sys.exit(f"changed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
