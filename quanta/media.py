"""The media registry: one line registers a medium (as SoX's ``EFFECT(x)`` registers an effect).

A medium is a package with a module that keeps the **medium contract**:

``Options`` (a frozen dataclass)
    Every option of ``quantize_file``, typed, with its defaults; built and checked by the CLI
    (units parsed there, once), its ``__post_init__`` refuses a value that is wrong for every
    input before any file is read (a batch builds it once instead of failing every file alike).
    :meth:`Medium.options` builds one from keywords and names any it does not know.
``quantize_file(src, dst, options, *, seed=0, progress=None) -> Report``
    Quantize the file (or folder) ``src`` into ``dst`` with ``options`` (an ``Options``),
    written in place; ``progress(done, total)``; the same seed gives the same bytes. Bad input
    raises a :class:`quanta.errors.QuantaError`.
``example(folder, *, seed=0) -> Path``
    Write a small valid input into ``folder`` and return its path (the contract tests and the
    tour use it; it needs no shared data).
``tour(*, quick, progress, **settings) -> TourSection`` (optional)
    The medium's part of ``quanta tour`` (:mod:`quanta.render.tour`): a measured sweep over
    precision, with figures, tables, players or crops, and its summary rows.
``owns(path) -> bool`` (folder media only)
    Whether an existing output folder is one this medium wrote (``--force`` replaces only those).
    A medium whose options decide between a file and a folder gives its ``Options`` a
    ``writes_folder`` property.

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
    numpy_blas: the medium's heavy work uses numpy's BLAS (else its commands run OpenBLAS on one
    thread: :func:`quanta.threads.blas_on_one_thread`). ahead: ``"module:function"`` of a light
    function (no numpy) the ``quanta`` process calls with a command line of the medium (after
    its name) before the CLI is imported, to start what the command will need on other threads
    (:mod:`quanta.cli.launch`).
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
    numpy_blas: bool = True
    ahead: str | None = None

    def module(self) -> ModuleType:
        """The contract module (imported on first use, so registering costs nothing)."""
        return importlib.import_module(self.contract)

    def start_ahead(self, args: list[str]) -> None:
        """Start what the command line ``args`` (after the medium's name) will need, by the
        medium's :attr:`ahead` (nothing without one)."""
        if self.ahead is not None:
            mod, _, fn = self.ahead.partition(":")
            getattr(importlib.import_module(mod), fn)(args)

    def options(self, **values: Any) -> Any:
        """The medium's ``Options`` from keyword values: a name it does not take is an error
        naming it (a misspelt option is never swallowed); the values are checked as it is built."""
        import dataclasses

        cls = self.module().Options
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"{self.name}: unknown option {', '.join(map(repr, unknown))} "
                              f"(it takes {', '.join(names)})")
        return cls(**values)

    def _checked(self, options: Any) -> Any:
        cls = self.module().Options
        if options is None:
            return cls()
        if not isinstance(options, cls):
            raise ConfigError(f"{self.name}: options must be a {cls.__module__}.Options, "
                              f"not {type(options).__name__}")
        return options

    def output_folder(self, options: Any) -> bool:
        """Whether these options make the output a folder (the options' ``writes_folder`` where
        they have one, else the registered default)."""
        return bool(getattr(options, "writes_folder", self.folder))

    def owns(self, path: Path) -> bool:
        """Whether ``path`` (an existing output) is one this medium wrote."""
        fn: Callable[[Path], bool] | None = getattr(self.module(), "owns", None)
        return bool(fn(path)) if fn else path.is_file()

    def write(self, src: Path | str, dst: Path | str, options: Any = None, *, force: bool = False,
              seed: int = 0, progress: Progress | None = None) -> Report:
        """Check the output, run ``quantize_file`` into a temporary path, move it into place.

        Nothing is left behind on failure or interruption; an existing ``dst`` is replaced only
        with ``force`` and only if this medium wrote it.
        """
        options = self._checked(options)
        folder = self.output_folder(options)
        dst = check_output(dst, force=force, inputs=(Path(src),), folder=folder, owns=self.owns)
        with atomic_output(dst, folder=folder) as tmp:
            report = self.module().quantize_file(src, tmp, options, seed=seed, progress=progress)
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
                reads=(".wav", ".flac", ".aif", ".aiff", ".aifc"), numpy_blas=False))
register(Medium("image", "Images: a JPEG encoder whose quantization is ours; posterize; metrics.",
                "quanta.image.medium", extras=("PIL", "skimage", "ssimulacra2"),
                cli="quanta.cli.image:app", command="encode", suffix=".jpg",
                reads=(".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".webp",
                       ".gif", ".tga"), numpy_blas=False, ahead="quanta.image.hint:head_start"))
register(Medium("model", "Neural networks: quantize weights, run them on the CPU, measure the cost.",
                "quanta.model.medium", extras=("torch", "safetensors", "transformers", "gguf", "tokenizers"),
                cli="quanta.cli.model:app", folder=True))
