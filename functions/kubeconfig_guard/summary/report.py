"""The versioned JSON report of the daily summary, and the streaming accumulator that builds it.

Memory does not grow with the number of kubeconfigs: per-cluster counters, a
month histogram and lists capped at ``report_list_limit`` (the expiring list keeps
the soonest) are all that is kept.
"""

from __future__ import annotations

import heapq
from collections import Counter
from datetime import date, datetime

from pydantic import BaseModel, Field

from ..accounts import AccountStatus
from ..models import AccountState, AccountType, CertState, Cluster, KubeconfigState
from ..results import Action, ActionStatus, ClusterIssue, ClusterPrincipal, Outcome
from ..settings import Mode
from .classify import CLASS_ORDER, KubeconfigClass, classify, days_left, parse_time

REPORT_SCHEMA_VERSION = 1


class KubeconfigEntry(BaseModel):
    cloud_account_id: str | None = Field(
        None, description="Organization mode: the Alibaba Cloud account the cluster belongs to."
    )
    region: str
    cluster_id: str
    cluster_name: str
    account_id: str
    account_name: str
    account_type: AccountType  # '' when ACK gave none
    account_state: AccountState | None
    cert_state: CertState | None
    cert_expire_time: str | None
    days_left: int | None
    revokable: bool


class EntryList(BaseModel):
    total: int = 0
    truncated: bool = False
    items: list[KubeconfigEntry] = Field(default_factory=list)


class ClusterCounts(BaseModel):
    cloud_account_id: str | None = None
    region: str
    cluster_id: str
    cluster_name: str
    cluster_state: str
    total: int
    counts: dict[str, int]


class Reconciliation(BaseModel):
    enabled: bool
    mode: Mode
    outcome: Outcome = Outcome.OK
    reason: str = ""
    counts: dict[str, int] = Field(default_factory=dict, description="Every action, by status.")
    actions: list[Action] = Field(
        default_factory=list,
        description="Failed and deferred first, then revoked, would-revoke, skipped; capped at "
        "KCGUARD_REPORT_LIST_LIMIT (each action is also one log line; those the blast-radius limit "
        "skipped, one line per account that counts them).",
    )
    actions_total: int = 0
    truncated: bool = False


class DecisionItem(ClusterPrincipal):
    """A revocation that cannot succeed as configured: a person decides (``summary/deferrals.py``)."""

    since: date | None = Field(
        None, description="UTC date of the first daily summary ACK refused it (the deferral ledger)."
    )
    days: int | None = Field(None, description="Days from `since` to this run.")
    why: str
    fix: str
    command: str | None = Field(
        None, description="The revocation by hand (aliyun CLI); None when an id has unexpected characters."
    )


class NeedsDecision(BaseModel):
    """The digest's first section: revocations that waiting will not bring about."""

    after_days: int = Field(description="KCGUARD_DECISION_AFTER_DAYS: listed once refused for more days.")
    ages_tracked: bool = Field(
        description="Whether the deferral ledger was read (needs KCGUARD_REPORT_BUCKET)."
    )
    note: str = Field("", description="Why the ages are not tracked, and what to set; '' when they are.")
    deferred: int = Field(0, description="Revocations ACK refused (Force=false) in this run.")
    locked_not_retried: int = Field(
        0,
        description="(cluster, uid) pairs of locked accounts the summary does not retry (KCGUARD_REMEDIATE_LOCKED=false).",
    )
    total: int = 0
    truncated: bool = False
    items: list[DecisionItem] = Field(default_factory=list)

    @property
    def shown(self) -> bool:
        """Whether the section has anything to say (the digest and the HTML page omit it otherwise)."""
        return bool(self.total or self.locked_not_retried or (self.deferred and not self.ages_tracked))


class AccountSection(BaseModel):
    """Organization mode: how the run went in one account, and what it found there."""

    account_id: str
    display_name: str = ""
    central: bool = Field(False, description="The account the functions run in (its own role).")
    status: AccountStatus
    reason: str = ""
    error_code: str | None = None
    regions: list[str] = Field(default_factory=list)
    kubeconfigs: int = 0
    clusters_total: int = 0
    clusters_scanned: int = 0
    clusters_not_scanned: int = 0
    totals: dict[str, int] = Field(default_factory=dict)
    reconciliation: dict[str, int] = Field(default_factory=dict)


class Report(BaseModel):
    """The daily summary report (``schema_version`` 1; fields documented in README)."""

    schema_version: int = REPORT_SCHEMA_VERSION
    generated_at: str
    mode: Mode
    regions: list[str]
    expiring_days: int
    kubeconfigs: int = 0
    clusters_total: int = 0
    clusters_scanned: int = 0
    totals: dict[str, int] = Field(default_factory=dict)
    by_region: dict[str, dict[str, int]] = Field(default_factory=dict)
    by_account_type: dict[str, dict[str, int]] = Field(default_factory=dict)
    by_cluster: list[ClusterCounts] = Field(default_factory=list)
    skipped_clusters: list[ClusterIssue] = Field(default_factory=list)
    orphaned: EntryList = Field(default_factory=EntryList)
    root: EntryList = Field(default_factory=EntryList)
    expiring: EntryList = Field(default_factory=EntryList)
    expiry_by_month: dict[str, int] = Field(
        default_factory=dict,
        description="Unexpired certificates by month of expiry (YYYY-MM), soonest first.",
    )
    reconciliation: Reconciliation | None = None
    needs_decision: NeedsDecision | None = Field(
        None, description="Revocations that cannot succeed as configured (the digest's first section)."
    )
    api: dict[str, object] = Field(default_factory=dict)
    duration_ms: int = 0
    accounts_mode: str = Field(
        "self", description="KCGUARD_ACCOUNTS' mode: self, resource-directory or list."
    )
    accounts: list[AccountSection] = Field(
        default_factory=list,
        description="Organization mode: one section per account (denied and error first); empty in self mode.",
    )
    by_account: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Organization mode: the classes' counts per account."
    )
    directory_error: str | None = Field(
        None, description="Organization mode: why the Resource Directory's members could not be read."
    )

    @property
    def accounts_needing_action(self) -> list[AccountSection]:
        """Accounts denied or in error: a member role to fix today (the digest's first section)."""
        return [a for a in self.accounts if a.status in (AccountStatus.DENIED, AccountStatus.ERROR)]

    @property
    def needs_attention(self) -> bool:
        return (
            bool(self.orphaned.total or self.root.total or self.expiring.total or self.skipped_clusters)
            or bool(self.reconciliation and self.reconciliation.counts.get(ActionStatus.FAILED.value))
            or bool(self.needs_decision and self.needs_decision.shown)
            or bool(self.accounts_needing_action or self.directory_error)
        )


def _zero() -> dict[str, int]:
    return {c.value: 0 for c in CLASS_ORDER}


# The classes whose entries the report lists (capped); a tuple: members are found by identity.
_LISTED = (KubeconfigClass.ORPHANED, KubeconfigClass.ROOT, KubeconfigClass.EXPIRING)


class ReportBuilder:
    """Feeds states cluster by cluster; keeps counters and capped lists only."""

    def __init__(self, *, now: datetime, expiring_days: int, list_limit: int) -> None:
        self.now = now
        self.expiring_days = expiring_days
        self.limit = list_limit
        self.totals = _zero()
        self.by_region: dict[str, dict[str, int]] = {}
        self.by_type: dict[str, dict[str, int]] = {}
        self.by_cluster: list[ClusterCounts] = []
        self.months: Counter[str] = Counter()
        self.kubeconfigs = 0
        self._lists: dict[KubeconfigClass, list[KubeconfigEntry]] = {
            KubeconfigClass.ORPHANED: [],
            KubeconfigClass.ROOT: [],
        }
        self._list_totals: Counter[KubeconfigClass] = Counter()
        self._expiring: list[tuple[float, int, KubeconfigEntry]] = []  # max-heap on days left (negated)
        self._seq = 0
        self.by_account: dict[str, dict[str, int]] = {}
        self.account_kubeconfigs: Counter[str] = Counter()
        self.account_clusters: Counter[str] = Counter()

    def add_cluster(
        self, region: str, cluster: Cluster, states: list[KubeconfigState], account: str | None = None
    ) -> list[KubeconfigState]:
        """Count a cluster's states (of ``account``, in organization mode); return its orphaned states.

        The hot loop of a large summary (organization mode: 600,000 states at a quarter of a vCPU):
        each state is tallied once by (class, account type), and the counters are added up once per
        cluster."""
        now, expiring_days, months = self.now, self.expiring_days, self.months
        tally: dict[tuple[KubeconfigClass, str], int] = {}
        orphans: list[KubeconfigState] = []
        for state in states:
            cls = classify(state, now, expiring_days)
            kind = state.account_type
            key = (cls, kind.value if kind else "?")
            tally[key] = tally.get(key, 0) + 1
            expires = parse_time(state.cert_expire_time)
            if expires is not None and expires > now:
                months[f"{expires.year:04d}-{expires.month:02d}"] += 1
            if cls in _LISTED:
                if cls is KubeconfigClass.ORPHANED:
                    orphans.append(state)
                self._keep(cls, region, cluster, state, account)
        counts = _zero()
        region_counts = self.by_region.setdefault(region, _zero())
        account_counts = self.by_account.setdefault(account, _zero()) if account is not None else None
        for (cls, type_name), n in tally.items():
            value = cls.value
            counts[value] += n
            region_counts[value] += n
            self.totals[value] += n
            if account_counts is not None:
                account_counts[value] += n
            by_type = self.by_type.get(type_name)
            if by_type is None:
                by_type = self.by_type[type_name] = _zero()
            by_type[value] += n
        self.kubeconfigs += len(states)
        if account is not None:
            self.account_kubeconfigs[account] += len(states)
            self.account_clusters[account] += 1
        self.by_cluster.append(
            ClusterCounts(
                cloud_account_id=account,
                region=region,
                cluster_id=cluster.cluster_id,
                cluster_name=cluster.name,
                cluster_state=cluster.state,
                total=len(states),
                counts=counts,
            )
        )
        return orphans

    def _entry(
        self, region: str, cluster: Cluster, state: KubeconfigState, account: str | None
    ) -> KubeconfigEntry:
        left = days_left(state, self.now)
        return KubeconfigEntry(
            cloud_account_id=account,
            region=region,
            cluster_id=cluster.cluster_id,
            cluster_name=cluster.name,
            account_id=state.account_id,
            account_name=state.account_name,
            account_type=state.account_type or AccountType(""),
            account_state=state.account_state or None,
            cert_state=state.cert_state or None,
            cert_expire_time=state.cert_expire_time,
            days_left=None if left is None else int(left),
            revokable=state.revokable,
        )

    def _keep(
        self, cls: KubeconfigClass, region: str, cluster: Cluster, state: KubeconfigState, account: str | None
    ) -> None:
        """Count a listed state; make its entry only when the capped list keeps it."""
        self._list_totals[cls] += 1
        if cls is KubeconfigClass.EXPIRING:
            self._seq += 1
            left = days_left(state, self.now)
            key = -(int(left) if left is not None else 0)
            if len(self._expiring) < self.limit:
                heapq.heappush(self._expiring, (key, self._seq, self._entry(region, cluster, state, account)))
            elif key > self._expiring[0][0]:
                heapq.heapreplace(
                    self._expiring, (key, self._seq, self._entry(region, cluster, state, account))
                )
            return
        kept = self._lists[cls]
        if len(kept) < self.limit:
            kept.append(self._entry(region, cluster, state, account))

    def build(self, **fields: object) -> Report:
        def entry_list(cls: KubeconfigClass, items: list[KubeconfigEntry]) -> EntryList:
            total = self._list_totals[cls]
            return EntryList(total=total, truncated=total > len(items), items=items)

        def ordered(items: list[KubeconfigEntry]) -> list[KubeconfigEntry]:
            return sorted(
                items,
                key=lambda e: (
                    e.cloud_account_id or "",
                    e.region,
                    e.cluster_name,
                    e.cluster_id,
                    e.account_name,
                    e.account_id,
                ),
            )

        expiring = [
            e for _, _, e in sorted(self._expiring, key=lambda t: (-t[0], t[2].cluster_id, t[2].account_id))
        ]
        by_cluster = sorted(self.by_cluster, key=lambda c: (c.cloud_account_id or "", c.region, c.cluster_id))
        by_region = {r: self.by_region[r] for r in sorted(self.by_region)}
        by_type = {t: self.by_type[t] for t in sorted(self.by_type)}
        return Report(
            kubeconfigs=self.kubeconfigs,
            totals=self.totals,
            by_region=by_region,
            by_account_type=by_type,
            by_cluster=by_cluster,
            orphaned=entry_list(KubeconfigClass.ORPHANED, ordered(self._lists[KubeconfigClass.ORPHANED])),
            root=entry_list(KubeconfigClass.ROOT, ordered(self._lists[KubeconfigClass.ROOT])),
            expiring=entry_list(KubeconfigClass.EXPIRING, expiring),
            expiry_by_month=dict(sorted(self.months.items())),
            expiring_days=self.expiring_days,
            by_account={a: self.by_account[a] for a in sorted(self.by_account)},
            **fields,
        )
