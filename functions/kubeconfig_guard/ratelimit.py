"""A client-side request-rate limiter that adapts to the throttling it sees.

Requests are spaced at ``1/rate``. The rate starts low and grows fast (slow start)
until the first throttled answer or the ceiling. When the API throttles, the rate
drops by at least 30 %, to a little under the rate the API actually accepted over
the last couple of seconds (at most once per ``cooldown``: answers already in flight
say nothing new); every success adds a little back (additive increase, at least
5 % a second), so the client settles just under an undisclosed limit instead of
hammering it. A request whose slot was booked before a decrease books again.
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
        cooldown_seconds: float = 0.3,
        slow_start_rps: float = 50.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rps = max_rps
        self.min_rps = min(min_rps, max_rps)
        # Slow start: begin low and grow fast (about doubling every 0.1 s of successes) until
        # the first throttled answer or the ceiling, so an undisclosed limit is not overrun
        # by a whole second of requests before the first feedback arrives.
        self.rate = min(max_rps, slow_start_rps)
        self.slow_start = self.rate < max_rps
        self._increase = increase_per_second
        self._window = window_seconds
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._next_slot = 0.0
        self._successes: deque[float] = deque()
        self._last_decrease = -1e9
        self.decreases = 0

    async def acquire(self) -> None:
        """Wait for this request's slot; a slot booked before a decrease is booked again."""
        while True:
            now = self._clock()
            generation = self.decreases
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate
            if slot <= now:
                return
            await asyncio.sleep(slot - now)
            if self.decreases == generation:
                return

    def on_success(self) -> None:
        now = self._clock()
        self._successes.append(now)
        while self._successes and self._successes[0] < now - self._window:
            self._successes.popleft()
        if self.slow_start:
            self.rate = min(self.max_rps, self.rate + 20.0)
            self.slow_start = self.rate < self.max_rps
            return
        # Additive increase: about `increase_per_second` requests/s (at least 5 %) more per second.
        step = max(self._increase, 0.05 * self.rate)
        self.rate = min(self.max_rps, self.rate + step / max(self.rate, 1.0))

    def on_throttled(self) -> None:
        now = self._clock()
        if now - self._last_decrease < self._cooldown:
            return  # one decrease per burst of throttled answers already in flight
        self._last_decrease = now
        self.decreases += 1
        self.slow_start = False
        recent = [t for t in self._successes if t >= now - self._window]
        span = max(now - recent[0], 0.25) if len(recent) >= 4 else 0.0
        accepted = len(recent) / span if span else 0.0
        target = 0.95 * accepted if accepted else self.rate / 2
        self.rate = max(self.min_rps, min(self.rate * 0.7, target))
        # Restart the schedule at the new rate: the API's bucket needs a moment to refill.
        self._next_slot = now + 1.0 / self.rate
