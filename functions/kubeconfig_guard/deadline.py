"""The invocation's deadline, and running work so that it ends before it.

Function Compute kills an invocation at its timeout, with no result and no log of what it did.
kubeconfig-guard stops before that, at ``timeout - KCGUARD_DEADLINE_MARGIN_SECONDS``, and returns
(or raises the retryable error with) a result that says what was done and what was not.

Two instants, both monotonic seconds:

* ``listing_at``: listing stops here (a share of the time, ``LISTING_SHARE``), so the revocations
  the listings found still have time to run: work done before the deadline sticks, and the retry
  starts from a world where those are gone.
* ``at``: everything stops here; what is still in flight is cancelled and reported.

Waiting for a slot in the concurrency cap, the rate limiter and retry back-offs all count: the
bound is on the whole task, not on its start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# The share of the time before the deadline that listing may use; the rest is for revoking.
LISTING_SHARE = 0.75


@dataclass(frozen=True)
class Deadline:
    """When listing stops (``listing_at``) and when all work stops (``at``); None: never."""

    at: float | None = None
    listing_at: float | None = None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(
        cls,
        started: float,
        seconds: float,
        *,
        listing_share: float = LISTING_SHARE,
        clock: Callable[[], float] = time.monotonic,
    ) -> Deadline:
        """A deadline ``seconds`` after ``started``; listing stops after ``listing_share`` of it."""
        seconds = max(seconds, 0.0)
        return cls(started + seconds, started + seconds * listing_share, clock)

    def near(self) -> bool:
        """Too late to start anything new."""
        return self.at is not None and self.clock() >= self.at

    def listing_over(self) -> bool:
        """Too late to start a listing."""
        return self.listing_at is not None and self.clock() >= self.listing_at

    def remaining(self, *, listing: bool = False) -> float | None:
        """Seconds left before ``listing_at`` (``listing``) or ``at``; None when unbounded."""
        until = self.listing_at if listing else self.at
        return None if until is None else max(until - self.clock(), 0.0)


def function_timeout(context: Any) -> float | None:
    """The function's timeout in seconds, from Function Compute's context (``context.function.timeout``)."""
    timeout = getattr(getattr(context, "function", None), "timeout", None)
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return None


def invocation_deadline(context: Any, started: float, margin: float, *, reserve: float = 0.0) -> Deadline:
    """Stop ``margin`` (+ ``reserve``) seconds before Function Compute would kill the invocation."""
    timeout = function_timeout(context)
    if timeout is None:
        return Deadline()
    return Deadline.after(started, timeout - margin - reserve)


async def run_until(work: Sequence[Awaitable[T]], timeout: float | None) -> tuple[list[T | None], list[int]]:
    """Run the awaitables concurrently for at most ``timeout`` seconds, then cancel the rest.

    Returns the results in order (None where cancelled) and the indexes that were cancelled.
    Exceptions propagate as from ``asyncio.gather``.
    """
    tasks = [asyncio.ensure_future(w) for w in work]
    if not tasks:
        return [], []
    try:
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    cancelled = [i for i, task in enumerate(tasks) if task in pending]
    return [None if task in pending else task.result() for task in tasks], cancelled
