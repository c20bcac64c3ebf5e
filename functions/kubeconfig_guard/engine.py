"""The event path: find a principal's kubeconfigs on every watched cluster and revoke them.

parsed request -> listings (shared, fresh) -> candidates (matching) -> plan (safety
rules, pure) -> executor (Clean calls) -> result.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from .client import AckClient
from .deadline import Deadline, run_until
from .errors import AckApiError
from .events import RevocationRequest
from .executor import execute, log_decisions
from .inventory import Inventory, Listing
from .models import Cluster, KubeconfigState, cluster_unreachable_reason
from .plan import (
    Candidate,
    Plan,
    SafetyPolicy,
    action_for,
    decide,
    enforce_limit,
    finalize,
    group_candidates,
    identity_conflict,
    matches,
    named_by,
)
from .principal import Principal
from .redaction import redact
from .results import (
    DEADLINE_CODE,
    ActionStatus,
    ClusterIssue,
    ClusterStatus,
    Outcome,
    RevocationResult,
    count_actions,
)
from .settings import Mode, Settings

log = logging.getLogger("kubeconfig_guard.engine")


NOT_LISTED_IN_TIME = "the listing did not finish before the invocation's deadline; the retry lists it"


def safety_policy(
    settings: Settings, *, dry_run: bool, root_account_id: str | None, caller_uids: frozenset[str]
) -> SafetyPolicy:
    return SafetyPolicy(
        protected_principals=tuple(settings.protected_principals),
        root_account_id=root_account_id,
        caller_uids=caller_uids,
        force_on_delete=settings.force_on_delete,
        force_on_lock=settings.force_on_lock,
        dry_run=dry_run,
        max_revocations=settings.max_revocations,
    )


class Engine:
    """The shared core of both functions: one client, one settings object, the safety rules.

    The event path shares listings between invocations through the ``Inventory``; the daily
    summary streams every listing into its report instead (keeping them would cost memory
    for nothing: it runs alone, once a day).
    """

    def __init__(
        self, settings: Settings, client: AckClient, *, caller_uids: frozenset[str] = frozenset()
    ) -> None:
        self.settings = settings
        self.client = client
        self.inventory = Inventory(client, ttl=settings.listing_ttl_seconds)
        self.caller_uids = caller_uids
        # Clusters listed at once. Each listing has a few pages; with every cluster started at once
        # the concurrency cap serves all the first pages before any second one, so nothing is
        # finished when the deadline cuts listing short. A bounded number of clusters in flight
        # finishes clusters one after another, so work done before the deadline sticks. Two thirds of
        # the request cap: a listing of 3 pages (120 kubeconfigs) has 1 page in flight, then 2, so
        # these keep about the cap busy (a half left a quarter of it idle: BENCHMARKS.md, issue 19).
        self._listing_slots = asyncio.Semaphore(max(1, 2 * settings.max_concurrency // 3))
        # Invocations listing on this instance now. Alone (Function Compute's standard runtimes run
        # one invocation per instance), a refresh starts at once; with others (a burst on a runtime
        # with instance concurrency, local runs), it waits a moment so they all share it.
        self._invocations = 0

    async def revoke_all(
        self,
        requests: list[RevocationRequest],
        *,
        deadline: Deadline | None = None,
        received_at: float | None = None,
        account_id: str | None = None,
    ) -> list[RevocationResult]:
        """Revoke for every request of one invocation; the blast-radius limit counts them together.

        ``received_at`` (monotonic) is when the invocation started: a revocation is decided only on
        a state read after it (``Inventory.states_for_decision``). ``account_id`` is the guarded
        account (its root uid is never revoked).
        """
        invocation_started = time.monotonic() if received_at is None else received_at
        deadline = deadline or Deadline()
        prepared = await self.prepare_all(requests, invocation_started, deadline, account_id)
        enforce_limit([p.plan for p in prepared], self.settings.max_revocations)
        return [await self.complete(p, deadline) for p in prepared]

    async def prepare_all(
        self,
        requests: list[RevocationRequest],
        invocation_started: float,
        deadline: Deadline,
        account_id: str | None,
    ) -> list[Prepared]:
        """List, match and apply the safety rules for every request (no limit, no writes): the
        blast-radius limit is then applied over every plan of the invocation (``enforce_limit``),
        across accounts in organization mode, before ``complete`` writes anything."""
        self._invocations += 1
        try:
            return list(
                await asyncio.gather(
                    *(self._prepare(r, invocation_started, deadline, account_id) for r in requests)
                )
            )
        finally:
            self._invocations -= 1

    async def _prepare(
        self,
        request: RevocationRequest,
        invocation_started: float,
        deadline: Deadline,
        account_id: str | None,
    ) -> Prepared:
        """List every watched cluster, match, and apply the safety rules (no limit, no writes)."""
        dry_run = self.settings.dry_run or request.dry_run
        prepared = Prepared(request, invocation_started, dry_run, account_id=account_id)
        regions = self.settings.watched_regions()
        clusters = await self.watched_clusters(
            regions, self.inventory.shared_since(invocation_started), prepared.issues, deadline
        )
        prepared.clusters_total = len(clusters)
        # A different order every attempt: when the deadline cuts listing short, the retry of the
        # same event reaches the clusters this attempt did not.
        order = random.sample(range(len(clusters)), len(clusters))
        found_in_order, late = await run_until(
            [self._candidates(*clusters[i], request.principal, invocation_started, deadline) for i in order],
            deadline.remaining(listing=True),
        )
        found: list[tuple[list[Candidate], list[KubeconfigState]] | ClusterIssue] = []
        for position, item in enumerate(found_in_order):
            region, cluster = clusters[order[position]]
            if item is None or position in late:
                item = ClusterIssue.of(
                    region, cluster, ClusterStatus.NOT_ATTEMPTED, NOT_LISTED_IN_TIME, DEADLINE_CODE
                )
            found.append(item)
        candidates: list[Candidate] = []
        named: list[KubeconfigState] = []
        for item in found:
            if isinstance(item, ClusterIssue):
                prepared.issues.append(item)
                continue
            prepared.scanned += 1
            matched, evidence = item
            candidates += matched
            named += evidence
        # Over every listing of the invocation, before any Clean: one event, one principal.
        prepared.conflict = identity_conflict(request.principal, named)
        policy = safety_policy(
            self.settings,
            dry_run=dry_run,
            root_account_id=account_id or request.account_id,
            caller_uids=self.caller_uids,
        )
        if prepared.conflict:
            prepared.plan.decided = [
                action_for(c, ActionStatus.SKIPPED, prepared.conflict) for c in candidates
            ]
        else:
            prepared.plan = decide([(c, request.kind) for c in candidates], policy)
        return prepared

    async def complete(self, prepared: Prepared, deadline: Deadline) -> RevocationResult:
        request = prepared.request
        context: dict[str, object] = {"event_id": request.event_id, "event_name": request.event_name}
        if prepared.account_id:
            context["cloud_account_id"] = prepared.account_id
        plan = finalize(prepared.plan)
        actions = list(plan.decided)
        actions += await execute(
            self.client,
            self.inventory,
            plan.to_revoke,
            deadline=deadline,
            retry_by="Function Compute's async retry",
            context=context,
        )
        actions.sort(key=lambda a: (a.region, a.cluster_id, a.uid))
        issues = sorted(prepared.issues, key=lambda c: (c.region, c.cluster_id))
        result = RevocationResult(
            event_id=request.event_id,
            event_name=request.event_name,
            kind=request.kind,
            outcome=Outcome.OK,
            mode=Mode.DRY_RUN if prepared.dry_run else Mode.ENFORCE,
            account_id=prepared.account_id or request.account_id,
            principal=request.principal,
            actions=actions,
            clusters=issues,
            clusters_scanned=prepared.scanned,
            clusters_total=prepared.clusters_total,
            counts=count_actions(actions),
            duration_ms=int((time.monotonic() - prepared.started) * 1000),
        )
        result.outcome, result.reason = _outcome(result, plan.limit_exceeded, prepared.conflict, request)
        log_decisions(plan.decided, context)
        return result

    async def watched_clusters(
        self,
        regions: list[str],
        not_before: float,
        issues: list[ClusterIssue],
        deadline: Deadline | None = None,
    ) -> list[tuple[str, Cluster]]:
        """Every cluster of the regions; a region whose listing failed or ran out of time is an issue."""

        async def listing(region: str) -> Listing[list[Cluster]] | AckApiError:
            try:
                return await self.inventory.clusters(region, not_before)
            except AckApiError as error:
                return error

        timeout = deadline.remaining(listing=True) if deadline else None
        listings, late = await run_until([listing(r) for r in regions], timeout)
        clusters: list[tuple[str, Cluster]] = []
        for index, (region, found) in enumerate(zip(regions, listings, strict=True)):
            if index in late or found is None:
                reason = f"listing the clusters of {region}: {NOT_LISTED_IN_TIME}"
                issues.append(
                    ClusterIssue.of(region, None, ClusterStatus.NOT_ATTEMPTED, reason, DEADLINE_CODE)
                )
                continue
            if isinstance(found, AckApiError):
                reason = f"listing the clusters of {region} failed: {found.code}: {redact(found.message)}"
                issues.append(ClusterIssue.of(region, None, ClusterStatus.FAILED, reason, found.code))
                continue
            for cluster in found.value:
                # Regions outside the configured list are never touched, whatever the API returns.
                if not cluster.region_id or cluster.region_id == region:
                    clusters.append((region, cluster))
        return clusters

    async def _candidates(
        self,
        region: str,
        cluster: Cluster,
        principal: Principal,
        invocation_started: float,
        deadline: Deadline,
    ) -> tuple[list[Candidate], list[KubeconfigState]] | ClusterIssue:
        """The principal's candidates on a cluster and every state any of the event's names finds
        there (for ``identity_conflict`` over all clusters); or why the cluster was not looked at."""

        if why := cluster_unreachable_reason(cluster):
            return ClusterIssue.of(region, cluster, ClusterStatus.SKIPPED, why)
        async with self._listing_slots:
            if deadline.listing_over():
                return ClusterIssue.of(
                    region, cluster, ClusterStatus.NOT_ATTEMPTED, NOT_LISTED_IN_TIME, DEADLINE_CODE
                )
            try:
                listing = await self.inventory.states_for_decision(
                    region,
                    cluster.cluster_id,
                    invocation_started,
                    lambda s: named_by(principal, s),
                    coalesce=self._invocations > 1,
                )
            except AckApiError as error:
                return listing_issue(region, cluster, error)
        matched = [s for s in listing.value if matches(principal, s)]
        evidence = [s for s in listing.value if named_by(principal, s)]
        return group_candidates(region, cluster, matched), evidence


def listing_issue(region: str, cluster: Cluster, error: AckApiError) -> ClusterIssue:
    """A cluster whose kubeconfig listing failed, as both functions report it."""
    if error.not_found:
        return ClusterIssue.of(
            region, cluster, ClusterStatus.SKIPPED, "the cluster no longer exists", error.code
        )
    reason = f"listing kubeconfigs failed: {error.code}: {redact(error.message)}"
    return ClusterIssue.of(region, cluster, ClusterStatus.FAILED, reason, error.code)


@dataclass
class Prepared:
    """One request between listing and execution: where the batch-wide limit is applied."""

    request: RevocationRequest
    started: float
    dry_run: bool
    account_id: str | None = None
    issues: list[ClusterIssue] = field(default_factory=list)
    scanned: int = 0
    clusters_total: int = 0
    plan: Plan = field(default_factory=Plan)
    conflict: str | None = None


def _outcome(
    result: RevocationResult, limit_exceeded: bool, conflict: str | None, request: RevocationRequest
) -> tuple[Outcome, str]:
    outcome, reason = _plain_outcome(result, limit_exceeded, conflict, request.principal)
    return outcome, f"{reason} ({request.note})" if request.note else reason


def _plain_outcome(
    result: RevocationResult, limit_exceeded: bool, conflict: str | None, principal: Principal
) -> tuple[Outcome, str]:
    counts = result.counts
    who = principal.describe()
    if conflict:
        return Outcome.IGNORED, f"{who}: {conflict}"
    if limit_exceeded:
        return Outcome.LIMIT_EXCEEDED, f"{who}: more revocations than the blast-radius limit; none revoked"
    if result.needs_retry:
        failed = counts.get(ActionStatus.FAILED.value, 0)
        clusters = sum(1 for c in result.clusters if c.status is not ClusterStatus.SKIPPED)
        return Outcome.PARTIAL, f"{who}: {failed} revocations failed and {clusters} clusters were not scanned"
    if not result.actions:
        return Outcome.OK, f"{who}: no kubeconfig found on {result.clusters_scanned} clusters"
    done = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return Outcome.OK, f"{who}: {done}"
