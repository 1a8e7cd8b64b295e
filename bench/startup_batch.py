"""Issue 13, side by side in one run: whole-process start-up, the long-file requantize against
SoX, and whole-library batches (audio against SoX under ``xargs -P``, JPEG against Pillow in a
pool of processes).

    python bench/startup_batch.py [--repeat 5] [--files 1000] [--copies 10] [--skip-long]
                                  [--cluster-files 600] [--only-cluster] [--only-images]

Every time is wall-clock of whole processes (start-up, imports, reading, writing), the median of
``--repeat`` alternating runs where a row is repeated. Sections:

1. start-up: ``quanta --version``; ``quanta image encode`` of one Kodak image (768×512);
   ``quanta audio requantize`` of a 5-second 44.1 kHz 24-bit stereo clip to 16-bit FLAC; SoX and
   Pillow doing the same job, for scale.
2. the 10-minute 48 kHz stereo float file to 16-bit WAV: ``--shape auto`` against ``sox dither -s``
   and TPDF only (``--shape none``) against ``sox dither``.
0. ``--cluster local`` against the pool: ``--cluster-files`` five-second clips to FLAC, one
   command each (issue 23's target: ≥ 0.8× the pool's throughput, identical outputs).
3. batches: ``--files`` generated 5-second 44.1 kHz 24-bit stereo WAVs to 16-bit FLAC with
   ``--shape auto`` in one quanta command, against ``sox IN -b 16 OUT dither -s`` run by
   ``xargs -P 2``; the 24 Kodak images × ``--copies`` to JPEG q75 in one quanta command (MP/s),
   against Pillow (``optimize=True``) in a pool of 2 processes.
4. images (issue 26; alone with ``--only-images``, into bench/out/startup_images.json): quanta's
   default path and ``--fast`` against Pillow optimize, Pillow progressive and jpegli (the
   ``pyjpegli`` wheel, Pillow decoding) — one Kodak image, one 9.4-megapixel image, and the Kodak
   images × ``--copies`` in one command each (the batch against Pillow's pools).

The commands run without ``PYTHONDONTWRITEBYTECODE`` (a user's Python caches bytecode).

Installs SoX with apt-get when it is missing (a peer, not a runtime dependency). Needs
``../shared/data/kodak`` (or ``QUANTA_DATA``). Prints tables; writes bench/out/startup_batch.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from bench._util import machine, write_json  # noqa: E402
from bench.audio_vs_sox import ensure_sox, make_signal  # noqa: E402
from quanta.data import data_dir  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

QUANTA = [str(Path(sys.executable).parent / "quanta")]
CORES = 2

PILLOW_ONE = (
    "from PIL import Image; import sys; Image.open(sys.argv[1]).save(sys.argv[2], quality=75, optimize=True, "
    "progressive=sys.argv[3:] == ['progressive'])"
)
#: jpegli (the ``pyjpegli`` wheel the rate-distortion bench installs beside the cache) as a user
#: would script it: Pillow decodes, jpegli encodes at q75 with its own defaults
JPEGLI_ONE = (
    "import sys; sys.path.insert(0, sys.argv[1]); import numpy as np; from PIL import Image; "
    "import pyjpegli; "
    "img = np.ascontiguousarray(np.asarray(Image.open(sys.argv[2]).convert('RGB'))); "
    "open(sys.argv[3], 'wb').write(pyjpegli.encode(img.tobytes(), img.shape[1], img.shape[0], 75))"
)
PILLOW_POOL = """
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from PIL import Image

def one(args):
    src, dst = args
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Image.open(src).save(dst, quality=75, optimize=True, progressive=sys.argv[4:] == ["progressive"])

src, out = Path(sys.argv[1]), Path(sys.argv[2])
jobs = [(p, out / p.relative_to(src).with_suffix(".jpg")) for p in sorted(src.rglob("*.png"))]
with ProcessPoolExecutor(int(sys.argv[3])) as pool:
    list(pool.map(one, jobs, chunksize=4))
"""


def wall(cmd: list[str] | str, *, shell: bool = False) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def alternate(pairs: list[tuple[str, list[str]]], repeat: int, before=None) -> dict[str, float]:
    """Median wall time of each command, the commands run in turn ``repeat`` times (one warm-up)."""
    times: dict[str, list[float]] = {k: [] for k, _ in pairs}
    for i in range(repeat + 1):
        for label, cmd in pairs:
            if before:
                before()
            t = wall(cmd)
            if i:
                times[label].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def clip(folder: Path, name: str, seconds: float, rate: int, seed: int) -> Path:
    """A music-like 24-bit stereo WAV: two tones and quiet noise, different per seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f1, f2 = rng.uniform(100, 2000, 2)
    x = (
        0.3 * np.sin(2 * np.pi * f1 * t)[:, None]
        + 0.2 * np.sin(2 * np.pi * f2 * t + rng.uniform(0, 6))[:, None]
    )
    x = x + 0.01 * rng.standard_normal((t.size, 2))
    p = folder / name
    sf.write(p, x, rate, subtype="PCM_24")
    return p


def startup(work: Path, kodak: Path, repeat: int) -> list[dict]:
    sox = shutil.which("sox")
    wav = clip(work, "clip5.wav", 5, 44100, 0)
    png = kodak / "kodim01.png"
    jobs = [  # (job, quanta's command, its target in s, the peer, the peer's command)
        (
            "version",
            ("quanta --version", [*QUANTA, "--version"]),
            0.15,
            ("python -c pass", [sys.executable, "-c", "pass"]),
        ),
        (
            "one Kodak image → JPEG q75",
            ("quanta image encode",
             [*QUANTA, "image", "encode", str(png), str(work / "one.jpg"), "--force", "--fast"]),
            0.35,
            ("Pillow (python -c)", [sys.executable, "-c", PILLOW_ONE, str(png), str(work / "one.p.jpg")]),
        ),
        (
            "5 s 44.1 kHz clip → 16-bit FLAC",
            (
                "quanta audio requantize",
                [*QUANTA, "audio", "requantize", str(wav), str(work / "one.flac"), "--force"],
            ),
            0.35,
            ("sox dither -s", [sox, "-V1", str(wav), "-b", "16", str(work / "one.s.flac"), "dither", "-s"]),
        ),
    ]
    rows = []
    for job, (qlabel, qcmd), target, (plabel, pcmd) in jobs:
        t = alternate([("q", qcmd), ("p", pcmd)], repeat)
        rows.append(
            {
                "job": job,
                "quanta": qlabel,
                "quanta_s": t["q"],
                "target_s": target,
                "peer": plabel,
                "peer_s": t["p"],
            }
        )
    return rows


def long_file(work: Path, repeat: int) -> list[dict]:
    sox = shutil.which("sox")
    src = make_signal(48000, 600, work)
    rows = []
    for shape, sox_args, limit in (("auto", ["dither", "-s"], 1.0), ("none", ["dither"], 1.3)):
        t = alternate(
            [
                (
                    "q",
                    [
                        *QUANTA,
                        "audio",
                        "requantize",
                        str(src),
                        str(work / "long.wav"),
                        "--bits",
                        "16",
                        "--shape",
                        shape,
                        "--force",
                    ],
                ),
                ("s", [sox, "-V1", str(src), "-b", "16", str(work / "long.s.wav"), *sox_args]),
            ],
            repeat,
        )
        rows.append(
            {
                "job": f"10 min 48 kHz → 16 bits, --shape {shape}",
                "quanta_s": t["q"],
                "peer": "sox " + " ".join(sox_args),
                "peer_s": t["s"],
                "ratio": t["q"] / t["s"],
                "target_ratio": limit,
            }
        )
    return rows


def audio_batch(work: Path, files: int) -> dict:
    sox = shutil.which("sox")
    src = work / "wavs"
    if not src.exists():
        tmp = work / "wavs.part"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for i in range(files):
            clip(tmp, f"c{i:04d}.wav", 5, 44100, i)
        tmp.rename(src)
    names = sorted(p.name for p in src.glob("*.wav"))[:files]
    q_out, s_out = work / "flac.q", work / "flac.s"
    for d in (q_out, s_out):
        shutil.rmtree(d, ignore_errors=True)
    list_file = work / "wavs.txt"
    list_file.write_text("\n".join(names) + "\n")
    tq = wall(
        [
            *QUANTA,
            "audio",
            "requantize",
            *[str(src / n) for n in names],
            "-o",
            str(q_out),
            "--format",
            "flac",
            "--bits",
            "16",
            "--shape",
            "auto",
            "--jobs",
            str(CORES),
        ]
    )
    s_out.mkdir()
    ts = wall(
        f"cd {src} && xargs -P {CORES} -I{{}} {sox} -V1 {{}} -b 16 {s_out}/{{}}.flac dither -s < {list_file}",
        shell=True,
    )
    done_q = len(list(q_out.glob("*.flac")))
    done_s = len(list(s_out.glob("*.flac")))
    return {
        "files": len(names),
        "quanta_s": tq,
        "quanta_files": done_q,
        "peer": f"sox dither -s, xargs -P {CORES}",
        "peer_s": ts,
        "peer_files": done_s,
        "quanta_files_per_s": done_q / tq,
        "peer_files_per_s": done_s / ts,
    }


def image_batch(work: Path, kodak: Path, copies: int, options: list[str] | None = None,
                peers: bool = True) -> dict:
    """Every Kodak image ``copies`` times, one quanta command (``options``: ``["--fast"]`` by
    default, as measured since issue 13) against Pillow optimize in a pool of as many processes
    (baseline and progressive; ``peers=False``: quanta alone)."""
    from PIL import Image

    options = ["--fast"] if options is None else options
    src = work / "kodak"
    shutil.rmtree(src, ignore_errors=True)
    pngs = sorted(kodak.glob("kodim*.png"))
    for k in range(copies):
        (src / f"copy{k:02d}").mkdir(parents=True)
        for p in pngs:
            os.link(p, src / f"copy{k:02d}" / p.name) if _same_fs(p, src) else shutil.copy(
                p, src / f"copy{k:02d}"
            )
    mp = sum(np.prod(Image.open(p).size) for p in pngs) * copies / 1e6
    q_out, p_out, pp_out = work / "jpg.q", work / "jpg.p", work / "jpg.pp"
    for d in (q_out, p_out, pp_out):
        shutil.rmtree(d, ignore_errors=True)
    tq = wall([*QUANTA, "image", "encode", str(src), "-o", str(q_out), "-R", "-q", "75", "--jobs", str(CORES),
               *options])
    out = {"images": len(pngs) * copies, "megapixels": mp, "options": options, "quanta_s": tq,
           "quanta_mp_per_s": mp / tq, "quanta_files": len(list(q_out.rglob("*.jpg"))),
           "target_mp_per_s": 40.0}
    if peers:
        tp = wall([sys.executable, "-c", PILLOW_POOL, str(src), str(p_out), str(CORES)])
        tpp = wall([sys.executable, "-c", PILLOW_POOL, str(src), str(pp_out), str(CORES), "progressive"])
        out.update({"peer": f"Pillow optimize=True, {CORES} processes", "peer_s": tp,
                    "peer_mp_per_s": mp / tp, "peer_progressive_s": tpp,
                    "peer_progressive_mp_per_s": mp / tpp})
    return out


def images(work: Path, kodak: Path, repeat: int, copies: int, fast: dict | None = None) -> dict:
    """Issue 26: quanta's default JPEG path (and ``--fast``) against Pillow optimize and Pillow
    progressive, whole processes: one Kodak image, one 9.4-megapixel image (kodim01 tiled 4×6),
    and every Kodak image ``copies`` times in one command (2 processes each). The large image's
    MP/s are given whole and with each command's start-up subtracted (the same command on a
    16×16 image: interpreter, imports, reading and writing a file). ``fast``: the ``--fast``
    batch (with its Pillow pools) already measured in this run, reused."""
    from PIL import Image

    one = kodak / "kodim01.png"
    big, tiny = work / "big.png", work / "tiny.png"
    img = np.asarray(Image.open(one).convert("RGB"))
    Image.fromarray(np.ascontiguousarray(np.tile(img, (6, 4, 1)))).save(big)
    Image.fromarray(img[:16, :16]).save(tiny)
    big_mp = 3072 * 3072 / 1e6

    from bench.jpeg_rd import PEERS, jpegli

    with_jpegli = jpegli() is not None  # installed beside the cache on first use

    def commands(src: Path, tag: str) -> list[tuple[str, list[str]]]:
        return [
            ("quanta", [*QUANTA, "image", "encode", str(src), str(work / f"{tag}.q.jpg"), "--force"]),
            ("quanta --fast", [*QUANTA, "image", "encode", str(src), str(work / f"{tag}.f.jpg"), "--force",
                               "--fast"]),
            ("Pillow optimize", [sys.executable, "-c", PILLOW_ONE, str(src), str(work / f"{tag}.p.jpg")]),
            ("Pillow progressive", [sys.executable, "-c", PILLOW_ONE, str(src), str(work / f"{tag}.pp.jpg"),
                                    "progressive"]),
        ] + ([("jpegli (python -c)", [sys.executable, "-c", JPEGLI_ONE, str(PEERS), str(src),
                                      str(work / f"{tag}.j.jpg")])] if with_jpegli else [])

    single = alternate(commands(one, "one"), repeat)
    large = alternate(commands(big, "big"), max(1, repeat // 2))
    start = alternate(commands(tiny, "tiny"), repeat)
    rows = [{"encoder": k, "one_kodak_s": single[k], "large_s": large[k], "startup_s": start[k],
             "large_mp_per_s": big_mp / large[k],
             "large_mp_per_s_startup_subtracted": big_mp / max(large[k] - start[k], 1e-9)} for k in single]
    # the Pillow pools measured once: with the --fast batch when this run has it, else here
    batch = {"quanta": image_batch(work, kodak, copies, [], peers=fast is None),
             "quanta --fast": fast or image_batch(work, kodak, copies, ["--fast"], peers=False)}
    return {"rows": rows, "batch": batch, "large_shape": [3072, 3072],
            "targets": {"one_kodak_s": 0.20, "large_mp_per_s": 40.0, "batch_mp_per_s": 40.0}}


def print_images(r: dict) -> None:
    print_table("images (issue 26): whole processes, q75 (s, median; MP/s of the 9.4 MP image)",
                ["encoder", "one Kodak image", "9.4 MP image", "MP/s", "MP/s minus start-up", "start-up"],
                [[x["encoder"], f"{x['one_kodak_s']:.3f}", f"{x['large_s']:.3f}",
                  f"{x['large_mp_per_s']:.1f}", f"{x['large_mp_per_s_startup_subtracted']:.1f}",
                  f"{x['startup_s']:.3f}"] for x in r["rows"]])
    peers = next(b for b in r["batch"].values() if "peer" in b)
    print_table(f"{peers['images']} Kodak images in one command, {CORES} processes, whole process",
                ["encoder", "s", "MP/s"],
                [*([k, f"{b['quanta_s']:.2f}", f"{b['quanta_mp_per_s']:.1f}"] for k, b in r["batch"].items()),
                 [peers["peer"], f"{peers['peer_s']:.2f}", f"{peers['peer_mp_per_s']:.1f}"],
                 [peers["peer"] + " progressive", f"{peers['peer_progressive_s']:.2f}",
                  f"{peers['peer_progressive_mp_per_s']:.1f}"]])


def cluster_batch(work: Path, files: int) -> dict:
    """``--cluster local`` against the process pool on the same clips (issue 23: per-file task
    overhead): one command each, same options, alternating twice; outputs compared byte for byte."""
    src = work / "wavs"
    if not src.exists() or len(list(src.glob("*.wav"))) < files:
        audio_batch(work, files)
    names = sorted(p.name for p in src.glob("*.wav"))[:files]
    runs: dict[str, list[float]] = {"pool": [], "cluster": []}
    for _ in range(2):
        for kind in ("pool", "cluster"):
            out = work / f"flac.{kind}"
            shutil.rmtree(out, ignore_errors=True)
            extra = ["--cluster", "local"] if kind == "cluster" else []
            runs[kind].append(wall([*QUANTA, "audio", "requantize", *[str(src / n) for n in names], "-o",
                                    str(out), "--format", "flac", "--bits", "16", "--jobs", str(CORES),
                                    *extra]))
    same = all((work / "flac.pool" / f"{Path(n).stem}.flac").read_bytes()
               == (work / "flac.cluster" / f"{Path(n).stem}.flac").read_bytes() for n in names)
    pool, cluster = statistics.median(runs["pool"]), statistics.median(runs["cluster"])
    return {"files": len(names), "pool_s": pool, "cluster_s": cluster, "runs": runs,
            "throughput_ratio": pool / cluster, "target_ratio": 0.8, "identical_outputs": same}


def _same_fs(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b.parent if not b.exists() else b).st_dev
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--skip-long", action="store_true", help="Leave out the 10-minute file.")
    ap.add_argument("--cluster-files", type=int, default=600, help="Clips for --cluster local against "
                    "the pool (0: leave that section out).")
    ap.add_argument("--only-cluster", action="store_true", help="Run only the cluster section.")
    ap.add_argument("--only-images", action="store_true", help="Run only the images section (issue 26).")
    ap.add_argument("--work", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    args = ap.parse_args()
    # A user's Python caches compiled bytecode; this machine's environment turns that off, which
    # would have every process compile quanta's modules again (~40 ms): measure as users run it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    ensure_sox()
    kodak = data_dir() / "kodak"
    work = args.work or Path(tempfile.mkdtemp(prefix="quanta-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"cores": CORES}
    if args.only_images:
        res["images"] = r = images(work, kodak, args.repeat, args.copies)
        print_images(r)
        path = write_json("startup_images", res)
        console.print(f"{machine()}; wrote {path}")
        return
    if args.cluster_files:
        res["cluster_batch"] = c = cluster_batch(work, args.cluster_files)
        print_table("--cluster local against the process pool, one command each (s, median of 2)",
                    ["files", "pool", "cluster", "throughput ratio", "target", "identical outputs"],
                    [[c["files"], f"{c['pool_s']:.2f}", f"{c['cluster_s']:.2f}",
                      f"{c['throughput_ratio']:.2f}×", "≥ 0.8×", "yes" if c["identical_outputs"] else "NO"]])
    if args.only_cluster:
        write_json("startup_batch_cluster", res)
        return
    res["startup"] = startup(work, kodak, args.repeat)
    print_table(
        "start-up: one file, whole process (s, median)",
        ["job", "quanta", "target", "peer", "peer s"],
        [
            [r["job"], f"{r['quanta_s']:.3f}", f"≤ {r['target_s']}", r["peer"], f"{r['peer_s']:.3f}"]
            for r in res["startup"]
        ],
    )
    if not args.skip_long:
        res["long"] = long_file(work, max(1, args.repeat // 2))
        print_table(
            "10-minute 48 kHz stereo file (s, median)",
            ["job", "quanta", "peer", "peer s", "ratio", "target"],
            [
                [
                    r["job"],
                    f"{r['quanta_s']:.2f}",
                    r["peer"],
                    f"{r['peer_s']:.2f}",
                    f"{r['ratio']:.2f}×",
                    f"≤ {r['target_ratio']}×",
                ]
                for r in res["long"]
            ],
        )
    res["audio_batch"] = a = audio_batch(work, args.files)
    res["image_batch"] = b = image_batch(work, kodak, args.copies)
    print_table(
        "batches: one command, whole process",
        ["job", "quanta", "peer", "peer"],
        [
            [
                f"{a['files']} WAV → FLAC --shape auto",
                f"{a['quanta_s']:.1f} s, {a['quanta_files_per_s']:.1f} files/s",
                a["peer"],
                f"{a['peer_s']:.1f} s, {a['peer_files_per_s']:.1f} files/s",
            ],
            [
                f"{b['images']} Kodak → JPEG q75",
                f"{b['quanta_s']:.2f} s, {b['quanta_mp_per_s']:.1f} MP/s (target ≥ 40)",
                b["peer"],
                f"{b['peer_s']:.2f} s, {b['peer_mp_per_s']:.1f} MP/s",
            ],
        ],
    )
    res["images"] = r = images(work, kodak, args.repeat, args.copies, fast=b)
    print_images(r)
    path = write_json("startup_batch", res)
    console.print(f"{machine()}; wrote {path}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
