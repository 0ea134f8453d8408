"""Ctrl-C and SIGTERM during a live run: the first ends it, any later one (also one already
pending when the first is handled) only says the run is finishing, so the shutdown that
completes a recording is never cut short."""

from __future__ import annotations

import signal

import pytest

from opendance.commands import live


@pytest.mark.parametrize("first, second", [(signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGTERM),
                                           (signal.SIGTERM, signal.SIGTERM)])
def test_the_first_signal_ends_the_run_and_a_second_only_says_it_is_finishing(first, second, capsys):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    prev = live._interrupt_on_signals()
    try:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(first)
        # a signal that was pending together with the first is handled right after it, by the
        # handler installed by then: it must not raise a second interrupt into the shutdown
        signal.getsignal(second)(second, None)
        signal.raise_signal(second)
        assert capsys.readouterr().err.count("shutting down, one moment") == 2
    finally:
        live._restore_signals(prev)
    assert {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} == before
