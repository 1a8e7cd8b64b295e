"""Errors that quanta raises on bad input, and the stop signals turn into.

Library code raises these with a one-line message; only the CLI turns them into exit code 2.
"""

import signal


class QuantaError(Exception):
    """Base class: a problem with the caller's input or request, explained in one line."""


class InputError(QuantaError):
    """An input file or array is missing, unreadable, malformed or out of range."""


class ConfigError(QuantaError):
    """A parameter (bits, group size, method, ...) cannot apply to the given data."""


class OutputError(QuantaError):
    """An output cannot be written (exists without --force, same as the input, ...)."""


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM or SIGHUP (the terminal closed, the ssh session
    dropped), so that clean-up runs as for Ctrl-C; the exit status is 128 + the signal."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = int(signum)


#: the stop signals received by this process, first first (set by the CLI's handlers; read by
#: :func:`quanta.outputs.atomic_output` before it commits an output)
STOPS: list[int] = []


def raise_stop(signum: int) -> None:
    """Raise what a stop signal means: ``KeyboardInterrupt`` for SIGINT, else :class:`Terminated`."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)
