"""Opt-in fault injection for the fake ACK, decided in one place for both front ends.

Configure per operation (or a default for all operations)::

    backend.faults.set(None, FaultSpec(latency_seconds=0.02))              # every operation
    backend.faults.set("CleanClusterUserPermissions", FaultSpec(reset_rate=1.0))
    backend.faults.set("ListClusterKubeconfigStates", FaultSpec(rate_limit_rps=50, burst=10))
    backend.faults.set("DescribeClustersV1", FaultSpec(page_repeat_first=True, page_total_count=10**9))
    backend.faults.set("CleanClusterUserPermissions", FaultSpec(answer_status=200, answer_body=""))

Every fault but "reset" is decided before the operation runs; a reset with
``reset_after_apply=True`` (the default) happens after the operation was applied:
the write happened but the client never sees the answer.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

FaultKind = Literal["hang", "slow", "reset"]


@dataclass(frozen=True)
class FaultSpec:
    """What can go wrong with one operation (all off by default).

    - ``latency_seconds``: added to every request.
    - ``rate_limit_rps`` / ``burst``: a token bucket per operation; requests beyond it get
      HTTP 429 ``Throttling.User``. ``burst`` defaults to ``max(1, rate_limit_rps)``. With
      ``rate_limit_scope="all"`` one bucket serves every operation whose spec says so (a quota
      of the whole injector: one account's ACK API, say), instead of one per operation.
    - ``throttle_rate``: share of requests answered 429 ``Throttling.User`` whatever the
      request rate (other tools exhausting the account's quota; operation not applied).
    - ``error_rate_5xx``: share of requests answered 503 ``ServiceUnavailable`` or 500
      ``InternalError`` (operation not applied).
    - ``hang_rate`` / ``hang_seconds``: share of requests never answered; the connection is
      closed after ``hang_seconds`` (operation not applied).
    - ``reset_rate`` / ``reset_after_apply``: share of connections reset mid-response
      (after the operation was applied), or reset before it was applied.
    - ``slow_rate`` / ``slow_seconds``: share of responses delayed by ``slow_seconds``
      (operation applied first, so a client timeout does not mean "not done").

    Hostile paging (every answer of a listing operation, ``DescribeClustersV1`` or
    ``ListClusterKubeconfigStates``; ignored by other operations):

    - ``page_total_count``: the page metadata claims this ``total_count`` (5,000,000, -1...).
    - ``page_repeat_first``: every page number is answered with the first page's items.
    - ``page_empty``: every page is answered with no items (the metadata is kept).
    - ``page_number_echo``: the metadata echoes this ``page_number`` whatever was asked.

    Canned answers (an answer that is not ACK's documented one: a 200 with an error body, an
    empty body, a proxy's HTML page, an error whose ``requestId`` is an object):

    - ``answer_status`` / ``answer_body`` / ``answer_content_type``: answer this status and body
      (text, sent as UTF-8; JSON-serializable like every field) instead of the operation's (off
      while ``answer_status`` is None).
    - ``answer_after_apply``: run the operation first, then answer the canned answer instead of
      its own (the write happened; the client gets the odd answer). An operation that fails
      answers its own error.
    - ``answer_limit``: answer the canned answer to at most this many requests of the operation
      (None: every one); the count restarts when a spec is set.
    """

    latency_seconds: float = 0.0
    rate_limit_rps: float | None = None
    burst: float | None = None
    rate_limit_scope: Literal["operation", "all"] = "operation"
    throttle_rate: float = 0.0
    error_rate_5xx: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    reset_rate: float = 0.0
    reset_after_apply: bool = True
    slow_rate: float = 0.0
    slow_seconds: float = 30.0
    page_total_count: int | None = None
    page_repeat_first: bool = False
    page_empty: bool = False
    page_number_echo: int | None = None
    answer_status: int | None = None
    answer_body: str = ""
    answer_content_type: str = "application/json;charset=utf-8"
    answer_after_apply: bool = False
    answer_limit: int | None = None


NO_FAULTS = FaultSpec()


@dataclass(frozen=True)
class FaultDecision:
    """The faults chosen for one request; front ends carry out delays, hangs and resets."""

    latency_seconds: float = 0.0
    throttled: bool = False
    error_status: int | None = None  # 500 or 503
    kind: FaultKind | None = None
    seconds: float = 0.0  # hang or slow duration
    reset_after_apply: bool = True
    # Hostile paging the wire layer applies to a listing answer (see FaultSpec).
    page_total_count: int | None = None
    page_repeat_first: bool = False
    page_empty: bool = False
    page_number_echo: int | None = None
    # A canned answer the wire layer serves instead of the operation's (see FaultSpec).
    answer_status: int | None = None
    answer_body: str = ""
    answer_content_type: str = ""
    answer_after_apply: bool = False


NO_DECISION = FaultDecision()


class _TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


FaultObserver = Callable[[str, FaultDecision], None]
_SHARED_BUCKET = "\x00all"  # the bucket of rate_limit_scope="all" (no operation has this name)


class FaultInjector:
    """Per-operation fault specs, a seeded random source, token buckets and fault counters.

    ``counts`` keys: ``throttled``, ``error_5xx``, ``hang``, ``slow``, ``reset``, ``latency``,
    ``answer`` (canned answers).
    ``observers``: callables ``(operation, decision)`` told every request's decision, faults or
    not (the benchmark's timeline of served and throttled requests); they must be quick.
    """

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str | None, FaultSpec] = {}
        self._buckets: dict[str, _TokenBucket] = {}
        self._answered: Counter[str] = Counter()  # canned answers per operation, for answer_limit
        self._random = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.observers: list[FaultObserver] = []

    def set(self, operation: str | None, spec: FaultSpec | None) -> None:
        """Set (or with None remove) the spec of one operation, or the default when ``operation`` is None."""
        with self._lock:
            if spec is None:
                self._specs.pop(operation, None)
            else:
                self._specs[operation] = spec
            self._buckets.clear()
            self._answered.clear()

    def clear(self) -> None:
        """Remove every spec (counters are kept)."""
        with self._lock:
            self._specs.clear()
            self._buckets.clear()
            self._answered.clear()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._random.seed(seed)

    def spec_for(self, operation: str) -> FaultSpec:
        """The operation's own spec, else the default spec, else no faults."""
        return self._specs.get(operation) or self._specs.get(None) or NO_FAULTS

    def decide(self, operation: str) -> FaultDecision:
        """Choose the faults of one request of ``operation`` (count them, tell the observers)."""
        decision = self._decide(operation)
        for observer in self.observers:
            observer(operation, decision)
        return decision

    def _decide(self, operation: str) -> FaultDecision:
        if not self._specs:  # fast path: no faults configured
            return NO_DECISION
        with self._lock:
            spec = self.spec_for(operation)
            if spec == NO_FAULTS:
                return NO_DECISION
            latency = max(0.0, spec.latency_seconds)
            if latency:
                self.counts["latency"] += 1
            base = FaultDecision(
                latency_seconds=latency,
                page_total_count=spec.page_total_count,
                page_repeat_first=spec.page_repeat_first,
                page_empty=spec.page_empty,
                page_number_echo=spec.page_number_echo,
            )
            if spec.answer_status is not None and (
                spec.answer_limit is None or self._answered[operation] < spec.answer_limit
            ):
                self._answered[operation] += 1
                self.counts["answer"] += 1
                return replace(
                    base,
                    answer_status=spec.answer_status,
                    answer_body=spec.answer_body,
                    answer_content_type=spec.answer_content_type,
                    answer_after_apply=spec.answer_after_apply,
                )
            if spec.rate_limit_rps is not None:
                key = operation if spec.rate_limit_scope == "operation" else _SHARED_BUCKET
                bucket = self._buckets.get(key)
                if bucket is None:
                    burst = spec.burst if spec.burst is not None else max(1.0, spec.rate_limit_rps)
                    bucket = self._buckets[key] = _TokenBucket(spec.rate_limit_rps, burst)
                if not bucket.take():
                    self.counts["throttled"] += 1
                    return replace(base, throttled=True)
            if spec.throttle_rate and self._random.random() < spec.throttle_rate:
                self.counts["throttled"] += 1
                return replace(base, throttled=True)
            # One draw per kind, always in the same order: reproducible for a seed.
            draws = [self._random.random() for _ in range(4)]
            if draws[0] < spec.error_rate_5xx:
                self.counts["error_5xx"] += 1
                status = 503 if self._random.random() < 0.5 else 500
                return replace(base, error_status=status)
            if draws[1] < spec.hang_rate:
                self.counts["hang"] += 1
                return replace(base, kind="hang", seconds=spec.hang_seconds)
            if draws[2] < spec.reset_rate:
                self.counts["reset"] += 1
                return replace(base, kind="reset", reset_after_apply=spec.reset_after_apply)
            if draws[3] < spec.slow_rate:
                self.counts["slow"] += 1
                return replace(base, kind="slow", seconds=spec.slow_seconds)
            return base if base != NO_DECISION else NO_DECISION
