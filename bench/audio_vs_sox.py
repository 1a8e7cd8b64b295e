"""quanta's requantizer against SoX's `dither`, side by side, in one run.

    python bench/audio_vs_sox.py [--minutes 10] [--short 60] [--repeat 3] [--memory]

Installs SoX with apt-get when it is missing (a benchmark peer, not a runtime dependency).
Signals are quanta's music-like generator (chords over pink noise, fading to −90 dB), float32
stereo: a long file at 48 kHz and shorter ones at 44.1, 96 and 192 kHz. Every method turns them
into 16-bit WAV; each output is measured against the float original: threshold-weighted
(Terhardt, 20 Hz–20 kHz), A-weighted and unweighted residual levels and the peak residual,
all in dB re full-scale amplitude, and the noise-to-mask ratio per frame against the original's
masking threshold (:mod:`quanta.audio.masking`: median, 95th percentile, share of frames
above 0 dB). On the long file, whole-process wall time (medians of
``--repeat`` alternating runs) compares `quanta audio requantize` with `sox`.
``--memory`` also requantizes a 2-hour 96 kHz 24-bit stereo file (made by SoX) and reports the
peak RSS. Prints tables, writes bench/out/audio_vs_sox.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402

from bench._util import OUT, machine, write_json  # noqa: E402
from quanta.audio import generate as gen  # noqa: E402
from quanta.audio.analyze import analyze_file  # noqa: E402
from quanta.render.tables import console, print_table  # noqa: E402

QUANTA = [str(Path(sys.executable).parent / "quanta")]
SOX_FILTERS = ["lipshitz", "f-weighted", "modified-e-weighted", "improved-e-weighted", "gesemann",
               "shibata", "low-shibata", "high-shibata"]


def ensure_sox() -> str:
    sox = shutil.which("sox")
    if sox:
        return sox
    console.print("SoX not found: installing it with apt-get (benchmark set-up only)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "sox"], check=True, env=env)
    return shutil.which("sox") or sys.exit("SoX could not be installed")


def make_signal(rate: int, seconds: float, folder: Path) -> Path:
    path = folder / f"music_{rate}_{int(seconds)}s.wav"
    if path.exists():
        return path
    tmp = path.with_suffix(".part.wav")
    with sf.SoundFile(tmp, "w", samplerate=rate, channels=2, subtype="FLOAT") as f:
        for x in gen.blocks("music", seconds=seconds, rate_hz=rate, channels=2, seed=0):
            f.write(x)
    tmp.replace(path)
    return path


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def methods(rate: int, src: Path, folder: Path, bits: int = 16) -> list[tuple[str, list[str], Path]]:
    out = []
    stem, b = src.stem, str(bits)
    for label, extra in [("quanta tpdf (no shaping)", ["--shape", "none"]),
                         ("quanta --shape auto", ["--shape", "auto"]),
                         ("quanta --shape adaptive", ["--shape", "adaptive"])]:
        dst = folder / f"{stem}.q.{extra[1]}.wav"
        out.append((label, [*QUANTA, "audio", "requantize", str(src), str(dst), "--bits", b,
                            "--force", "--json", *extra], dst))
    sox = shutil.which("sox")
    out.append(("sox dither", [sox, "-V1", str(src), "-b", b, str(folder / f"{stem}.s.tpdf.wav"),
                               "dither"], folder / f"{stem}.s.tpdf.wav"))
    out.append(("sox dither -s", [sox, "-V1", str(src), "-b", b, str(folder / f"{stem}.s.s.wav"),
                                  "dither", "-s"], folder / f"{stem}.s.s.wav"))
    for name in SOX_FILTERS:
        dst = folder / f"{stem}.s.{name}.wav"
        out.append((f"sox dither -f {name}", [sox, "-V2", str(src), "-b", b, str(dst), "dither",
                                              "-f", name], dst))
    return out


def measure_rate(rate: int, src: Path, folder: Path, bits: int = 16) -> list[dict]:
    rows = []
    for label, cmd, dst in methods(rate, src, folder, bits):
        dst.unlink(missing_ok=True)
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0 or "filter is available" in r.stderr:
            dst.unlink(missing_ok=True)
            continue  # SoX has no such filter at this rate (it then falls back to plain TPDF)
        lv = analyze_file(dst, src).residual
        rows.append({"rate_hz": rate, "bits": bits, "method": label, "threshold_db": lv["threshold_db"],
                     "a_db": lv["a_db"], "unweighted_db": lv["unweighted_db"],
                     "peak_db": lv["peak_db"], "nmr_median_db": lv["nmr_median_db"],
                     "nmr_p95_db": lv["nmr_p95_db"], "nmr_above_0db": lv["nmr_frames_above_0db"]})
        dst.unlink()
    tpdf = next(r["threshold_db"] for r in rows if r["method"] == "quanta tpdf (no shaping)")
    for r in rows:
        r["vs_tpdf_db"] = r["threshold_db"] - tpdf
    return rows


def speed(src: Path, folder: Path, repeat: int) -> list[dict]:
    sox = shutil.which("sox")
    pairs = [
        ("quanta --shape auto", [*QUANTA, "audio", "requantize", str(src),
                                 str(folder / "t.q.wav"), "--force", "--json"],
         "sox dither -s", [sox, "-V1", str(src), "-b", "16", str(folder / "t.s.wav"), "dither", "-s"]),
        ("quanta tpdf", [*QUANTA, "audio", "requantize", str(src), str(folder / "t.q.wav"),
                         "--force", "--json", "--shape", "none"],
         "sox dither", [sox, "-V1", str(src), "-b", "16", str(folder / "t.s.wav"), "dither"]),
        ("quanta --shape adaptive", [*QUANTA, "audio", "requantize", str(src), str(folder / "t.q.wav"),
                                     "--force", "--json", "--shape", "adaptive"],
         "sox dither -s", [sox, "-V1", str(src), "-b", "16", str(folder / "t.s.wav"), "dither", "-s"]),
    ]
    rows = []
    for qlabel, qcmd, slabel, scmd in pairs:
        timed(qcmd)  # warm-up: numba's cache, the page cache
        timed(scmd)
        tq, ts = [], []
        for _ in range(repeat):
            tq.append(timed(qcmd))
            ts.append(timed(scmd))
        rows.append({"quanta": qlabel, "quanta_s": statistics.median(tq), "sox": slabel,
                     "sox_s": statistics.median(ts),
                     "ratio": statistics.median(tq) / statistics.median(ts)})
    for p in ("t.q.wav", "t.s.wav"):
        (folder / p).unlink(missing_ok=True)
    return rows


def memory(folder: Path) -> dict:
    big = folder / "big_96k_24bit_2h.wav"
    sox = shutil.which("sox")
    if not big.exists():
        subprocess.run([sox, "-V1", "-n", "-r", "96000", "-c", "2", "-b", "24", str(big),
                        "synth", "7200", "pinknoise", "vol", "0.3"], check=True)
    out = folder / "big.q.wav"
    t0 = time.perf_counter()
    # GNU time reports the command's own peak RSS. (wait4's ru_maxrss would also count the
    # pages of this benchmark process that the child held between fork and exec.)
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *QUANTA, "audio", "requantize", str(big),
                           str(out), "--force", "--json"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    t = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit("quanta failed on the 2-hour file")
    rss_kb = int(proc.stderr.strip().splitlines()[-1])
    out.unlink(missing_ok=True)
    return {"file": "2 h, 96 kHz, 24-bit, stereo (SoX pink noise)", "bytes": big.stat().st_size,
            "wall_s": t, "peak_rss_mb": rss_kb / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="long 48 kHz file (minutes)")
    ap.add_argument("--short", type=float, default=60.0, help="44.1/96/192 kHz files (seconds)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per command")
    ap.add_argument("--memory", action="store_true", help="also the 2-hour 96 kHz RSS check")
    ap.add_argument("--speed-only", action="store_true", help="only the wall-time comparison")
    args = ap.parse_args()
    ensure_sox()
    folder = OUT / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    long48 = make_signal(48000, args.minutes * 60, folder)
    files = {48000: long48, 44100: make_signal(44100, args.short, folder),
             96000: make_signal(96000, args.short, folder),
             192000: make_signal(192000, args.short, folder)}
    quality = []
    runs = [(rate, src, 16) for rate, src in files.items()] + \
        [(rate, files[rate], 8) for rate in (44100, 48000)]
    for rate, src, bits in [] if args.speed_only else runs:
        rows = measure_rate(rate, src, folder, bits)
        quality += rows
        print_table(f"{rate} Hz → {bits} bits, music-like, {sf.info(src).duration:.0f} s "
                    "(dB re full-scale amplitude)",
                    ["method", "threshold-wtd", "vs TPDF", "A-wtd", "unweighted", "peak", "NMR median",
                     "NMR p95", "> 0 dB"],
                    [[r["method"], f"{r['threshold_db']:.2f}", f"{r['vs_tpdf_db']:+.2f}",
                      f"{r['a_db']:.2f}", f"{r['unweighted_db']:.2f}", f"{r['peak_db']:.2f}",
                      f"{r['nmr_median_db']:.2f}", f"{r['nmr_p95_db']:.2f}",
                      f"{100 * r['nmr_above_0db']:.1f}%"]
                     for r in rows])
    timing = speed(long48, folder, args.repeat)
    print_table(f"whole-process wall time, {args.minutes:g} min 48 kHz stereo float → 16 bit "
                f"(median of {args.repeat}; {machine()})",
                ["quanta", "s", "SoX", "s", "quanta/SoX"],
                [[r["quanta"], f"{r['quanta_s']:.2f}", r["sox"], f"{r['sox_s']:.2f}",
                  f"{r['ratio']:.2f}"] for r in timing])
    summary = []
    for rate in ({} if args.speed_only else files):
        rows = [r for r in quality if r["rate_hz"] == rate and r["bits"] == 16]
        ours = next(r for r in rows if r["method"] == "quanta --shape auto")
        adaptive = next(r for r in rows if r["method"] == "quanta --shape adaptive")
        sox_rows = [r for r in rows if r["method"].startswith("sox") and r["method"] != "sox dither"]
        best = min(sox_rows, key=lambda r: r["threshold_db"])
        best_nmr = min(sox_rows, key=lambda r: r["nmr_median_db"])
        summary.append([rate, f"{ours['threshold_db']:.2f}", f"{ours['vs_tpdf_db']:+.2f}",
                        best["method"], f"{best['threshold_db']:.2f}",
                        f"{ours['threshold_db'] - best['threshold_db']:+.2f}",
                        f"{ours['nmr_median_db'] - best_nmr['nmr_median_db']:+.2f} ({best_nmr['method']})",
                        f"{adaptive['nmr_median_db'] - best_nmr['nmr_median_db']:+.2f}",
                        f"{adaptive['nmr_median_db'] - ours['nmr_median_db']:+.2f}"])
    if summary:
        print_table("threshold-weighted residual: quanta auto vs SoX's best at each rate",
                    ["rate", "quanta auto", "vs TPDF", "SoX best", "SoX dB", "quanta − SoX",
                     "NMR median: quanta auto − SoX's best", "adaptive − SoX's best", "adaptive − auto"],
                    summary)
    eight = []
    for rate in () if args.speed_only else (44100, 48000):
        rows = {r["method"]: r for r in quality if r["rate_hz"] == rate and r["bits"] == 8}
        sox_best = min((r for m, r in rows.items() if m.startswith("sox")), key=lambda r: r["nmr_above_0db"])
        eight.append([rate, *(f"{100 * rows[m]['nmr_above_0db']:.1f}% ({rows[m]['nmr_median_db']:+.1f})"
                              for m in ("quanta tpdf (no shaping)", "quanta --shape auto",
                                        "quanta --shape adaptive")),
                      f"{100 * sox_best['nmr_above_0db']:.1f}% ({sox_best['nmr_median_db']:+.1f}, "
                      f"{sox_best['method']})"])
    if eight:
        print_table("8 bits: share of frames with NMR > 0 dB (median NMR, dB)",
                    ["rate", "TPDF", "quanta auto", "quanta adaptive", "SoX's best"], eight)
    mem = memory(folder) if args.memory else None
    if mem:
        console.print(f"memory: {mem['file']} ({mem['bytes'] / 1e9:.2f} GB) requantized in "
                      f"{mem['wall_s']:.1f} s, peak RSS {mem['peak_rss_mb']:.0f} MB")
    path = write_json("audio_vs_sox_speed" if args.speed_only else "audio_vs_sox",
                      {"quality": quality, "timing": timing, "memory": mem})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
