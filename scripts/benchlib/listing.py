"""How the client pages, asked of the client itself: calls and sequential rounds of one listing.

The bench's lower bounds need, for a cluster of ``n`` kubeconfig states and a region of ``n``
clusters, how many requests kubeconfig-guard's ``AckClient`` makes and how many of them must
wait for an earlier answer (the rounds on the latency critical path). Rather than a copy of the
client's paging rules, each shape is measured once: the real ``AckClient`` lists a one-cluster
(or one-region) fake ACK in process, through a transport that delays every answer by
``ROUND_SECONDS`` and gives each request the depth ``1 + the deepest answer already received``.
The delay is far above the client's request spacing, so requests sent together share a depth.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cache

import httpx

from kubeconfig_guard.client import AckClient
from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.fake import FakeAck, FakeAckTransport, generate_world
from kubeconfig_guard.settings import Settings

ROUND_SECONDS = 0.1
PROBE_REGION = "cn-hangzhou"


@dataclass(frozen=True)
class ListingShape:
    """Requests of one listing and its sequential rounds (the depth of its dependency chain)."""

    calls: int
    rounds: int


class _DepthTransport(httpx.AsyncBaseTransport):
    """Delays every answer and records each request's depth in the chain of answers before it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.depths: list[int] = []  # of the answers received, in order

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        depth = 1 + max(self.depths, default=0)
        await asyncio.sleep(ROUND_SECONDS)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.depths.append(depth)
        return response


def _probe_world(clusters: int, states: int) -> FakeAck:
    """One region of ``clusters`` running clusters; the first holds exactly ``states`` kubeconfigs."""
    world = generate_world(
        1, regions=[PROBE_REGION], clusters_per_region=clusters, kubeconfigs_per_cluster=max(1, states)
    )
    region = world.regions[PROBE_REGION]
    for cluster in region.clusters:
        cluster.state = "running"
    first = region.clusters[0]
    if len(first.kubeconfigs) < states:
        raise ValueError(f"the generated cluster holds {len(first.kubeconfigs)} kubeconfigs, {states} wanted")
    first.kubeconfigs = first.kubeconfigs[:states]
    return FakeAck(world)


async def _measure(backend: FakeAck, what: str) -> ListingShape:
    transport = _DepthTransport(FakeAckTransport(backend))
    settings = Settings(regions=[PROBE_REGION])
    async with AckClient(
        settings, StaticCredentials(from_environment_or_demo()), transport=transport
    ) as client:
        if what == "clusters":
            await client.describe_clusters(PROBE_REGION)
        else:
            cluster_id = backend.to_world().regions[PROBE_REGION].clusters[0].cluster_id
            await client.list_kubeconfig_states(PROBE_REGION, cluster_id)
    return ListingShape(calls=len(transport.depths), rounds=max(transport.depths, default=0))


@cache
def states_listing(states: int) -> ListingShape:
    """ListClusterKubeconfigStates of a cluster holding ``states`` kubeconfigs."""
    return asyncio.run(_measure(_probe_world(1, states), "states"))


@cache
def clusters_listing(clusters: int) -> ListingShape:
    """DescribeClustersV1 of a region of ``clusters`` clusters."""
    return asyncio.run(_measure(_probe_world(max(1, clusters), 1), "clusters"))
