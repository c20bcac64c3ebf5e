"""A client-side request-rate limiter that adapts to the throttling it sees.

Requests are spaced at ``1/rate``. When the API answers with throttling, the rate
drops to a little under the rate the API actually accepted over the last couple
of seconds (or halves, when that is unknown); every success adds a little back
(additive increase), so the client settles just under an undisclosed limit
instead of hammering it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class AdaptiveRateLimiter:
    def __init__(
        self,
        max_rps: float,
        *,
        min_rps: float = 1.0,
        increase_per_second: float = 1.0,
        window_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rps = max_rps
        self.min_rps = min(min_rps, max_rps)
        self.rate = max_rps
        self._increase = increase_per_second
        self._window = window_seconds
        self._clock = clock
        self._next_slot = 0.0
        self._successes: deque[float] = deque()
        self._last_decrease = -1e9
        self.decreases = 0

    async def acquire(self) -> None:
        """Wait for this request's slot."""
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    def on_success(self) -> None:
        now = self._clock()
        self._successes.append(now)
        while self._successes and self._successes[0] < now - self._window:
            self._successes.popleft()
        # Additive increase: about `increase_per_second` requests/s more per second of success.
        self.rate = min(self.max_rps, self.rate + self._increase / max(self.rate, 1.0))

    def on_throttled(self) -> None:
        now = self._clock()
        if now - self._last_decrease < min(1.0, self._window):
            return  # one decrease per burst of throttled answers already in flight
        self._last_decrease = now
        self.decreases += 1
        recent = [t for t in self._successes if t >= now - self._window]
        span = max(now - recent[0], 0.25) if len(recent) >= 4 else 0.0
        accepted = len(recent) / span if span else 0.0
        target = 0.95 * accepted if accepted else self.rate / 2
        self.rate = max(self.min_rps, min(self.rate * 0.9, target))
        # Push the next slot out: the API's bucket needs a moment to refill.
        self._next_slot = max(self._next_slot, now + 1.0 / self.rate)
