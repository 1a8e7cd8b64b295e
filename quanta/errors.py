"""Errors that quanta raises on bad input.

Library code raises these with a one-line message; only the CLI turns them into exit code 2.
"""


class QuantaError(Exception):
    """Base class: a problem with the caller's input or request, explained in one line."""


class InputError(QuantaError):
    """An input file or array is missing, unreadable, malformed or out of range."""


class ConfigError(QuantaError):
    """A parameter (bits, group size, method, ...) cannot apply to the given data."""


class OutputError(QuantaError):
    """An output cannot be written (exists without --force, same as the input, ...)."""
