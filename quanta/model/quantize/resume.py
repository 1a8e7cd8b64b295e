"""Resumable runs (``quantize --resume``): a work folder beside the output keeps what a run has
finished, so that an interrupted run — Ctrl-C, SIGTERM, a killed process — continues from its
last finished block and writes the same bytes as a run never interrupted.

The folder ``OUT.quanta-work`` holds:

* ``run.json``: what the run is (source, its files' sizes and times, every option, the seed,
  quanta's version); a folder made by another command is refused, never mixed in;
* ``table.safetensors``: the sensitivity pass's loss table (the mixed plan is chosen from it
  again, the same way);
* ``block-NNNN.safetensors``: each finished block's quantized layers (codes, scales, zero
  points, codebook, bias, AWQ's input scale, as the quantizer returned them) and its float
  parameters as the block left them (AWQ folds scales into norms);
* ``inputs.safetensors``: the calibration activations entering the next block (float32, as the
  engine holds them) and that block's number — the only state carried from block to block.

Every file is written to a temporary name and renamed, so a file is whole or absent; the
inputs file is written after its block's file, so the number it records never runs ahead of the
blocks on disk. Without ``--resume`` nothing is written here and an interrupted run leaves
nothing behind; a run that finishes removes its work folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from quanta.errors import InputError

SUFFIX = ".quanta-work"
_QW_FIELDS = ("bits", "group_size", "method", "in_features", "sym")


def work_folder(out: Path | str) -> Path:
    """The work folder of the output ``out``: ``OUT.quanta-work`` beside it."""
    out = Path(out)
    return out.with_name(out.name + SUFFIX)


def _source_identity(src: str) -> list:
    """Names, sizes and modification times of the source's files (a changed source is a
    different run)."""
    p = Path(src)
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else []
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


class WorkFolder:
    """The checkpoints of one run (:mod:`quanta.model.quantize.resume`)."""

    def __init__(self, path: Path, run: dict) -> None:
        self.path = path
        self.run = run

    @classmethod
    def open(cls, path: Path | str, *, src: str, options: dict, seed: int) -> WorkFolder:
        """The work folder ``path`` for this run: created if absent, continued if it was made by
        the same run, refused (one line) if by another."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            release = version("quanta")
        except PackageNotFoundError:
            release = "unknown"
        path = Path(path)
        run = {"source": str(Path(src).resolve()) if Path(src).exists() else str(src),
               "files": _source_identity(str(src)), "options": options, "seed": seed,
               "quanta": release}
        run = json.loads(json.dumps(run, default=str))
        if path.exists():
            try:
                before = json.loads((path / "run.json").read_text())
            except (OSError, ValueError):
                before = None
            if before != run:
                raise InputError(f"{path}: a work folder of another run (other source, options or "
                                 "seed); remove it or run the same command")
            return cls(path, run)
        path.mkdir(parents=True)
        _write_text(path / "run.json", json.dumps(run, indent=1))
        return cls(path, run)

    # -- the sensitivity pass's table --------------------------------------------------------
    def table(self) -> dict | None:
        """The saved loss table (unit name → float64 array), or None."""
        f = self.path / "table.safetensors"
        if not f.exists():
            return None
        from safetensors.numpy import load_file

        meta = _metadata(f)
        arrays = load_file(str(f))
        return {n: arrays[str(k)] for k, n in enumerate(json.loads(meta["names"]))}

    def save_table(self, table: dict) -> None:
        from safetensors.numpy import save_file

        names = list(table)
        _atomic(self.path / "table.safetensors", lambda tmp: save_file(
            {str(k): table[n] for k, n in enumerate(names)}, str(tmp), metadata={"names": json.dumps(names)}))

    # -- blocks ----------------------------------------------------------------------------
    def progress(self) -> tuple[int, list[torch.Tensor] | None]:
        """(the first block not finished, the activations entering it) — (0, None) for a new run."""
        f = self.path / "inputs.safetensors"
        if not f.exists():
            return 0, None
        from safetensors.torch import load_file

        x = load_file(str(f))
        return int(_metadata(f)["next"]), [x[str(w)] for w in range(len(x))]  # (1, tokens, hidden) each

    def save_block(self, i: int, layers: dict[str, tuple], params: dict[str, torch.Tensor],
                   inputs: list[torch.Tensor]) -> None:
        """Block ``i`` is finished: its layers (name → (QuantizedWeight, bias, input scale)), its
        float parameters, and the activations ``inputs`` entering block ``i + 1`` (written window
        by window, never stacked into a copy)."""
        from quanta.model.formats import safetensors_out

        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, dict] = {}
        for name, (qw, bias, scale) in layers.items():
            meta[name] = {k: getattr(qw, k) for k in _QW_FIELDS}
            parts = {"codes": qw.codes, "scales": qw.scales, "zeros": qw.zeros, "bias": bias,
                     "input_scale": scale,
                     "codebook": None if qw.codebook is None else torch.from_numpy(qw.codebook)}
            for k, t in parts.items():
                if t is not None:
                    tensors[f"{name}:{k}"] = t.detach().contiguous()
        for n, p in params.items():
            tensors[f"param:{n}"] = p.detach().contiguous()
        _atomic(self.path / f"block-{i:04d}.safetensors",
                lambda tmp: safetensors_out.write(tmp, tensors, metadata={"layers": json.dumps(meta)}))
        _atomic(self.path / "inputs.safetensors", lambda tmp: safetensors_out.write(
            tmp, {str(w): x for w, x in enumerate(inputs)}, metadata={"next": str(i + 1)}))

    def block(self, i: int) -> tuple[dict[str, tuple], dict[str, torch.Tensor]]:
        """Block ``i`` as :meth:`save_block` kept it: (layers, float parameters)."""
        import numpy as np
        from safetensors.torch import load_file

        from quanta.model.quantize.quantizers import QuantizedWeight

        f = self.path / f"block-{i:04d}.safetensors"
        tensors = load_file(str(f))
        meta = json.loads(_metadata(f)["layers"])
        layers = {}
        for name, fields in meta.items():
            def get(k: str, n: str = name) -> torch.Tensor | None:
                return tensors.get(f"{n}:{k}")

            cb = get("codebook")
            qw = QuantizedWeight(get("codes"), get("scales"), get("zeros"), fields["bits"],
                                 fields["group_size"], fields["method"], fields["in_features"],
                                 None if cb is None else np.asarray(cb.numpy()), fields["sym"])
            layers[name] = (qw, get("bias"), get("input_scale"))
        params = {k.removeprefix("param:"): v for k, v in tensors.items() if k.startswith("param:")}
        return layers, params

    def remove(self) -> None:
        """The run finished: its work folder goes."""
        shutil.rmtree(self.path, ignore_errors=True)


def _metadata(f: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(f), framework="np") as st:
        return st.metadata() or {}


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text))


__all__ = ["SUFFIX", "WorkFolder", "work_folder"]
