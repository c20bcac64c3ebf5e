"""Rounds (issue 19): what failed transiently is tried again within the same invocation while its
deadline leaves time, so a storm of faults ends the attempt ``ok`` instead of a retry of the whole event.

Against the fake ACK over both wires (``make_harness``: in-process and its real HTTP server). Each
invocation gets a Function Compute context with a short timeout (the deadline the rounds budget
against) and its document is checked with the resilience suite's invariants
(``support.resilience.check_document``: counts, revoked only what ACK revoked during it, every
lost answer reported, every failure with its code, nothing pending left unaccounted for). The
requests the fake's operations served or failed are recorded in order (``Requests``), so the
tests can say which Clean was sent, how often, and what listing preceded it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from kubeconfig_guard.engine import MAX_ROUNDS
from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.fake import FakeAck, FakeAckError, FaultSpec, World
from kubeconfig_guard.handlers import handle_event
from support.events import delete_user
from support.harness import Harness
from support.resilience import Pair, assert_revoked_exactly, check_document, result_of, revoked_pairs
from support.worlds import cluster, kc, world

ALICE = "200000000000000011"
BOB = "200000000000000002"
LIST = "ListClusterKubeconfigStates"
CLEAN = "CleanClusterUserPermissions"
DESCRIBE = "DescribeClustersV1"
CLUSTERS = ("c00", "c01", "c02")
EXPECTED: set[Pair] = {(c, ALICE) for c in CLUSTERS}

# Two attempts per request, short timeouts and back-off (the rounds' wait is capped by
# backoff_max_seconds too); a 0.5 s margin before the context's timeout.
SETTINGS: dict[str, Any] = {
    "max_attempts": 2,
    "backoff_max_seconds": 0.05,
    "timeout_seconds": 0.5,
    "deadline_margin_seconds": 0.5,
}
TIMEOUT = 2.5  # the function's timeout: everything stops 2 s after the start, listing after 1.5 s


def fc_context(timeout: float = TIMEOUT) -> SimpleNamespace:
    return SimpleNamespace(function=SimpleNamespace(timeout=timeout), request_id="r-rounds")


def three_clusters() -> World:
    """alice (Deleted) and bob (Active) on three running clusters: "alice deleted" revokes EXPECTED."""
    return world(
        {
            "cn-hangzhou": [
                cluster(c, kc(ALICE, "alice"), kc(BOB, "bob", account_state="Active")) for c in CLUSTERS
            ]
        }
    )


@dataclass
class Rule:
    op: str
    cluster_id: str
    left: int | None  # None: every time
    status: int
    code: str
    then: Callable[[FakeAck], None] | None


class Requests:
    """A hook on the fake: records every request its operations see (operation, cluster, served or
    failed), and fails the chosen ones with an error answer before the operation runs."""

    def __init__(self, backend: FakeAck) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.rules: list[Rule] = []
        backend.hooks.append(self)

    def fail(
        self,
        op: str,
        cluster_id: str = "",
        times: int | None = None,
        *,
        status: int = 503,
        code: str = "ServiceUnavailable",
        then: Callable[[FakeAck], None] | None = None,
    ) -> None:
        """Fail ``times`` requests of ``op`` on ``cluster_id`` ("": a region's listing); ``then``
        runs on the fake at each (a change of ACK's state)."""
        self.rules.append(Rule(op, cluster_id, times, status, code, then))

    def __call__(self, backend: FakeAck, operation: str, params: dict[str, str]) -> None:
        cluster_id = params.get("ClusterId", "")
        for rule in self.rules:
            if (rule.op, rule.cluster_id) == (operation, cluster_id) and rule.left != 0:
                if rule.left is not None:
                    rule.left -= 1
                self.seen.append((operation, cluster_id, "failed"))
                if rule.then is not None:
                    rule.then(backend)
                raise FakeAckError(rule.status, rule.code, "injected by the test")
        self.seen.append((operation, cluster_id, "served"))

    def count(self, op: str, cluster_id: str, outcome: str | None = None) -> int:
        return sum(1 for o, c, r in self.seen if (o, c) == (op, cluster_id) and outcome in (None, r))


def invoke(h: Harness, context: Any = None, **overrides: Any) -> tuple[dict[str, Any], bool, float]:
    """One invocation of "alice deleted": its document (checked), whether it raised, its seconds."""
    start = len(h.backend.revocations)
    pending = EXPECTED - set(revoked_pairs(h.backend))
    runtime = h.runtime(**{**SETTINGS, **overrides})
    began = time.monotonic()
    try:
        result = handle_event(delete_user("alice"), context or fc_context(), runtime=runtime)
    except RetryableInvocationError as exc:
        doc, raised = result_of(exc), True
    else:
        doc, raised = json.loads(result.model_dump_json()), False
    seconds = time.monotonic() - began
    check_document(doc["actions"], doc["counts"], doc["clusters"], revoked_pairs(h.backend, start), pending)
    assert doc["outcome"] == ("partial" if raised else "ok"), doc
    return doc, raised, seconds


def statuses(doc: dict[str, Any]) -> set[tuple[str, str, str, str | None]]:
    return {(a["cluster_id"], a["uid"], a["status"], a["error_code"]) for a in doc["actions"]}


def cleans_sent(h: Harness) -> list[Pair]:
    """The Cleans that reached ACK's state (the fake records each, whatever its outcome)."""
    return sorted((c.cluster_id, c.uid) for c in h.backend.clean_calls)


# --- listings --------------------------------------------------------------------------------------


def test_a_listing_failing_then_succeeding_is_revoked_in_one_invocation(make_harness: Any) -> None:
    h = make_harness(three_clusters())
    requests = Requests(h.backend)
    requests.fail(LIST, "c01", times=3)  # round 1: both attempts fail; round 2: one more, then served
    doc, raised, seconds = invoke(h)
    assert not raised and doc["outcome"] == "ok", doc["reason"]
    assert doc["clusters"] == [] and doc["clusters_scanned"] == 3 == doc["clusters_total"]
    assert statuses(doc) == {(c, ALICE, "revoked", None) for c in CLUSTERS}
    assert requests.count(LIST, "c01") == 4 and requests.count(LIST, "c01", "served") == 1
    assert cleans_sent(h) == sorted(EXPECTED)  # one Clean per pair: the rules' and no more
    assert seconds < TIMEOUT - SETTINGS["deadline_margin_seconds"]
    assert_revoked_exactly(h.backend, EXPECTED)


def test_without_a_deadline_one_round_as_before(make_harness: Any) -> None:
    """No Function Compute context, no time to budget: the failure is reported and retried by the caller."""
    h = make_harness(three_clusters())
    requests = Requests(h.backend)
    requests.fail(LIST, "c01", times=3)
    doc, raised, _ = invoke(h, context=SimpleNamespace(request_id="no-timeout"))
    assert raised and [(c["cluster_id"], c["status"]) for c in doc["clusters"]] == [("c01", "failed")]
    assert requests.count(LIST, "c01") == SETTINGS["max_attempts"]
    assert set(revoked_pairs(h.backend)) == EXPECTED - {("c01", ALICE)}


def test_a_region_listing_failing_then_succeeding_is_revoked_in_one_invocation(make_harness: Any) -> None:
    h = make_harness(three_clusters())
    requests = Requests(h.backend)
    requests.fail(DESCRIBE, times=3)
    doc, raised, _ = invoke(h)
    assert not raised and doc["clusters"] == [] and doc["clusters_total"] == 3, doc
    assert requests.count(DESCRIBE, "") == 4
    assert cleans_sent(h) == sorted(EXPECTED)
    assert_revoked_exactly(h.backend, EXPECTED)


def test_a_cluster_that_always_fails_ends_partial_with_its_reason_after_the_last_round(
    make_harness: Any,
) -> None:
    h = make_harness(three_clusters())
    requests = Requests(h.backend)
    requests.fail(LIST, "c01")
    doc, raised, seconds = invoke(h)
    assert raised and doc["outcome"] == "partial"
    assert doc["clusters"] == [
        {
            "cloud_account_id": None,
            "region": "cn-hangzhou",
            "cluster_id": "c01",
            "cluster_name": "name-c01",
            "status": "failed",
            "reason": "listing kubeconfigs failed: ServiceUnavailable: injected by the test",
            "error_code": "ServiceUnavailable",
        }
    ]
    # Bounded: the rounds' limit, each round the client's attempts; nothing else was tried there.
    assert requests.count(LIST, "c01") == MAX_ROUNDS * SETTINGS["max_attempts"]
    assert requests.count(CLEAN, "c01") == 0
    assert set(revoked_pairs(h.backend)) == EXPECTED - {("c01", ALICE)}
    assert seconds < TIMEOUT - SETTINGS["deadline_margin_seconds"]


def test_rounds_stop_when_the_deadline_leaves_no_time(make_harness: Any) -> None:
    """Waits of up to 0.6 s between rounds and 0.75 s of listing time: the deadline, not the round
    limit, stops the retries; the cluster is reported failed with its last error, in time."""
    h = make_harness(three_clusters())
    requests = Requests(h.backend)
    requests.fail(LIST, "c01")
    timeout, margin = 1.5, 0.5  # work stops 1 s after the start, listing after 0.75 s
    doc, raised, seconds = invoke(
        h, fc_context(timeout), backoff_max_seconds=0.6, deadline_margin_seconds=margin
    )
    assert raised and [(c["cluster_id"], c["status"], c["error_code"]) for c in doc["clusters"]] == [
        ("c01", "failed", "ServiceUnavailable")
    ]
    assert SETTINGS["max_attempts"] <= requests.count(LIST, "c01") < MAX_ROUNDS * SETTINGS["max_attempts"]
    assert set(revoked_pairs(h.backend)) == EXPECTED - {("c01", ALICE)}  # the others' Cleans had time
    assert seconds < timeout - margin + 0.2


@pytest.mark.parametrize(
    ("status", "code", "cluster_status"),
    [(404, "ErrorClusterNotFound", "skipped"), (403, "Forbidden.RAM", "failed")],
    ids=["not-found", "auth"],
)
def test_a_listing_refused_is_not_retried(
    make_harness: Any, status: int, code: str, cluster_status: str
) -> None:
    h = make_harness(three_clusters())
    requests = Requests(h.backend)
    requests.fail(LIST, "c01", status=status, code=code)
    doc, raised, _ = invoke(h)
    assert [(c["cluster_id"], c["status"], c["error_code"]) for c in doc["clusters"]] == [
        ("c01", cluster_status, code)
    ]
    assert raised is (cluster_status == "failed")  # a gone cluster is no reason to retry
    assert requests.count(LIST, "c01") == 1  # neither the client nor a round asks again
    assert set(revoked_pairs(h.backend)) == EXPECTED - {("c01", ALICE)}


# --- Cleans ----------------------------------------------------------------------------------------


def test_a_clean_failing_past_the_client_retries_is_sent_again_after_a_fresh_listing(
    make_harness: Any,
) -> None:
    h = make_harness(three_clusters())
    requests = Requests(h.backend)
    requests.fail(CLEAN, "c01", times=3)  # round 1: both attempts; round 2: one more, then revoked
    # The limit is exactly the plan's pairs: a Clean sent again is the same pair, counted once.
    doc, raised, _ = invoke(h, max_revocations=len(EXPECTED))
    assert not raised and doc["outcome"] == "ok", doc["reason"]
    assert doc["counts"]["revoked"] == 3 and ("c01", ALICE, "revoked", None) in statuses(doc)
    assert cleans_sent(h) == sorted(EXPECTED)  # every Clean that reached ACK revoked, once
    assert [(op, outcome) for op, c, outcome in requests.seen if c == "c01"] == [
        (LIST, "served"),  # the listing the plan was decided on
        (CLEAN, "failed"),  # round 1: the client's two attempts...
        (CLEAN, "failed"),
        (LIST, "served"),  # ...and the listing that finds the Clean did not land
        (LIST, "served"),  # round 2: decided again on a fresh listing...
        (CLEAN, "failed"),  # ...then sent, and revoked on the client's second attempt
        (CLEAN, "served"),
    ]
    assert_revoked_exactly(h.backend, EXPECTED)


def test_a_clean_whose_answer_was_lost_is_confirmed_by_a_fresh_listing_never_sent_again(
    make_harness: Any,
) -> None:
    """Every Clean applied and its answer lost (later than the client's timeout); on c01 the
    executor's confirming listing fails too. The next round's fresh listing confirms it."""
    h = make_harness(three_clusters())
    h.backend.faults.set(CLEAN, FaultSpec(slow_rate=1.0, slow_seconds=0.6))
    requests = Requests(h.backend)

    def break_next_listing(backend: FakeAck, operation: str, params: dict[str, str]) -> None:
        if operation == CLEAN and params.get("ClusterId") == "c01":
            requests.fail(LIST, "c01", times=1)

    h.backend.hooks.insert(0, break_next_listing)
    doc, raised, seconds = invoke(h, max_attempts=1, timeout_seconds=0.25)
    assert not raised and doc["outcome"] == "ok", doc["reason"]
    assert statuses(doc) >= {(c, ALICE, "revoked", "Transport.Timeout") for c in CLUSTERS}
    assert requests.count(LIST, "c01", "failed") == 1 and requests.count(CLEAN, "c01") == 1
    assert [c.outcome for c in h.backend.clean_calls] == ["revoked"] * 3  # never repeated
    assert seconds < TIMEOUT - SETTINGS["deadline_margin_seconds"]
    assert_revoked_exactly(h.backend, EXPECTED)


def test_a_clean_tried_again_is_decided_on_the_fresh_state(make_harness: Any) -> None:
    """While a Clean fails, ACK comes to show alice Active on c01 (a new alice, or ACK caught up):
    the next round's fresh listing decides, and nothing more is sent there."""
    h = make_harness(three_clusters())
    requests = Requests(h.backend)

    def alice_is_back(backend: FakeAck) -> None:
        backend.update_kubeconfigs("c01", ALICE, account_state="Active")

    requests.fail(CLEAN, "c01", times=1, then=alice_is_back)
    doc, raised, _ = invoke(h, max_attempts=1)
    assert not raised and doc["outcome"] == "ok", doc["reason"]
    skipped = next(a for a in doc["actions"] if (a["cluster_id"], a["uid"]) == ("c01", ALICE))
    assert skipped["status"] == "skipped" and skipped["account_state"] == "Active"
    assert "the account is Active on ACK, not Deleted" in skipped["reason"]
    assert [(op, outcome) for op, c, outcome in requests.seen if c == "c01"] == [
        (LIST, "served"),  # the plan's listing: alice Deleted
        (CLEAN, "failed"),  # meanwhile ACK shows her Active
        (LIST, "served"),  # the executor's check: not revoked
        (LIST, "served"),  # round 2's fresh listing: the rules refuse, no Clean is sent
    ]
    assert set(revoked_pairs(h.backend)) == EXPECTED - {("c01", ALICE)}
    assert ALICE in {k.account_id for k in h.backend.kubeconfigs("c01")}


def test_a_clean_that_always_fails_is_bounded_and_reported(make_harness: Any) -> None:
    h = make_harness(three_clusters())
    requests = Requests(h.backend)
    requests.fail(CLEAN, "c01")
    doc, raised, seconds = invoke(h)
    assert raised and doc["outcome"] == "partial"
    failed = [a for a in doc["actions"] if a["status"] == "failed"]
    assert [(a["cluster_id"], a["uid"], a["error_code"]) for a in failed] == [
        ("c01", ALICE, "ServiceUnavailable")
    ]
    assert "retried by Function Compute's async retry" in failed[0]["reason"]
    assert requests.count(CLEAN, "c01") == MAX_ROUNDS * SETTINGS["max_attempts"]
    assert set(revoked_pairs(h.backend)) == EXPECTED - {("c01", ALICE)}
    assert seconds < TIMEOUT - SETTINGS["deadline_margin_seconds"]


def test_a_clean_refused_is_not_retried(make_harness: Any) -> None:
    h = make_harness(three_clusters())
    requests = Requests(h.backend)
    requests.fail(CLEAN, "c01", status=403, code="Forbidden.RAM")
    doc, raised, _ = invoke(h)
    assert raised and ("c01", ALICE, "failed", "Forbidden.RAM") in statuses(doc)
    assert requests.count(CLEAN, "c01") == 1
