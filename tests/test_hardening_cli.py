"""The CLI's last line of defence: every failure is one line and an exit code of its kind."""

from __future__ import annotations

import errno

import pytest

from opendance.commands import main as cli
from opendance.errors import (
    EXIT_INTERNAL,
    EXIT_LIMIT,
    EXIT_OS_ERROR,
    EXIT_USER_ERROR,
    InputError,
    LimitError,
    OpenDanceError,
)

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("exc,code,needle", [
    (RuntimeError("boom\nsecond line"), EXIT_INTERNAL, "internal error (RuntimeError: boom second line)"),
    (MemoryError(), EXIT_LIMIT, "out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "/x/o.bvh"), EXIT_OS_ERROR, "No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied", "/x"), EXIT_OS_ERROR, "check the permissions"),
    (LimitError("too big"), EXIT_LIMIT, "too big"),
    (InputError("bad file"), EXIT_USER_ERROR, "bad file"),
    (OpenDanceError("nope"), EXIT_USER_ERROR, "nope"),
])
def test_every_failure_is_one_line_with_its_code(monkeypatch, capsys, exc, code, needle):
    parser = cli.build_parser()

    def boom(args):
        raise exc
    real = parser.parse_args

    def parse(argv=None):
        ns = real(argv)
        ns.func = boom
        return ns
    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["doctor"]) == code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["convert", "a.pkl"])
    err = capsys.readouterr().err
    assert e.value.code == EXIT_USER_ERROR and len(err.strip().splitlines()) == 1 and "--help" in err
