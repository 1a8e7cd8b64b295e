"""``quanta`` — the command-line entry point.

Errors in the caller's input (:class:`quanta.errors.QuantaError`) print one line to stderr and
exit with code 2; ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import importlib.util
import platform
import sys

import click
import typer

import quanta
from quanta.cli.common import console, print_json, print_table
from quanta.errors import QuantaError

app = typer.Typer(help="Quantize audio, images and neural networks, and measure what it costs.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _version(value: bool) -> None:
    if value:
        print(f"quanta {quanta.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """quanta: quantize, and measure the cost."""


_OPTIONAL = {
    "core": ["numpy", "numba"],
    "audio": ["soundfile"],
    "image": ["PIL", "skimage", "ssimulacra2"],
    "model": ["torch", "safetensors", "transformers", "gguf"],
    "plots": ["matplotlib"],
}


def _version_of(mod: str) -> str | None:
    if importlib.util.find_spec(mod) is None:
        return None
    from importlib import metadata

    dist = {"PIL": "pillow", "skimage": "scikit-image"}.get(mod, mod)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "present"


@app.command()
def info(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Versions, and which optional parts are usable here."""
    parts = {part: {m: _version_of(m) for m in mods} for part, mods in _OPTIONAL.items()}
    usable = {part: all(v is not None for v in mods.values()) for part, mods in parts.items()}
    if json_out:
        print_json({"quanta": quanta.__version__, "python": platform.python_version(),
                    "parts": parts, "usable": usable})
        return
    console.print(f"quanta {quanta.__version__} · Python {platform.python_version()}")
    rows = [[part, "yes" if usable[part] else "no",
             ", ".join(f"{m} {v or 'missing'}" for m, v in mods.items())]
            for part, mods in parts.items()]
    print_table("Parts", ["part", "usable", "packages"], rows, left=(0, 1, 2))


@app.command()
def demo(json_out: bool = typer.Option(False, "--json", help="Print JSON."),
         seconds: float = typer.Option(10.0, help="Length of the audio demo signal (s)."),
         model: bool = typer.Option(True, "--model/--no-model",
                                    help="Include the SmolLM2 section (about a minute).")) -> None:
    """The main job on built-in defaults: each medium's measured table."""
    from quanta.cli import demo as d

    results = {"core": d.core_section(), "audio": d.audio_section(seconds),
               "image": d.image_section()}
    if model:
        results["model"] = d.model_section()
    if json_out:
        print_json(results)
        return
    d.print_core(results["core"])
    d.print_audio(results["audio"])
    d.print_image(results["image"])
    if model:
        d.print_model(results["model"])


def _register_groups() -> None:
    from quanta.cli import audio, image, model

    app.add_typer(audio.app, name="audio")
    app.add_typer(image.app, name="image")
    app.add_typer(model.app, name="model")


_register_groups()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    cmd = typer.main.get_command(app)
    try:
        cmd.main(args=args, prog_name="quanta", standalone_mode=False)
    except QuantaError as e:
        if debug:
            raise
        print(f"quanta: error: {e}", file=sys.stderr)
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        print("quanta: aborted", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("quanta: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an input the library did not anticipate must still not dump a trace
        if debug:
            raise
        print(f"quanta: error: {type(e).__name__}: {e} (run with --debug for details)",
              file=sys.stderr)
        return 2
    return 0


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())
