"""Real-time scheduling of the live threads: what is raised, what is kept, what is restored.

Real-time scheduling needs root, CAP_SYS_NICE or an rtprio limit; without it nothing is
raised and every thread keeps its scheduling (both cases are checked)."""

from __future__ import annotations

import os
import threading

import pytest

from opendance.realtime.priority import HELPER_PRIORITY, raise_python_threads

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="no POSIX scheduling API")


def _policy(tid: int) -> int:
    return os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)


def test_other_python_threads_are_raised_and_restored_the_caller_is_not():
    release = threading.Event()
    worker = threading.Thread(target=release.wait, daemon=True)
    worker.start()
    me = threading.get_native_id()
    try:
        before = _policy(worker.native_id)
        raised = raise_python_threads()
        assert me not in raised.tids and _policy(me) == os.SCHED_OTHER
        if raised.tids:                                   # allowed here
            assert worker.native_id in raised.tids
            assert _policy(worker.native_id) == os.SCHED_RR
            assert os.sched_getparam(worker.native_id).sched_priority == HELPER_PRIORITY
            assert os.sched_getscheduler(worker.native_id) & os.SCHED_RESET_ON_FORK   # its children: normal
        else:                                             # not allowed: nothing changed
            assert _policy(worker.native_id) == before
        raised.restore()
        assert _policy(worker.native_id) == os.SCHED_OTHER and raised.tids == []
    finally:
        release.set()
        worker.join()


def test_a_thread_with_real_time_scheduling_keeps_it():
    got, release = {}, threading.Event()

    def clock_like():
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(HELPER_PRIORITY + 1))
            got["fifo"] = True
        except OSError:
            got["fifo"] = False
        got["ready"] = True
        release.wait()

    t = threading.Thread(target=clock_like, daemon=True)
    t.start()
    while "ready" not in got:
        threading.Event().wait(0.001)
    try:
        raised = raise_python_threads()
        assert t.native_id not in raised.tids or not got["fifo"]
        if got["fifo"]:
            assert _policy(t.native_id) == os.SCHED_FIFO
        raised.restore()
    finally:
        release.set()
        t.join()
