"""The daily summary: classification, the golden report, every reconciliation path."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from kubeconfig_guard.models import AccountType, KubeconfigState
from kubeconfig_guard.results import Outcome
from kubeconfig_guard.settings import Mode
from kubeconfig_guard.summary.classify import KubeconfigClass, classify
from kubeconfig_guard.summary.markdown import render_markdown
from kubeconfig_guard.summary.options import OptionsError, SummaryOptions, parse_summary_event
from kubeconfig_guard.summary.pipeline import run_summary
from kubeconfig_guard.summary.report import Report
from support.worlds import ACCOUNT, cluster, kc, world

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
GOLDEN = Path(__file__).parent / "golden"


def st(**fields: Any) -> KubeconfigState:
    base = {"account_id": "2001", "account_name": "a", "account_type": "RamUser", "account_state": "Active"}
    base.update(cert_state="Unexpired", cert_expire_time="2028-01-01T00:00:00Z", revokable=True)
    base.update(fields)
    return KubeconfigState(**base)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (st(account_state="Deleted"), KubeconfigClass.ORPHANED),
        (st(account_state="InActive"), KubeconfigClass.ORPHANED),
        (st(account_state="Deleted", revokable=False), KubeconfigClass.HEALTHY),
        (st(account_type="RootAccount", revokable=False), KubeconfigClass.ROOT),
        (st(cert_state="Expired"), KubeconfigClass.EXPIRED),
        (st(cert_expire_time="2026-12-20T00:00:00Z"), KubeconfigClass.EXPIRING),
        (st(cert_expire_time="2026-12-26T00:00:00Z"), KubeconfigClass.HEALTHY),  # 30.6 days
        (st(cert_expire_time="2026-11-01T00:00:00Z"), KubeconfigClass.EXPIRED),  # says Unexpired, is past
        (st(cert_state="Unknown"), KubeconfigClass.UNKNOWN),
        (st(cert_state="Revoked"), KubeconfigClass.UNKNOWN),  # undocumented value
        (st(cert_expire_time="garbage"), KubeconfigClass.UNKNOWN),
        (st(), KubeconfigClass.HEALTHY),
    ],
)
def test_classify(state: KubeconfigState, expected: KubeconfigClass) -> None:
    assert classify(state, NOW, 30) is expected


def test_options() -> None:
    timer = {"triggerTime": "2026-11-25T01:00:00Z", "triggerName": "daily", "payload": '{"expiringDays": 7}'}
    assert parse_summary_event(json.dumps(timer).encode()).expiring_days == 7
    assert parse_summary_event({"regions": "a, b", "dryRun": True}) == SummaryOptions(
        regions=["a", "b"], dryRun=True
    )
    assert parse_summary_event(b"") == SummaryOptions()
    assert parse_summary_event({"triggerTime": "x", "payload": ""}) == SummaryOptions()
    for bad, fragment in [
        (b"{", "not valid JSON"),
        ({"triggerTime": "x", "payload": "[1]"}, "payload must be a JSON object"),
        ({"expiringDays": -1}, "expiringDays"),
        ({"surprise": 1}, "surprise"),
    ]:
        with pytest.raises(OptionsError, match=fragment):
            parse_summary_event(bad)


def summary_world() -> Any:
    return world(
        {
            "cn-hangzhou": [
                cluster(
                    "c1",
                    kc(ACCOUNT, "root", account_type="RootAccount", account_state="Active", revokable=False),
                    kc("2001", "alice"),  # deleted, revokable: orphan
                    kc("2002", "bob", account_state="Active", cert_expire_time="2026-12-01T00:00:00Z"),
                    kc("2003", "carol", account_state="InActive", last_access="2026-11-24T00:00:00Z"),
                    kc(
                        "2004",
                        "erin",
                        account_state="Active",
                        cert_state="Expired",
                        cert_expire_time="2026-01-01T00:00:00Z",
                    ),
                    kc("2005", "frank", account_state="Active", cert_state="Unknown", cert_expire_time=None),
                ),
                cluster(
                    "c2", kc("2001", "alice"), kc("3001", "old-ops", account_type="RamRole"), audit_log=False
                ),
                cluster("c3", kc("2001", "alice"), state="failed"),
            ],
            "ap-southeast-1": [cluster("s1", kc("2006", "gina", account_state="Active"))],
        }
    )


def summarize(h: Any, options: SummaryOptions | None = None, **overrides: Any) -> Report:
    rt = h.runtime(**{"regions": ["cn-hangzhou", "ap-southeast-1"], **overrides})
    return rt.run(run_summary(rt.engine, options or SummaryOptions(), now=NOW, account_id=ACCOUNT))


def normalized(report: Report) -> dict[str, Any]:
    data = report.model_dump(mode="json")
    data["duration_ms"] = 0
    data["api"] = {}
    return data


def test_golden_report(make_harness: Any) -> None:
    report = summarize(make_harness(summary_world()), mode="dry-run")
    golden_json, golden_md = GOLDEN / "summary_report.json", GOLDEN / "summary_digest.md"
    digest = render_markdown(report, report_url="https://reports.example.com/today.html")
    if os.environ.get("UPDATE_GOLDEN"):
        golden_json.write_text(json.dumps(normalized(report), indent=2, sort_keys=True) + "\n")
        golden_md.write_text(digest)
    assert normalized(report) == json.loads(golden_json.read_text())
    assert digest == golden_md.read_text()


def test_counts_and_lists(make_harness: Any) -> None:
    report = summarize(make_harness(summary_world()), mode="dry-run")
    assert report.totals == {
        "orphaned": 4,
        "root": 1,
        "expired": 1,
        "expiring": 1,
        "unknown": 1,
        "healthy": 1,
    }
    assert report.kubeconfigs == 9 and report.clusters_total == 4 and report.clusters_scanned == 3
    assert [(c.cluster_id, c.status.value) for c in report.skipped_clusters] == [("c3", "skipped")]
    assert report.by_region["ap-southeast-1"]["healthy"] == 1
    assert report.by_account_type["RamRole"]["orphaned"] == 1
    assert [e.account_name for e in report.expiring.items] == ["bob"] and report.expiring.items[
        0
    ].days_left == 5
    assert report.root.items[0].account_type == "RootAccount"
    assert report.expiry_by_month == {"2026-12": 1, "2028-01": 6}


def statuses(report: Report) -> dict[tuple[str, str], str]:
    assert report.reconciliation is not None
    return {(a.cluster_id, a.account_name): a.status.value for a in report.reconciliation.actions}


def test_reconciliation_by_default_revokes_deleted_and_retries_locked(make_harness: Any) -> None:
    h = make_harness(summary_world())
    report = summarize(h)
    assert statuses(report) == {
        ("c1", "alice"): "revoked",
        ("c2", "alice"): "revoked",
        ("c2", "old-ops"): "revoked",
        ("c1", "carol"): "deferred",  # locked, used yesterday: ACK refuses the lock's Force=false
    }
    assert sorted((r.cluster_id, r.uid) for r in h.backend.revocations) == [
        ("c1", "2001"),
        ("c2", "2001"),
        ("c2", "3001"),
    ]
    # The lock's rules and Force: deletions with Force=true, the lock with Force=false.
    assert {(c.cluster_id, c.uid, c.force) for c in h.backend.clean_calls} == {
        ("c1", "2001", True),
        ("c2", "2001", True),
        ("c2", "3001", True),
        ("c1", "2003", False),
    }
    again = summarize(h)  # the next run only tries the lock again
    assert statuses(again) == {("c1", "carol"): "deferred"} and again.totals["orphaned"] == 1
    decision = again.needs_decision
    assert decision is not None and decision.deferred == 1 and not decision.ages_tracked
    assert "KCGUARD_REPORT_BUCKET is not set" in decision.note and decision.shown


def test_locks_left_alone_when_remediate_locked_is_off(make_harness: Any) -> None:
    h = make_harness(summary_world())
    report = summarize(h, remediate_locked=False)
    assert ("c1", "carol") not in statuses(report)
    assert not [c for c in h.backend.clean_calls if c.uid == "2003"]
    decision = report.needs_decision
    assert decision is not None and decision.locked_not_retried == 1 and decision.shown
    digest = render_markdown(report)
    assert digest.index("### Needs a decision (0)") < digest.index("### Reconciliation")
    assert "1 kubeconfig of locked accounts is not retried: `KCGUARD_REMEDIATE_LOCKED` is false" in digest


def test_reconciliation_locked_deferred_then_forced(make_harness: Any) -> None:
    h = make_harness(summary_world())
    report = summarize(h, remediate_locked=True)
    assert statuses(report)[("c1", "carol")] == "deferred"  # used yesterday: ACK refuses Force=false
    report = summarize(h, remediate_locked=True, force_on_lock=True)
    assert statuses(report) == {("c1", "carol"): "revoked"}


def test_reconciliation_dry_run_limit_and_off(make_harness: Any) -> None:
    h = make_harness(summary_world())
    assert set(statuses(summarize(h, mode="dry-run")).values()) == {"would-revoke"}
    assert set(statuses(summarize(h, SummaryOptions(dryRun=True))).values()) == {"would-revoke"}
    limited = summarize(h, max_revocations=2)
    assert limited.reconciliation is not None and limited.reconciliation.outcome is Outcome.LIMIT_EXCEEDED
    assert set(statuses(limited).values()) == {"skipped"}
    off = summarize(h, SummaryOptions(remediate=False))
    assert (
        off.reconciliation is not None and not off.reconciliation.enabled and not off.reconciliation.actions
    )
    assert not h.backend.revocations


def test_reconciliation_respects_protected_principals(make_harness: Any) -> None:
    h = make_harness(summary_world())
    report = summarize(h, protected_principals=["old-*"])
    assert statuses(report)[("c2", "old-ops")] == "skipped"


def test_failed_listing_is_reported_not_omitted(make_harness: Any) -> None:
    from kubeconfig_guard.fake import FakeAckError

    h = make_harness(summary_world())

    def break_c2(backend: Any, op: str, params: dict[str, str]) -> None:
        if params.get("ClusterId") == "c2":
            raise FakeAckError(400, "ErrorClusterUnhealthy", "the API server is unreachable")

    h.backend.hooks.append(break_c2)
    report = summarize(h, mode="dry-run")
    failed = {c.cluster_id: c for c in report.skipped_clusters}
    assert failed["c2"].status.value == "failed" and failed["c2"].error_code == "ErrorClusterUnhealthy"
    assert report.clusters_scanned == 2


def test_lists_are_capped_but_counted(make_harness: Any) -> None:
    orphans = [kc(f"2{i:04d}", f"u{i}") for i in range(30)]
    expiring = [
        kc(f"3{i:04d}", f"e{i}", account_state="Active", cert_expire_time=f"2026-12-{i + 1:02d}T00:00:00Z")
        for i in range(20)
    ]
    h = make_harness(world({"cn-hangzhou": [cluster("c1", *orphans, *expiring)]}))
    report = summarize(h, mode="dry-run", report_list_limit=5, regions=["cn-hangzhou"])
    assert report.orphaned.total == 30 and len(report.orphaned.items) == 5 and report.orphaned.truncated
    assert [e.account_name for e in report.expiring.items] == ["e0", "e1", "e2", "e3", "e4"]  # soonest kept
    digest = render_markdown(report, max_items=3)
    assert "... and 27 more" in digest


def test_reconciliation_actions_are_capped_most_urgent_first(make_harness: Any) -> None:
    orphans = [kc(f"2{i:04d}", f"u{i}") for i in range(12)]
    h = make_harness(world({"cn-hangzhou": [cluster("c1", *orphans, audit_log=False)]}))
    report = summarize(h, regions=["cn-hangzhou"], report_list_limit=4, max_revocations=5)
    rec = report.reconciliation
    assert rec is not None and rec.outcome is Outcome.LIMIT_EXCEEDED
    assert report.mode is rec.mode is Mode.ENFORCE and all(
        isinstance(a.account_type, AccountType) for a in rec.actions
    )
    assert rec.actions_total == 12 and rec.truncated and len(rec.actions) == 4
    assert rec.counts["skipped"] == 12  # counts cover every action, not just the kept ones
