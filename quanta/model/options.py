"""The options of ``quanta model quantize``, typed and checked once (no torch at import).

The CLI builds an :class:`Options` (sizes already parsed to bytes); its ``__post_init__``
refuses every value that is wrong whatever the model is — ranges, choices, combinations, a
missing calibration file — before any weight is read. The plan (:mod:`quanta.model.quantize.plan`)
then refuses what is wrong for this model's layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quanta.model.quantize.methods import Method

FLOAT_DTYPES = ("float32", "bfloat16", "float16")
FORMATS = ("quanta", "gguf", "compressed-tensors")
#: calibration windows and tokens per window, by default
DEFAULT_SAMPLES = 64
DEFAULT_LENGTH = 256


@dataclass(frozen=True)
class Options:
    """bits: the layers' bits. group_size: weights per scale (None: the largest of 128/64/32
    dividing each layer's inputs; 0: one group per row). method: the rounding method
    (:data:`quanta.model.quantize.methods.METHODS`). sym: symmetric grids (no zero point).
    include/exclude: glob patterns of the layers quantized. head: quantize the output head too.
    float_dtype: the dtype of the tensors kept float. calib: a text file to calibrate on (None:
    the shipped WikiText-2 valid slice). calib_samples, calib_len: windows and tokens per window.
    format: ``quanta`` (a folder), ``gguf`` (one file) or ``compressed-tensors`` (the Hugging Face
    folder llm-compressor writes: transformers and vLLM load it). target_size (bytes) or target_bpw (bits
    per weight): mixed precision under that budget. embedding_bits: the token embedding's bits in
    a quanta folder (None: chosen with the layers; 0: kept float). uniform: every layer at
    ``bits`` (no sharing out of the bytes). verify: check the checksums of a quanta source.
    type: a llama.cpp file type (``Q4_K_M``, :data:`quanta.model.quantize.presets.PRESETS`) for a
    GGUF output: the file no larger than llama.cpp's, every tensor's type chosen by the measured
    sensitivity (with ``uniform``: llama.cpp's own type for each tensor, quanta's rounding).
    work: a work folder (``--resume``: :mod:`quanta.model.quantize.resume`) where the run keeps
    what it finishes and from which an interrupted run continues. max_memory: bytes the run may
    hold resident (``--max-memory``): the plan reads the embedding and head in smaller slices to
    stay under it, or refuses the command; the output's bytes do not depend on it."""

    bits: int = 4
    group_size: int | None = None
    method: str = "gptq"
    sym: bool = False
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ("lm_head",)
    head: bool = False
    float_dtype: str = "float32"
    calib: Path | None = None
    calib_samples: int = DEFAULT_SAMPLES
    calib_len: int = DEFAULT_LENGTH
    format: str = "quanta"
    target_size: int | None = None
    target_bpw: float | None = None
    embedding_bits: int | None = None
    uniform: bool = False
    verify: bool = True
    type: str | None = None
    work: Path | None = None
    max_memory: int | None = None

    def run_settings(self) -> dict:
        """Every option that decides the output (all but ``work`` and ``max_memory``), as JSON values."""
        import dataclasses

        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("work", "max_memory")}

    def __post_init__(self) -> None:
        from quanta.core._checks import check_bits, check_choice
        from quanta.errors import ConfigError, InputError

        check_choice(self.float_dtype, FLOAT_DTYPES, "float dtype")
        check_choice(self.format, FORMATS, "format")
        self._check_targets()
        self._check_type()
        if self.embedding_bits is not None and self.embedding_bits != 0:
            check_bits(int(self.embedding_bits), 2, 8, "embedding bits")
        if self.group_size is not None and self.group_size < 0:
            raise ConfigError(f"--group-size {self.group_size}: give 0 (one group per row) "
                              "or a positive number")
        mm = self.max_memory
        if mm is not None and (isinstance(mm, bool) or not isinstance(mm, int) or mm < 1):
            raise ConfigError(f"max memory {mm!r}: give a positive number of bytes (the CLI parses '6GB')")
        for name, value in (("--calib-samples", self.calib_samples), ("--calib-len", self.calib_len)):
            if value < 1:
                raise ConfigError(f"{name} {value}: give at least 1")
        if self.calib is not None and not Path(self.calib).is_file():
            raise InputError(f"{self.calib}: no such calibration text file")
        self._check_method()

    def _check_targets(self) -> None:
        from quanta.errors import ConfigError

        if self.target_size is not None and self.target_bpw is not None:
            raise ConfigError("give --target-size or --target-bpw, not both")
        size = self.target_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError(f"target size {self.target_size!r}: give a positive number of bytes "
                              "(the CLI parses '95MB' with quanta.units.parse_size)")
        bpw = self.target_bpw
        if bpw is not None and not (math.isfinite(float(bpw)) and 1.0 <= float(bpw) <= 32.0):
            raise ConfigError(f"--target-bpw {bpw}: give 1 to 32 bits per weight")

    def _check_type(self) -> None:
        from quanta.errors import ConfigError

        if self.type is None:
            return
        from quanta.model.quantize.presets import check_preset

        check_preset(self.type)
        if self.format != "gguf":
            raise ConfigError(f"--type {self.type} names a llama.cpp file type: it writes --format gguf, "
                              f"not {self.format}")
        if self.target_size is not None or self.target_bpw is not None:
            raise ConfigError(f"--type {self.type} sets the file's size (llama.cpp's {self.type}): "
                              "give it or --target-size/--target-bpw, not both")
        if self.group_size is not None or self.sym:
            raise ConfigError(f"--type {self.type} sets every tensor's grid: drop --group-size/--sym")

    def _check_method(self) -> None:
        from quanta.core._checks import check_bits, check_choice
        from quanta.model.formats.weight import BLOCK, gguf_type
        from quanta.model.quantize.methods import METHODS

        check_choice(self.method, tuple(METHODS), "method")
        m = METHODS[self.method]
        check_bits(self.bits, m.min_bits, m.max_bits, f"{self.method} bits")  # as the quantizer checks it
        if self.format == "gguf":
            self._check_gguf_method(m)
        if self.format == "gguf" and not self.mixed and self.type is None:
            gguf_type(self.bits, self.sym, BLOCK if self.group_size is None else self.group_size)
        if self.format == "compressed-tensors":
            from quanta.errors import ConfigError

            if self.mixed:
                raise ConfigError("--format compressed-tensors writes one scheme for every layer: "
                                  "--target-size/--target-bpw are for quanta folders and GGUF files")
            if m.own_codebook or m.fractional_zeros:
                raise ConfigError(f"--format compressed-tensors stores integer grids: {self.method} "
                                  "(a codebook or fractional zero points) cannot be written there")
            if self.embedding_bits:
                raise ConfigError("--format compressed-tensors keeps the embedding float "
                                  "(--embedding-bits is for quanta folders)")

    def _check_gguf_method(self, m: Method) -> None:
        from quanta.errors import ConfigError

        if m.own_codebook:
            raise ConfigError(f"--format gguf stores llama.cpp's block types: {self.method} (its own "
                              "codebook) cannot be written there (IQ4_NL's levels: rtn, mse, imatrix, gptq)")
        asymmetric = self.bits in (4, 5) and not (self.sym or self.mixed or self.type)
        if m.fractional_zeros and not asymmetric:
            raise ConfigError(f"--format gguf: {self.method}'s fractional zero points need an asymmetric "
                              "type for every layer (--bits 4 or 5 without --sym: Q4_1, Q5_1)")

    @property
    def mixed(self) -> bool:
        """Mixed precision under a budget: a size or bits-per-weight target, or a llama.cpp file
        type's size (``type`` without ``uniform``)."""
        return self.target_size is not None or self.target_bpw is not None or \
            (self.type is not None and not self.uniform)

    @property
    def plain(self) -> bool:
        """Nothing said of the grid beyond ``bits`` and the method: no ``uniform``, ``sym``,
        ``group_size``, ``type`` or target — the command whose bytes the measured sensitivity
        shares out (a quanta folder; a GGUF file as llama.cpp's Q4_0/Q5_0)."""
        return not (self.type or self.mixed or self.uniform or self.sym or self.group_size is not None)

    @property
    def excluded(self) -> tuple[str, ...]:
        """The ``exclude`` patterns in effect: with ``head``, the output head is not one of them."""
        return tuple(p for p in self.exclude if p != "lm_head") if self.head else self.exclude

    @property
    def writes_folder(self) -> bool:
        """A quanta model and a compressed-tensors model are folders; ``format="gguf"`` writes
        one file."""
        return self.format != "gguf"
