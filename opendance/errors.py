"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class OpenDanceError(Exception):
    """An error the user can act on (bad input file, unknown device, missing model...).

    The message must say what went wrong and, where it helps, what to do.
    """


class InputError(OpenDanceError, ValueError):
    """Bad input data: wrong shape, missing key, unreadable or unsupported file."""
