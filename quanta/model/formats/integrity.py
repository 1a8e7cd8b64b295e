"""Checksums of the model files quanta writes, verified when they are read.

A quanta folder's ``quant_config.json`` carries, under ``sha256``, the digest of every tensor's
bytes in ``model.safetensors`` (by name, in sorted order) and of the config's layer, embedding
and model specs (:func:`folder_digest`); a GGUF file quanta wrote carries the sha256 of its
tensors' bytes in order under ``quanta.tensors_sha256`` (:func:`gguf_digest`). Loading checks
them (``--no-verify`` skips it): a flipped bit in a scale, a changed group size or a truncated
tensor is refused in one line instead of evaluating to a wrong number. Files without a checksum
(written before it, or by other tools) load as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from quanta.errors import InputError

#: the ``quant_config.json`` key of a quanta folder's checksum
FOLDER_KEY = "sha256"
#: the GGUF metadata key of a quanta GGUF file's checksum
GGUF_KEY = "quanta.tensors_sha256"


def digest(parts: Iterable[tuple[str, Any]], specs: Any = None) -> str:
    """sha256 over ``(name, bytes-like)`` pairs in the order given, then the specs as JSON."""
    hashes = ((name, hashlib.sha256(memoryview(data).cast("B")).digest()) for name, data in parts)
    return digest_of_hashes(hashes, specs)


def digest_of_hashes(parts: Iterable[tuple[str, bytes]], specs: Any = None) -> str:
    """:func:`digest` from each part's own sha256 (a writer that hashed the bytes as it wrote
    them: :mod:`quanta.model.formats.safetensors_out`)."""
    h = hashlib.sha256()
    for name, sha in parts:
        h.update(name.encode() + b"\0")
        h.update(sha)
    if specs is not None:
        h.update(json.dumps(specs, sort_keys=True, default=str).encode())
    return h.hexdigest()


def folder_specs(cfg: dict) -> dict:
    """What of ``quant_config.json`` decides how the tensors are read: the layer and embedding
    specs and the model's configuration (less the path it was loaded from, which differs per
    machine and decides nothing)."""
    specs = {k: cfg.get(k) for k in ("layers", "embedding", "model_config")}
    if isinstance(specs["model_config"], dict):
        specs["model_config"] = {k: v for k, v in specs["model_config"].items() if k != "_name_or_path"}
    return specs


def folder_digest(hashes: dict[str, bytes], cfg: dict) -> str:
    """The checksum of a quanta folder: its tensors (each one's sha256, by name, as the writer
    hashed them) and specs."""
    return digest_of_hashes(((k, hashes[k]) for k in sorted(hashes)), folder_specs(cfg))


def check_folder(raw: bytes, cfg: dict, where: str) -> None:
    """Verify a folder's ``model.safetensors`` bytes ``raw`` (bytes, or a memoryview of its map)
    and its config ``cfg`` against the checksum the config holds (nothing to do when it has none)."""
    expected = cfg.get(FOLDER_KEY)
    if expected is None:
        return
    try:
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(bytes(raw[8:8 + n]))
    except (ValueError, AttributeError):
        return  # the safetensors reader reports a malformed header itself
    base = 8 + n
    try:
        parts = [(k, memoryview(raw)[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
                 for k, v in sorted(header.items()) if k != "__metadata__"]
    except (KeyError, TypeError, IndexError):
        raise InputError(f"{where}: malformed tensor table") from None
    if not isinstance(header, dict):
        return
    if digest(parts, folder_specs(cfg)) != expected:
        raise InputError(f"{where}: checksum mismatch — the tensors or quant_config.json changed since "
                         "quanta wrote them (a damaged copy?); --no-verify loads it anyway")


def gguf_digest(tensors: Iterable[tuple[str, Any]]) -> str:
    """The checksum of a GGUF file's tensors, ``(name, array)`` in file order."""
    import numpy as np

    return digest((name, np.ascontiguousarray(a).reshape(-1).view(np.uint8)) for name, a in tensors)


def check_gguf(reader: Any, where: str) -> None:
    """Verify a GGUF file against ``quanta.tensors_sha256`` where quanta wrote one."""
    f = reader.fields.get(GGUF_KEY)
    if f is None:
        return
    if gguf_digest((t.name, t.data) for t in reader.tensors) != f.contents():
        raise InputError(f"{where}: checksum mismatch — the tensors changed since quanta wrote them "
                         "(a damaged copy?); --no-verify loads it anyway")
