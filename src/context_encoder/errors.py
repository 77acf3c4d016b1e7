"""Exceptions the command line turns into a one-line message and a non-zero exit code."""


def first_line(exc: BaseException) -> str:
    """The first line of `exc`'s message (its type's name where it has none): what a one-line error quotes."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ContextEncoderError(Exception):
    """Base class: a problem with the user's input, reported without a traceback."""

    exit_code = 1


class ConfigError(ContextEncoderError, ValueError):
    """An unknown key, a wrong type or an impossible setting (exit code 2)."""

    exit_code = 2


class DataError(ContextEncoderError):
    """Missing, empty or unreadable image data."""

    exit_code = 2


class CheckpointError(ContextEncoderError):
    """A checkpoint that is missing, corrupt or does not fit the request."""

    exit_code = 2


class InputError(ContextEncoderError, ValueError):
    """An image or mask that the request cannot use (wrong size, no hole, hole out of reach)."""

    exit_code = 2
