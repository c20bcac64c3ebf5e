"""Resilience: the event path and the summary's reconciliation under the fake ACK's faults.

Throttling storms, 5xx bursts, answers slower than the timeout, connections reset
mid-response, hung connections, pagination drift and clusters deleted mid-run, through
the in-process transport and the real HTTP server. The invariants (``support.resilience``):
every matched (cluster, uid) ends revoked, or is reported failed/deferred and revoked by
the retry (Function Compute's, or the next summary run); nothing is revoked twice; only
``RetryableInvocationError`` escapes; the result says exactly what happened. Secrets never
appear in logs, results or exception texts.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kubeconfig_guard import logs
from kubeconfig_guard.credentials import from_environment_or_demo
from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.fake import FakeAck, FakeAckError, FaultSpec, World
from kubeconfig_guard.handlers import handle_event, handle_summary
from support.events import delete_user, lock_user
from support.harness import Harness, one_harness
from support.receivers import local_http_server
from support.resilience import (
    SUMMARY_NOW,
    Pair,
    assert_revoked_exactly,
    invoke_until_done,
    result_of,
    revoked_pairs,
    summary_once,
    summary_until_done,
)
from support.worlds import ACCOUNT, cluster, kc, world

ALICE = "200000000000000011"
NEW_ALICE = "200000000000000050"  # a new user who reused the name "alice": Active
OLD_ALICE = "200000000000000012"  # an older "alice" whose kubeconfig ACK says is not revokable
PROTECTED = "200000000000000077"  # an "alice" listed in KCGUARD_PROTECTED_PRINCIPALS
BOB = "200000000000000002"
GONE_EVERYWHERE = "290000000000000999"  # a deleted user with an orphan on every cluster
LOCKED_CAROL = "200000000000000066"  # a locked user with an unused kubeconfig (orphan_world)
CLEAN = "CleanClusterUserPermissions"
LIST = "ListClusterKubeconfigStates"
DESCRIBE = "DescribeClustersV1"

# Small timeouts and back-off: a fault costs a fraction of a second.
FAST: dict[str, Any] = {"timeout_seconds": 0.25, "max_attempts": 6, "backoff_max_seconds": 0.05}

FAULTS: dict[str, tuple[FaultSpec, dict[str, Any]]] = {
    "throttling": (FaultSpec(rate_limit_rps=8, burst=2), {"max_attempts": 8}),
    "5xx": (FaultSpec(error_rate_5xx=0.4), {}),
    "slow": (FaultSpec(slow_rate=0.25, slow_seconds=0.6), {}),
    "reset-after-apply": (FaultSpec(reset_rate=0.35, reset_after_apply=True), {}),
    "reset-before-apply": (FaultSpec(reset_rate=0.35, reset_after_apply=False), {}),
    "hang": (FaultSpec(hang_rate=0.2, hang_seconds=0.6), {}),
}
# The fault kind the fake counts for each scenario (to prove the storm happened).
FAULT_COUNTED = {
    "throttling": "throttled",
    "5xx": "error_5xx",
    "slow": "slow",
    "reset-after-apply": "reset",
    "reset-before-apply": "reset",
    "hang": "hang",
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# --- worlds -------------------------------------------------------------------------------


def event_world(n: int = 6) -> tuple[World, set[Pair]]:
    """``n`` running clusters with alice's kubeconfig, her look-alikes, bob, root; one deleting cluster.

    Expected revocations of "alice deleted": (cluster, ALICE) on every running cluster.
    """
    clusters = []
    for i in range(n):
        states = [kc(ALICE, "alice"), kc(BOB, "bob", account_state="Active")]
        if i % 3 == 0:
            states.append(kc(NEW_ALICE, "alice", account_state="Active"))
        if i % 3 == 1:
            states.append(kc(PROTECTED, "alice"))
        if i % 3 == 2:
            states.append(kc(OLD_ALICE, "alice", revokable=False))
        if i == 0:
            states.append(
                kc(ACCOUNT, "root", account_type="RootAccount", account_state="Active", revokable=False)
            )
        clusters.append(cluster(f"c{i:02d}", *states))
    clusters.append(cluster("c-deleting", kc(ALICE, "alice"), state="deleting"))
    return world({"cn-hangzhou": clusters}), {(f"c{i:02d}", ALICE) for i in range(n)}


def orphan_world(n: int = 6) -> tuple[World, set[Pair]]:
    """Orphans of deleted users on ``n`` clusters, plus what reconciliation must leave alone.

    Revoked too: a locked user (``remediate_locked`` is on by default: the summary retries locks
    with the lock's rules and ``Force=false``, which ACK accepts here, her kubeconfig being unused
    and the audit log readable). Left alone: Active users, a protected deleted user
    (``breakglass-*``), a not-revokable state, the root account, a deleting cluster.
    """
    clusters = []
    expected: set[Pair] = set()
    for i in range(n):
        gone = [kc(f"29{i:02d}{k:014d}", f"gone-{i}-{k}") for k in range(2)]
        gone.append(kc(GONE_EVERYWHERE, "gone-everywhere"))
        expected |= {(f"s{i:02d}", g["account_id"]) for g in gone}
        states = [
            *gone,
            kc(BOB, "bob", account_state="Active"),
            kc(f"21{i:016d}", f"dev-{i}", account_state="Active"),
        ]
        if i == 0:
            states.append(
                kc(ACCOUNT, "root", account_type="RootAccount", account_state="Active", revokable=False)
            )
        if i == 1:
            states.append(kc("200000000000000088", "breakglass-ops"))
        if i == 2:
            states.append(kc(LOCKED_CAROL, "carol", account_state="InActive"))
            expected.add((f"s{i:02d}", LOCKED_CAROL))
        if i == 3:
            states.append(kc("200000000000000055", "dave", revokable=False))
        clusters.append(cluster(f"s{i:02d}", *states))
    clusters.append(cluster("s-deleting", kc("290000000000000998", "gone-x"), state="deleting"))
    return world({"cn-hangzhou": clusters}), expected


SUMMARY_SETTINGS: dict[str, Any] = {
    **FAST,
    "mode": "enforce",
    "remediate_deleted": True,
    "protected_principals": ["breakglass-*"],
}


# --- the event path under each fault ------------------------------------------------------


# Who absorbs the faults: the client's own retries, or (one attempt per request) the retry
# of the whole invocation: Function Compute's for an event, the next daily run for the summary.
RETRIED_BY = {"client": {}, "invocation": {"max_attempts": 1}}


@pytest.mark.parametrize("retried_by", list(RETRIED_BY))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_event_path_survives_fault(make_harness: Any, fault: str, retried_by: str) -> None:
    w, expected = event_world()
    h = make_harness(FakeAck(w, fault_seed=11))
    spec, overrides = FAULTS[fault]
    h.backend.faults.set(None, spec)
    rt = h.runtime(**{**FAST, **overrides, **RETRIED_BY[retried_by], "protected_principals": [PROTECTED]})
    invocations = invoke_until_done(h.backend, rt, delete_user("alice"), expected)
    assert h.backend.fault_counts[FAULT_COUNTED[fault]] > 0
    if retried_by == "invocation":  # a fault with no client retry: reported, and retried by FC
        assert invocations[0].raised
    assert_revoked_exactly(h.backend, expected)
    for cid, _ in expected:
        assert ALICE not in {k.account_id for k in h.backend.kubeconfigs(cid)}
    last = invocations[-1].doc
    assert [(c["cluster_id"], c["status"]) for c in last["clusters"]] == [("c-deleting", "skipped")]
    # Look-alikes are decided on every clean run, never revoked.
    assert (
        lookalikes(last)
        == {(a["cluster_id"], a["uid"]) for a in last["actions"] if a["status"] == "skipped"}
        == {(f"c{i:02d}", [NEW_ALICE, PROTECTED, OLD_ALICE][i % 3]) for i in range(6)}
    )


def lookalikes(doc: dict[str, Any]) -> set[Pair]:
    return {(a["cluster_id"], a["uid"]) for a in doc["actions"] if a["uid"] != ALICE}


@pytest.mark.parametrize("retried_by", list(RETRIED_BY))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_summary_reconciles_under_fault(make_harness: Any, fault: str, retried_by: str) -> None:
    w, expected = orphan_world()
    h = make_harness(FakeAck(w, fault_seed=5))
    spec, overrides = FAULTS[fault]
    h.backend.faults.set(None, spec)
    rt = h.runtime(**{**SUMMARY_SETTINGS, **overrides, **RETRIED_BY[retried_by]})
    reports = summary_until_done(h.backend, rt, expected)
    assert h.backend.fault_counts[FAULT_COUNTED[fault]] > 0
    if retried_by == "invocation":  # what the first run could not do, it reported; a later run did it
        assert len(reports) > 1
    assert_revoked_exactly(h.backend, expected)
    # A run after everything was reconciled finds nothing left to do but the protected user.
    again = summary_once(h.backend, rt, expected)
    assert again.reconciliation is not None
    assert [(a.cluster_id, a.status.value) for a in again.reconciliation.actions] == [("s01", "skipped")]
    last = reports[-1]
    assert [(c.cluster_id, c.status.value) for c in last.skipped_clusters] == [("s-deleting", "skipped")]


# --- 5xx from a hook: the first N requests fail ------------------------------------------


def fail_first(n: int, *, op: str | None = None, **only: str) -> Any:
    """A hook answering 503/500 to the first ``n`` requests (of ``op`` with the ``only`` parameters)."""
    failed: list[str] = []

    def hook(backend: FakeAck, operation: str, params: dict[str, str]) -> None:
        if op is not None and operation != op:
            return
        if any(params.get(name) != value for name, value in only.items()):
            return
        if len(failed) < n:
            failed.append(operation)
            status, code = (503, "ServiceUnavailable") if len(failed) % 2 else (500, "InternalError")
            raise FakeAckError(status, code, "injected by the test")

    return hook


def test_event_first_requests_fail_and_client_retries_absorb_them(make_harness: Any) -> None:
    w, expected = event_world()
    h = make_harness(w)
    h.backend.hooks.append(fail_first(5))
    rt = h.runtime(max_attempts=8, protected_principals=[PROTECTED])
    (only,) = invoke_until_done(h.backend, rt, delete_user("alice"), expected)
    assert only.doc["counts"]["revoked"] == len(expected) and only.doc["counts"]["failed"] == 0
    assert rt.engine.client.stats.server_errors == 5 and rt.engine.client.stats.retries == 5
    assert_revoked_exactly(h.backend, expected)


def test_event_clean_failing_past_max_attempts_is_failed_then_retried(make_harness: Any) -> None:
    w, expected = event_world()
    h = make_harness(w)
    h.backend.hooks.append(fail_first(4, op=CLEAN, ClusterId="c01"))
    rt = h.runtime(max_attempts=3, protected_principals=[PROTECTED])
    first, second = invoke_until_done(h.backend, rt, delete_user("alice"), expected, calm=lambda: None)
    assert first.raised and first.doc["outcome"] == "partial"
    failed = [a for a in first.doc["actions"] if a["status"] == "failed"]
    assert [(a["cluster_id"], a["error_code"]) for a in failed] == [("c01", "ServiceUnavailable")]
    assert "retried by Function Compute" in failed[0]["reason"]
    assert first.doc["counts"]["revoked"] == len(expected) - 1
    assert [a["cluster_id"] for a in second.doc["actions"] if a["status"] == "revoked"] == ["c01"]
    assert_revoked_exactly(h.backend, expected)


def test_summary_clean_failing_past_max_attempts_is_revoked_by_the_next_run(make_harness: Any) -> None:
    w, expected = orphan_world()
    h = make_harness(w)
    h.backend.hooks.append(fail_first(3, op=CLEAN, ClusterId="s02", Uid=GONE_EVERYWHERE))
    rt = h.runtime(**{**SUMMARY_SETTINGS, "timeout_seconds": 2.0, "max_attempts": 2})
    first = summary_once(h.backend, rt, expected)
    rec = first.reconciliation
    assert rec is not None and rec.outcome == "partial" and "next run" in rec.reason
    failed = [a for a in rec.actions if a.status.value == "failed"]
    assert [(a.cluster_id, a.uid, a.error_code) for a in failed] == [
        ("s02", GONE_EVERYWHERE, "InternalError")  # 503, then 500: the last error is reported
    ]
    assert rec.counts["revoked"] == len(expected) - 1
    second = summary_once(h.backend, rt, expected)
    assert second.reconciliation is not None
    assert {(a.cluster_id, a.status.value) for a in second.reconciliation.actions} == {
        ("s02", "revoked"),
        ("s01", "skipped"),  # the protected user, every run
    }
    assert_revoked_exactly(h.backend, expected)


# --- answers slower than the timeout: applied, but not seen ----------------------------------


def slow_first_clean(backend: FakeAck) -> None:
    """The first Clean is applied but answered after the client's timeout; later ones are not slow."""
    backend.faults.set(CLEAN, FaultSpec(slow_rate=1.0, slow_seconds=1.0))
    cleared: list[bool] = []

    def hook(b: FakeAck, operation: str, params: dict[str, str]) -> None:
        if operation == CLEAN and not cleared:
            cleared.append(True)
            b.faults.set(CLEAN, None)

    backend.hooks.append(hook)


def assert_noops_follow_revocations(backend: FakeAck) -> None:
    """Every no-op Clean repeats one that already revoked (the retry of an unseen answer)."""
    done: set[Pair] = set()
    for call in backend.clean_calls:
        pair = (call.cluster_id, call.uid)
        if call.outcome == "revoked":
            done.add(pair)
        elif call.outcome == "noop":
            assert pair in done, call


def test_event_slow_clean_is_revoked_once_and_reported_once(make_harness: Any) -> None:
    w, expected = event_world()
    h = make_harness(w)
    slow_first_clean(h.backend)
    rt = h.runtime(timeout_seconds=0.3, max_attempts=4, protected_principals=[PROTECTED])
    (only,) = invoke_until_done(h.backend, rt, delete_user("alice"), expected)
    revoked = [(a["cluster_id"], a["uid"]) for a in only.doc["actions"] if a["status"] == "revoked"]
    assert sorted(revoked) == sorted(expected) and only.doc["counts"]["revoked"] == len(expected)
    assert h.backend.fault_counts["slow"] >= 1
    assert sum(c.outcome == "noop" for c in h.backend.clean_calls) >= 1  # the retry saw a no-op success
    assert_noops_follow_revocations(h.backend)
    assert_revoked_exactly(h.backend, expected)


def test_summary_slow_clean_is_revoked_once_and_reported_once(make_harness: Any) -> None:
    w, expected = orphan_world()
    h = make_harness(w)
    slow_first_clean(h.backend)
    rt = h.runtime(**{**SUMMARY_SETTINGS, "timeout_seconds": 0.3, "max_attempts": 4})
    report = summary_once(h.backend, rt, expected)
    assert report.reconciliation is not None and report.reconciliation.counts["revoked"] == len(expected)
    assert sum(c.outcome == "noop" for c in h.backend.clean_calls) >= 1
    assert_noops_follow_revocations(h.backend)
    assert_revoked_exactly(h.backend, expected)


def test_event_every_answer_lost_is_confirmed_by_a_fresh_listing(make_harness: Any) -> None:
    """Clean applied, every answer too late: a fresh listing confirms the revocation, counted once."""
    w, expected = event_world(3)
    h = make_harness(w)
    h.backend.faults.set(CLEAN, FaultSpec(slow_rate=1.0, slow_seconds=1.0))
    rt = h.runtime(timeout_seconds=0.25, max_attempts=2, protected_principals=[PROTECTED])
    invocations = invoke_until_done(h.backend, rt, delete_user("alice"), expected)
    assert len(invocations) == 1  # nothing left for Function Compute to retry
    first = invocations[0]
    assert sorted(first.new) == sorted(expected)  # applied...
    confirmed = [a for a in first.doc["actions"] if a["status"] == "revoked"]
    assert {(a["cluster_id"], a["error_code"]) for a in confirmed} == {
        (c, "Transport.Timeout") for c, _ in expected
    }
    assert all("a fresh listing confirms it" in a["reason"] for a in confirmed)
    assert first.doc["counts"]["revoked"] == len(expected)  # ...and claimed once, on evidence
    assert [c.outcome for c in h.backend.clean_calls].count("revoked") == len(expected)
    assert_revoked_exactly(h.backend, expected)


# --- connections reset mid-response, hung connections (HTTP) --------------------------------


@pytest.mark.parametrize("after_apply", [True, False], ids=["after-apply", "before-apply"])
def test_event_connection_reset_on_every_clean_then_retry(after_apply: bool) -> None:
    w, expected = event_world(4)
    with one_harness(FakeAck(w), "http") as h:
        h.backend.faults.set(CLEAN, FaultSpec(reset_rate=1.0, reset_after_apply=after_apply))
        rt = h.runtime(**{**FAST, "max_attempts": 2, "protected_principals": [PROTECTED]})
        invocations = invoke_until_done(h.backend, rt, delete_user("alice"), expected, attempts=2)
        first = invocations[0]
        by_status = {
            (a["status"], a["cluster_id"], a["error_code"]) for a in first.doc["actions"] if a["error_code"]
        }
        if after_apply:  # applied on the first attempt, the retry was a no-op; a fresh listing confirms it
            assert by_status == {("revoked", c, "Transport.Error") for c, _ in expected}
            assert len(invocations) == 1 and sorted(first.new) == sorted(expected)
            assert [c.outcome for c in h.backend.clean_calls].count("noop") == len(expected)
        else:  # never reached the backend: reported failed, and FC's retry revokes
            assert by_status == {("failed", c, "Transport.Error") for c, _ in expected}
            second = invocations[1]
            assert first.new == [] and sorted(second.new) == sorted(expected)
            assert [c.outcome for c in h.backend.clean_calls] == ["revoked"] * len(expected)
        assert_revoked_exactly(h.backend, expected)


def test_hung_connections_fail_the_listing_and_are_reported() -> None:
    """Every DescribeClustersV1 hangs: the event and the summary say the region was not scanned."""
    w, expected = event_world(3)
    with one_harness(FakeAck(w), "http") as h:
        h.backend.faults.set(DESCRIBE, FaultSpec(hang_rate=1.0, hang_seconds=5.0))
        rt = h.runtime(**{**FAST, "max_attempts": 2, "protected_principals": [PROTECTED]})
        first, _second = invoke_until_done(h.backend, rt, delete_user("alice"), expected, attempts=2)
        assert first.raised and first.doc["clusters"] == [
            {
                "cloud_account_id": None,  # named only in organization mode's daily summary
                "region": "cn-hangzhou",
                "cluster_id": "*",
                "cluster_name": "",
                "status": "failed",
                "reason": "listing the clusters of cn-hangzhou failed: Transport.Timeout: ReadTimeout",
                "error_code": "Transport.Timeout",
            }
        ]
        assert h.backend.fault_counts["hang"] == 2
        assert_revoked_exactly(h.backend, expected)

        h.backend.faults.set(DESCRIBE, FaultSpec(hang_rate=1.0, hang_seconds=5.0))
        report = summary_once(h.backend, h.runtime(**{**SUMMARY_SETTINGS, "max_attempts": 2}), set())
        assert [(c.cluster_id, c.status.value, c.error_code) for c in report.skipped_clusters] == [
            ("*", "failed", "Transport.Timeout")
        ]
        assert report.clusters_total == 0 and report.clusters_scanned == 0


@pytest.mark.parametrize("wire", ["http"])
def test_hung_cleans_are_not_applied_and_retried(make_harness: Any) -> None:
    w, expected = orphan_world(3)
    h = make_harness(w)
    h.backend.faults.set(CLEAN, FaultSpec(hang_rate=1.0, hang_seconds=5.0))
    rt = h.runtime(**{**SUMMARY_SETTINGS, "max_attempts": 2})
    first = summary_once(h.backend, rt, expected)
    assert first.reconciliation is not None
    assert {a.error_code for a in first.reconciliation.actions if a.status.value == "failed"} == {
        "Transport.Timeout"
    }
    assert first.reconciliation.counts["failed"] == len(expected) and not h.backend.revocations
    h.backend.faults.clear()
    summary_once(h.backend, rt, expected)
    assert_revoked_exactly(h.backend, expected)


# --- pagination drift: states added or removed while the pages are read ----------------------

PAGE = 50  # the client's ListClusterKubeconfigStates page size


def paged_world(orphan: dict[str, Any], at: int = PAGE, total: int = 2 * PAGE + 20) -> World:
    """``big`` with ``total`` states over three pages, ``orphan`` at index ``at``; ``small`` with it too."""
    fillers = [kc(f"21{i:016d}", f"keep-{i}", account_state="Active") for i in range(total - 1)]
    fillers.insert(at, orphan)
    return world({"cn-hangzhou": [cluster("big", *fillers), cluster("small", orphan)]})


def drift_on_page_2(change: str, *, every_time: bool = False) -> Any:
    """A hook that changes the ``big`` cluster's states when page 2 is requested.

    ``add``: a state is inserted first (everything shifts onto later pages); ``remove``: the
    first state goes (everything shifts onto earlier pages); ``replace``: the first goes and a
    new one is appended (same total); ``every_time``: on every page-2 request, not just the first.
    """
    fired: list[int] = []

    def hook(backend: FakeAck, operation: str, params: dict[str, str]) -> None:
        if operation != LIST or params.get("ClusterId") != "big" or params.get("pageNumber") != "2":
            return
        if fired and not every_time:
            return
        fired.append(1)
        n = len(fired)
        if change in ("remove", "replace"):
            backend.remove_kubeconfig("big", backend.kubeconfigs("big")[0].account_id)
        if change in ("add", "replace"):
            index = 0 if change == "add" else None
            backend.add_kubeconfig(
                "big", kc(f"2300000000000000{n:02d}", f"new-{n}", account_state="Active"), index=index
            )

    return hook


@pytest.mark.parametrize("change", ["add", "remove"])
def test_event_pagination_drift_loses_nothing(make_harness: Any, change: str) -> None:
    h = make_harness(paged_world(kc(ALICE, "alice")))
    h.backend.hooks.append(drift_on_page_2(change))
    expected = {("big", ALICE), ("small", ALICE)}
    (only,) = invoke_until_done(h.backend, h.runtime(), delete_user("alice"), expected)
    assert only.doc["counts"]["revoked"] == 2
    assert_revoked_exactly(h.backend, expected)


@pytest.mark.parametrize("change", ["add", "remove"])
def test_summary_pagination_drift_loses_nothing(make_harness: Any, change: str) -> None:
    gone = kc(GONE_EVERYWHERE, "gone-everywhere")
    h = make_harness(paged_world(gone))
    h.backend.hooks.append(drift_on_page_2(change))
    expected = {("big", GONE_EVERYWHERE), ("small", GONE_EVERYWHERE)}
    report = summary_once(h.backend, h.runtime(**SUMMARY_SETTINGS), expected)
    big = next(c for c in report.by_cluster if c.cluster_id == "big")
    assert big.total == 2 * PAGE + 20 + (1 if change == "add" else -1)  # the listing after the change
    assert report.orphaned.total == 2
    assert_revoked_exactly(h.backend, expected)


def one_invocation(h: Harness, event: bytes, **overrides: Any) -> tuple[dict[str, Any], bool]:
    try:
        result = handle_event(event, None, runtime=h.runtime(**overrides))
    except RetryableInvocationError as exc:
        return result_of(exc), True
    return json.loads(result.model_dump_json()), False


def found_or_reported(doc: dict[str, Any], cluster_id: str, uid: str) -> bool:
    """The pair was acted on, or its cluster is listed as not (fully) scanned."""
    return any((a["cluster_id"], a["uid"]) == (cluster_id, uid) for a in doc["actions"]) or any(
        c["cluster_id"] in (cluster_id, "*") and c["status"] in ("failed", "not-attempted")
        for c in doc["clusters"]
    )


@pytest.mark.xfail(
    strict=True,
    reason="LIMIT (README, Limits): a state removed and another added while the pages are read keeps "
    "the total, so a state pulled onto an already-read page is missed by that listing; the next event "
    "or daily summary finds it. Detecting it would cost a re-read of every multi-page listing.",
)
def test_event_pagination_drift_with_unchanged_total_loses_nothing(inproc_harness: Any) -> None:
    h = inproc_harness(paged_world(kc(ALICE, "alice")))
    h.backend.hooks.append(drift_on_page_2("replace"))
    doc, _raised = one_invocation(h, delete_user("alice"))
    assert found_or_reported(doc, "big", ALICE), doc["reason"]


def test_event_pagination_drift_that_never_settles_is_reported(inproc_harness: Any) -> None:
    # Each pass loses the state at index 50 + (pass - 1): put alice where the last pass loses her.
    h = inproc_harness(paged_world(kc(ALICE, "alice"), at=PAGE + 2))
    h.backend.hooks.append(drift_on_page_2("remove", every_time=True))
    doc, _raised = one_invocation(h, delete_user("alice"))
    assert found_or_reported(doc, "big", ALICE), doc["reason"]


# --- a cluster deleted mid-run ---------------------------------------------------------------


def delete_when(op: str, cluster_id: str) -> Any:
    """A hook deleting ``cluster_id`` when ``op`` first reaches it (the request then gets a 404)."""

    def hook(backend: FakeAck, operation: str, params: dict[str, str]) -> None:
        if operation == op and params.get("ClusterId") == cluster_id and cluster_id in backend.cluster_ids():
            backend.delete_cluster(cluster_id)

    return hook


def test_event_clusters_deleted_between_listing_and_cleaning(make_harness: Any) -> None:
    w, expected = event_world()
    h = make_harness(FakeAck(w, fault_seed=2))
    h.backend.faults.set(None, FaultSpec(error_rate_5xx=0.3))
    h.backend.hooks += [delete_when(CLEAN, "c01"), delete_when(LIST, "c02")]
    expected -= {("c01", ALICE), ("c02", ALICE)}
    rt = h.runtime(**{**FAST, "protected_principals": [PROTECTED]})
    invocations = invoke_until_done(
        h.backend, rt, delete_user("alice"), expected, calm=h.backend.faults.clear
    )
    first = invocations[0].doc
    gone = next(a for a in first["actions"] if a["cluster_id"] == "c01" and a["uid"] == ALICE)
    assert gone["status"] == "skipped" and gone["error_code"] == "ErrorClusterNotFound"
    assert "no longer exists" in gone["reason"]
    assert ("c02", "skipped", "ErrorClusterNotFound") in {
        (c["cluster_id"], c["status"], c["error_code"]) for c in first["clusters"]
    }
    assert_revoked_exactly(h.backend, expected)


def test_summary_clusters_deleted_between_listing_and_cleaning(make_harness: Any) -> None:
    w, expected = orphan_world()
    h = make_harness(FakeAck(w, fault_seed=2))
    h.backend.faults.set(None, FaultSpec(error_rate_5xx=0.3))
    h.backend.hooks += [delete_when(CLEAN, "s01"), delete_when(LIST, "s02")]
    rt = h.runtime(**SUMMARY_SETTINGS)
    report = summary_once(h.backend, rt, expected)
    rec = report.reconciliation
    assert rec is not None
    on_s01 = {(a.status.value, a.error_code) for a in rec.actions if a.cluster_id == "s01"}
    # The first Clean on s01 deleted it: every s01 orphan is skipped (the protected one was never sent).
    assert on_s01 == {("skipped", "ErrorClusterNotFound"), ("skipped", None)}
    assert ("s02", "skipped", "ErrorClusterNotFound") in {
        (c.cluster_id, c.status.value, c.error_code) for c in report.skipped_clusters
    }
    expected = {p for p in expected if p[0] not in ("s01", "s02")}
    h.backend.faults.clear()
    summary_once(h.backend, rt, expected)
    assert_revoked_exactly(h.backend, expected)


# --- deferred (Force=false refused), then revoked by the daily summary -------------------------


def test_locked_user_deferred_under_faults_then_revoked_by_the_summary(make_harness: Any) -> None:
    carol = "200000000000000033"
    recent = "2026-11-24T10:00:00Z"  # within 7 days of the fake's clock
    w = world(
        {
            "cn-hangzhou": [
                cluster("l0", kc(carol, "carol", account_state="InActive"), audit_log=False),
                cluster("l1", kc(carol, "carol", account_state="InActive", last_access=recent)),
                cluster(
                    "l2", kc(carol, "carol", account_state="InActive", last_access="2026-10-01T00:00:00Z")
                ),
            ]
        }
    )
    h = make_harness(FakeAck(w, fault_seed=4))
    h.backend.faults.set(None, FaultSpec(error_rate_5xx=0.3))
    expected = {("l0", carol), ("l1", carol), ("l2", carol)}
    rt = h.runtime(**FAST)
    invocations = invoke_until_done(h.backend, rt, lock_user("carol"), expected)
    statuses = {
        (a["cluster_id"], a["status"], a["error_code"]) for inv in invocations for a in inv.doc["actions"]
    }
    assert {
        ("l0", "deferred", "ErrorAuditLogUnavailable"),
        ("l1", "deferred", "ErrorKubeconfigInUse"),
    } <= statuses
    assert revoked_pairs(h.backend) == [("l2", carol)]
    assert not invocations[-1].raised and invocations[-1].doc["outcome"] == "ok"  # deferred: no retry storm

    # A week later the access records are readable and the key is unused: the summary revokes.
    h.backend.set_audit_log("l0", True)
    h.backend.advance(8 * 86400)
    summary = h.runtime(**SUMMARY_SETTINGS)  # the defaults retry locks (KCGUARD_REMEDIATE_LOCKED=true)
    summary_until_done(h.backend, summary, expected)
    assert all(not r.force for r in h.backend.revocations)  # a locked user is never forced
    assert_revoked_exactly(h.backend, expected)


def test_summary_failed_action_does_not_promise_a_function_compute_retry(inproc_harness: Any) -> None:
    w, expected = orphan_world(2)
    h = inproc_harness(w)
    h.backend.faults.set(CLEAN, FaultSpec(error_rate_5xx=1.0))
    report = summary_once(h.backend, h.runtime(**{**SUMMARY_SETTINGS, "max_attempts": 1}), expected)
    assert report.reconciliation is not None
    failed = [a for a in report.reconciliation.actions if a.status.value == "failed"]
    assert failed and report.reconciliation.reason == "some revocations failed; the next run retries them"
    assert not [a.reason for a in failed if "Function Compute" in a.reason]


# --- secrets never appear, whatever goes wrong ------------------------------------------------

SECRET = "kcguard-TOPSECRET-3b1f9"
STS_TOKEN = "kcguard-STS-TOKEN-77aa"
DINGTALK_SECRET = "SECkcguard-DINGTALK-5e7c0d"
DINGTALK_TOKEN = "kcguard-DINGTALK-TOKEN-41ab"
SECRETS = (SECRET, STS_TOKEN, DINGTALK_SECRET, DINGTALK_TOKEN)


class _EchoingRobot(BaseHTTPRequestHandler):
    """A DingTalk robot that refuses every message and echoes the request line (token, sign) back."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({"errcode": 310000, "errmsg": f"sign not match, more: [{self.path}]"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def robot() -> Iterator[str]:
    with local_http_server(_EchoingRobot, f"/robot/send?access_token={DINGTALK_TOKEN}") as url:
        yield url


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, robot: str) -> None:
    """Known secrets in the environment, as Function Compute and the deployment set them."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIkcguardResilienceKeyId")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", STS_TOKEN)
    monkeypatch.setenv("KCGUARD_DINGTALK_WEBHOOK", robot)
    monkeypatch.setenv("KCGUARD_DINGTALK_SECRET", DINGTALK_SECRET)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def raw(self) -> list[str]:
        """Every record unformatted (before redaction): message, fields, exception."""
        return [
            f"{r.getMessage()} {json.dumps(getattr(r, 'fields', None), default=str)} {r.exc_info!r}"
            for r in self.records
        ]


@contextlib.contextmanager
def json_log_lines() -> Iterator[tuple[io.StringIO, _Records]]:
    """What the JSON log handler writes (Function Compute ships it to Log Service), and the raw records."""
    ours = logging.getLogger("kubeconfig_guard")
    level = ours.level
    logs.configure("DEBUG")
    captured, records = io.StringIO(), _Records()
    handlers = [
        h
        for h in ours.handlers
        if isinstance(h, logging.StreamHandler) and isinstance(h.formatter, logs.JsonFormatter)
    ]
    previous = []
    for h in handlers:  # not setStream: it flushes the old stream, maybe an earlier test's closed one
        with h.lock:
            previous.append(h.stream)
            h.stream = captured
    ours.addHandler(records)
    try:
        yield captured, records
    finally:
        ours.removeHandler(records)
        ours.setLevel(level)
        for h, stream in zip(handlers, previous, strict=True):
            with h.lock:
                h.stream = stream


def assert_no_secret(texts: list[str]) -> None:
    for secret in SECRETS:
        leaks = [t[max(0, t.find(secret) - 80) : t.find(secret) + 80] for t in texts if secret in t]
        assert not leaks, f"{secret!r} leaked: {leaks[:3]}"


def test_secrets_never_appear_under_any_fault(
    make_harness: Any, secret_env: None, capfd: pytest.CaptureFixture[str]
) -> None:
    clusters = [cluster(f"k{i}", kc(BOB, "bob", account_state="Active")) for i in range(3)]
    h = make_harness(FakeAck(world({"cn-hangzhou": clusters}), fault_seed=9))  # accepts the env's key pair
    rt = h.runtime(**{**SUMMARY_SETTINGS, "max_attempts": 2, "log_level": "DEBUG"})
    texts: list[str] = []
    everyone: set[Pair] = set()
    with json_log_lines() as (lines, records):
        for n, (fault, (spec, _)) in enumerate(FAULTS.items()):
            if fault == "throttling":  # a small world: a smaller bucket, so that it runs dry
                spec = FaultSpec(rate_limit_rps=5, burst=1)
            leaver, orphan = f"2400000000000000{n:02d}", f"2500000000000000{n:02d}"
            everyone |= {(f"k{i}", uid) for i in range(3) for uid in (leaver, orphan)}
            for i in range(3):  # one leaver for the event, one forgotten orphan for the summary
                h.backend.add_kubeconfig(f"k{i}", kc(leaver, f"leaver-{n}", account_state="Active"))
                h.backend.add_kubeconfig(f"k{i}", kc(orphan, f"orphan-{n}"))
            h.backend.update_kubeconfigs(None, leaver, account_state="Deleted")  # RAM deleted the user
            h.backend.faults.set(None, spec)
            invoke_until_done(h.backend, rt, delete_user(f"leaver-{n}"), set(), attempts=2, texts=texts)
            h.backend.faults.set(None, spec)
            outcome = handle_summary(None, None, runtime=rt, now=SUMMARY_NOW)
            texts += [outcome.model_dump_json(), outcome.report_json, outcome.markdown, outcome.html]
            texts += [repr(outcome), repr(outcome.report)]
            delivery = outcome.deliveries[0]
            assert delivery["channel"] == "dingtalk" and not delivery["ok"] and "310000" in delivery["error"]
            assert h.backend.fault_counts[FAULT_COUNTED[fault]] > 0, fault
        h.backend.faults.clear()  # the storm is over: the next daily run reconciles what is left
        texts.append(handle_summary(None, None, runtime=rt, now=SUMMARY_NOW).report_json)
    assert_revoked_exactly(h.backend, everyone)

    out, err = capfd.readouterr()
    texts += [lines.getvalue(), out, err, *records.raw()]
    texts += [repr(rt.settings), str(rt.settings), repr(from_environment_or_demo())]
    assert '"kubeconfig revoked"' in lines.getvalue() and "DailySummary" in lines.getvalue()
    assert "310000" in lines.getvalue()  # the refused delivery was logged...
    assert_no_secret(texts)  # ...and nothing anywhere carries a secret


@pytest.mark.parametrize("refused", ["secret", "token"])
def test_wrong_credentials_are_refused_and_never_shown(
    make_harness: Any, secret_env: None, capfd: pytest.CaptureFixture[str], refused: str
) -> None:
    w, _ = event_world(2)
    other = (
        {"access_key_secret": "the-secret-ack-expects"}
        if refused == "secret"
        else {"security_token": "the-token-ack-expects"}
    )
    h = make_harness(FakeAck(w, **other))
    rt = h.runtime(**{**SUMMARY_SETTINGS, "max_attempts": 2, "log_level": "DEBUG"})
    code = "SignatureDoesNotMatch" if refused == "secret" else "InvalidSecurityToken"
    texts: list[str] = []
    with json_log_lines() as (lines, records):
        with pytest.raises(RetryableInvocationError) as raised:
            handle_event(delete_user("alice"), None, runtime=rt)
        texts += [str(raised.value), repr(raised.value)]
        doc = result_of(raised.value)
        assert [(c["cluster_id"], c["error_code"]) for c in doc["clusters"]] == [("*", code)]
        report = summary_once(h.backend, rt, set())
        assert [(c.cluster_id, c.error_code) for c in report.skipped_clusters] == [("*", code)]
        texts.append(report.model_dump_json())
    assert not h.backend.revocations and h.backend.calls[DESCRIBE] == 2  # a 4xx is not retried
    out, err = capfd.readouterr()
    assert_no_secret([*texts, lines.getvalue(), out, err, *records.raw()])


def test_webhook_tokens_never_reach_the_root_logger(
    inproc_harness: Any, secret_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the root logger as Function Compute's runtime sets it up
    h = inproc_harness(world({"cn-hangzhou": [cluster("k0", kc(BOB, "bob", account_state="Active"))]}))
    outcome = handle_summary(None, None, runtime=h.runtime(**SUMMARY_SETTINGS), now=SUMMARY_NOW)
    assert outcome.deliveries[0]["channel"] == "dingtalk"
    assert DINGTALK_TOKEN not in caplog.text


# --- property: random fault mixes on random worlds --------------------------------------------


@st.composite
def fault_mixes(draw: st.DrawFn) -> tuple[str | None, FaultSpec]:
    """A fault spec from small sets of rates, for every operation or for one."""
    spec = FaultSpec(
        rate_limit_rps=draw(st.sampled_from([None, None, 20.0])),
        burst=5,
        error_rate_5xx=draw(st.sampled_from([0.0, 0.2, 0.4])),
        hang_rate=draw(st.sampled_from([0.0, 0.0, 0.15])),
        hang_seconds=0.5,
        reset_rate=draw(st.sampled_from([0.0, 0.2])),
        reset_after_apply=draw(st.booleans()),
        slow_rate=draw(st.sampled_from([0.0, 0.15])),
        slow_seconds=0.5,
    )
    return draw(st.sampled_from([None, None, CLEAN, LIST])), spec


@st.composite
def random_worlds(draw: st.DrawFn) -> tuple[World, set[Pair]]:
    """3-6 clusters, each with a random mix of alice's states, look-alikes and bystanders.

    Expected revocations of "alice deleted": her own uid, Deleted on ACK, on a working cluster.
    """
    clusters, expected = [], set()
    for i in range(draw(st.integers(min_value=3, max_value=6))):
        cid = f"r{i}"
        state = draw(st.sampled_from(["running", "running", "running", "deleting", "failed"]))
        alice = draw(st.sampled_from([None, "Deleted", "Deleted", "InActive", "Active"]))
        extras = draw(st.sets(st.sampled_from(["reuse", "protected", "old", "bob", "root", "paged"])))
        states = [kc(BOB, "bob", account_state="Active")] if "bob" in extras else []
        if "reuse" in extras:
            states.append(kc(NEW_ALICE, "alice", account_state="Active"))
        if "protected" in extras:
            states.append(kc(PROTECTED, "alice"))
        if "old" in extras:
            states.append(kc(OLD_ALICE, "alice", revokable=False))
        if "root" in extras:
            states.append(
                kc(ACCOUNT, "root", account_type="RootAccount", account_state="Active", revokable=False)
            )
        if "paged" in extras:  # two pages of ListClusterKubeconfigStates
            states += [kc(f"22{i}{k:015d}", f"dev-{k}", account_state="Active") for k in range(PAGE + 5)]
        if alice is not None:
            states.insert(
                draw(st.integers(min_value=0, max_value=len(states))), kc(ALICE, "alice", account_state=alice)
            )
            if state == "running" and alice == "Deleted":
                expected.add((cid, ALICE))
        clusters.append(cluster(cid, *states, state=state))
    return world({"cn-hangzhou": clusters}), expected


@hsettings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    drawn=random_worlds(),
    faults=fault_mixes(),
    wire=st.sampled_from(["inproc", "http"]),
    max_attempts=st.sampled_from([1, 3, 6]),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_event_path_property(
    drawn: tuple[World, set[Pair]],
    faults: tuple[str | None, FaultSpec],
    wire: str,
    max_attempts: int,
    seed: int,
) -> None:
    w, expected = drawn
    with one_harness(FakeAck(w, fault_seed=seed), wire) as h:
        h.backend.faults.set(*faults)
        rt = h.runtime(
            timeout_seconds=0.2,
            backoff_max_seconds=0.05,
            max_attempts=max_attempts,
            protected_principals=[PROTECTED],
        )
        invocations = invoke_until_done(h.backend, rt, delete_user("alice"), expected)
        assert_revoked_exactly(h.backend, expected)
        last = invocations[-1].doc  # the storm is over: every working cluster was scanned
        assert {c["cluster_id"] for c in last["clusters"]} == {
            c.cluster_id for c in w.regions["cn-hangzhou"].clusters if c.state != "running"
        }


# --- a slow listing runs into the invocation's deadline ---------------------------------------

# Function Compute's context: a 1 s function timeout; with a 0.6 s margin, new work stops after 0.4 s
# (the listing, 0.6 s late, ends after that).
NEAR_DEADLINE = SimpleNamespace(function=SimpleNamespace(timeout=1), request_id="r-deadline")


def test_deadline_reached_by_a_slow_listing_is_retried_by_function_compute(make_harness: Any) -> None:
    w, expected = event_world(3)
    h = make_harness(w)
    h.backend.faults.set(LIST, FaultSpec(latency_seconds=0.6))
    rt = h.runtime(deadline_margin_seconds=0.6, protected_principals=[PROTECTED])
    started = time.monotonic()
    with pytest.raises(RetryableInvocationError) as raised:
        handle_event(delete_user("alice"), NEAR_DEADLINE, runtime=rt)
    # The listing is cut off at the deadline (not awaited to its end): the handler returns in time.
    assert time.monotonic() - started < 0.6
    doc = result_of(raised.value)
    assert doc["outcome"] == "partial" and not h.backend.revocations
    late = {(c["cluster_id"], c["status"], c["error_code"]) for c in doc["clusters"]}
    assert {(c, "not-attempted", "DeadlineReached") for c, _ in expected} <= late
    h.backend.faults.clear()
    invoke_until_done(h.backend, rt, delete_user("alice"), expected)  # Function Compute's retry
    assert_revoked_exactly(h.backend, expected)


def test_cleans_in_flight_at_the_deadline_fail_with_its_code_and_are_confirmed_by_the_retry(
    inproc_harness: Any,
) -> None:
    w, expected = event_world(2)
    h = inproc_harness(w)
    # Applied at once, answered late: every Clean is in flight when the deadline comes.
    h.backend.faults.set(CLEAN, FaultSpec(slow_rate=1.0, slow_seconds=0.6))
    rt = h.runtime(deadline_margin_seconds=0.6, protected_principals=[PROTECTED])
    with pytest.raises(RetryableInvocationError) as raised:
        handle_event(delete_user("alice"), NEAR_DEADLINE, runtime=rt)
    failed = [a for a in result_of(raised.value)["actions"] if a["status"] == "failed"]
    assert failed and all(a["error_code"] == "DeadlineReached" for a in failed), failed
    assert all("may have landed" in a["reason"] for a in failed)
    h.backend.faults.clear()
    invoke_until_done(h.backend, rt, delete_user("alice"), expected)
    assert_revoked_exactly(h.backend, expected)  # landed once, confirmed by a listing, never doubled
