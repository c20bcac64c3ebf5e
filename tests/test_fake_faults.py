"""Fault injection of the fake ACK: throttling, 5xx, latency, hangs, slow answers, resets."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from kubeconfig_guard.client import AckClient
from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.errors import AckApiError
from kubeconfig_guard.fake import FakeAck, FakeAckServer, FakeAckTransport, FaultSpec
from kubeconfig_guard.fake.faults import FaultInjector
from kubeconfig_guard.fake.testing import signed_request, small_world
from kubeconfig_guard.fake.wire import handle
from kubeconfig_guard.settings import Settings

TOM = "200000000000000001"
ANN = "200000000000000002"
CLEAN = "CleanClusterUserPermissions"
LIST = "ListClusterKubeconfigStates"


pytestmark = pytest.mark.usefixtures("demo_env")


def settings(endpoint: str | None = None, **overrides: float) -> Settings:
    return Settings(cs_endpoint=endpoint, max_attempts=1, timeout_seconds=0.3, **overrides)  # type: ignore[arg-type]


def clean(backend: FakeAck, *, endpoint: str | None = None, uid: str = TOM) -> AckApiError | None:
    """One Clean through our client (transport unless ``endpoint``); the error, or None."""

    async def run() -> AckApiError | None:
        transport = None if endpoint else FakeAckTransport(backend)
        async with AckClient(
            settings(endpoint), StaticCredentials(from_environment_or_demo()), transport=transport
        ) as client:
            try:
                await client.clean_user_permissions("cn-hangzhou", "c-prod", uid, force=True)
            except AckApiError as exc:
                return exc
            return None

    return asyncio.run(run())


def list_request(backend: FakeAck) -> tuple[int, str]:
    target, headers = signed_request("GET", "/clusters/c-prod/kubeconfig/states")
    answer = handle(backend, "GET", target, headers)
    code = answer.body.decode() if answer.status != 200 else ""
    return answer.status, code


def test_throttling_beyond_the_token_bucket(backend: FakeAck) -> None:
    backend.faults.set(LIST, FaultSpec(rate_limit_rps=0.5, burst=3))
    statuses = [list_request(backend)[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    status, body = list_request(backend)
    assert status == 429 and '"code":"Throttling.User"' in body
    assert backend.fault_counts["throttled"] == 3
    # Other operations have their own bucket (and no spec here).
    target, headers = signed_request("GET", "/api/v1/clusters")
    assert handle(backend, "GET", target, headers).status == 200


def test_throttled_client_sees_throttling(backend: FakeAck) -> None:
    backend.faults.set(None, FaultSpec(rate_limit_rps=0.1, burst=1))
    assert clean(backend, uid=ANN) is None
    error = clean(backend)
    assert error is not None and error.throttled and (error.status, error.code) == (429, "Throttling.User")
    assert [r.uid for r in backend.revocations] == [ANN]


def test_token_bucket_refills(backend: FakeAck) -> None:
    backend.faults.set(LIST, FaultSpec(rate_limit_rps=50, burst=1))
    assert list_request(backend)[0] == 200
    assert list_request(backend)[0] == 429
    time.sleep(0.05)
    assert list_request(backend)[0] == 200


def test_5xx_are_injected_before_the_operation(backend: FakeAck) -> None:
    backend.faults.set(CLEAN, FaultSpec(error_rate_5xx=1.0))
    error = clean(backend)
    assert error is not None and error.transient
    assert (error.status, error.code) in ((503, "ServiceUnavailable"), (500, "InternalError"))
    assert backend.revocations == [] and backend.fault_counts["error_5xx"] == 1


def test_5xx_rate_is_seeded_and_roughly_right() -> None:
    def outcomes(seed: int) -> list[int]:
        backend = FakeAck(small_world(), fault_seed=seed)
        backend.faults.set(None, FaultSpec(error_rate_5xx=0.3))
        return [list_request(backend)[0] for _ in range(200)]

    first = outcomes(3)
    assert first == outcomes(3)
    errors = sum(status >= 500 for status in first)
    assert 35 <= errors <= 85
    assert {status for status in first if status >= 500} == {500, 503}


def test_operation_spec_overrides_the_default() -> None:
    faults = FaultInjector()
    faults.set(None, FaultSpec(error_rate_5xx=1.0))
    faults.set(LIST, FaultSpec())
    assert faults.decide(LIST).error_status is None
    assert faults.decide(CLEAN).error_status in (500, 503)
    faults.set(None, None)
    assert faults.decide(CLEAN).error_status is None
    assert dict(faults.counts) == {"error_5xx": 1}


def test_latency_on_the_transport(backend: FakeAck) -> None:
    backend.faults.set(None, FaultSpec(latency_seconds=0.15))
    started = time.perf_counter()
    assert clean(backend) is None
    assert time.perf_counter() - started >= 0.15
    assert backend.fault_counts["latency"] == 1


def test_latency_on_the_server(backend: FakeAck, server: FakeAckServer) -> None:
    backend.faults.set(CLEAN, FaultSpec(latency_seconds=0.15))
    started = time.perf_counter()
    assert clean(backend, endpoint=server.url) is None
    assert time.perf_counter() - started >= 0.15


def test_hang_past_the_timeout_on_the_transport(backend: FakeAck) -> None:
    backend.faults.set(CLEAN, FaultSpec(hang_rate=1.0, hang_seconds=30))
    started = time.perf_counter()
    error = clean(backend)
    assert error is not None and error.code == "Transport.Timeout"
    assert 0.25 <= time.perf_counter() - started < 2
    assert backend.revocations == [] and backend.fault_counts["hang"] == 1


def test_hang_past_the_timeout_on_the_server_and_prompt_stop(backend: FakeAck) -> None:
    backend.faults.set(CLEAN, FaultSpec(hang_rate=1.0, hang_seconds=30))
    server = FakeAckServer(backend).start()
    try:
        error = clean(backend, endpoint=server.url)
        assert error is not None and error.code == "Transport.Timeout"
        assert backend.revocations == []
        # A raw connection still hanging when the server stops.
        target, headers = signed_request(
            "DELETE", f"/cluster/c-prod/user/{TOM}/permissions", host=f"127.0.0.1:{server.port}"
        )
        with httpx.Client(base_url=server.url, timeout=10) as http, ThreadPoolExecutor(1) as pool:
            pending = pool.submit(http.delete, target, headers=headers)
            time.sleep(0.2)
            started = time.perf_counter()
            server.stop()
            assert time.perf_counter() - started < 1
            with pytest.raises(httpx.TransportError):
                pending.result(timeout=5)
    finally:
        server.stop()


def test_slow_answer_applies_but_times_out(backend: FakeAck) -> None:
    backend.faults.set(CLEAN, FaultSpec(slow_rate=1.0, slow_seconds=5))
    error = clean(backend)
    assert error is not None and error.code == "Transport.Timeout"
    assert [r.uid for r in backend.revocations] == [TOM]  # done, but the client never knew
    assert backend.fault_counts["slow"] == 1


def test_slow_answer_within_the_timeout_arrives(backend: FakeAck, server: FakeAckServer) -> None:
    backend.faults.set(CLEAN, FaultSpec(slow_rate=1.0, slow_seconds=0.1))
    assert clean(backend, endpoint=server.url) is None
    assert [r.uid for r in backend.revocations] == [TOM]


def test_reset_mid_response_after_apply_on_the_server(backend: FakeAck, server: FakeAckServer) -> None:
    backend.faults.set(CLEAN, FaultSpec(reset_rate=1.0))
    error = clean(backend, endpoint=server.url)
    assert error is not None and error.status == 0 and error.code == "Transport.Error"
    assert [r.uid for r in backend.revocations] == [TOM]  # the Clean happened
    assert backend.fault_counts["reset"] == 1
    # The retry a careful client makes is an idempotent no-op.
    backend.faults.set(CLEAN, None)
    assert clean(backend, endpoint=server.url) is None
    assert [c.outcome for c in backend.clean_calls] == ["revoked", "noop"]


def test_reset_before_apply_on_the_server(backend: FakeAck, server: FakeAckServer) -> None:
    backend.faults.set(CLEAN, FaultSpec(reset_rate=1.0, reset_after_apply=False))
    error = clean(backend, endpoint=server.url)
    assert error is not None and error.code == "Transport.Error"
    assert backend.revocations == []


def test_reset_on_the_transport(backend: FakeAck) -> None:
    backend.faults.set(CLEAN, FaultSpec(reset_rate=1.0))
    error = clean(backend)
    assert error is not None and error.code == "Transport.Error"
    assert [r.uid for r in backend.revocations] == [TOM]


def test_retries_ride_over_transient_faults(backend: FakeAck, server: FakeAckServer) -> None:
    backend.faults.set(None, FaultSpec(error_rate_5xx=0.5))
    backend.faults.reseed(11)

    async def run() -> int:
        async with AckClient(
            Settings(cs_endpoint=server.url, max_attempts=20, backoff_max_seconds=0.01),
            StaticCredentials(from_environment_or_demo()),
        ) as client:
            states = await client.list_kubeconfig_states("cn-hangzhou", "c-big")
            return len(states)

    assert asyncio.run(run()) == 123
    assert backend.fault_counts["error_5xx"] >= 1


def test_observers_see_every_decision_with_or_without_faults(backend: FakeAck) -> None:
    seen: list[tuple[str, bool]] = []
    backend.faults.observers.append(lambda op, decision: seen.append((op, decision.throttled)))
    assert clean(backend) is None  # no faults configured: the fast path is observed too
    backend.faults.set(CLEAN, FaultSpec(rate_limit_rps=0.001, burst=1))
    assert clean(backend, uid=ANN) is None  # the bucket's one token
    error = clean(backend)
    assert error is not None and error.code == "Throttling.User"
    assert seen == [(CLEAN, False), (CLEAN, False), (CLEAN, True)]
