"""Cluster and kubeconfig-state listings, shared by concurrent invocations on one instance.

A burst of events (a mass offboarding) must not re-scan every cluster per event.
Listings are single-flight: callers that ask for the same listing while it is in
flight, or within the freshness window, share it. A caller states how fresh it
needs the listing to be (``not_before``: the listing must have *started* after
that time). A successful Clean removes the uid from the shared listing; a failed one drops it.

**The freshness rule** lives here, in ``states_for_decision``: a revocation is decided only on
a state read after its invocation started. Candidates are found on a shared listing (up to
``ttl`` old); a cluster where the principal has candidates is read again when that listing
started before the invocation. No other time (an event's publish time, which a late, retried
or crafted event sets in the past) moves that bound.
When several invocations run on one instance at once (a burst), a re-read one of them starts
waits until a moment after that invocation started (``COALESCE_SECONDS``) so the others share
it; one asked for later than that (a cluster that waited for a listing slot) starts at once.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .client import AckClient
from .models import Cluster, KubeconfigState

T = TypeVar("T")

# In a burst (several invocations on one instance), a re-read an invocation starts waits until
# this long after the invocation started, so the events arriving meanwhile share it.
COALESCE_SECONDS = 0.25


@dataclass
class _Entry(Generic[T]):
    started_at: float
    task: asyncio.Future[T]


@dataclass(frozen=True)
class Listing(Generic[T]):
    value: T
    started_at: float


async def _after(delay: float, fetch: Callable[[], Awaitable[T]]) -> T:
    if delay > 0:
        await asyncio.sleep(delay)
    return await fetch()


def _failed(task: asyncio.Future[T]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


class _SingleFlight(Generic[T]):
    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, _Entry[T]] = {}
        self._next_sweep = float("-inf")

    async def get(
        self, key: str, not_before: float, fetch: Callable[[], Awaitable[T]], delay: float = 0.0
    ) -> Listing[T]:
        entry = self._entries.get(key)
        if entry is None or entry.started_at < not_before or _failed(entry.task):
            self._sweep()
            entry = _Entry(self._clock() + delay, asyncio.ensure_future(_after(delay, fetch)))
            self._entries[key] = entry
            entry.task.add_done_callback(functools.partial(self._forget_failed, key, entry))
        return Listing(await asyncio.shield(entry.task), entry.started_at)

    def _forget_failed(self, key: str, entry: _Entry[T], task: asyncio.Future[T]) -> None:
        if _failed(task) and self._entries.get(key) is entry:
            del self._entries[key]

    def _sweep(self) -> None:
        """Drop finished entries older than ``ttl``: at most every ``ttl / 4`` (a fleet's listing
        starts an entry per cluster; sweeping them all each time was quadratic)."""
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._ttl / 4
        horizon = now - self._ttl
        for key in [k for k, e in self._entries.items() if e.task.done() and e.started_at < horizon]:
            del self._entries[key]

    def invalidate(self, key: str) -> None:
        self._entries.pop(key, None)

    def update(self, key: str, change: Callable[[T], T]) -> None:
        """Apply a known write to a finished listing (keeping its age); drop one still in flight."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if not entry.task.done() or _failed(entry.task):
            del self._entries[key]
            return
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        future.set_result(change(entry.task.result()))
        self._entries[key] = _Entry(entry.started_at, future)


class Inventory:
    """Shared, fresh-enough listings of clusters (per region) and kubeconfig states (per cluster)."""

    def __init__(self, client: AckClient, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._clusters: _SingleFlight[list[Cluster]] = _SingleFlight(ttl, clock)
        self._states: _SingleFlight[list[KubeconfigState]] = _SingleFlight(ttl, clock)
        self._cleans: dict[tuple[str, str], asyncio.Future[None]] = {}

    def shared_since(self, invocation_started: float) -> float:
        """The oldest start time a listing may have to be shared with an invocation started then."""
        return invocation_started - self.ttl

    async def clusters(self, region: str, not_before: float) -> Listing[list[Cluster]]:
        return await self._clusters.get(region, not_before, lambda: self.client.describe_clusters(region))

    async def states(
        self, region: str, cluster_id: str, not_before: float, *, start_after: float | None = None
    ) -> Listing[list[KubeconfigState]]:
        """A cluster's states, listed no earlier than ``not_before``.

        ``start_after``: when a new listing is needed, start it no earlier than this (a burst:
        the other events arriving meanwhile share it).
        """
        delay = max(0.0, start_after - self._clock()) if start_after is not None else 0.0
        return await self._states.get(
            cluster_id, not_before, lambda: self.client.list_kubeconfig_states(region, cluster_id), delay
        )

    async def states_for_decision(
        self,
        region: str,
        cluster_id: str,
        invocation_started: float,
        relevant: Callable[[KubeconfigState], bool],
        *,
        coalesce: bool = False,
    ) -> Listing[list[KubeconfigState]]:
        """The cluster's states to decide an invocation's revocations on (the freshness rule).

        A shared listing (started within ``ttl`` before the invocation) is enough to find that
        nothing there is ``relevant``; when something is and that listing started before the
        invocation, the cluster is listed afresh and the decision is made on that read only.
        ``coalesce`` (other invocations are running on this instance: a burst): a listing this
        invocation starts waits until ``COALESCE_SECONDS`` after the invocation started, counted
        from its start, not from the request (clusters listed batch after batch pay it once), so
        the events arriving meanwhile share it instead of reading it again.
        """
        start_after = invocation_started + COALESCE_SECONDS if coalesce else None
        listing = await self.states(
            region, cluster_id, invocation_started - self.ttl, start_after=start_after
        )
        if listing.started_at < invocation_started and any(relevant(s) for s in listing.value):
            listing = await self.states(region, cluster_id, invocation_started, start_after=start_after)
        return listing

    def invalidate_cluster(self, cluster_id: str) -> None:
        self._states.invalidate(cluster_id)

    async def clean_once(self, cluster_id: str, uid: str, clean: Callable[[], Awaitable[None]]) -> bool:
        """Run a Clean, or join the same Clean already in flight (duplicate or concurrent events).

        Returns True when this caller joined another's call.
        """
        key = (cluster_id, uid)
        if (running := self._cleans.get(key)) is not None:
            await asyncio.shield(running)
            return True
        task = asyncio.ensure_future(clean())
        self._cleans[key] = task
        try:
            await asyncio.shield(task)
        finally:
            self._cleans.pop(key, None)
        return False

    def forget_uid(self, cluster_id: str, uid: str) -> None:
        """A Clean succeeded: the uid's kubeconfigs are gone from this cluster's listing."""
        self._states.update(cluster_id, lambda states: [s for s in states if s.account_id != uid])
