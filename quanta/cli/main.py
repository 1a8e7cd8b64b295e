"""``quanta`` — the command-line entry point.

The command groups, ``quanta info`` and ``quanta tour`` come from the media registry
(:data:`quanta.media.MEDIA`). Exit codes: 0 success; 2 bad input or usage (one line on stderr), or
the environment refused (a read-only folder, an unreachable cluster); 3 the output was written but
its target was missed; 1 a bug (one line saying so; ``--debug``, anywhere on the line, shows the
traceback and keeps the exit code); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung
up (SIGHUP) — temporary outputs removed in every case.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import signal
import sys
from pathlib import Path
from typing import Any

import typer

import quanta
from quanta.cli.common import console, generic_app, print_json, print_table
from quanta.errors import STOPS, QuantaError, Terminated, raise_stop
from quanta.media import MEDIA

CORE_PACKAGES = ("numpy", "scipy", "rich", "typer", "matplotlib")


def _version(value: bool) -> None:
    if value:
        print(f"quanta {quanta.__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (allowed "
                               "anywhere on the command line)."),
) -> None:
    """quanta: quantize, and measure the cost."""


def _version_of(mod: str) -> str | None:
    if importlib.util.find_spec(mod) is None:
        return None
    from importlib import metadata

    dist = {"PIL": "pillow", "skimage": "scikit-image"}.get(mod, mod)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "present"


def info(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Versions, and which media are usable here (their optional packages)."""
    parts = {"core": CORE_PACKAGES, **{name: m.extras for name, m in MEDIA.items()}}
    found = {part: {mod: _version_of(mod) for mod in mods} for part, mods in parts.items()}
    usable = {part: all(v is not None for v in mods.values()) for part, mods in found.items()}
    if json_out:
        print_json({"quanta": quanta.__version__, "python": platform.python_version(),
                    "parts": found, "usable": usable,
                    "media": {n: m.summary for n, m in MEDIA.items()}})
        return
    console.print(f"quanta {quanta.__version__} · Python {platform.python_version()}")
    rows = [[part, "yes" if usable[part] else "no",
             ", ".join(f"{mod} {v or 'missing'}" for mod, v in mods.items()) or "—"]
            for part, mods in found.items()]
    print_table("Parts", ["part", "usable", "packages"], rows, left=(0, 1, 2))


def demo(
    out: Path = typer.Option(Path("quanta-tour"), "--out", "--output", "-o", help="Folder to write the "
                             "tour's index.html and results.json into."),
    skip: str = typer.Option("", help="Comma-separated media to leave out (e.g. model)."),
    force: bool = typer.Option(False, "--force", help="Replace a tour folder quanta wrote."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Retired: runs `quanta tour --quick` (the measured tables are the tour's now)."""
    from quanta.cli.tour import tour

    print("quanta: `quanta demo` is retired; running `quanta tour --quick`", file=sys.stderr)
    tour(out=out, quick=True, open_page=False, skip=skip, force=force, json_out=json_out)


def build_app() -> typer.Typer:
    """The typer app: root options, info, tour (and demo, its retired alias), then one group per
    registered medium."""
    app = typer.Typer(help="Quantize audio, images and neural networks, and measure what it costs.",
                      no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    app.callback()(_root)
    app.command()(info)
    app.command()(demo)
    from quanta.cli.tour import tour

    app.command()(tour)
    for name, medium in MEDIA.items():
        if medium.cli:
            mod, _, attr = medium.cli.partition(":")
            group = getattr(importlib.import_module(mod), attr)
        else:
            group = generic_app(name)
        app.add_typer(group, name=name, help=medium.summary)
    return app


def _normalise(args: list[str]) -> tuple[list[str], bool]:
    """Move every ``--debug`` (before a ``--``) to the front, where the root option reads it."""
    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end]
    rest = [a for i, a in enumerate(args) if not (i < end and a == "--debug")]
    return (["--debug", *rest] if debug else rest), debug


def _on_stop(signum: int, frame: Any) -> None:
    """The first stop signal (Ctrl-C, SIGTERM, SIGHUP) is noted and raised in the main thread;
    later ones are only noted, so that clean-up is never cut short. An output not yet moved into
    place is dropped even where the exception was swallowed on its way (an exception raised in a
    generator's or object's finaliser is printed and ignored by Python): ``atomic_output`` checks
    :data:`quanta.errors.STOPS` before it commits."""
    STOPS.append(signum)
    if len(STOPS) == 1:
        raise_stop(signum)


def _usage_error(e: Exception) -> int:
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
        print(ctx.get_help())
        return 0
    where = ctx.command_path if ctx is not None else "quanta"
    msg = e.format_message() if hasattr(e, "format_message") else str(e)
    print(f"quanta: usage error: {msg} (see '{where} --help')", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args, debug = _normalise(list(sys.argv[1:] if argv is None else argv))
    if not args:
        args = ["--help"]
    if args[0] in MEDIA and not MEDIA[args[0]].numpy_blas:  # before numpy is first imported
        from quanta.threads import blas_on_one_thread

        blas_on_one_thread()
    # SIGTERM raises Terminated and SIGINT KeyboardInterrupt (even where a background shell
    # started us with SIGINT ignored), so that temporary outputs are removed either way.
    stops = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    STOPS.clear()
    previous = {s: signal.signal(s, _on_stop) for s in stops} if _main_thread() else {}
    try:
        return _run(args, debug)
    finally:
        if not STOPS:  # after a stop signal ours stay: a late second one must not cut the exit short
            for s, h in previous.items():
                signal.signal(s, h)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _run(args: list[str], debug: bool) -> int:
    cmd = typer.main.get_command(build_app())
    try:
        rc = cmd.main(args=args, prog_name="quanta", standalone_mode=False)
    except QuantaError as e:
        return _input_error(str(e), e, debug)
    except (KeyboardInterrupt, Terminated) as e:
        return _interrupted(e.signum if isinstance(e, Terminated) else None)
    except (BrokenPipeError, SystemExit) as e:
        return _pipe_or_exit(e)
    except (typer.Exit, typer.Abort) as e:
        return _exit(e)
    except typer.TyperException as e:  # click's usage errors, as typer raises them
        return _cli_error(e, debug)
    except OSError as e:  # the environment: a read-only folder, a name too long, a full disk
        return _input_error(_os_message(e), e, debug)
    except Exception as e:
        return _bug(e, debug)
    if isinstance(rc, int) and not isinstance(rc, bool):  # typer turns Ctrl-C into Exit(130)
        return _interrupted(None) if rc == 130 else rc
    return 0


def _stopped() -> int | None:
    """After a stop signal, any failure on the way out is the stop's doing (clean-up of a half-
    written file raising in place of the Terminated it was cleaning up after, say): the exit is
    the stop's, 130/143/129, with its one line. None when no stop arrived."""
    if not STOPS:
        return None
    return _interrupted(None if STOPS[0] == signal.SIGINT else STOPS[0])


def _input_error(message: str, e: BaseException, debug: bool) -> int:
    """Bad input or an environment that refuses: one line, exit 2 (``--debug``: the traceback
    too, and still exit 2)."""
    stopped = _stopped()
    if stopped is not None:
        return stopped
    if debug:
        import traceback

        traceback.print_exception(e, file=sys.stderr)
    print(f"quanta: error: {message}", file=sys.stderr)
    return 2


def _os_message(e: OSError) -> str:
    """An OSError in one line, naming the path without quanta's temporary-name decoration."""
    from quanta.outputs import TMP_TAG

    name = e.filename
    if isinstance(name, str) and TMP_TAG in name:
        import os

        folder, base = os.path.split(name)
        name = os.path.join(folder, base.split(TMP_TAG)[0].lstrip("."))
    what = (e.strerror or type(e).__name__).lower()
    return f"{name}: {what}" if name else what


def _pipe_or_exit(e: BaseException) -> int:
    """The reader went away (`quanta … | head`; typer turns that into exit(1)): stop quietly.
    Any other SystemExit passes on."""
    if isinstance(e, BrokenPipeError) or isinstance(e.__context__, BrokenPipeError):
        return _closed_pipe()
    raise e


def _exit(e: BaseException) -> int:
    stopped = _stopped()
    if stopped is not None:
        return stopped
    if isinstance(e, typer.Exit):
        return e.exit_code
    print("quanta: aborted", file=sys.stderr)
    return 1


def _interrupted(signum: int | None) -> int:
    """Ctrl-C (``signum`` None): 130; SIGTERM 143; SIGHUP 129."""
    word = "interrupted" if signum is None else ("hung up" if signum == signal.SIGHUP else "terminated")
    print(f"quanta: {word}", file=sys.stderr)
    return 130 if signum is None else 128 + signum


def _cli_error(e: Exception, debug: bool) -> int:
    if not (hasattr(e, "exit_code") and hasattr(e, "format_message")):
        return _bug(e, debug)
    return _usage_error(e) if getattr(e, "exit_code", 1) == 2 else _show(e)


def _show(e: Exception) -> int:
    stopped = _stopped()
    if stopped is not None:
        return stopped
    print(f"quanta: error: {e.format_message()}", file=sys.stderr)
    return int(getattr(e, "exit_code", 1))


def _bug(e: Exception, debug: bool) -> int:
    stopped = _stopped()
    if stopped is not None:
        return stopped
    if debug:
        raise e
    print(f"quanta: internal error (a bug, not your input): {type(e).__name__}: {e} — run again "
          "with --debug for the traceback", file=sys.stderr)
    return 1


def _closed_pipe() -> int:
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141


def main_exit() -> None:
    """Console-script entry point."""
    try:
        rc = main()
    except KeyboardInterrupt:  # a stop that landed outside the command's own handling
        rc = _interrupted(None)
    except Terminated as e:
        rc = _interrupted(e.signum)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        rc = _closed_pipe()
    if STOPS or rc in (129, 130, 143):
        # Interrupted, and everything is cleaned up: leave now with our status. Python's own exit
        # would re-kill the process with SIGINT (status -2, not 130) when the interrupt had
        # landed inside a string it exec'd — e.g. a dataclass being made at import time — even
        # though the exception was handled (CPython's "unhandled KeyboardInterrupt" flag stays set).
        sys.stderr.flush()
        os._exit(rc)
    sys.exit(rc)
