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
from .executor import (
    Attempted,
    action_for_error,
    confirmed_revoked,
    execute_round,
    log_decisions,
    retryable_error,
)
from .inventory import Inventory, Listing
from .logs import log_fields
from .models import Cluster, KubeconfigState, cluster_unreachable_reason
from .plan import (
    Candidate,
    Plan,
    PrincipalMatcher,
    Revocation,
    SafetyPolicy,
    action_for,
    decide,
    enforce_limit,
    finalize,
    group_candidates,
    identity_conflict,
    refusal,
)
from .principal import Principal
from .redaction import redact
from .results import (
    DEADLINE_CODE,
    Action,
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
RETRY_BY = "Function Compute's async retry"

# Rounds (issue 19). What failed transiently after the client's own retries (a region's cluster
# listing, a cluster's kubeconfig listing, a Clean) is tried again in further rounds of the same
# invocation while its deadline leaves time: listings until ``Deadline.listing_at``, Cleans until
# ``Deadline.at`` (the margin before Function Compute's timeout stays for the result and notices).
# Under a storm of faults the attempt then ends ``ok`` instead of asking Function Compute to run the
# whole event again. An invocation without a deadline (no Function Compute context) has no time to
# budget: one round, as before. Errors that a retry cannot change (not found, authorization, a
# malformed request, ACK's refusal) are never retried (``executor.retryable_error``).
MAX_ROUNDS = 4  # rounds in all, the first included: a cluster that always fails stops there
ROUND_BACKOFF_SECONDS = 0.5  # the wait before the second round; doubled each round, at most
# KCGUARD_BACKOFF_MAX_SECONDS (the client's ceiling of one retry back-off)
ROUND_MIN_SECONDS = 0.25  # a round starts only when this long is left after its wait


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
        # finishes clusters one after another, so work done before the deadline sticks. As many as
        # the request cap: a listing of 3 pages (120 kubeconfigs) has 1 page in flight, then 2, and
        # the cap itself orders the pages; two thirds of it left the 1,000-cluster event at 1.13x its
        # bound against 1.06x (a half left a quarter of the cap idle: BENCHMARKS.md, issue 19).
        self._listing_slots = asyncio.Semaphore(max(1, settings.max_concurrency))
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
        # Together: one request's rounds (a Clean tried again after a back-off) never hold up
        # another's Cleans; the same (cluster, uid) in two requests is one call (``clean_once``).
        return list(await asyncio.gather(*(self.complete(p, deadline) for p in prepared)))

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
        candidates: list[Candidate] = []
        named: list[KubeconfigState] = []
        for matched, evidence in await self._list_in_rounds(
            request.principal, invocation_started, deadline, prepared
        ):
            prepared.scanned += 1
            candidates += matched
            named += evidence
        # Over every listing of the invocation, before any Clean: one event, one principal.
        prepared.conflict = identity_conflict(request.principal, named)
        policy = self._policy(prepared)
        if prepared.conflict:
            prepared.plan.decided = [
                action_for(c, ActionStatus.SKIPPED, prepared.conflict) for c in candidates
            ]
        else:
            prepared.plan = decide([(c, request.kind) for c in candidates], policy)
        return prepared

    def _policy(self, prepared: Prepared) -> SafetyPolicy:
        return safety_policy(
            self.settings,
            dry_run=prepared.dry_run,
            root_account_id=prepared.account_id or prepared.request.account_id,
            caller_uids=self.caller_uids,
        )

    async def _list_in_rounds(
        self, principal: Principal, invocation_started: float, deadline: Deadline, prepared: Prepared
    ) -> list[tuple[list[Candidate], list[KubeconfigState]]]:
        """Every watched cluster's candidates and evidence; what could not be listed goes to
        ``prepared.issues``. A region or cluster whose listing failed transiently is listed again in
        the next round (``MAX_ROUNDS``, while listing time is left); one still failing is reported
        with its last error, as after one round."""
        not_before = self.inventory.shared_since(invocation_started)
        listed: list[tuple[list[Candidate], list[KubeconfigState]]] = []
        failed_regions: dict[str, ClusterIssue] = {}
        failed_clusters: dict[tuple[str, str], tuple[str, Cluster, ClusterIssue]] = {}
        regions = self.settings.watched_regions()
        for round_ in range(MAX_ROUNDS):
            if round_ and not await self._before_round(
                round_, deadline, listing=True, retrying=len(failed_regions) + len(failed_clusters)
            ):
                break
            clusters: list[tuple[str, Cluster]] = []
            for region, found in zip(
                regions, await self._region_listings(regions, not_before, deadline), strict=True
            ):
                if isinstance(found, Listing):
                    failed_regions.pop(region, None)
                    clusters += _in_region(region, found.value)
                elif isinstance(found, AckApiError) and retryable_error(found):
                    failed_regions[region] = _region_issue(region, found)
                elif found is not None or region not in failed_regions:  # a late retry keeps its failure
                    failed_regions.pop(region, None)
                    prepared.issues.append(_region_issue(region, found))
            prepared.clusters_total += len(clusters)
            clusters += [(region, cluster) for region, cluster, _ in failed_clusters.values()]
            # A different order every attempt: when the deadline cuts listing short, the retry of the
            # same event reaches the clusters this attempt did not.
            order = random.sample(range(len(clusters)), len(clusters))
            found_in_order, late = await run_until(
                [self._candidates(*clusters[i], principal, invocation_started, deadline) for i in order],
                deadline.remaining(listing=True),
            )
            for position, item in enumerate(found_in_order):
                region, cluster = clusters[order[position]]
                key = (region, cluster.cluster_id)
                if item is None or position in late:
                    item = ClusterIssue.of(
                        region, cluster, ClusterStatus.NOT_ATTEMPTED, NOT_LISTED_IN_TIME, DEADLINE_CODE
                    )
                if isinstance(item, AckApiError):
                    if retryable_error(item):
                        failed_clusters[key] = (region, cluster, listing_issue(region, cluster, item))
                        continue
                    item = listing_issue(region, cluster, item)
                if isinstance(item, ClusterIssue):
                    if key in failed_clusters and item.status is ClusterStatus.NOT_ATTEMPTED:
                        continue  # a retry the deadline stopped: the last failure stands
                    prepared.issues.append(item)
                else:
                    listed.append(item)
                failed_clusters.pop(key, None)
            regions = list(failed_regions)
            if not regions and not failed_clusters:
                break
        prepared.issues += failed_regions.values()
        prepared.issues += [issue for _, _, issue in failed_clusters.values()]
        return listed

    async def _before_round(self, round_: int, deadline: Deadline, *, listing: bool, retrying: int) -> bool:
        """Wait before round ``round_`` (1: the second round), or say False when no further round
        fits: the last round was run, there is no deadline to budget against, or too little time is
        left before ``listing_at`` (``listing``) or ``at``."""
        if round_ >= MAX_ROUNDS or deadline.at is None:
            return False
        remaining = deadline.remaining(listing=listing)
        if remaining is None:  # a deadline without a listing share: the whole of it
            remaining = deadline.remaining() or 0.0
        ceiling = min(self.settings.backoff_max_seconds, ROUND_BACKOFF_SECONDS * 2 ** (round_ - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        if remaining < wait + ROUND_MIN_SECONDS:
            return False
        log_fields(
            log,
            "another round",
            logging.INFO,
            round=round_ + 1,
            rounds=MAX_ROUNDS,
            retrying=retrying,
            work="listings" if listing else "cleans",
            wait_seconds=round(wait, 3),
            left_seconds=round(remaining, 3),
        )
        await asyncio.sleep(wait)
        return True

    async def complete(self, prepared: Prepared, deadline: Deadline) -> RevocationResult:
        request = prepared.request
        context: dict[str, object] = {"event_id": request.event_id, "event_name": request.event_name}
        if prepared.account_id:
            context["cloud_account_id"] = prepared.account_id
        plan = finalize(prepared.plan)
        executed = await self._revoke_in_rounds(prepared, plan.to_revoke, deadline)
        log_decisions(executed, context)
        actions = [*plan.decided, *executed]
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

    async def _revoke_in_rounds(
        self, prepared: Prepared, revocations: list[Revocation], deadline: Deadline
    ) -> list[Action]:
        """The Clean calls of a plan, in rounds: a Clean that failed transiently after the client's
        retries is decided again on a fresh listing of its cluster (``_decide_again``) and, when the
        rules still call for it, sent again, while the deadline leaves time (``MAX_ROUNDS``). Only the
        (cluster, uid) pairs of the plan are ever sent: the blast-radius limit counted them once."""
        current = list(revocations)
        attempted = await execute_round(
            self.client, self.inventory, current, deadline=deadline, retry_by=RETRY_BY
        )
        for round_ in range(1, MAX_ROUNDS):
            again = [i for i, a in enumerate(attempted) if a.retryable is not None]
            if not again or not await self._before_round(
                round_, deadline, listing=False, retrying=len(again)
            ):
                break
            policy = self._policy(prepared)
            decided, _late = await run_until(
                [
                    self._decide_again(current[i], attempted[i], prepared.request.principal, policy)
                    for i in again
                ],
                deadline.remaining(),
            )
            resend: list[int] = []
            for i, decision in zip(again, decided, strict=True):
                if isinstance(decision, Revocation):
                    current[i] = decision
                    resend.append(i)
                elif decision is not None:  # None: the deadline stopped the listing; the failure stands
                    attempted[i] = decision
            if resend:
                sent = await execute_round(
                    self.client,
                    self.inventory,
                    [current[i] for i in resend],
                    deadline=deadline,
                    retry_by=RETRY_BY,
                )
                for i, result in zip(resend, sent, strict=True):
                    attempted[i] = result
        return [a.action for a in attempted]

    async def _decide_again(
        self, revocation: Revocation, failed: Attempted, principal: Principal, policy: SafetyPolicy
    ) -> Revocation | Attempted:
        """A Clean that failed transiently, decided again on a fresh listing of its cluster (the
        freshness rule: never a blind repeat). Its kubeconfigs gone after a Clean that may have
        landed: revoked, confirmed. Otherwise the rules on the fresh states: the Clean to send again,
        or why not. A listing that fails leaves the failure standing (retried while rounds are left,
        unless the error is one a retry cannot change)."""
        candidate, error = revocation.candidate, failed.retryable
        assert error is not None
        try:
            states = await self.client.list_kubeconfig_states(candidate.region, candidate.cluster.cluster_id)
        except AckApiError as listing_error:
            if listing_error.not_found:
                return Attempted(action_for_error(candidate, listing_error, revocation.force, RETRY_BY))
            return Attempted(failed.action, error if retryable_error(listing_error) else None)
        mine = [s for s in states if s.account_id == candidate.uid]
        if error.may_have_landed and not any(s.revokable for s in mine):
            return Attempted(confirmed_revoked(candidate, revocation.force, error))
        matcher = PrincipalMatcher.of(principal)
        matched = [s for s in mine if matcher.matches(s)]
        if not matched:
            gone = "a fresh listing shows none of its kubeconfigs any more: nothing left to revoke"
            return Attempted(action_for(candidate, ActionStatus.SKIPPED, gone, error_code=error.code))
        fresh = Candidate(candidate.region, candidate.cluster, candidate.uid, tuple(matched))
        conflict = identity_conflict(principal, [s for s in states if matcher.named_by(s)])
        if why := conflict or refusal(fresh, revocation.kind, policy):
            return Attempted(action_for(fresh, ActionStatus.SKIPPED, why))
        return Revocation(fresh, revocation.kind, revocation.force)

    async def watched_clusters(
        self,
        regions: list[str],
        not_before: float,
        issues: list[ClusterIssue],
        deadline: Deadline | None = None,
    ) -> list[tuple[str, Cluster]]:
        """Every cluster of the regions; a region whose listing failed or ran out of time is an issue."""
        clusters: list[tuple[str, Cluster]] = []
        for region, found in zip(
            regions, await self._region_listings(regions, not_before, deadline), strict=True
        ):
            if isinstance(found, Listing):
                clusters += _in_region(region, found.value)
            else:
                issues.append(_region_issue(region, found))
        return clusters

    async def _region_listings(
        self, regions: list[str], not_before: float, deadline: Deadline | None
    ) -> list[Listing[list[Cluster]] | AckApiError | None]:
        """Each region's cluster listing, or its error, or None when the deadline came first."""

        async def listing(region: str) -> Listing[list[Cluster]] | AckApiError:
            try:
                return await self.inventory.clusters(region, not_before)
            except AckApiError as error:
                return error

        timeout = deadline.remaining(listing=True) if deadline else None
        listings, late = await run_until([listing(r) for r in regions], timeout)
        return [None if index in late else found for index, found in enumerate(listings)]

    async def _candidates(
        self,
        region: str,
        cluster: Cluster,
        principal: Principal,
        invocation_started: float,
        deadline: Deadline,
    ) -> tuple[list[Candidate], list[KubeconfigState]] | ClusterIssue | AckApiError:
        """The principal's candidates on a cluster and every state any of the event's names finds
        there (for ``identity_conflict`` over all clusters); or why the cluster was not looked at,
        or the error its listing failed with (``listing_issue``)."""

        if why := cluster_unreachable_reason(cluster):
            return ClusterIssue.of(region, cluster, ClusterStatus.SKIPPED, why)
        matcher = PrincipalMatcher.of(principal)  # the event's names, worked out once for every state
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
                    matcher.named_by,
                    coalesce=self._invocations > 1,
                )
            except AckApiError as error:
                return error
        matched, evidence = matcher.select(listing.value)
        return group_candidates(region, cluster, matched), evidence


def _in_region(region: str, clusters: list[Cluster]) -> list[tuple[str, Cluster]]:
    # Regions outside the configured list are never touched, whatever the API returns.
    return [(region, c) for c in clusters if not c.region_id or c.region_id == region]


def _region_issue(region: str, error: AckApiError | None) -> ClusterIssue:
    """A region whose cluster listing failed (``error``) or ran out of time (None)."""
    if error is None:
        reason = f"listing the clusters of {region}: {NOT_LISTED_IN_TIME}"
        return ClusterIssue.of(region, None, ClusterStatus.NOT_ATTEMPTED, reason, DEADLINE_CODE)
    reason = f"listing the clusters of {region} failed: {error.code}: {redact(error.message)}"
    return ClusterIssue.of(region, None, ClusterStatus.FAILED, reason, error.code)


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
