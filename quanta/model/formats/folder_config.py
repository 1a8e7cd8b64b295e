"""A quanta folder's ``quant_config.json``: its format names and the checked read of it — no
torch, so that a folder the compiled kernels run (:mod:`quanta.model.runtime.native_folder`)
loads without PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quanta.errors import ConfigError, InputError
from quanta.model.formats.weight import folder_layout, layout_bytes

#: version 2: kernel-neutral codes and scales (:mod:`quanta.model.formats.stored`)
FORMAT = "quanta-quantized/2"
#: version 1: PyTorch's int4 packing stored as is (:mod:`quanta.model.formats.folder_v1`)
FORMAT_V1 = "quanta-quantized/1"
CONFIG = "quant_config.json"


def read_config(d: Path) -> dict:
    """The config of the quanta folder ``d``, its format and architecture checked (InputError)."""
    from quanta.model.arch import for_hf
    from quanta.model.sources.reading import read_json

    cfg = read_json(d / CONFIG)
    if not isinstance(cfg, dict) or cfg.get("format") not in (FORMAT, FORMAT_V1):
        raise InputError(f"{d}: unknown format {cfg.get('format') if isinstance(cfg, dict) else None!r}")
    try:
        for_hf(cfg.get("architecture"), str(d))
    except ConfigError as e:
        raise InputError(str(e)) from None
    if not isinstance(cfg.get("model_config"), dict):
        raise InputError(f"{d}: quant_config.json has no model_config object")
    return cfg


def check_spec(spec: Any, where: str) -> dict[str, Any]:
    """A spec read from a config, its fields checked and typed (:class:`InputError` if not): a
    weight's ``{"out", "in", "padded_in", "bits", "group_size", "sym", "method", "levels"}``."""
    if not isinstance(spec, dict):
        raise InputError(f"{where}: spec is not an object")
    try:
        out = {"out": int(spec["out"]), "in": int(spec["in"]), "padded_in": int(spec["padded_in"]),
               "bits": int(spec["bits"]), "group_size": int(spec["group_size"]), "sym": bool(spec["sym"]),
               "method": str(spec["method"]), "levels": int(spec.get("levels", 0))}
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{where}: malformed spec ({e})") from None
    if not 1 <= out["bits"] <= 8 or out["group_size"] < 1 or out["padded_in"] % out["group_size"] \
            or not 0 < out["in"] <= out["padded_in"] or out["out"] < 1 or not 0 <= out["levels"] <= 256 \
            or (out["levels"] and not out["sym"]):
        raise InputError(f"{where}: inconsistent spec {spec}")
    return out


def layout(spec: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    """The tensors a spec stores (:func:`~quanta.model.formats.weight.folder_layout`)."""
    out, width, g = spec["out"], spec["padded_in"], spec["group_size"]
    return folder_layout(out, width, spec["bits"], width // g, zeros=not spec["sym"], levels=spec["levels"])


def nbytes(spec: dict) -> int:
    """Bytes of the tensors a spec stores."""
    return layout_bytes(layout(spec))


__all__ = ["CONFIG", "FORMAT", "FORMAT_V1", "check_spec", "layout", "nbytes", "read_config"]
