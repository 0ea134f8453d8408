"""The ``opendance`` command line.

Each subsystem owns its commands in a ``cli`` module of its own folder that exposes
``register(subparsers)``; this file only gathers them, sets up logging, and turns
user-facing errors into one line on stderr and a non-zero exit. Command modules import
their heavy dependencies (torch, sounddevice, ...) inside the handlers, so ``--help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from opendance import __version__
from opendance.errors import OpenDanceError

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

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rc = args.func(args)
    except OpenDanceError as exc:
        print(f"opendance {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except FileNotFoundError as exc:
        print(f"opendance {args.command}: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"opendance {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
