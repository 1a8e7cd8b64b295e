"""The golden cases: small, representative outputs of every medium, each reduced to one sha256.

libjpeg-turbo pins its encoder's bytes with MD5 tests labelled by the stages they cover; these
do the same for quanta, so that a refactor which claims "the same bytes" is checked, and a
change that must alter bytes shows up as a diff of ``digests.json`` in review. Each case is a
function of a scratch folder returning the output's path; :func:`digest` hashes a file, or a
folder's files by relative name (with the absolute source paths, which differ per machine,
left out of a quanta folder's config).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np


def digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, in sorted order)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        data = f.read_bytes()
        if f.name == "quant_config.json":
            cfg = json.loads(data)
            cfg.pop("source", None)  # absolute paths: they differ per machine
            cfg.get("model_config", {}).pop("_name_or_path", None)
            data = json.dumps(cfg, sort_keys=True).encode()
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


# ----------------------------------------------------------------------------- images

def _image(folder: Path, seed: int = 0, size: tuple[int, int] = (96, 128)) -> Path:
    from PIL import Image

    from quanta.image.io import synthetic_image

    p = folder / f"img{seed}.png"
    if not p.exists():
        Image.fromarray(synthetic_image(seed, size)).save(p)
    return p


def _jpeg(**options) -> Callable[[Path], Path]:
    def case(folder: Path) -> Path:
        from quanta.media import get

        dst = folder / "out.jpg"
        get("image").write(_image(folder), dst, get("image").options(**options), force=True)
        return dst
    return case


# ----------------------------------------------------------------------------- audio

def _audio(**options) -> Callable[[Path], Path]:
    def case(folder: Path) -> Path:
        from quanta.media import get

        src = folder / "music.wav"
        if not src.exists():
            from quanta.audio.generate import write

            write(src, "music", seconds=0.5, rate_hz=44100, channels=2, seed=1)
        dst = folder / "out.wav"
        get("audio").write(src, dst, get("audio").options(**options), force=True, seed=7)
        return dst
    return case


# ----------------------------------------------------------------------------- models

def _tiny_hf(folder: Path) -> Path:
    from quanta.model.sources.tiny import write_hf_folder

    p = folder / "tiny-llama"
    return p if p.exists() else write_hf_folder(p, seed=0)


def _tiny_gguf(folder: Path) -> Path:
    from quanta.model.sources.tiny import tiny_llama
    from tests.model.conftest import write_tiny_gguf

    p = folder / "tiny.gguf"
    return p if p.exists() else write_tiny_gguf(tiny_llama(), p)


def _wide_gguf(folder: Path) -> Path:
    """A 2-layer tiny Llama 256 wide (rows of super-blocks) as a GGUF file."""
    from quanta.model.sources.tiny import tiny_model
    from tests.model.conftest import write_tiny_gguf

    p = folder / "wide.gguf"
    return p if p.exists() else write_tiny_gguf(tiny_model("llama", seed=0, hidden=256), p)


def _model(source: Callable[[Path], Path], name: str, **options) -> Callable[[Path], Path]:
    def case(folder: Path) -> Path:
        from quanta.media import get

        dst = folder / name
        m = get("model")
        m.write(source(folder), dst, m.options(**{"calib_samples": 8, "calib_len": 64, **options}),
                force=True, seed=0)
        return dst
    return case


#: name → (what it covers, libjpeg-turbo style, and how to make it)
CASES: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "jpeg-default": ("JPEG best path: quanta tables, trellis, auto subsampling, scan choice, q75",
                     _jpeg()),
    "jpeg-fast": ("JPEG --fast: Annex K tables, nearest rounding, baseline 4:2:0, 2-pass Huffman",
                  _jpeg(fast=True)),
    "jpeg-progressive-444-q90": ("JPEG best path, progressive, 4:4:4, q90", _jpeg(progressive=True,
                                                                                 subsampling="4:4:4",
                                                                                 quality=90)),
    "jpeg-baseline-420-restart": ("JPEG best path, baseline, 4:2:0, restart interval 2",
                                  _jpeg(progressive=False, subsampling="4:2:0", restart_interval=2)),
    "jpeg-optimize-tables": ("JPEG best path with per-image table design", _jpeg(optimize_tables=True)),
    "jpeg-target-size": ("JPEG size target search (3000 bytes)", _jpeg(target=("size", 3000.0))),
    "jpeg-target-psnr": ("JPEG PSNR target search (34 dB)", _jpeg(target=("psnr", 34.0))),
    "audio-16-auto": ("audio 24→16 bit, TPDF, designed shaping (auto), seed 7", _audio(bits=16)),
    "audio-8-shibata": ("audio → 8 bit, TPDF, shibata shaping at 44.1 kHz", _audio(bits=8, shape="shibata")),
    "audio-12-plain": ("audio → 12 bit, no dither, no shaping", _audio(bits=12, dither="none", shape="none")),
    "model-rtn-uniform": ("tiny Llama (HF) → quanta folder, RTN 4-bit, --uniform, auto groups",
                          _model(_tiny_hf, "rtn4", method="rtn", uniform=True)),
    "model-gptq-default": ("tiny Llama (HF) → quanta folder, the plain default: GPTQ, bytes shared out",
                           _model(_tiny_hf, "gptq4", method="gptq")),
    "model-imatrix-g32": ("tiny Llama (HF) → quanta folder, imatrix 4-bit g32", _model(
        _tiny_hf, "imat", method="imatrix", group_size=32)),
    "model-awq-8": ("tiny Llama (HF) → quanta folder, AWQ 8-bit", _model(_tiny_hf, "awq8", method="awq",
                                                                       bits=8)),
    "model-rtn-mixed-bpw": ("tiny Llama (HF) → quanta folder, RTN, mixed precision at 5 bits/weight",
                            _model(_tiny_hf, "mixed", method="rtn", target_bpw=5.0)),
    "gguf-rtn-q4_1": ("tiny Llama (GGUF) → GGUF Q4_1, RTN", _model(_tiny_gguf, "q41.gguf", method="rtn",
                                                                   format="gguf")),
    "gguf-gptq-q8_0": ("tiny Llama (GGUF) → GGUF Q8_0, GPTQ", _model(_tiny_gguf, "q80.gguf", method="gptq",
                                                                     format="gguf", bits=8)),
    "gguf-imatrix-mixed": ("tiny Llama (GGUF) → GGUF, imatrix, mixed precision at 5 bits/weight",
                           _model(_tiny_gguf, "mix.gguf", method="imatrix", format="gguf",
                                  target_bpw=5.0)),
    "gguf-rtn-iq3_s": ("tiny Llama 256 wide (GGUF) → GGUF --type IQ3_S --uniform, RTN (lattice types)",
                       _model(_wide_gguf, "iq3s.gguf", method="rtn", format="gguf", type="IQ3_S",
                              uniform=True)),
}


def compute(folder: Path, names: list[str] | None = None) -> dict[str, str]:
    """The digest of each case (all, or ``names``), made in ``folder``."""
    return {n: digest(CASES[n][1](folder)) for n in (names or list(CASES))}


def _main(argv: list[str]) -> None:
    """``python -m tests.golden.cases [NAME ...]``: rewrite digests.json (after a change that must
    alter bytes; say why in the commit) — every case, or only the named ones (the others' entries
    are left as they are). A case's other digests ("elsewhere") are kept while its digest stays
    the same; a case whose bytes changed keeps only this machine's digest (the other
    environments' must be recorded there again). ``--elsewhere LABEL``: record this machine's
    digests, where they differ, as the cases' bytes in another numerical environment (MKL and
    PyTorch take other code paths on other processors: the float cases' last bits move), leaving
    the pinned ones alone."""
    import tempfile

    path = Path(__file__).parent / "digests.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    names = [] if argv[:1] == ["--elsewhere"] else argv
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"no golden case {unknown[0]!r} (cases: {', '.join(CASES)})")
    with tempfile.TemporaryDirectory() as tmp:
        got = compute(Path(tmp), names or None)
    if names:
        got = {n: got[n] if n in got else old[n]["sha256"] for n in CASES}
    if argv[:1] == ["--elsewhere"] and len(argv) == 2:
        data = old
        for n, d in got.items():
            if d != data[n]["sha256"]:
                data[n].setdefault("elsewhere", {})[argv[1]] = d
    else:
        data = {n: {"covers": CASES[n][0], "sha256": d} | (
            {"elsewhere": old[n]["elsewhere"]} if old.get(n, {}).get("sha256") == d and "elsewhere" in old[n]
            else {}) for n, d in got.items()}
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {len(data)} digests")


if __name__ == "__main__":
    import sys

    np.seterr(all="ignore")
    _main(sys.argv[1:])
