"""The ACK client against the fake: pagination, errors, retries, endpoints, limits, secrets."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from kubeconfig_guard.client import AckClient, endpoint_url
from kubeconfig_guard.credentials import Credentials, StaticCredentials, from_environment_or_demo
from kubeconfig_guard.errors import AckApiError, KcguardError
from kubeconfig_guard.fake import FakeAck, FakeAckServer, FakeAckTransport, FaultSpec
from kubeconfig_guard.ratelimit import AdaptiveRateLimiter
from support.worlds import cluster, kc, settings, world


def big_world(n: int = 137) -> Any:
    return world({"cn-hangzhou": [cluster("c1", *[kc(f"2{i:05d}", f"u{i}") for i in range(n)])]})


async def _with_client(
    backend: FakeAck, body: Any, creds: Credentials | None = None, **overrides: Any
) -> Any:
    client = AckClient(
        settings(cs_endpoint="http://127.0.0.1:1", **overrides),
        StaticCredentials(creds or from_environment_or_demo()),
        transport=FakeAckTransport(backend),
    )
    async with client:
        return await body(client)


def call(backend: FakeAck, body: Any, **kw: Any) -> Any:
    return asyncio.run(_with_client(backend, body, **kw))


def test_pages_first_then_the_rest_concurrently() -> None:
    backend = FakeAck(big_world())
    seen: list[str] = []
    backend.hooks.append(lambda b, op, p: seen.append(p.get("pageNumber", "")))
    states = call(backend, lambda c: c.list_kubeconfig_states("cn-hangzhou", "c1"))
    assert len(states) == 137 and len({s.account_id for s in states}) == 137
    assert seen[0] == "1" and sorted(seen) == ["1", "2", "3"]


@pytest.mark.parametrize("change", ["add", "remove"])
def test_pagination_drift_loses_and_duplicates_nothing(change: str) -> None:
    backend = FakeAck(big_world(120))
    fired: list[bool] = []

    def drift(b: FakeAck, op: str, params: dict[str, str]) -> None:
        if op == "ListClusterKubeconfigStates" and params.get("pageNumber") == "2" and not fired:
            fired.append(True)
            if change == "add":
                b.add_kubeconfig("c1", kc("100000", "new-first"))  # sorts first: shifts everything right
            else:
                b.remove_kubeconfig("c1", "200000")  # shifts everything left

    backend.hooks.append(drift)
    states = call(backend, lambda c: c.list_kubeconfig_states("cn-hangzhou", "c1"))
    ids = [s.account_id for s in states]
    assert len(ids) == len(set(ids))
    expected = {k.account_id for k in backend.kubeconfigs("c1")}
    assert set(ids) == expected


def test_unknown_cluster_is_a_typed_404() -> None:
    backend = FakeAck(big_world(3))
    with pytest.raises(AckApiError) as raised:
        call(backend, lambda c: c.list_kubeconfig_states("cn-hangzhou", "nope"))
    err = raised.value
    assert err.status == 404 and err.code == "ErrorClusterNotFound" and err.request_id and not err.transient
    assert backend.calls["ListClusterKubeconfigStates"] == 1  # a 4xx is never retried


def test_throttling_and_5xx_are_retried_then_succeed() -> None:
    backend = FakeAck(big_world(3))
    answers = iter([(429, "Throttling.User"), (503, "ServiceUnavailable"), None])

    def flaky(b: FakeAck, op: str, params: dict[str, str]) -> None:
        from kubeconfig_guard.fake import FakeAckError

        if (nxt := next(answers, None)) is not None:
            raise FakeAckError(nxt[0], nxt[1], "injected")

    backend.hooks.append(flaky)

    async def body(c: AckClient) -> Any:
        states = await c.list_kubeconfig_states("cn-hangzhou", "c1")
        return states, c.stats

    states, stats = call(backend, body)
    assert len(states) == 3 and stats.retries == 2 and stats.throttled == 1 and stats.server_errors == 1


def test_retries_give_up_after_max_attempts() -> None:
    backend = FakeAck(big_world(3))
    backend.faults.set(None, FaultSpec(error_rate_5xx=1.0))
    with pytest.raises(AckApiError) as raised:
        call(backend, lambda c: c.describe_clusters("cn-hangzhou"), max_attempts=4)
    assert raised.value.status >= 500 and backend.calls["DescribeClustersV1"] == 4


def test_timeouts_and_resets_are_transport_errors_and_retried() -> None:
    backend = FakeAck(big_world(3))
    with FakeAckServer(backend) as server:
        backend.faults.set("DescribeClustersV1", FaultSpec(hang_rate=1.0, hang_seconds=5))

        async def describe() -> Any:
            client = AckClient(
                settings(cs_endpoint=server.url, timeout_seconds=0.3, max_attempts=2),
                StaticCredentials(from_environment_or_demo()),
            )
            async with client:
                return await client.describe_clusters("cn-hangzhou")

        with pytest.raises(AckApiError) as raised:
            asyncio.run(describe())
        assert raised.value.code == "Transport.Timeout" and raised.value.status == 0
        backend.faults.set("DescribeClustersV1", FaultSpec(reset_rate=1.0, reset_after_apply=False))
        with pytest.raises(AckApiError) as raised:
            asyncio.run(describe())
        assert raised.value.code == "Transport.Error"


def test_signature_with_wrong_secret_is_refused_and_secret_never_shown() -> None:
    backend = FakeAck(big_world(3))
    wrong = Credentials(
        "kcguard-demo-access-key-id", SecretStr("TOP-SECRET-VALUE-123"), SecretStr("STS-TOKEN-456")
    )
    with pytest.raises(AckApiError) as raised:
        call(backend, lambda c: c.describe_clusters("cn-hangzhou"), creds=wrong)
    assert raised.value.code in ("SignatureDoesNotMatch", "InvalidSecurityToken")
    text = f"{raised.value!s} {raised.value!r} {wrong!r} {wrong}"
    assert "TOP-SECRET-VALUE-123" not in text and "STS-TOKEN-456" not in text


def test_endpoints() -> None:
    assert str(endpoint_url("cn-beijing", None)) == "https://cs.cn-beijing.aliyuncs.com"
    assert str(endpoint_url("x", "http://127.0.0.1:8080")) == "http://127.0.0.1:8080/"
    assert str(endpoint_url("x", "http://[::1]:8080")).startswith("http://[::1]:8080")
    assert (
        str(endpoint_url("x", "cs-vpc.cn-hangzhou.aliyuncs.com"))
        == "https://cs-vpc.cn-hangzhou.aliyuncs.com/"
    )
    for bad in ("http://cs.cn-hangzhou.aliyuncs.com", "http://10.0.0.1", "ftp://127.0.0.1"):
        with pytest.raises(KcguardError):
            endpoint_url("x", bad)


def test_concurrency_cap_is_respected() -> None:
    backend = FakeAck(world({"cn-hangzhou": [cluster(f"c{i}", kc("2001", "a")) for i in range(40)]}))
    backend.faults.set(None, FaultSpec(latency_seconds=0.02))
    in_flight = {"now": 0, "max": 0}
    transport = FakeAckTransport(backend)

    class Counting(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            try:
                return await transport.handle_async_request(request)
            finally:
                in_flight["now"] -= 1

    async def body() -> None:
        client = AckClient(
            settings(cs_endpoint="http://127.0.0.1:1", max_concurrency=5),
            StaticCredentials(from_environment_or_demo()),
            transport=Counting(),
        )
        async with client:
            await asyncio.gather(*(client.list_kubeconfig_states("cn-hangzhou", f"c{i}") for i in range(40)))

    asyncio.run(body())
    assert in_flight["max"] == 5


def test_rate_limiter_backs_off_on_throttling_and_recovers() -> None:
    now = [0.0]
    limiter = AdaptiveRateLimiter(100.0, clock=lambda: now[0])
    for _ in range(80):  # the API accepts 40/s over two seconds
        now[0] += 1 / 40
        limiter.on_success()
    limiter.on_throttled()
    assert 30 <= limiter.rate <= 40  # just under what the API accepted, not a blind halving
    before = limiter.rate
    limiter.on_throttled()  # the same burst of throttled answers: no second cut
    assert limiter.rate == before
    for _ in range(200):
        now[0] += 1 / limiter.rate
        limiter.on_success()
    assert limiter.rate > before  # additive increase


def test_rate_limiter_slow_start_grows_fast_until_the_first_throttle() -> None:
    limiter = AdaptiveRateLimiter(300.0, clock=lambda: 0.0)
    assert limiter.rate == 50.0 and limiter.slow_start
    for _ in range(5):
        limiter.on_success()
    assert limiter.rate == 150.0
    limiter.on_throttled()
    assert limiter.slow_start and limiter.rate == 150.0  # a lone throttled answer: not yet
    limiter.on_throttled()  # two in a row: not yet either (rate-independent 429s give them; issue 19)
    assert limiter.slow_start and limiter.rate == 150.0
    for _ in range(8):  # 10 of the last 20 answers throttled: a limit is overrun
        limiter.on_throttled()
    assert not limiter.slow_start and limiter.rate <= 120.0  # at least a 20 % cut


def test_rate_limiter_spaces_requests() -> None:
    async def body() -> float:
        limiter = AdaptiveRateLimiter(50.0, slow_start_rps=50.0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(11):
            await limiter.acquire()
        return loop.time() - start

    assert asyncio.run(body()) >= 0.19  # 10 intervals of 20 ms
