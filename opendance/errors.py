"""User-facing errors and the exit codes the CLI gives them.

The CLI (``opendance.commands.main``) prints every error as one line on stderr and exits
with the code of its kind, so a script can tell them apart:

==== =======================================================================
0    success
2    usage or bad input: a wrong option, a missing or malformed file (``InputError``,
     ``OpenDanceError``; argparse's own usage errors are 2 too)
3    an input over a limit: too many frames, too long, too large, a rate out of
     range (``LimitError``)
4    the operating system refused: disk full, read-only folder, permission denied,
     a folder where a file was expected (``OSError``)
5    integrity: the model weights do not match their checksum (``IntegrityError``)
70   an internal error (a bug): one line, ``-vv`` shows the traceback
130  interrupted (Ctrl-C, SIGTERM)
141  the reader of stdout went away (``opendance info ... | head``): quiet exit
==== =======================================================================
"""

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_LIMIT = 3
EXIT_OS_ERROR = 4
EXIT_INTEGRITY = 5
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class OpenDanceError(Exception):
    """An error the user can act on (bad input file, unknown device, missing model...).

    The message must say what went wrong and, where it helps, what to do.
    """

    exit_code = EXIT_USER_ERROR


class InputError(OpenDanceError, ValueError):
    """Bad input data: wrong shape, missing key, unreadable or unsupported file."""


class LimitError(InputError):
    """An input exceeds a bound (frames, seconds, bytes, a rate): refused before allocating."""

    exit_code = EXIT_LIMIT


class IntegrityError(OpenDanceError):
    """A file does not match its recorded checksum (corrupt or replaced weights)."""

    exit_code = EXIT_INTEGRITY
