"""Thread scheduling for the live path: real-time priority where the system allows it.

On a busy machine a frame is late for two reasons: the output clock's thread waits for a
CPU, or it waits for the GIL while the thread holding it waits for a CPU (another
process ran in its time slice, 1.5-3 ms on 2 cores). The first is solved by giving the
clock's thread ``SCHED_FIFO`` (``raise_thread_priority``), the second by giving the other
Python threads of the process round-robin real-time scheduling at a lower priority
(``raise_python_threads``): a thread holding the GIL then keeps its CPU until it gives
the GIL up. Threads those threads create (a math library's worker pool) do not inherit
it (``SCHED_RESET_ON_FORK``). Everything here needs root, CAP_SYS_NICE or an rtprio
limit (``ulimit -r``); without it the threads run as before.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

RT_PRIORITY = 10            # SCHED_FIFO priority of the output clock's thread
HELPER_PRIORITY = 1         # SCHED_RR priority of the session's other Python threads (below the clock)
NICE_FALLBACK = -10         # the clock's nice value where real-time scheduling is not allowed


def raise_thread_priority() -> str:
    """Give the calling thread real-time scheduling (``SCHED_FIFO``, priority
    ``RT_PRIORITY``), else a higher nice value, where the system allows it (root,
    CAP_SYS_NICE, or an rtprio limit as audio users get: ``ulimit -r``). Returns what it
    got, in words. On a busy machine this is what keeps frame times steady: the thread
    runs as soon as it wakes instead of queueing behind every other process."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
        return f"SCHED_FIFO {RT_PRIORITY}"
    except (AttributeError, OSError):
        pass
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, NICE_FALLBACK)
        return f"nice {NICE_FALLBACK}"
    except (AttributeError, OSError):
        return "normal (no permission for real-time or raised priority)"


@dataclass
class RaisedThreads:
    """The threads ``raise_python_threads`` raised (native ids); ``restore()`` gives them
    normal scheduling back."""

    tids: list[int] = field(default_factory=list)

    def restore(self) -> None:
        for tid in self.tids:
            try:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            except (AttributeError, OSError):     # the thread has ended
                pass
        self.tids = []


def raise_python_threads(priority: int = HELPER_PRIORITY) -> RaisedThreads:
    """Give every live Python thread of the process that runs with normal scheduling,
    except the calling one, ``SCHED_RR`` at ``priority`` with ``SCHED_RESET_ON_FORK``,
    where the system allows it. Threads that already run with real-time scheduling (the
    output clock's) keep theirs. Returns what was raised (empty without permission)."""
    raised = RaisedThreads()
    policy = getattr(os, "SCHED_RR", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return raised
    policy |= getattr(os, "SCHED_RESET_ON_FORK", 0)
    me = threading.get_native_id()
    for t in threading.enumerate():
        tid = t.native_id
        if tid is None or tid == me:
            continue
        try:
            if os.sched_getscheduler(tid) != os.SCHED_OTHER:
                continue
            os.sched_setscheduler(tid, policy, os.sched_param(priority))
        except ProcessLookupError:                # it ended meanwhile
            continue
        except OSError as exc:
            log.debug("real-time scheduling for the live threads not allowed (%s); they run as before",
                      exc)
            return raised
        raised.tids.append(tid)
    return raised
