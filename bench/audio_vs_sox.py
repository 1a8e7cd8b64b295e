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
peak RSS.

Beyond the long music-like file (issue 27): generated material of three kinds at 44.1 and
48 kHz — tonal (ten steady sines), transient (decaying noise bursts over digital silence) and
wideband (pink noise) — and every clip in ``../shared/data/audio``, each to 8 bits (and to 16
bits where the source has more), with TPDF, quanta's fixed and adaptive shaping, SoX
``dither -s`` and SoX's best filter at the rate; near-silence at 44.1/48/96 kHz (threshold-
weighted); CPU time (user + system) of every command; and a plot of one passage's error
spectra against the original's masking threshold (bench/out/audio/passage.png).
Prints tables, writes bench/out/audio_vs_sox.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from bench._util import OUT, machine, write_json  # noqa: E402
from quanta.audio import generate as gen  # noqa: E402
from quanta.audio.analyze import analyze_file  # noqa: E402
from quanta.audio.masking import frames_of, line_power, threshold_power  # noqa: E402
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


SHARED_AUDIO = ROOT.parent / "shared" / "data" / "audio"
MATERIAL_S = 20.0  # seconds of each generated material


def make_material(kind: str, rate: int, folder: Path) -> Path:
    """Generated stereo float32 material, seeded: ``tonal`` (quanta's ten-sine multitone at
    −6 dBFS), ``transient`` (noise bursts decaying in 30 ms, 5 per second, −6 to −36 dBFS, over
    digital silence) or ``wideband`` (pink noise at −20 dBFS RMS)."""
    path = folder / f"{kind}_{rate}.wav"
    if path.exists():
        return path
    n = int(MATERIAL_S * rate)
    rng = np.random.default_rng({"tonal": 1, "transient": 2, "wideband": 3}[kind])
    if kind == "tonal":
        x = gen.generate("multitone", seconds=MATERIAL_S, rate_hz=rate, channels=2, level_db=-6)
    elif kind == "transient":
        x = np.zeros((n, 2))
        burst = int(0.15 * rate)
        env = np.exp(-np.arange(burst) / (0.03 * rate))
        for start in range(0, n - burst, rate // 5):
            x[start:start + burst] = rng.standard_normal((burst, 2)) * env[:, None] * \
                10 ** (rng.uniform(-36, -6) / 20) / 3
    else:
        spec = np.fft.rfft(rng.standard_normal((n, 2)), axis=0)
        f = np.fft.rfftfreq(n, 1 / rate)
        spec[1:] /= np.sqrt(f[1:, None] / 1000)
        spec[0] = 0
        x = np.fft.irfft(spec, n, axis=0)
        x *= 10 ** (-20 / 20) / np.sqrt(np.mean(x ** 2))
    tmp = path.with_suffix(".part.wav")
    sf.write(tmp, np.clip(x, -1, 1).astype(np.float32), rate, subtype="FLOAT")
    tmp.replace(path)
    return path


def shared_clips() -> list[tuple[Path, int, list[int]]]:
    """The shared audio clips: (path, rate, target bits — 8, and 16 where the source has more)."""
    out = []
    for path in sorted(SHARED_AUDIO.glob("*.flac")):
        info = sf.info(path)
        src_bits = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24}.get(info.subtype, 32)
        targets = [b for b in (16, 8) if b < src_bits]
        if targets:
            out.append((path, info.samplerate, targets))
    return out


def silence_rows(folder: Path) -> list[dict]:
    """Threshold-weighted residual of near-silence — 2 s of pink noise at −100 dBFS RMS, below
    a 16-bit step, so that only the dither and its shaping are measured (digital silence is
    already on the grid: quanta copies it exactly, residual −inf) — at 16 bits, per rate."""
    rows = []
    for rate in (44100, 48000, 96000):
        src = folder / f"near_silence_{rate}.wav"
        if not src.exists():
            n = 2 * rate
            spec = np.fft.rfft(np.random.default_rng(4).standard_normal((n, 2)), axis=0)
            spec[1:] /= np.sqrt(np.fft.rfftfreq(n, 1 / rate)[1:, None] / 1000)
            spec[0] = 0
            x = np.fft.irfft(spec, n, axis=0)
            sf.write(src, (x * 1e-5 / np.sqrt(np.mean(x ** 2))).astype(np.float32), rate, subtype="FLOAT")
        for r in measure_rate(rate, src, folder, 16):
            if r["method"] in ("quanta tpdf (no shaping)", "quanta --shape auto", "quanta --shape adaptive",
                               "sox dither -s"):
                rows.append({"rate_hz": rate, "method": r["method"], "threshold_db": r["threshold_db"]})
    return rows


def passage_plot(src: Path, rows: list[dict], png: Path, *, at_s: float = 10.0, seconds: float = 1.0) -> None:
    """The error spectra of the kept outputs over one passage (power means over its frames)
    against the original's masking threshold, all in dB SPL per line (a full-scale sine at
    96 dB SPL, as the masking model reads levels)."""
    from quanta.render.plots import Series, spectrum_plot

    rate = sf.info(src).samplerate
    a, b = int(at_s * rate), int((at_s + seconds) * rate)
    ref = sf.read(src, start=a, stop=b, dtype="float64")[0][:, 0]
    fr = frames_of(ref.size, rate)
    f = fr.freqs_hz
    keep = (f >= 20) & (f <= 20000)
    thr = 10 * np.log10(threshold_power(line_power(ref, fr), f).mean(axis=0))
    curves = []
    for r in rows:
        if "kept" not in r:
            continue
        y = sf.read(r["kept"], start=a, stop=b, dtype="float64")[0][:, 0]
        err = 10 * np.log10(line_power(y - ref, fr).mean(axis=0))
        sox = r["method"].startswith("sox")
        role = "quanta" if "adaptive" in r["method"] else "peer" if sox else "quanta-alt"
        curves.append(Series(r["method"], f[keep], err[keep], role))
        Path(r.pop("kept")).unlink()
    spectrum_plot(curves, Series("masking threshold of the original", f[keep], thr[keep], "reference"),
                  title=f"error spectra against the masking threshold, {src.stem}, "
                        f"{at_s:g}–{at_s + seconds:g} s",
                  rate_hz=rate, ylabel="dB SPL per line (full-scale sine: 96 dB)", fit_threshold=True,
                  png=png)


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


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure_rate(rate: int, src: Path, folder: Path, bits: int = 16, *,
                 keep: tuple[str, ...] = ()) -> list[dict]:
    """Every method on ``src`` at ``bits``: levels, NMR and CPU time per row (the outputs of the
    methods named in ``keep`` are kept, their paths under the rows' ``"kept"``)."""
    rows = []
    for label, cmd, dst in methods(rate, src, folder, bits):
        dst.unlink(missing_ok=True)
        cpu = _cpu_s()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cpu = _cpu_s() - cpu
        if r.returncode != 0 or "filter is available" in r.stderr:
            dst.unlink(missing_ok=True)
            continue  # SoX has no such filter at this rate (it then falls back to plain TPDF)
        lv = analyze_file(dst, src).residual
        rows.append({"rate_hz": rate, "bits": bits, "method": label, "threshold_db": lv["threshold_db"],
                     "a_db": lv["a_db"], "itu468_db": lv["itu468_db"], "unweighted_db": lv["unweighted_db"],
                     "peak_db": lv["peak_db"], "nmr_median_db": lv["nmr_median_db"],
                     "nmr_p95_db": lv["nmr_p95_db"], "nmr_above_0db": lv["nmr_frames_above_0db"],
                     "cpu_s": cpu})
        if label in keep:
            rows[-1]["kept"] = str(dst)
        else:
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


def print_rows(title: str, rows: list[dict]) -> None:
    print_table(title, ["method", "threshold-wtd", "vs TPDF", "A-wtd", "468-wtd", "unweighted", "peak",
                        "NMR median", "NMR p95", "> 0 dB", "CPU s"],
                [[r["method"], f"{r['threshold_db']:.2f}", f"{r['vs_tpdf_db']:+.2f}", f"{r['a_db']:.2f}",
                  f"{r['itu468_db']:.2f}", f"{r['unweighted_db']:.2f}", f"{r['peak_db']:.2f}",
                  f"{r['nmr_median_db']:.2f}", f"{r['nmr_p95_db']:.2f}", f"{100 * r['nmr_above_0db']:.1f}%",
                  f"{r['cpu_s']:.2f}"] for r in rows])


COMPACT = ("quanta tpdf (no shaping)", "quanta --shape auto", "quanta --shape adaptive", "sox dither -s")


def other_material(folder: Path) -> list[dict]:
    """Generated tonal/transient/wideband material and the shared clips: rows per method,
    tagged with the material; one compact table of median NMR and frames above 0 dB."""
    groups = [(kind, make_material(kind, rate, folder), rate, bits)
              for kind in ("tonal", "transient", "wideband") for rate in (44100, 48000) for bits in (16, 8)]
    groups += [(path.name, path, rate, bits) for path, rate, targets in shared_clips() for bits in targets]
    out, table = [], []
    for name, src, rate, bits in groups:
        rows = measure_rate(rate, src, folder, bits)
        for r in rows:
            r["material"] = name
        out += rows
        by = {r["method"]: r for r in rows}
        sox = [r for r in rows if r["method"].startswith("sox") and r["method"] != "sox dither"]
        best = min(sox, key=lambda r: r["nmr_median_db"]) if sox else None
        cells = [f"{by[m]['nmr_median_db']:+.1f} / {100 * by[m]['nmr_above_0db']:.0f}%" if m in by else "–"
                 for m in COMPACT]
        cells.append(f"{best['nmr_median_db']:+.1f} / {100 * best['nmr_above_0db']:.0f}% "
                     f"({best['method'].removeprefix('sox dither ')})" if best else "–")
        table.append([name, rate, bits, *cells, f"{by['quanta --shape adaptive']['cpu_s']:.2f}"])
    print_table("other material: NMR median (dB) / frames above 0 dB",
                ["material", "rate", "bits", "TPDF", "quanta auto", "quanta adaptive", "SoX -s", "SoX's best",
                 "adaptive CPU s"], table)
    return out


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
    plot_methods = ("quanta --shape auto", "quanta --shape adaptive", "sox dither -s")
    for rate, src, bits in [] if args.speed_only else runs:
        keep = plot_methods if (rate, bits) == (48000, 16) else ()
        rows = measure_rate(rate, src, folder, bits, keep=keep)
        quality += rows
        print_rows(f"{rate} Hz → {bits} bits, music-like, {sf.info(src).duration:.0f} s "
                   "(dB re full-scale amplitude)", rows)
        if keep:
            passage_plot(src, rows, folder / "passage.png")
    others = [] if args.speed_only else other_material(folder)
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
    silence = [] if args.speed_only else silence_rows(folder)
    if silence:
        rates = sorted({r["rate_hz"] for r in silence})
        level = {(r["method"], r["rate_hz"]): r["threshold_db"] for r in silence}
        print_table("near-silence (pink noise at −100 dBFS), 2 s → 16 bits: threshold-weighted residual (dB)",
                    ["method", *map(str, rates)],
                    [[m, *(f"{level[m, k]:.2f}" for k in rates)] for m in dict.fromkeys(m for m, _ in level)])
    mem = memory(folder) if args.memory else None
    if mem:
        console.print(f"memory: {mem['file']} ({mem['bytes'] / 1e9:.2f} GB) requantized in "
                      f"{mem['wall_s']:.1f} s, peak RSS {mem['peak_rss_mb']:.0f} MB")
    path = write_json("audio_vs_sox_speed" if args.speed_only else "audio_vs_sox",
                      {"quality": quality, "other_material": others, "silence": silence, "timing": timing,
                       "memory": mem})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
