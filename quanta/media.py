"""The media registry: one line registers a medium (as SoX's ``EFFECT(x)`` registers an effect).

A medium is a package with a module that keeps the **medium contract**:

``quantize_file(src, dst, *, seed=0, progress=None, **options) -> Report``
    Quantize the file (or folder) ``src`` into ``dst``, written in place; ``progress(done,
    total)``; the same seed gives the same bytes. Bad input raises a
    :class:`quanta.errors.QuantaError`.
``example(folder, *, seed=0) -> Path``
    Write a small valid input into ``folder`` and return its path (the contract tests and the
    tour use it; it needs no shared data).
``tour(*, quick, progress, **settings) -> TourSection`` (optional)
    The medium's part of ``quanta tour`` (:mod:`quanta.render.tour`): a measured sweep over
    precision, with figures, tables, players or crops, and its summary rows.
``check_options(**options)`` (optional)
    Refuse options that are wrong for every input, before any file is read (a batch calls it
    once instead of failing every file alike).
``owns(path) -> bool`` (folder media only)
    Whether an existing output folder is one this medium wrote (``--force`` replaces only those).

The CLI (one command group per medium), ``quanta info`` (each medium's optional packages),
``quanta tour`` and the contract tests (``tests/test_media_contract.py``) all iterate over
:data:`MEDIA`. Adding a medium: write its package with a contract module, then one
``register(...)`` line below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from quanta.errors import ConfigError
from quanta.outputs import atomic_output, check_output
from quanta.progress import Progress
from quanta.reports import Report


@dataclass(frozen=True)
class Medium:
    """One registered medium.

    name: the CLI group and registry key. summary: one line of help. contract: the module that
    keeps the medium contract. extras: importable names the medium needs beyond the core (for
    ``quanta info``). cli: ``"module:app"`` of its typer group, or None for a generic group with
    one ``quantize`` command. command: the name of the CLI command that runs ``quantize_file``.
    folder: outputs are folders. suffix: an output name's default extension. reads: the
    extensions a batch picks up in an input folder (explicitly named files are taken as they are).
    """

    name: str
    summary: str
    contract: str
    extras: tuple[str, ...] = ()
    cli: str | None = None
    command: str = "quantize"
    folder: bool = False
    suffix: str = ""
    reads: tuple[str, ...] = ()

    def module(self) -> ModuleType:
        """The contract module (imported on first use, so registering costs nothing)."""
        return importlib.import_module(self.contract)

    def quantize_file(self, src: Path | str, dst: Path | str, *, seed: int = 0,
                      progress: Progress | None = None, **options: Any) -> Report:
        """The medium's ``quantize_file``, writing ``dst`` in place."""
        return self.module().quantize_file(src, dst, seed=seed, progress=progress, **options)

    def check_options(self, options: dict) -> None:
        """Refuse options that are wrong for every input: a name ``quantize_file`` does not take
        (a misspelt option is an error naming it, never swallowed), then the contract module's
        ``check_options(**options)`` where it has one. A batch asks once, before any work."""
        import inspect

        params = inspect.signature(self.module().quantize_file).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(options) - set(params) - {"seed", "progress"})
            if unknown:
                takes = ", ".join(n for n, p in params.items() if p.kind is p.KEYWORD_ONLY
                                  and n not in ("seed", "progress"))
                raise ConfigError(f"{self.name}: unknown option {', '.join(map(repr, unknown))} "
                                  f"(it takes {takes})")
        fn = getattr(self.module(), "check_options", None)
        if fn is not None:
            fn(**options)

    def output_folder(self, options: dict) -> bool:
        """Whether these options make the output a folder (the contract module's
        ``output_is_folder(**options)`` where it has one, else the registered default)."""
        fn = getattr(self.module(), "output_is_folder", None)
        return bool(fn(**options)) if fn else self.folder

    def owns(self, path: Path) -> bool:
        """Whether ``path`` (an existing output) is one this medium wrote."""
        fn: Callable[[Path], bool] | None = getattr(self.module(), "owns", None)
        return bool(fn(path)) if fn else path.is_file()

    def write(self, src: Path | str, dst: Path | str, *, force: bool = False, seed: int = 0,
              progress: Progress | None = None, **options: Any) -> Report:
        """Check the output, run ``quantize_file`` into a temporary path, move it into place.

        Nothing is left behind on failure or interruption; an existing ``dst`` is replaced only
        with ``force`` and only if this medium wrote it.
        """
        self.check_options(options)
        folder = self.output_folder(options)
        dst = check_output(dst, force=force, inputs=(Path(src),), folder=folder, owns=self.owns)
        with atomic_output(dst, folder=folder) as tmp:
            report = self.quantize_file(src, tmp, seed=seed, progress=progress, **options)
        return report.with_output(dst)


MEDIA: dict[str, Medium] = {}


def register(medium: Medium) -> Medium:
    """Add ``medium`` to :data:`MEDIA` (a name may be registered once)."""
    if medium.name in MEDIA and MEDIA[medium.name] != medium:
        raise ConfigError(f"a medium named {medium.name!r} is already registered")
    MEDIA[medium.name] = medium
    return medium


def get(name: str) -> Medium:
    """The registered medium called ``name``."""
    if name not in MEDIA:
        raise ConfigError(f"unknown medium {name!r} (choose from {', '.join(MEDIA)})")
    return MEDIA[name]


register(Medium("audio", "Audio: requantize with dither and noise shaping; measure the result.",
                "quanta.audio.medium", extras=("soundfile",), cli="quanta.cli.audio:app",
                command="requantize", suffix=".flac",
                reads=(".wav", ".flac", ".aif", ".aiff", ".aifc")))
register(Medium("image", "Images: a JPEG encoder whose quantization is ours; posterize; metrics.",
                "quanta.image.medium", extras=("PIL", "skimage", "ssimulacra2"),
                cli="quanta.cli.image:app", command="encode", suffix=".jpg",
                reads=(".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".webp",
                       ".gif", ".tga")))
register(Medium("model", "Neural networks: quantize weights, run them on the CPU, measure the cost.",
                "quanta.model.medium", extras=("torch", "safetensors", "transformers", "gguf", "tokenizers"),
                cli="quanta.cli.model:app", folder=True))
