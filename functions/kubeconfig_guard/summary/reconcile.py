"""Reconcile: revoke the orphaned kubeconfigs the scan found, with exactly the event path's rules.

An orphan stands for the event its ACK state calls for (``state_rule``: Deleted a deletion,
InActive a lock) and is planned by ``plan.plan_revocations`` with the same ``SafetyPolicy`` as
that event, ``Force`` included (``SafetyPolicy.force_for``): a lock the event path deferred
(``Force=false`` refused) is tried again every day, the same way, until ACK accepts it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .. import logs
from ..deadline import Deadline
from ..engine import Engine, safety_policy
from ..executor import execute, log_decisions
from ..models import KubeconfigState
from ..plan import Candidate, Plan, decide, enforce_limit, finalize
from ..principal import EventKind
from ..results import Action, ActionStatus, Outcome, count_actions
from ..settings import Mode
from ..state_rule import revocation_kind
from .report import Reconciliation

CONTEXT: dict[str, object] = {"event_name": "DailySummary"}


def orphan_kind(state: KubeconfigState) -> EventKind | None:
    """Which event an orphaned state stands for (``state_rule.revocation_kind``)."""
    return revocation_kind(state.account_state)


@dataclass
class Reconciled:
    """The report's reconciliation (its list capped) and what the deferral ledger reads."""

    reconciliation: Reconciliation
    actions: list[Action] = field(default_factory=list)  # every action, not capped
    locked_not_retried: int = 0  # (cluster, uid) pairs of locks left alone: KCGUARD_REMEDIATE_LOCKED=false

    @property
    def attempted(self) -> bool:
        """Did this run ask ACK (enforce, within the blast-radius limit)? Only then do refusals count."""
        rec = self.reconciliation
        return rec.enabled and rec.mode is Mode.ENFORCE and rec.outcome is not Outcome.LIMIT_EXCEEDED


@dataclass
class OrphanPlan:
    """The orphans of one account planned (safety rules applied, the limit not yet, nothing written)."""

    reconciliation: Reconciliation
    plan: Plan | None = None  # None: reconciliation disabled
    wanted: int = 0
    locked_not_retried: int = 0
    ruled: int = 0  # actions the safety rules decided (``plan.decided`` before the limit's)


def plan_orphans(
    engine: Engine,
    orphans: list[tuple[Candidate, EventKind]],
    *,
    enabled: bool,
    dry_run: bool,
    account_id: str | None,
) -> OrphanPlan:
    """Plan the revocation of one account's orphans with the event path's rules (pure: no I/O).

    The blast-radius limit is applied afterwards over every account's plan of the run
    (``plan.enforce_limit``), then ``execute_orphans`` writes.
    """
    settings = engine.settings
    reconciliation = Reconciliation(enabled=enabled, mode=Mode.DRY_RUN if dry_run else Mode.ENFORCE)
    merged = _merge(orphans)
    locked_left = 0 if settings.remediate_locked else sum(1 for _, k in merged if k is EventKind.LOCKED)
    if not enabled:
        return OrphanPlan(reconciliation, locked_not_retried=locked_left)
    wanted = [
        (c, k)
        for c, k in merged
        if (k is EventKind.DELETED and settings.remediate_deleted)
        or (k is EventKind.LOCKED and settings.remediate_locked)
    ]
    policy = safety_policy(
        settings, dry_run=dry_run, root_account_id=account_id, caller_uids=engine.caller_uids
    )
    plan = decide(wanted, policy)
    return OrphanPlan(reconciliation, plan, len(wanted), locked_left, ruled=len(plan.decided))


async def execute_orphans(
    engine: Engine, planned: OrphanPlan, *, deadline: Deadline, account_id: str | None = None
) -> Reconciled:
    """Revoke what the plan allows (after ``enforce_limit``), in the account of ``engine``
    (``account_id``: organization mode's, named in every log line)."""
    settings = engine.settings
    reconciliation = planned.reconciliation
    if planned.plan is None:
        return Reconciled(reconciliation, locked_not_retried=planned.locked_not_retried)
    plan = finalize(planned.plan)
    context = CONTEXT if account_id is None else {**CONTEXT, "cloud_account_id": account_id}
    if plan.limit_exceeded:
        # Over the blast-radius limit every orphan the rules allowed is skipped for that one reason:
        # one line counts them (an organization's summary may skip 100,000, and a line each was most
        # of its CPU at a quarter of a vCPU); the rules' own decisions keep a line each.
        log_decisions(plan.decided[: planned.ruled], context)
        if limited := plan.decided[planned.ruled :]:
            logs.log_fields(
                logging.getLogger("kubeconfig_guard.executor"),
                "kubeconfigs skipped",
                logging.INFO,
                **context,
                status=ActionStatus.SKIPPED.value,
                count=len(limited),
                reason=limited[0].reason,
            )
    else:
        log_decisions(plan.decided, context)
    actions = plan.decided + await execute(
        engine.client,
        None,
        plan.to_revoke,
        deadline=deadline,
        retry_by="the next daily summary",
        context=context,
    )
    actions.sort(key=lambda a: (a.status.urgency, a.region, a.cluster_id, a.uid))
    reconciliation.counts = count_actions(actions)
    reconciliation.actions_total = len(actions)
    reconciliation.truncated = len(actions) > settings.report_list_limit
    reconciliation.actions = actions[: settings.report_list_limit]
    if plan.limit_exceeded:
        reconciliation.outcome = Outcome.LIMIT_EXCEEDED
        reconciliation.reason = f"{planned.wanted} orphans exceed KCGUARD_MAX_REVOCATIONS; none revoked"
    elif reconciliation.counts.get(ActionStatus.FAILED.value):
        reconciliation.outcome = Outcome.PARTIAL
        reconciliation.reason = "some revocations failed; the next run retries them"
    return Reconciled(reconciliation, actions, planned.locked_not_retried)


async def reconcile(
    engine: Engine,
    orphans: list[tuple[Candidate, EventKind]],
    *,
    enabled: bool,
    dry_run: bool,
    deadline: Deadline,
    account_id: str | None,
) -> Reconciled:
    """Plan (safety rules, blast radius, mode) and execute the revocation of one account's orphans."""
    planned = plan_orphans(engine, orphans, enabled=enabled, dry_run=dry_run, account_id=account_id)
    if planned.plan is not None:
        enforce_limit([planned.plan], engine.settings.max_revocations)
    return await execute_orphans(engine, planned, deadline=deadline)


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
