"""Run the daily summary: stream every cluster's kubeconfig states into a report, then reconcile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timezone

from ..deadline import Deadline, run_until
from ..engine import NOT_LISTED_IN_TIME, Engine, safety_policy
from ..errors import AckApiError
from ..executor import execute, log_decisions
from ..models import AccountState, Cluster, KubeconfigState, cluster_unreachable_reason
from ..plan import Candidate, group_candidates, plan_revocations
from ..principal import EventKind
from ..results import (
    DEADLINE_CODE,
    REGION_NOT_WATCHED,
    ActionStatus,
    ClusterIssue,
    ClusterStatus,
    Outcome,
    count_actions,
)
from ..settings import Mode
from .options import SummaryOptions
from .report import Reconciliation, Report, ReportBuilder

Progress = Callable[[int, int], None]
ACTION_URGENCY = (
    ActionStatus.FAILED,
    ActionStatus.DEFERRED,
    ActionStatus.REVOKED,
    ActionStatus.WOULD_REVOKE,
    ActionStatus.SKIPPED,
)


async def run_summary(
    engine: Engine,
    options: SummaryOptions,
    *,
    now: datetime | None = None,
    deadline: Deadline | None = None,
    progress: Progress | None = None,
    account_id: str | None = None,
) -> Report:
    """Scan, classify, reconcile. Never silently omits a cluster: skipped ones are listed with why."""
    started = time.monotonic()
    settings = engine.settings
    deadline = deadline or Deadline()
    now = now or datetime.now(timezone.utc)
    regions, refused = scope_regions(options.regions, settings.watched_regions())
    expiring_days = settings.expiring_days if options.expiring_days is None else options.expiring_days
    dry_run = settings.dry_run or bool(options.dry_run)
    builder = ReportBuilder(now=now, expiring_days=expiring_days, list_limit=settings.report_list_limit)
    issues: list[ClusterIssue] = [
        ClusterIssue.of(
            region,
            None,
            ClusterStatus.SKIPPED,
            f"region {region} was asked for but is outside KCGUARD_REGIONS: not scanned "
            "(options can only narrow the configured scope)",
            REGION_NOT_WATCHED,
        )
        for region in refused
    ]
    orphans: list[tuple[Candidate, EventKind]] = []

    clusters = await engine.watched_clusters(regions, time.monotonic(), issues, deadline)

    total, done = len(clusters), 0
    slots = asyncio.Semaphore(settings.max_concurrency)

    def issue(
        region: str, cluster: Cluster, status: ClusterStatus, reason: str, code: str | None = None
    ) -> None:
        issues.append(ClusterIssue.of(region, cluster, status, reason, code))

    async def scan(region: str, cluster: Cluster) -> None:
        nonlocal done
        try:
            if why := cluster_unreachable_reason(cluster):
                issue(region, cluster, ClusterStatus.SKIPPED, why)
                return
            async with slots:
                if deadline.listing_over():
                    issue(region, cluster, ClusterStatus.NOT_ATTEMPTED, NOT_LISTED_IN_TIME, DEADLINE_CODE)
                    return
                try:
                    states = await engine.client.list_kubeconfig_states(region, cluster.cluster_id)
                except AckApiError as error:
                    status = ClusterStatus.SKIPPED if error.not_found else ClusterStatus.FAILED
                    issue(
                        region,
                        cluster,
                        status,
                        f"listing kubeconfigs failed: {error.code}: {error.message}",
                        error.code,
                    )
                    return
            for state in builder.add_cluster(region, cluster, states):
                kind = _orphan_kind(state)
                if kind is not None:
                    orphans.extend((c, kind) for c in group_candidates(region, cluster, [state]))
        finally:
            done += 1
            if progress is not None:
                progress(done, total)

    _, late = await run_until(
        [scan(region, cluster) for region, cluster in clusters], deadline.remaining(listing=True)
    )
    for index in late:
        issue(*clusters[index], ClusterStatus.NOT_ATTEMPTED, NOT_LISTED_IN_TIME, DEADLINE_CODE)

    remediate = options.remediate is not False and (settings.remediate_deleted or settings.remediate_locked)
    reconciliation = Reconciliation(
        enabled=remediate, mode=Mode.DRY_RUN.value if dry_run else Mode.ENFORCE.value
    )
    if remediate:
        wanted = [
            (c, k)
            for c, k in _merge(orphans)
            if (k is EventKind.DELETED and settings.remediate_deleted)
            or (k is EventKind.LOCKED and settings.remediate_locked)
        ]
        policy = safety_policy(
            settings, dry_run=dry_run, root_account_id=account_id, caller_uids=engine.caller_uids
        )
        plan = plan_revocations(wanted, policy)
        log_decisions(plan.decided, {"event_name": "DailySummary"})
        actions = plan.decided + await execute(
            engine.client,
            None,
            plan.to_revoke,
            deadline=deadline,
            retry_by="the next daily summary",
            context={"event_name": "DailySummary"},
        )
        urgency = {s: i for i, s in enumerate(ACTION_URGENCY)}
        actions.sort(key=lambda a: (urgency[a.status], a.region, a.cluster_id, a.uid))
        reconciliation.counts = count_actions(actions)
        reconciliation.actions_total = len(actions)
        reconciliation.truncated = len(actions) > settings.report_list_limit
        reconciliation.actions = actions[: settings.report_list_limit]
        if plan.limit_exceeded:
            reconciliation.outcome = Outcome.LIMIT_EXCEEDED.value
            reconciliation.reason = f"{len(wanted)} orphans exceed KCGUARD_MAX_REVOCATIONS; none revoked"
        elif reconciliation.counts.get("failed"):
            reconciliation.outcome = Outcome.PARTIAL.value
            reconciliation.reason = "some revocations failed; the next run retries them"

    issues.sort(key=lambda c: (c.region, c.cluster_id))
    return builder.build(
        generated_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        mode=reconciliation.mode,
        regions=regions,
        clusters_total=total,
        clusters_scanned=len(builder.by_cluster),
        skipped_clusters=issues,
        reconciliation=reconciliation,
        api=engine.client.stats.as_dict(),
        duration_ms=int((time.monotonic() - started) * 1000),
    )


def scope_regions(asked: list[str] | None, watched: list[str]) -> tuple[list[str], list[str]]:
    """The regions to scan, and those asked for that are refused: options only narrow the scope."""
    if not asked:
        return watched, []
    asked = list(dict.fromkeys(asked))
    return [r for r in asked if r in watched], [r for r in asked if r not in watched]


def _orphan_kind(state: KubeconfigState) -> EventKind | None:
    if state.account_state is AccountState.DELETED:
        return EventKind.DELETED
    if state.account_state is AccountState.INACTIVE:
        return EventKind.LOCKED
    return None


def _merge(orphans: list[tuple[Candidate, EventKind]]) -> list[tuple[Candidate, EventKind]]:
    """One candidate per (cluster, uid), even when a uid has several states on a cluster."""
    merged: dict[tuple[str, str], tuple[Candidate, EventKind]] = {}
    for candidate, kind in orphans:
        key = (candidate.cluster.cluster_id, candidate.uid)
        if key in merged:
            previous, previous_kind = merged[key]
            states = previous.states + candidate.states
            kind = EventKind.DELETED if EventKind.DELETED in (kind, previous_kind) else kind
            candidate = Candidate(candidate.region, candidate.cluster, candidate.uid, states)
        merged[key] = (candidate, kind)
    return list(merged.values())
