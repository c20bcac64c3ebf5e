"""Bounded listings: hostile or broken paging metadata never loops, never fans out, never revokes.

The fake ACK answers with hostile paging (``FaultSpec.page_*``: a claimed ``total_count``,
the first page repeated, empty pages, a wrong ``page_number`` echo) through the same wire
layer for the in-process transport and its real HTTP server. Every case ends with a clear
failed cluster (or region) in the result, nothing revoked there, and a bounded number of
calls. Peak RSS under a claimed total of 5,000,000 is checked in a child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kubeconfig_guard.client import (
    CLUSTERS_PAGE_SIZE,
    LISTING_PASSES,
    MAX_CLUSTERS_PAGES,
    MAX_STATES_PAGES,
    STATES_PAGE_SIZE,
    STATES_WINDOW,
    AckClient,
)
from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.errors import AckApiError, RetryableInvocationError
from kubeconfig_guard.fake import FakeAck, FakeAckServer, FakeAckTransport, FaultSpec, World
from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.summary.options import SummaryOptions
from kubeconfig_guard.summary.pipeline import run_summary
from support.events import delete_user
from support.resilience import SUMMARY_NOW, result_of
from support.worlds import ACCOUNT, ROOT, cluster, kc, settings, world

LIST = "ListClusterKubeconfigStates"
DESCRIBE = "DescribeClustersV1"
ALICE = "200000000000000011"
# Most calls one pass of a kubeconfig listing may make when a page is inconsistent: page 1
# and the window behind it.
PASS_BOUND = 1 + STATES_WINDOW


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def two_clusters() -> World:
    """``big`` (61 kubeconfigs: page 1 is full) and ``small`` (3), alice deleted on both."""
    others = [kc(f"2100000000000{i:05d}", f"user-{i}", account_state="Active") for i in range(60)]
    small = [kc(f"2200000000000{i:05d}", f"dev-{i}", account_state="Active") for i in range(2)]
    return world(
        {
            "cn-hangzhou": [
                cluster("big", kc(ALICE, "alice"), *others),
                cluster("small", kc(ALICE, "alice"), *small),
            ]
        }
    )


def invoke(h: Any, event: bytes) -> dict[str, Any]:
    """The event function's result document (also when it asks Function Compute to retry)."""
    try:
        result = handle_event(event, None, runtime=h.runtime())
    except RetryableInvocationError as exc:
        return result_of(exc)
    doc = json.loads(result.model_dump_json())
    assert isinstance(doc, dict)
    return doc


# --- the event path, in-process and over the fake's real HTTP server ----------------------------

# case: (fault on ListClusterKubeconfigStates, error code, most List calls per cluster)
HOSTILE_STATES: dict[str, tuple[FaultSpec, str, int]] = {
    "total-5M": (FaultSpec(page_total_count=5_000_000), "Listing.TooLarge", 1),
    "total-minus-1": (FaultSpec(page_total_count=-1), "Listing.InvalidPage", 1),
    "empty-page-big-total": (
        FaultSpec(page_empty=True, page_total_count=9_000),
        "Listing.InvalidPage",
        LISTING_PASSES,
    ),
    "empty-page-huge-total": (FaultSpec(page_empty=True, page_total_count=5_000_000), "Listing.TooLarge", 1),
    "repeated-page": (
        FaultSpec(page_repeat_first=True, page_total_count=9_999),
        "Listing.InvalidPage",
        LISTING_PASSES * PASS_BOUND,
    ),
    "page-number-echo": (FaultSpec(page_number_echo=7), "Listing.InvalidPage", 1),
}


@pytest.mark.parametrize("case", list(HOSTILE_STATES))
def test_event_hostile_kubeconfig_paging_fails_the_cluster(make_harness: Any, case: str) -> None:
    fault, code, most_calls = HOSTILE_STATES[case]
    h = make_harness(two_clusters())
    h.backend.faults.set(LIST, fault)
    doc = invoke(h, delete_user("alice"))
    assert h.backend.revocations == []
    assert doc["outcome"] == "partial" and doc["actions"] == []
    issues = {c["cluster_id"]: c for c in doc["clusters"]}
    assert set(issues) == {"big", "small"}, doc["clusters"]
    for issue in issues.values():
        assert issue["status"] == "failed" and issue["error_code"] == code, issue
        assert issue["reason"].startswith(f"listing kubeconfigs failed: {code}: "), issue
        assert "not listed" in issue["reason"], issue
    assert 2 <= h.backend.calls[LIST] <= 2 * most_calls, h.backend.calls
    assert h.backend.calls[DESCRIBE] == 1


def test_event_claimed_total_is_named_in_the_reason(make_harness: Any) -> None:
    h = make_harness(two_clusters())
    h.backend.faults.set(LIST, FaultSpec(page_total_count=5_000_000))
    doc = invoke(h, delete_user("alice"))
    reasons = {c["reason"] for c in doc["clusters"]}
    cap = MAX_STATES_PAGES * STATES_PAGE_SIZE
    assert reasons == {
        "listing kubeconfigs failed: Listing.TooLarge: the API claims 5000000 kubeconfigs, more than the "
        f"cap {cap} ({MAX_STATES_PAGES} pages of {STATES_PAGE_SIZE}): not listed"
    }


def many_clusters(n: int, others: int = 0) -> World:
    """``n`` clusters with alice deleted on each, and ``others`` active users."""
    return world(
        {
            "cn-hangzhou": [
                cluster(
                    f"c{i:03d}",
                    kc(ALICE, "alice"),
                    *[kc(f"21{i:03d}{j:013d}", f"user-{j}", account_state="Active") for j in range(others)],
                )
                for i in range(n)
            ]
        }
    )


# case: (fault on DescribeClustersV1, clusters in the region, error code, most Describe calls)
HOSTILE_CLUSTERS: dict[str, tuple[FaultSpec, int, str, int]] = {
    "repeated-page-huge-total": (
        FaultSpec(page_repeat_first=True, page_total_count=10**9),
        CLUSTERS_PAGE_SIZE,
        "Listing.TooLarge",
        1,
    ),
    "repeated-page-total-within-cap": (
        FaultSpec(page_repeat_first=True, page_total_count=5_000),
        CLUSTERS_PAGE_SIZE,
        "Listing.InvalidPage",
        2,
    ),
    "total-minus-1": (FaultSpec(page_total_count=-1), 3, "Listing.InvalidPage", 1),
    "empty-page-big-total": (FaultSpec(page_empty=True, page_total_count=5_000), 3, "Listing.InvalidPage", 1),
    "page-number-echo": (FaultSpec(page_number_echo=3), 3, "Listing.InvalidPage", 1),
}


@pytest.mark.parametrize("case", list(HOSTILE_CLUSTERS))
def test_event_hostile_cluster_paging_fails_the_region(make_harness: Any, case: str) -> None:
    fault, n, code, most_calls = HOSTILE_CLUSTERS[case]
    h = make_harness(many_clusters(n))
    h.backend.faults.set(DESCRIBE, fault)
    doc = invoke(h, delete_user("alice"))
    assert h.backend.revocations == [] and doc["actions"] == []
    assert doc["outcome"] == "partial"
    (issue,) = doc["clusters"]
    assert (issue["region"], issue["cluster_id"], issue["status"]) == ("cn-hangzhou", "*", "failed")
    assert issue["error_code"] == code
    assert issue["reason"].startswith(f"listing the clusters of cn-hangzhou failed: {code}: "), issue
    assert 1 <= h.backend.calls[DESCRIBE] <= most_calls
    assert h.backend.calls[LIST] == 0  # no cluster of a region that failed is looked at


def test_summary_hostile_paging_lists_the_cluster_as_failed(make_harness: Any) -> None:
    h = make_harness(two_clusters())
    h.backend.faults.set(LIST, FaultSpec(page_total_count=5_000_000))
    runtime = h.runtime(remediate_deleted=True)
    report = runtime.run(run_summary(runtime.engine, SummaryOptions(), now=SUMMARY_NOW, account_id=ACCOUNT))
    assert h.backend.revocations == []
    assert {(c.cluster_id, c.error_code) for c in report.skipped_clusters} == {
        ("big", "Listing.TooLarge"),
        ("small", "Listing.TooLarge"),
    }
    assert report.kubeconfigs == 0
    assert h.backend.calls[LIST] == 2


def test_only_the_hostile_operation_is_affected(make_harness: Any) -> None:
    """A hostile DescribeClustersV1 fault leaves the kubeconfig listings alone, and vice versa."""
    h = make_harness(two_clusters())
    h.backend.faults.set(DESCRIBE, FaultSpec(page_empty=True))  # no total claim: an honest empty region
    doc = invoke(h, delete_user("alice"))
    assert doc["outcome"] == "ok" and doc["clusters"] == [] and doc["clusters_scanned"] == 0
    h.backend.faults.clear()
    doc = invoke(h, delete_user("alice"))
    assert doc["counts"]["revoked"] == 2


# --- the client itself: exact call counts, caps, the window ---------------------------------


def run_client(backend: FakeAck, body: Any, transport: httpx.AsyncBaseTransport | None = None) -> Any:
    async def go() -> Any:
        client = AckClient(
            settings(cs_endpoint="http://127.0.0.1:1"),
            StaticCredentials(from_environment_or_demo()),
            transport=transport or FakeAckTransport(backend),
        )
        async with client:
            return await body(client)

    return asyncio.run(go())


def states_world(n: int) -> World:
    return world({"cn-hangzhou": [cluster("c1", *[kc(f"2{i:017d}", f"u{i}") for i in range(n)])]})


def listing_error(backend: FakeAck, transport: httpx.AsyncBaseTransport | None = None) -> AckApiError:
    with pytest.raises(AckApiError) as caught:
        run_client(backend, lambda c: c.list_kubeconfig_states("cn-hangzhou", "c1"), transport)
    return caught.value


def test_a_listing_at_the_cap_is_read_and_one_over_it_is_refused_after_one_call() -> None:
    cap = MAX_STATES_PAGES * STATES_PAGE_SIZE
    backend = FakeAck(states_world(cap))
    states = run_client(backend, lambda c: c.list_kubeconfig_states("cn-hangzhou", "c1"))
    assert len({s.account_id for s in states}) == cap
    assert backend.calls[LIST] == MAX_STATES_PAGES
    backend.add_kubeconfig("c1", kc("299999999999999999", "one-too-many"))
    backend.reset_counters()
    error = listing_error(backend)
    assert (error.code, backend.calls[LIST]) == ("Listing.TooLarge", 1)
    assert f"the API claims {cap + 1} kubeconfigs, more than the cap {cap}" in error.message


def test_kubeconfig_pages_are_fetched_in_a_bounded_window() -> None:
    class Counting(httpx.AsyncBaseTransport):
        def __init__(self, inner: FakeAckTransport) -> None:
            self.inner, self.now, self.peak = inner, 0, 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.now += 1
            self.peak = max(self.peak, self.now)
            try:
                await asyncio.sleep(0.002)
                return await self.inner.handle_async_request(request)
            finally:
                self.now -= 1

    backend = FakeAck(states_world(100 * STATES_PAGE_SIZE))
    counting = Counting(FakeAckTransport(backend))
    states = run_client(backend, lambda c: c.list_kubeconfig_states("cn-hangzhou", "c1"), counting)
    assert len({s.account_id for s in states}) == 100 * STATES_PAGE_SIZE
    assert backend.calls[LIST] == 100
    assert 2 <= counting.peak <= STATES_WINDOW  # concurrent, never more than the window


@pytest.mark.parametrize(
    ("fault", "code", "calls"),
    [
        (FaultSpec(page_total_count=5_000_000), "Listing.TooLarge", 1),
        (FaultSpec(page_total_count=-1), "Listing.InvalidPage", 1),
        (FaultSpec(page_number_echo=2), "Listing.InvalidPage", 1),
        (FaultSpec(page_empty=True, page_total_count=9_000), "Listing.InvalidPage", LISTING_PASSES),
    ],
)
def test_client_hostile_states_exact_calls(fault: FaultSpec, code: str, calls: int) -> None:
    backend = FakeAck(states_world(120))
    backend.faults.set(LIST, fault)
    error = listing_error(backend)
    assert (error.code, backend.calls[LIST]) == (code, calls)
    assert error.message.endswith("not listed") or "not listed (" in error.message


def test_client_repeated_full_page_stops_each_pass_early() -> None:
    backend = FakeAck(states_world(120))
    backend.faults.set(LIST, FaultSpec(page_repeat_first=True, page_total_count=9_999))
    error = listing_error(backend)
    assert error.code == "Listing.InvalidPage"
    assert "page 2 repeats kubeconfigs already listed (the API claims 9999)" in error.message
    assert LISTING_PASSES * 2 <= backend.calls[LIST] <= LISTING_PASSES * PASS_BOUND


def test_client_repeated_cluster_page_stops_at_the_second_page() -> None:
    backend = FakeAck(many_clusters(CLUSTERS_PAGE_SIZE))
    backend.faults.set(DESCRIBE, FaultSpec(page_repeat_first=True, page_total_count=9_000))
    with pytest.raises(AckApiError) as caught:
        run_client(backend, lambda c: c.describe_clusters("cn-hangzhou"))
    assert caught.value.code == "Listing.InvalidPage" and backend.calls[DESCRIBE] == 2
    assert "page 2 repeats clusters already listed" in caught.value.message


def test_client_cluster_listing_over_the_cap_is_refused_after_one_call() -> None:
    cap = MAX_CLUSTERS_PAGES * CLUSTERS_PAGE_SIZE
    backend = FakeAck(many_clusters(cap + 1))
    with pytest.raises(AckApiError) as caught:
        run_client(backend, lambda c: c.describe_clusters("cn-hangzhou"))
    assert caught.value.code == "Listing.TooLarge" and backend.calls[DESCRIBE] == 1
    assert f"the API claims {cap + 1} clusters, more than the cap {cap}" in caught.value.message


class NoTotals(httpx.AsyncBaseTransport):
    """The fake's answers without ``total_count`` (an API that leaves it out)."""

    def __init__(self, inner: FakeAckTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = json.loads(response.content)
        for key in ("page", "page_info"):
            if isinstance(body.get(key), dict):
                body[key].pop("total_count", None)
        return httpx.Response(response.status_code, headers={"content-type": "application/json"}, json=body)


def test_without_a_total_pages_are_read_until_a_short_page() -> None:
    backend = FakeAck(states_world(137))
    states = run_client(
        backend, lambda c: c.list_kubeconfig_states("cn-hangzhou", "c1"), NoTotals(FakeAckTransport(backend))
    )
    assert len({s.account_id for s in states}) == 137
    # Nothing to check the pages against: read twice, accepted when both reads agree.
    assert 2 * 3 <= backend.calls[LIST] <= 2 * PASS_BOUND
    clusters = run_client(
        backend, lambda c: c.describe_clusters("cn-hangzhou"), NoTotals(FakeAckTransport(backend))
    )
    assert [c.cluster_id for c in clusters] == ["c1"]


def test_without_a_total_a_repeated_page_still_ends() -> None:
    backend = FakeAck(states_world(120))
    backend.faults.set(LIST, FaultSpec(page_repeat_first=True))
    error = listing_error(backend, NoTotals(FakeAckTransport(backend)))
    assert error.code == "Listing.InvalidPage"
    assert backend.calls[LIST] <= LISTING_PASSES * PASS_BOUND


# --- peak memory under a claimed total of 5,000,000 (a child process) --------------------------

CHILD = """
import json, sys
from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.handlers import handle_event
try:
    doc = json.loads(handle_event(sys.stdin.buffer.read(), None).model_dump_json())
except RetryableInvocationError as exc:
    doc = json.loads(exc.result.model_dump_json())
# VmHWM: this process image's peak RSS. ru_maxrss would not do: Linux carries it over execve from
# the forked copy of the parent (a large pytest process), so it measures the parent.
status = open("/proc/self/status").read().split("VmHWM:")[1]
peak = int(status.split()[0])
print("PAGING-BOUNDS " + json.dumps({"maxrss_kb": peak, "result": doc}))
"""
RSS_LIMIT_MB = 200
HOSTILE_CLUSTERS_N = 40


@pytest.fixture
def hostile_server() -> Iterator[tuple[FakeAck, str]]:
    # A full first page: the old client fanned out one task per page of the claimed total.
    backend = FakeAck(many_clusters(HOSTILE_CLUSTERS_N, others=STATES_PAGE_SIZE + 10))
    backend.faults.set(LIST, FaultSpec(page_total_count=5_000_000))
    with FakeAckServer(backend) as server:
        yield backend, server.url


def test_peak_rss_under_a_claimed_total_of_5m_stays_bounded(hostile_server: tuple[FakeAck, str]) -> None:
    backend, url = hostile_server
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALIBABA_CLOUD_", "KCGUARD_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "functions"), env.get("PYTHONPATH")) if p),
        KCGUARD_MODE="enforce",
        KCGUARD_REGIONS="cn-hangzhou",
        KCGUARD_ACCOUNT_ID=ACCOUNT,
        KCGUARD_CS_ENDPOINT=url,
        ALIBABA_CLOUD_ACCESS_KEY_ID=backend.access_key_id,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=backend.access_key_secret,
    )
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=delete_user("alice"),
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    lines = [line for line in child.stdout.decode().splitlines() if line.startswith("PAGING-BOUNDS ")]
    assert child.returncode == 0 and lines, child.stderr.decode()[-2000:]
    measured = json.loads(lines[-1].removeprefix("PAGING-BOUNDS "))
    doc = measured["result"]
    assert doc["outcome"] == "partial" and doc["actions"] == []
    assert {c["error_code"] for c in doc["clusters"]} == {"Listing.TooLarge"}
    assert len(doc["clusters"]) == HOSTILE_CLUSTERS_N
    assert backend.revocations == [] and backend.calls[LIST] == HOSTILE_CLUSTERS_N
    peak_mb = measured["maxrss_kb"] / 1024
    print(f"peak RSS of the event function under a claimed total of 5,000,000: {peak_mb:.0f} MB")
    assert peak_mb < RSS_LIMIT_MB


# --- the fake's hostile paging knobs, the same on both front ends ------------------------------


@pytest.mark.parametrize("front", ["inproc", "http"])
def test_fake_hostile_paging_answers(front: str) -> None:
    backend = FakeAck(states_world(120), verify_signatures=False)
    honest_first = [k.state() for k in backend.kubeconfigs("c1")[:50]]

    def get(target: str) -> dict[str, Any]:
        if front == "inproc":
            with httpx.Client(transport=FakeAckTransport(backend), base_url="http://fake") as client:
                answer = client.get(target)
        else:
            with FakeAckServer(backend) as server, httpx.Client(base_url=server.url) as client:
                answer = client.get(target)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert isinstance(body, dict)
        return body

    states = "/clusters/c1/kubeconfig/states?pageNumber=3&pageSize=50"
    backend.faults.set(LIST, FaultSpec(page_repeat_first=True, page_total_count=5_000_000))
    body = get(states)
    assert body["states"] == honest_first
    assert body["page"] == {"page_number": 3, "page_size": 50, "total_count": 5_000_000}
    backend.faults.set(LIST, FaultSpec(page_empty=True, page_number_echo=9))
    body = get(states)
    assert body["states"] == [] and body["page"] == {"page_number": 9, "page_size": 50, "total_count": 120}
    backend.faults.set(DESCRIBE, FaultSpec(page_total_count=-1))
    body = get("/api/v1/clusters?region_id=cn-hangzhou&page_number=1&page_size=100")
    assert [c["cluster_id"] for c in body["clusters"]] == ["c1"] and body["page_info"]["total_count"] == -1
    backend.faults.clear()
    assert get(states)["page"]["total_count"] == 120
