#!/usr/bin/env bash
# Lint, then the fast test suite. pytest's exit code 5 (no tests collected) is a failure
# here: a suite that runs nothing must not pass silently.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/ruff check .; then
    echo "test: ruff found problems (rules in pyproject.toml); fix them or run 'make lint'" >&2
    exit 1
fi
.venv/bin/python -m pytest -q "$@"
rc=$?
if [ "$rc" = 5 ]; then
    echo "test: pytest collected no tests; treating as a failure" >&2
    exit 1
fi
exit "$rc"
