"""JPEG encode speed in-process (issue 26): quanta's default path and ``--fast`` against Pillow
optimize, Pillow progressive and jpegli, in one run — optionally beside an earlier quanta.

    python bench/jpeg_speed.py [--threads 2] [--repeat 3] [--baseline DIR]

Every encoder at q75 on the 24 Kodak images mapped by ``--threads`` worker threads and by one,
megapixels per second (best of ``--repeat`` passes after a warm-up call), and on one
9.4-megapixel image (kodim01 tiled 4×6) alone. ``--baseline DIR``: a checkout of an earlier
commit with its own ``.venv`` and built kernels (a CI clone): its quanta rows are measured by
its own interpreter in the same run, for a same-machine before/after. Every encoder's bytes are
hashed so the table also says whether the baseline wrote the same files. Writes
bench/out/jpeg_speed.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: run by this tree's interpreter and by the baseline's (timed by this tree's bench/_util.py):
#: quanta's rows (JSON on stdout)
QUANTA_ROWS = r"""
import hashlib, importlib.util, json, sys
import numpy as np
from PIL import Image
from quanta.image.jpeg import encode
paths, threads, repeat, util = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
spec = importlib.util.spec_from_file_location("bench_util", util)  # this tree's timing helper
helper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helper)
imgs = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
big = np.ascontiguousarray(np.tile(imgs[0], (6, 4, 1)))
out = {}
for name, kw in (("quanta", {}), ("quanta --fast", {"fast": True})):
    fn = lambda i, kw=kw: encode(i, quality=75, **kw).data
    digest = hashlib.sha256(b"".join(fn(i) for i in imgs)).hexdigest()[:16]
    out[name] = {"kodak_mp_s": helper.megapixels_per_s(imgs, fn, threads, repeat),
                 "kodak_1_thread_mp_s": helper.megapixels_per_s(imgs, fn, 1, repeat),
                 "large_mp_s": helper.megapixels_per_s([big], fn, 1, repeat), "digest": digest}
print(json.dumps(out))
"""


def _peers(imgs: list, threads: int, repeat: int) -> dict:
    import io

    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from bench._util import megapixels_per_s
    from bench.jpeg_rd import jpegli

    def pillow(img: np.ndarray, progressive: bool = False) -> bytes:
        b = io.BytesIO()
        Image.fromarray(img).save(b, "JPEG", quality=75, optimize=True, progressive=progressive)
        return b.getvalue()

    encoders = {"Pillow optimize": pillow, "Pillow progressive": lambda i: pillow(i, True)}
    mod = jpegli()
    if mod is not None:
        encoders["jpegli"] = lambda i: mod.encode(np.ascontiguousarray(i).tobytes(), i.shape[1], i.shape[0],
                                                  75)
    big = np.ascontiguousarray(np.tile(imgs[0], (6, 4, 1)))
    return {name: {"kodak_mp_s": megapixels_per_s(imgs, fn, threads, repeat),
                   "kodak_1_thread_mp_s": megapixels_per_s(imgs, fn, 1, repeat),
                   "large_mp_s": megapixels_per_s([big], fn, 1, repeat), "digest": ""}
            for name, fn in encoders.items()}


def _quanta(python: str, cwd: Path, paths: list[str], threads: int, repeat: int) -> dict:
    r = subprocess.run([python, "-c", QUANTA_ROWS, json.dumps(paths), str(threads), str(repeat),
                        str(ROOT / "bench" / "_util.py")], cwd=cwd, capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="an earlier checkout with its own .venv (its quanta rows, same run)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from PIL import Image

    from bench._util import machine, write_json
    from bench.jpeg_rd import kodak
    from quanta.render.tables import console, print_table

    files = [str(p) for _, p in kodak(24)]
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    rows = {}
    if args.baseline is not None:
        base = args.baseline.resolve()
        head = subprocess.run(["git", "-C", str(base), "log", "--oneline", "-1"], capture_output=True,
                              text=True).stdout.split(" ")[0] or base.name
        for name, r in _quanta(str(base / ".venv" / "bin" / "python"), base, files, args.threads,
                               args.repeat).items():
            rows[f"{name} (at {head})"] = r
    rows.update(_quanta(sys.executable, ROOT, files, args.threads, args.repeat))
    rows.update(_peers(imgs, args.threads, args.repeat))
    write_json("jpeg_speed", {"threads": args.threads, "repeat": args.repeat, "rows": rows,
                              "baseline": str(args.baseline) if args.baseline else None})
    print_table(f"JPEG encode speed at q75, in-process ({machine()}; MP/s, best of {args.repeat})",
                ["encoder", f"24 Kodak, {args.threads} threads", "24 Kodak, 1 thread", "9.4 MP image alone",
                 "bytes (digest of the 24 files)"],
                [[k, f"{r['kodak_mp_s']:.1f}", f"{r['kodak_1_thread_mp_s']:.1f}", f"{r['large_mp_s']:.1f}",
                  r["digest"]] for k, r in rows.items()])
    console.print("wrote bench/out/jpeg_speed.json")


if __name__ == "__main__":
    main()
