"""Rate limiting for inbound control messages (token bucket) and throttled logging."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Allows ``rate_hz`` events a second on average with bursts up to ``burst``.

    Args:
        rate_hz: refill rate, events per second.
        burst: bucket size (events allowed back to back).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, rate_hz: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_hz <= 0 or burst < 1:
            raise ValueError("rate_hz must be > 0 and burst >= 1")
        self.rate_hz = float(rate_hz)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._t = clock()
        self.rejected = 0

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate_hz)
        self._t = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.rejected += 1
        return False


class Throttle:
    """True at most once per ``period_s`` (for log lines under a flood)."""

    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last = None
        self.suppressed = 0

    def ready(self) -> bool:
        now = self._clock()
        if self._last is None or now - self._last >= self.period_s:
            self._last = now
            return True
        self.suppressed += 1
        return False
