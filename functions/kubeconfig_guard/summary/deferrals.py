"""Deferred revocations: since when ACK has refused each one, and which now need a person.

A revocation with ``Force=false`` (a lock, with ``KCGUARD_FORCE_ON_LOCK=false``) is refused by
ACK while the kubeconfig was used in the last 7 days, or while ACK cannot read the cluster's
audit log. The event path reports it ``deferred``; the daily summary tries it again every day
with the same rules and ``Force`` (``reconcile.py``). ACK's check looks 7 days back, so a
refusal that lasts more than ``KCGUARD_DECISION_AFTER_DAYS`` (8) days will not go away by
waiting: the kubeconfig was used after the lock, or the audit log is off or unreadable. ACK's
answer does not say which (it publishes no code for the refusal, so none is read here), and
the report names both. Such a revocation is listed first in the digest with the fix.

How long: the summary keeps no state between runs, and ACK gives no lock time and no last-use
time. The ledger ``{KCGUARD_REPORT_PREFIX}deferrals.json`` in the report bucket keeps, for each
deferred (cluster, uid), the UTC date of the first daily run ACK refused it; it is read at the
start of a run and written at its end (``pipeline.summarize``). One summary runs at a time
(``reservedConcurrency: 1``), so nothing else writes it meanwhile. Without a bucket the ages are
not tracked, and the section says so and what to set.

Everything here is pure: the ledger's bytes in, the ledger's bytes and the report's section out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from pydantic import BaseModel, Field, ValidationError

from ..models import AccountState
from ..results import Action, ActionStatus, ClusterIssue, ClusterPrincipal
from .report import DecisionItem, NeedsDecision

LEDGER_SCHEMA_VERSION = 1
# ACK's documentation of API server auditing (turn it on: Security > Cluster Auditing), and of
# GetClusterAuditProject, which tells whether it is on (`aliyun cs GET /clusters/<id>/audit`).
AUDIT_LOG_DOC = (
    "https://www.alibabacloud.com/help/en/ack/ack-managed-and-ack-dedicated/security-and-compliance/"
    "logging-and-auditing"
)
# Where a person turns it on (no link in chat or in the HTML page: they link only to the report).
AUDIT_LOG_WHERE = "ACK console: the cluster's Security → Cluster Auditing"
AUDIT_CHECK_DOC = (
    "https://www.alibabacloud.com/help/en/ack/ack-managed-and-ack-dedicated/developer-reference/"
    "api-cs-2015-12-15-getclusterauditproject"
)
# Ids put into a command to copy into a shell: ACK's cluster ids and RAM uids are letters, digits
# and dashes. Anything else (the API's answers are untrusted) gets a placeholder, never the value.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,127}$")

Key = tuple[str, str]  # (cluster_id, uid)


class LedgerEntry(BaseModel):
    region: str
    cluster_id: str
    uid: str
    since: date = Field(description="UTC date of the first daily run ACK refused it.")
    last: date = Field(description="UTC date of the latest daily run ACK refused it.")


class LedgerDocument(BaseModel):
    """``deferrals.json``."""

    schema_version: int = LEDGER_SCHEMA_VERSION
    updated_at: str
    entries: list[LedgerEntry] = Field(default_factory=list)


def no_bucket_note(ledger_key: str) -> str:
    return (
        "deferral ages are not tracked: KCGUARD_REPORT_BUCKET is not set (the summary keeps no state "
        f"between runs). Set it, with oss:GetObject and oss:PutObject on {ledger_key} for the summary's "
        "role, to list here each revocation refused for too long"
    )


@dataclass
class Ledger:
    """The ledger as this run sees it: ``tracked`` when it was read (or is new), else why not."""

    tracked: bool
    entries: dict[Key, LedgerEntry] = field(default_factory=dict)
    note: str = ""
    changed: bool = False

    @classmethod
    def untracked(cls, note: str) -> Ledger:
        return cls(False, note=note)

    @classmethod
    def parse(cls, data: bytes | None) -> Ledger:
        """The ledger from its object's bytes (None: no object yet, a new ledger)."""
        if data is None:
            return cls(True)
        try:
            document = LedgerDocument.model_validate_json(data)
        except ValidationError:
            return cls(
                True,
                note="the deferral ledger was not a valid document: it starts afresh today",
                changed=True,
            )
        if document.schema_version != LEDGER_SCHEMA_VERSION:
            return cls(
                True,
                note=f"the deferral ledger has schema version {document.schema_version}: it starts afresh today",
                changed=True,
            )
        return cls(True, {(e.cluster_id, e.uid): e for e in document.entries})

    def dump(self, now: datetime) -> bytes:
        entries = sorted(self.entries.values(), key=lambda e: (e.region, e.cluster_id, e.uid))
        document = LedgerDocument(updated_at=_stamp(now), entries=entries)
        return (json.dumps(document.model_dump(mode="json"), indent=1, sort_keys=True) + "\n").encode()

    def settle(
        self,
        actions: Iterable[Action],
        *,
        today: date,
        regions: Iterable[str],
        scanned: Iterable[str],
        issues: Iterable[ClusterIssue],
    ) -> None:
        """Record this run's reconciliation (enforce, attempted): ACK's refusals, and what is settled.

        A refusal keeps its first date (or starts one today). An entry that this run did not
        refuse again is dropped when this run looked at its cluster (revoked, unlocked, no longer
        listed) or its cluster is gone from a region that was listed; it is kept as it is when its
        Clean failed (a transient error says nothing) or its cluster or region was not looked at.
        """
        if not self.tracked:
            return
        actions = list(actions)
        refused = {(a.cluster_id, a.uid): a for a in actions if a.status is ActionStatus.DEFERRED}
        failed = {(a.cluster_id, a.uid) for a in actions if a.status is ActionStatus.FAILED}
        for key, action in refused.items():
            entry = self.entries.get(key)
            if entry is None:
                self.entries[key] = LedgerEntry(
                    region=action.region,
                    cluster_id=action.cluster_id,
                    uid=action.uid,
                    since=today,
                    last=today,
                )
                self.changed = True
            elif entry.last != today:
                entry.last = today
                self.changed = True
        looked_at = set(regions)
        scanned_ids = set(scanned)
        issue_list = list(issues)
        not_scanned = {c.cluster_id for c in issue_list}
        unlisted_regions = {c.region for c in issue_list if c.cluster_id == "*"}
        for key, entry in list(self.entries.items()):
            if key in refused or key in failed or entry.region not in looked_at:
                continue
            if entry.cluster_id in scanned_ids or (
                entry.cluster_id not in not_scanned and entry.region not in unlisted_regions
            ):
                del self.entries[key]
                self.changed = True


def hand_revocation(cluster_id: str, uid: str) -> str | None:
    """The aliyun CLI command that revokes with Force=true, or None when an id is not plain."""
    if not (_SAFE_ID.match(cluster_id) and _SAFE_ID.match(uid)):
        return None
    return f"aliyun cs DELETE /cluster/{cluster_id}/user/{uid}/permissions --Force true"


def force_setting(action: Action) -> str:
    """The setting that makes the summary revoke this one with Force=true (by the state's event)."""
    deleted = action.account_state == AccountState.DELETED
    return "KCGUARD_FORCE_ON_DELETE" if deleted else "KCGUARD_FORCE_ON_LOCK"


def why_text(days: int, since: date) -> str:
    return (
        f"ACK has refused this Force=false revocation on every daily run for {days} days (since "
        f"{since.isoformat()}). Its check looks 7 days back, so waiting will not help: the kubeconfig "
        "was used after the lock, or ACK cannot read the cluster's audit log (ACK's answer does not "
        "say which)"
    )


def fix_text(action: Action, command: str | None) -> str:
    by_hand = (
        f"revoke it by hand: {command}"
        if command
        else "revoke it by hand: aliyun cs DELETE /cluster/<cluster-id>/user/<uid>/permissions --Force true"
    )
    return (
        f"set {force_setting(action)}=true (the next daily summary revokes it with Force=true), turn on "
        f"the cluster's API server audit log ({AUDIT_LOG_WHERE}; {AUDIT_LOG_DOC}; whether it is on: "
        f"aliyun cs GET /clusters/<cluster-id>/audit, {AUDIT_CHECK_DOC}), or {by_hand}"
    )


def needs_decision(
    ledger: Ledger,
    actions: Iterable[Action],
    *,
    today: date,
    after_days: int,
    locked_not_retried: int,
    limit: int,
) -> NeedsDecision:
    """The report's section: every revocation ACK refused today and for more than ``after_days`` days."""
    refused = [a for a in actions if a.status is ActionStatus.DEFERRED]
    items: list[DecisionItem] = []
    for action in refused:
        entry = ledger.entries.get((action.cluster_id, action.uid)) if ledger.tracked else None
        if entry is None:
            continue
        days = (today - entry.since).days
        if days <= after_days:
            continue
        command = hand_revocation(action.cluster_id, action.uid)
        items.append(
            DecisionItem(
                **action.model_dump(include=set(ClusterPrincipal.model_fields)),
                since=entry.since,
                days=days,
                why=why_text(days, entry.since),
                fix=fix_text(action, command),
                command=command,
            )
        )
    items.sort(
        key=lambda i: (-(i.days or 0), i.region, i.cluster_name or i.cluster_id, i.account_name, i.uid)
    )
    return NeedsDecision(
        after_days=after_days,
        ages_tracked=ledger.tracked,
        note=ledger.note,
        deferred=len(refused),
        locked_not_retried=locked_not_retried,
        total=len(items),
        truncated=len(items) > limit,
        items=items[:limit],
    )


def _stamp(now: datetime) -> str:
    when = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_date(now: datetime) -> date:
    when = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).date()
