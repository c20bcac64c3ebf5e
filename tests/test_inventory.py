"""The shared listings of one instance (inventory.py): when a coalesced refresh starts.

A refresh forced by an event starts no earlier than ``COALESCE_SECONDS`` after the event arrived,
so a burst shares it; a refresh asked for later than that (a cluster that waited for one of the
engine's listing slots) starts at once instead of paying the wait again. Checked on the listings'
start times under a controlled clock, through the real client against the fake in process.
"""

from __future__ import annotations

import asyncio

import pytest

from kubeconfig_guard.client import AckClient
from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.fake import FakeAck, FakeAckTransport
from kubeconfig_guard.inventory import COALESCE_SECONDS, Inventory
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
