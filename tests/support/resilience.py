"""Helpers of the resilience suite: drive the handlers like Function Compute and check invariants.

Every invocation (event or summary run) is checked on its own:

* the counts of the result document are the counts of its actions;
* every (cluster, uid) it reports ``revoked`` was revoked by the fake during that invocation;
* every revocation the fake made during it that the document does not report ``revoked`` is
  reported ``failed`` (the answer was lost: a timeout or reset after the write was applied);
* every failed action and every failed cluster carries an error code;
* every (cluster, uid) still to revoke is accounted for: an action, or its cluster listed as
  not scanned;
* ``handle_event`` raises (only ``RetryableInvocationError``) exactly when the document asks
  for a retry.

And across invocations: nothing is revoked twice, and in the end exactly the expected pairs are.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.fake import FakeAck
from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.runtime import Runtime
from kubeconfig_guard.summary.options import SummaryOptions
from kubeconfig_guard.summary.pipeline import run_summary
from kubeconfig_guard.summary.report import Report

Pair = tuple[str, str]
SUMMARY_NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
FAILED_CLUSTER = ("failed", "not-attempted")


def revoked_pairs(backend: FakeAck, start: int = 0) -> list[Pair]:
    return [(r.cluster_id, r.uid) for r in backend.revocations[start:]]


def result_of(exc: RetryableInvocationError) -> dict[str, Any]:
    """The result document a RetryableInvocationError carries (as data)."""
    doc = exc.result.model_dump(mode="json")
    assert isinstance(doc, dict)
    return doc


def check_document(
    actions: list[dict[str, Any]],
    counts: dict[str, int],
    clusters: list[dict[str, Any]],
    new: list[Pair],
    pending: set[Pair],
) -> None:
    """The invariants one result document (event result or reconciliation) must satisfy."""
    statuses = Counter(a["status"] for a in actions)
    assert {k: v for k, v in counts.items() if v} == dict(statuses), (counts, statuses)
    by_pair: dict[Pair, dict[str, Any]] = {}
    for a in actions:
        pair = (a["cluster_id"], a["uid"])
        assert pair not in by_pair, f"{pair} reported twice in one document"
        by_pair[pair] = a
    assert len(new) == len(set(new)), f"revoked twice within one invocation: {new}"
    reported = {p for p, a in by_pair.items() if a["status"] == "revoked"}
    assert reported <= set(new), f"reported revoked but not revoked by ACK: {reported - set(new)}"
    for pair in set(new) - reported:  # applied, but the answer was lost
        assert pair in by_pair and by_pair[pair]["status"] == "failed", (pair, by_pair.get(pair))
    for a in actions:
        if a["status"] in ("failed", "deferred"):
            assert a["error_code"], a
    for c in clusters:
        if c["status"] == "failed":
            assert c["error_code"], c
    not_scanned = {c["cluster_id"] for c in clusters}
    for pair in pending:
        assert pair in by_pair or pair[0] in not_scanned or "*" in not_scanned, (
            f"{pair} neither acted on nor its cluster reported as not scanned"
        )


@dataclass
class Invocation:
    doc: dict[str, Any]
    raised: bool
    new: list[Pair]


def invoke_until_done(
    backend: FakeAck,
    runtime: Runtime | Callable[[], Runtime],
    event: bytes,
    expected: Iterable[Pair],
    *,
    attempts: int = 3,
    calm: Callable[[], None] | None = None,
    texts: list[str] | None = None,
) -> list[Invocation]:
    """Invoke like Function Compute's async retries: again while the handler raises.

    Before the last attempt the storm ends (``calm``, default: clear the faults). Each
    invocation's document is checked; the last one must not ask for a retry.
    """
    expected = set(expected)
    invocations: list[Invocation] = []
    for attempt in range(attempts):
        if attempt == attempts - 1:
            (calm or backend.faults.clear)()
        rt = runtime if isinstance(runtime, Runtime) else runtime()
        start = len(backend.revocations)
        pending = expected - set(revoked_pairs(backend))
        try:
            result = handle_event(event, None, runtime=rt)
        except RetryableInvocationError as exc:
            if texts is not None:
                texts += [str(exc), repr(exc)]
            doc, raised = result_of(exc), True
        else:
            doc, raised = json.loads(result.model_dump_json()), False
        if texts is not None:
            texts.append(json.dumps(doc))
        new = revoked_pairs(backend, start)
        check_document(doc["actions"], doc["counts"], doc["clusters"], new, pending)
        needs_retry = any(a["status"] == "failed" for a in doc["actions"]) or any(
            c["status"] in FAILED_CLUSTER for c in doc["clusters"]
        )
        assert raised == needs_retry, doc
        assert doc["outcome"] == ("partial" if needs_retry else "ok"), doc
        invocations.append(Invocation(doc, raised, new))
        if not raised:
            return invocations
    raise AssertionError(f"still asking for a retry after the storm ended: {invocations[-1].doc}")


def summary_once(
    backend: FakeAck,
    runtime: Runtime,
    expected: Iterable[Pair],
    *,
    options: SummaryOptions | None = None,
) -> Report:
    """One daily summary run (scan + reconciliation), checked."""
    start = len(backend.revocations)
    pending = set(expected) - set(revoked_pairs(backend))
    report = runtime.run(run_summary(runtime.engine, options or SummaryOptions(), now=SUMMARY_NOW))
    check_report(report, revoked_pairs(backend, start), pending)
    return report


def check_report(report: Report, new: list[Pair], pending: set[Pair]) -> None:
    rec = report.reconciliation
    assert rec is not None and rec.enabled
    doc = json.loads(report.model_dump_json())
    check_document(
        doc["reconciliation"]["actions"],
        doc["reconciliation"]["counts"],
        doc["skipped_clusters"],
        new,
        pending,
    )
    assert rec.outcome == ("partial" if rec.counts.get("failed") else "ok"), rec
    scanned = {c.cluster_id for c in report.by_cluster}
    issues = {c.cluster_id for c in report.skipped_clusters}
    assert report.clusters_scanned == len(scanned)
    assert not scanned & issues, (scanned, issues)
    if "*" not in issues:  # every cluster listed is either scanned or reported
        assert len(scanned) + len(issues) == report.clusters_total, report


def summary_until_done(
    backend: FakeAck, runtime: Runtime, expected: Iterable[Pair], *, runs: int = 3
) -> list[Report]:
    """Daily runs until one has nothing failed and nothing unscanned (the storm ends before the last)."""
    reports: list[Report] = []
    for run in range(runs):
        if run == runs - 1:
            backend.faults.clear()
        report = summary_once(backend, runtime, expected)
        reports.append(report)
        rec = report.reconciliation
        assert rec is not None
        if not rec.counts.get("failed") and not any(
            c.status.value in FAILED_CLUSTER for c in report.skipped_clusters
        ):
            return reports
    raise AssertionError(f"the summary still fails after the storm ended: {reports[-1].skipped_clusters}")


def assert_revoked_exactly(backend: FakeAck, expected: Iterable[Pair]) -> None:
    pairs = revoked_pairs(backend)
    assert len(pairs) == len(set(pairs)), f"revoked twice: {Counter(pairs).most_common(3)}"
    missing, extra = set(expected) - set(pairs), set(pairs) - set(expected)
    assert not missing and not extra, f"not revoked: {sorted(missing)}; revoked wrongly: {sorted(extra)}"
