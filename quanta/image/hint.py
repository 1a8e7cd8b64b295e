"""What a ``quanta image`` command can start before its CLI is imported — the ``quanta``
process (:mod:`quanta.cli.launch`) calls :func:`head_start` with the command line
(:attr:`quanta.media.Medium.ahead`): for ``encode SRC DST`` of one large PNG, the file is read
and decoded on another thread (:func:`quanta.image.png.read_ahead`) while the process imports
the rest of quanta — about 0.1 s in which the second core has nothing else to do — and the C
heap keeps what the encode's stages free for the stages after them
(:func:`quanta.memory.keep_freed`).

Only a speed-up, never a decision: a wrong guess costs or saves some milliseconds, the command's
output is the same.
"""

from __future__ import annotations

#: images below this many pixels decode too fast for a head start to pay (a Kodak image, 0.39
#: MP, gains ~5 ms of its 0.19 s command)
MIN_PIXELS = 250_000
#: options after which no single-image command follows: a batch (its workers are other processes)
BATCH = ("-o", "--output", "-j", "--jobs", "--cluster")
_BATCH_VALUES = tuple(f"{b}=" for b in BATCH)  # the same options given as --output=DIR


def head_start(args: list[str]) -> None:
    """For ``quanta image ARGS`` that is ``encode SRC DST`` of one large PNG (:func:`large_input`):
    keep freed memory in the heap, then read the file ahead."""
    found = large_input(args)
    if found is None:
        return
    from quanta.image.png import read_ahead
    from quanta.memory import keep_freed

    keep_freed()  # first: the reading's own buffers come from the heap it keeps
    read_ahead(found[0])


def large_input(args: list[str]) -> tuple[str, int] | None:
    """The one input of ``quanta image ARGS`` and its pixels, when the command is ``encode``
    of a single PNG the reader of :mod:`quanta.image.png` takes, of :data:`MIN_PIXELS` or more;
    None for anything else (another command, a batch, a smaller or other image). Reads 29
    bytes of each regular file the command line names (never a pipe or a device)."""
    if not args or args[0] != "encode" or any(a in BATCH or a.startswith(_BATCH_VALUES) for a in args):
        return None
    import os
    import stat

    from quanta.image.png import HEAD_BYTES, image_size

    found = []
    for a in args[1:]:
        if a.startswith("-"):
            continue
        try:
            if not stat.S_ISREG(os.stat(a).st_mode):  # a pipe's bytes are the command's to read
                continue
            with open(a, "rb") as f:
                size = image_size(f.read(HEAD_BYTES))
        except OSError:  # not a file (an option's value, the output): not an input
            continue
        if size is not None:
            found.append((a, size[0] * size[1]))
    return found[0] if len(found) == 1 and found[0][1] >= MIN_PIXELS else None
