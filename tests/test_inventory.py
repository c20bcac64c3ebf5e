"""The shared listings of one instance (inventory.py): when a coalesced refresh starts.

A refresh forced by an event starts no earlier than ``COALESCE_SECONDS`` after the event arrived,
so a burst shares it; a refresh asked for later than that (a cluster that waited for one of the
engine's listing slots) starts at once instead of paying the wait again. Checked on the listings'
start times under a controlled clock, through the real client against the fake in process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from enum import Enum
from typing import Any

import pytest

from kubeconfig_guard.client import AckClient
from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.fake import FakeAck, FakeAckTransport
from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.inventory import COALESCE_SECONDS, Inventory
from kubeconfig_guard.models import KubeconfigState
from kubeconfig_guard.settings import Settings
from support.worlds import cluster, kc, world

pytestmark = pytest.mark.usefixtures("demo_env")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def started_at(arrived: float, now: float, *, coalesce: bool) -> tuple[float, int]:
    """(when the listing of c1 started, ListClusterKubeconfigStates calls) for an event that
    arrived at ``arrived`` and asks at ``now``."""
    backend = FakeAck(world({"cn-hangzhou": [cluster("c1", kc("200000000000000001", "tom"))]}))
    clock = Clock(now)

    async def run() -> float:
        settings = Settings(regions=["cn-hangzhou"])
        credentials = StaticCredentials(from_environment_or_demo())
        async with AckClient(settings, credentials, transport=FakeAckTransport(backend)) as client:
            inventory = Inventory(client, ttl=60.0, clock=clock)
            listing = await inventory.states_for_decision(
                "cn-hangzhou", "c1", arrived, lambda s: True, coalesce=coalesce
            )
            assert [s.account_name for s in listing.value] == ["tom"]
            return listing.started_at

    return asyncio.run(run()), backend.calls["ListClusterKubeconfigStates"]


def test_a_refresh_right_at_arrival_waits_for_the_burst() -> None:
    assert started_at(100.0, 100.0, coalesce=True) == (100.0 + COALESCE_SECONDS, 1)
    assert started_at(100.0, 100.1, coalesce=True) == (100.0 + COALESCE_SECONDS, 1)


def test_a_refresh_asked_after_the_window_starts_at_once() -> None:
    # A cluster that waited for a listing slot: the burst's window has passed.
    assert started_at(100.0, 100.0 + 3 * COALESCE_SECONDS, coalesce=True) == (100.75, 1)


def test_without_coalescing_a_listing_starts_at_once() -> None:
    assert started_at(100.0, 100.0, coalesce=False) == (100.0, 1)


def kept_bytes(states: list[KubeconfigState]) -> int:
    """The memory a listing holds: the list, and every object its records reach, each counted once
    (strings shared between records once; classes, enum members, None and booleans are shared by
    the whole process and not counted)."""
    seen: set[int] = set()
    total = sys.getsizeof(states)
    stack: list[Any] = list(states)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (type, Enum, bool)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def test_shared_listings_keep_compact_records(make_harness: Any) -> None:
    """Issue 19: a warm instance keeps every listing of the fleet for the freshness window, so each
    kubeconfig is a slotted record (no per-object dict, no fields-set bookkeeping): at most 400
    bytes with its strings, i.e. 40 MB per 100,000 kubeconfigs, even when no two share a uid or name.
    A later invocation finds the same records without a call, and matching reads them."""
    per_cluster = 260  # 6 pages of 50
    clusters = [
        cluster(
            f"c{c}",
            *(
                kc(f"2{c}{i:016d}", f"user-{c}-{i}@example.onaliyun.com", account_state="Active")
                for i in range(per_cluster)
            ),
            kc("2999", "leaver"),
        )
        for c in range(2)
    ]
    h = make_harness(world({"cn-hangzhou": clusters}))
    rt = h.runtime(listing_ttl_seconds=600)
    event = json.dumps({"action": "revoke", "principal": {"type": "RamUser", "name": "leaver"}}).encode()
    first = handle_event(event, None, runtime=rt)
    assert first.outcome.value == "ok" and first.clusters_scanned == 2
    calls = h.backend.calls["ListClusterKubeconfigStates"]

    listing = rt.run(rt.engine.inventory.states("cn-hangzhou", "c0", float("-inf")))
    assert h.backend.calls["ListClusterKubeconfigStates"] == calls  # the shared listing, no new call
    states = listing.value
    assert len(states) == per_cluster + 1
    assert all(type(s) is KubeconfigState and not hasattr(s, "__dict__") for s in states)
    assert [s.account_name for s in states if s.account_name == "leaver"] == ["leaver"]
    assert states[0].account_type is not None and states[0].account_type.value == "RamUser"
    assert kept_bytes(states) / len(states) <= 400, kept_bytes(states) / len(states)
