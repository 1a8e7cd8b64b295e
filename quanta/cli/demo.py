"""What ``quanta demo`` measures and prints: one section per medium, on built-in defaults."""

from __future__ import annotations

import tempfile
from pathlib import Path

from quanta.cli.common import console, print_table


def core_section() -> list[dict]:
    """SNR of N-bit rounding of a sine, N = 2..16, with and without TPDF, against the law."""
    from quanta.core.sine import sine_snr_db

    rows = []
    for bits in range(2, 17):
        plain = sine_snr_db(bits)
        tpdf = sine_snr_db(bits, dither="tpdf")
        rows.append({"bits": bits, "law_db": plain["law_db"], "rounding_db": plain["snr_db"],
                     "tpdf_db": tpdf["snr_db"], "tpdf_expected_db": tpdf["expected_db"]})
    return rows


def print_core(rows: list[dict]) -> None:
    print_table(
        "core: SNR of a 997 Hz sine at 48 kHz rounded to N bits (2^18 samples, seed 0)",
        ["bits", "6.02N+1.76 dB", "rounding dB", "Δ vs law", "TPDF dB", "TPDF expected", "Δ TPDF"],
        [[r["bits"], r["law_db"], r["rounding_db"], f"{r['rounding_db'] - r['law_db']:+.2f}",
          r["tpdf_db"], r["tpdf_expected_db"], f"{r['tpdf_db'] - r['tpdf_expected_db']:+.2f}"]
         for r in rows])
    console.print("Rounding: AES17 full-scale sine (peaks on the outermost levels). TPDF: sine at "
                  "1 − 1 LSB (no clipping); expected = signal power / (Δ²/12 + Δ²/6), 4.77 dB "
                  "below plain rounding.\n")


def audio_section(seconds: float = 10.0) -> dict:
    """A generated music-like signal at 48 kHz to 16 bits: each method's measured residual."""
    import soundfile as sf

    from quanta.audio import generate
    from quanta.audio.analyze import analyze_file, dynamic_range_db
    from quanta.audio.requantize import requantize_file

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "music.wav"
        sf.write(src, generate.generate("music", seconds=seconds, rate_hz=48000, channels=2),
                 48000, subtype="FLOAT")
        for label, dither, shape in [("plain rounding", "none", "none"), ("RPDF", "rpdf", "none"),
                                     ("TPDF", "tpdf", "none"), ("TPDF + shibata", "tpdf", "shibata"),
                                     ("TPDF + designed (auto)", "tpdf", "auto")]:
            dst = Path(tmp) / f"{dither}-{shape}.wav"
            rep = requantize_file(src, dst, 16, dither=dither, shape=shape, force_dither=True)
            lv = analyze_file(dst, src)["residual"]
            rows.append({"method": label, "filter": rep["shape"], "threshold_db": lv["threshold_db"],
                         "a_db": lv["a_db"], "unweighted_db": lv["unweighted_db"],
                         "peak_db": lv["peak_db"], "wall_s": rep["wall_s"]})
    dr = {d: dynamic_range_db(16, dither=d)["dynamic_range_db"] for d in ("none", "rpdf", "tpdf")}
    return {"seconds": seconds, "rows": rows, "aes17_dynamic_range_db": dr}


def print_audio(res: dict) -> None:
    tpdf = next(r for r in res["rows"] if r["method"] == "TPDF")["threshold_db"]
    print_table(
        f"audio: {res['seconds']:g} s of music-like stereo at 48 kHz → 16 bits; residual in dB "
        "re full scale",
        ["method", "threshold-weighted", "vs TPDF", "A-weighted", "unweighted", "peak"],
        [[r["method"], f"{r['threshold_db']:.2f}", f"{r['threshold_db'] - tpdf:+.2f}",
          f"{r['a_db']:.2f}", f"{r['unweighted_db']:.2f}", f"{r['peak_db']:.2f}"]
         for r in res["rows"]])
    dr = res["aes17_dynamic_range_db"]
    console.print(f"AES17 dynamic range at 16 bits (20 Hz–20 kHz): rounding {dr['none']:.2f} dB, "
                  f"RPDF {dr['rpdf']:.2f} dB, TPDF {dr['tpdf']:.2f} dB (theory 98.88 / 95.87 / "
                  "94.12).\n")


def image_section() -> dict:
    """Kodak image 23 at qualities 50/75/90: quanta's encoder against Pillow's."""
    import numpy as np
    from PIL import Image

    from quanta.data import data_dir
    from quanta.image.curve import curve

    src = data_dir() / "kodak" / "kodim23.png"
    if src.exists():
        img = np.asarray(Image.open(src).convert("RGB"))
        name = src.name
    else:  # no shared data: a synthetic image, so the demo still measures something real
        y, x = np.mgrid[0:256, 0:384]
        img = np.stack([(x * 255 // 383), (y * 255 // 255), ((x ^ y) & 255)], -1).astype(np.uint8)
        name = "synthetic gradient"
    return {"image": name, **curve(img, [50, 75, 90])}


def print_image(res: dict) -> None:
    rows = [[q["quality"], f"{q['bpp']:.3f}", f"{q['psnr_db']:.2f}", f"{p['bpp']:.3f}",
             f"{p['psnr_db']:.2f}", f"{100 * (q['bytes'] / p['bytes'] - 1):+.2f}%",
             f"{q['encode_s'] * 1000:.0f} ms"]
            for q, p in zip(res["quanta"], res["pillow"])]
    print_table(f"image: {res['image']} as JPEG, Annex K tables, 4:2:0, optimized Huffman — "
                "quanta vs Pillow", ["quality", "quanta bpp", "quanta PSNR", "Pillow bpp",
                                     "Pillow PSNR", "size Δ", "quanta time"], rows)


def model_section(chunks: int = 4) -> dict:
    """SmolLM2-135M (the dequantized GGUF as reference) against int8 and int4 RTN copies."""
    import copy

    from quanta.model.apply import quantize_model, weight_stats
    from quanta.model.evaluate import evaluate_causal_lm, test_text, windows
    from quanta.model.load import load_model

    ref = load_model("smollm2")
    wins = windows(ref.tokenizer, test_text(), bos_id=ref.info["metadata"]["bos_token_id"],
                   n_chunks=chunks)
    base = evaluate_causal_lm(ref.model, wins, keep_logprobs=True)
    lp = base.pop("logprobs")
    rows = [{"model": "float32 reference", **base, **weight_stats(ref.model)}]
    for name, cfg in (("int8 g32 RTN", {"bits": 8, "group_size": 32}),
                      ("int4 g128 RTN", {"bits": 4, "group_size": 128}),
                      ("NF4 g128", {"bits": 4, "group_size": 128, "method": "nf4"})):
        m = copy.deepcopy(ref.model)
        rep = quantize_model(m, **cfg)
        r = evaluate_causal_lm(m, wins, reference=lp)
        rows.append({"model": name, **r, **{k: v for k, v in rep.items() if k != "layers"}})
        del m
    return {"chunks": chunks, "rows": rows}


def print_model(res: dict) -> None:
    print_table(f"model: SmolLM2-135M (GGUF Q4_1 dequantized = reference), WikiText-2 test, "
                f"{res['chunks']}×512 tokens (`quanta model eval` uses 40)",
                ["model", "PPL", "KLD", "top-1", "bits/weight", "MB", "prefill tok/s"],
                [[r["model"], f"{r['perplexity']:.2f}",
                  f"{r['kld']:.5f}" if "kld" in r else "—",
                  f"{100 * r['top1_agreement']:.1f}%" if "kld" in r else "—",
                  f"{r['bits_per_weight']:.2f}",
                  f"{r['weight_bytes'] / 1e6:.0f}", f"{r['prefill_tokens_per_s']:.0f}"]
                 for r in res["rows"]])
