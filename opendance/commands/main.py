"""The ``opendance`` command line.

Each subsystem owns its commands in a ``cli`` module of its own folder that exposes
``register(subparsers)``; this file only gathers them, sets up logging, and turns
user-facing errors into one line on stderr and a non-zero exit. Command modules import
their heavy dependencies (torch, sounddevice, ...) inside the handlers, so ``--help``
stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from opendance import __version__
from opendance.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_LIMIT,
    EXIT_OS_ERROR,
    EXIT_USER_ERROR,
    OpenDanceError,
)

# Modules that register subcommands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "opendance.commands.formats",
    "opendance.commands.model",
    "opendance.commands.audio",
    "opendance.commands.doctor",
    "opendance.commands.stream",
    "opendance.commands.train",
    "opendance.commands.eval",
    "opendance.commands.corpus",
    "opendance.commands.generate",
    "opendance.commands.live",
)



class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2): the message and where to find help."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="opendance",
        description="Live music in, a dancing SMPL avatar out. Run 'opendance COMMAND --help' "
                    "for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"opendance {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _os_error_line(exc: OSError) -> str:
    """One line for an ``OSError``: what the system said and the path it said it about."""
    what = exc.strerror or str(exc)
    name = exc.filename if exc.filename is not None else ""
    hint = ""
    if exc.errno == errno.ENOSPC:
        hint = " (free some space or write elsewhere)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = " (check the permissions of the file and its folder)"
    return f"{what}: {name}{hint}" if name else f"{what}{hint}"


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure becomes one line on stderr and an exit code
    (``opendance.errors``): never a traceback unless ``-vv`` is given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prefix = f"opendance {args.command}: error:"
    try:
        rc = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OpenDanceError as exc:
        print(f"{prefix} {exc}", file=sys.stderr)
        return exc.exit_code
    except FileNotFoundError as exc:
        print(f"{prefix} file not found: {exc.filename or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        print(f"{prefix} {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_OS_ERROR
    except MemoryError:
        print(f"{prefix} out of memory: the input is too large for this machine", file=sys.stderr)
        return EXIT_LIMIT
    except KeyboardInterrupt:
        print(f"opendance {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 -- the last line of defence: one line, never a traceback
        if args.verbose >= 2:
            raise
        text = " ".join(str(exc).split())[:300]
        print(f"{prefix} internal error ({type(exc).__name__}: {text}); run with -vv for the "
              "traceback and please report it", file=sys.stderr)
        return EXIT_INTERNAL
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
