"""The ``quanta`` command as a process (the console script and ``python -m quanta.cli``): what
only a whole process may do, before the CLI (:mod:`quanta.cli.main`, which tests and callers
also run in their own process) is even imported.

Three things: a medium may start what a command line will need while this process imports the
CLI (:attr:`quanta.media.Medium.ahead`) — for one large image to encode, the file read and
decoded on another thread in the ~0.1 s of imports during which the second core has nothing
else to do (:mod:`quanta.image.hint`); the objects those imports make are moved out of the
garbage collector's sight (``gc.freeze``: they live as long as the process, and every later
collection — the one at exit included — would traverse them again: ~20 ms of each command);
and a Ctrl-C that lands during those imports gets the one line and exit code 130 that the CLI
gives one later, not a traceback.
"""

from __future__ import annotations

import sys


def main_exit() -> None:
    """Run ``quanta`` with this process's arguments and exit with its code. Ctrl-C while the
    CLI is still being imported (before it handles stop signals itself) exits 130 with one line,
    as it does later."""
    import gc

    gc.disable()  # the imports make tens of thousands of objects that live as long as the process
    try:
        _head_start([a for a in sys.argv[1:] if a != "--debug"])
        from quanta.cli.main import main_exit as run
    except KeyboardInterrupt:
        gc.enable()
        print("quanta: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    gc.freeze()  # ... so no collection traverses them again, the one at exit included
    gc.enable()
    run()


def _head_start(args: list[str]) -> None:
    """Start what the command line ``args`` will need, where its medium can tell."""
    from quanta.media import MEDIA

    if not args or args[0] not in MEDIA:
        return
    try:
        MEDIA[args[0]].start_ahead(args[1:])
    except Exception:  # for speed only: whatever goes wrong here, the command runs as it would
        return
