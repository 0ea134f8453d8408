# The two commands: `make run` and `make test`. Both set everything up on first use.
.PHONY: setup run test test-slow lint

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/opendance demo

test: setup
	@bash scripts/test.sh

test-slow: setup
	@bash scripts/test.sh -m slow

lint: setup
	.venv/bin/ruff check .
