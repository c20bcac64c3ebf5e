"""A mass offboarding: 50 deletions arriving together share listings on one instance."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.results import RevocationResult
from support.events import delete_user
from support.worlds import cluster, kc, world

LISTING_OPS = ("DescribeClustersV1", "ListClusterKubeconfigStates")


def burst_world() -> Any:
    clusters = []
    for c in range(12):
        kubeconfigs = [kc(f"21{c:02d}{i:03d}", f"keep-{c}-{i}", account_state="Active") for i in range(40)]
        kubeconfigs += [kc(f"2200{u:03d}", f"leaver-{u}") for u in range(50) if (u + c) % 3 == 0]
        clusters.append(cluster(f"c{c:02d}", *kubeconfigs))
    return world({"cn-hangzhou": clusters})


def deletion(name: str, published: str | None = None) -> bytes:
    return delete_user(name, event_id=f"evt-{name}", published=published)


def utc(seconds_from_now: float) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def listing_calls(counter: Any) -> int:
    return sum(counter[op] for op in LISTING_OPS)


def test_fifty_deletions_cost_at_most_two_scans(make_harness: Any) -> None:
    h = make_harness(burst_world())
    rt = h.runtime(listing_ttl_seconds=30)

    handle_event(
        json.dumps({"action": "revoke", "principal": {"type": "RamUser", "name": "nobody"}}).encode(),
        None,
        runtime=rt,
    )
    one_scan = listing_calls(h.backend.calls)
    h.backend.reset_counters()

    with ThreadPoolExecutor(max_workers=50) as pool:  # Function Compute's instance concurrency
        results = list(pool.map(lambda u: handle_event(deletion(f"leaver-{u}"), None, runtime=rt), range(50)))

    assert all(isinstance(r, RevocationResult) and r.outcome.value == "ok" for r in results)
    revoked = sum(r.counts["revoked"] for r in results if isinstance(r, RevocationResult))
    expected = sum(1 for u in range(50) for c in range(12) if (u + c) % 3 == 0)
    assert revoked == expected == len(h.backend.revocations)
    assert len({(r.cluster_id, r.uid) for r in h.backend.revocations}) == expected  # nothing twice
    burst = listing_calls(h.backend.calls)
    # One scan, then re-reads of the leavers' clusters shared by the events that arrived after it
    # started (issue 16.5: decisions only on states read after each invocation started): 1.4-1.5x on an
    # idle machine; how many rounds of re-reads the fifty threads need depends on how far apart a
    # loaded process starts them (up to 2.7x seen in CI, on Python 3.10), so the measure is the
    # benchmark's (`scripts/bench --only burst`, BENCHMARKS.md). Without sharing each event would
    # re-read its own 4 clusters: 1 + 50 x 4 x 2 / 25 = 17x. This guards the sharing, not the figure.
    assert burst <= 5 * one_scan, (burst, one_scan)


def test_listing_taken_before_the_event_is_refreshed_before_deciding(inproc_harness: Any) -> None:
    """A cached listing may show the user still Active (before the deletion): decide on a fresh one."""
    h = inproc_harness(world({"cn-hangzhou": [cluster("c1", kc("2001", "alice", account_state="Active"))]}))
    rt = h.runtime(listing_ttl_seconds=600)
    first = handle_event(deletion("alice", published=""), None, runtime=rt)
    assert isinstance(first, RevocationResult) and first.actions[0].status.value == "skipped"
    h.backend.update_kubeconfigs("c1", "2001", account_state="Deleted")  # ACK catches up
    # Published after the first listing started (or no publish time at all): listed afresh.
    second = handle_event(deletion("alice", published=utc(0)), None, runtime=rt)
    assert isinstance(second, RevocationResult) and second.actions[0].status.value == "revoked"


def test_a_burst_queued_onto_one_instance_rereads_only_each_leavers_clusters(make_harness: Any) -> None:
    """Function Compute 3.0 as deployed: one instance (reservedConcurrency 1) takes 50 queued deletions
    one after another. Each decides only on states read after its own invocation started (issue 16.5:
    a publish time in the past no longer lets an earlier listing decide), so each re-reads the clusters
    where its leaver has candidates, and only those; a refresh waits for no one (nothing else runs)."""
    h = make_harness(burst_world())
    handle_event(deletion("nobody", published=""), None, runtime=h.runtime())  # one scan, for scale
    one_scan = listing_calls(h.backend.calls)
    h.backend.reset_counters()
    rt = h.runtime(listing_ttl_seconds=60)  # a fresh instance takes the burst
    published = utc(-2)  # the burst arrived before its first event's handler started
    results = [handle_event(deletion(f"leaver-{u}", published), None, runtime=rt) for u in range(50)]
    assert all(isinstance(r, RevocationResult) and r.outcome.value == "ok" for r in results)
    expected = sum(1 for u in range(50) for c in range(12) if (u + c) % 3 == 0)
    assert (
        len({(r.cluster_id, r.uid) for r in h.backend.revocations}) == expected == len(h.backend.revocations)
    )
    burst = listing_calls(h.backend.calls)
    # One scan, then per event at most its candidate clusters' pages (2 each): never a whole scan.
    assert burst <= one_scan + 2 * expected, (burst, one_scan)
    assert all(r.duration_ms < 1000 for r in results if isinstance(r, RevocationResult))


def test_duplicate_deliveries_share_one_clean_per_pair(make_harness: Any) -> None:
    """EventBridge delivers at least once: the same event 4 times at once costs one Clean per (cluster, uid)."""
    h = make_harness(world({"cn-hangzhou": [cluster(f"c{i}", kc("2001", "alice")) for i in range(3)]}))
    rt = h.runtime()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: handle_event(deletion("alice"), None, runtime=rt), range(4)))
    assert all(isinstance(r, RevocationResult) and r.outcome.value == "ok" for r in results)
    assert sorted(r.cluster_id for r in h.backend.revocations) == ["c0", "c1", "c2"]
    cleans = [(c.cluster_id, c.outcome) for c in h.backend.clean_calls]
    assert sorted(cleans) == [("c0", "revoked"), ("c1", "revoked"), ("c2", "revoked")]  # no repeated call
