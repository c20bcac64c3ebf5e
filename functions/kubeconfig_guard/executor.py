"""Carry out a plan: one CleanClusterUserPermissions call per (cluster, uid).

Maps every API answer to an action status through the one classification of error codes
(``errors.ERROR_FAMILIES``). With ``Force=false`` ACK refuses while the kubeconfig was used in
the last 7 days or its access records cannot be read: ACK publishes no code for that refusal,
so only a 4xx code outside every family of common client errors is taken for it and is
``deferred`` (the daily summary or a later event retries), with the raw code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .client import AckClient
from .deadline import Deadline, run_until
from .errors import AckApiError, ErrorCategory
from .inventory import Inventory
from .logs import log_action
from .plan import Candidate, Revocation, action_for
from .redaction import redact
from .results import DEADLINE_CODE, Action, ActionStatus

log = logging.getLogger("kubeconfig_guard.executor")


@dataclass(frozen=True)
class Attempted:
    """A revocation's action after one round, and the transient error another round may retry
    (None: final, or the deadline stopped it)."""

    action: Action
    retryable: AckApiError | None = None


def action_for_error(candidate: Candidate, error: AckApiError, force: bool, retry_by: str) -> Action:
    """The action for a Clean that ACK answered with an error (the mapping README.md lists).

    ``ErrorClusterNotFound``: skipped (the cluster is gone); no other code or 404 says so.
    Authentication, authorization and the other common client
    errors (signature, timestamp, nonce, token, version, action, method, parameter,
    entity-not-exist) and error answers without an ACK code: failed with the code, never
    deferred (a missing RAM action must surface). Throttling, 5xx, transport errors and answers
    that fit no documented shape: failed, retried. An unclassified 4xx code of a ``Force=false``
    call: deferred (ACK's refusal: recent access or unreadable audit log), with the raw code.
    """
    extra = {"force": force, "error_code": error.code, "request_id": error.request_id}
    category = error.category
    message = redact(error.message)
    retry = f"retried by {retry_by}" if error.transient else "not retryable"
    if category is ErrorCategory.CLUSTER_GONE:
        return action_for(
            candidate,
            ActionStatus.SKIPPED,
            f"the cluster no longer exists ({error.code}): nothing left to revoke",
            **extra,
        )
    if category in (ErrorCategory.AUTH, ErrorCategory.REQUEST):
        what = "not authorized" if category is ErrorCategory.AUTH else "rejected as invalid"
        return action_for(
            candidate,
            ActionStatus.FAILED,
            f"{error.code}: the Clean call was {what} ({error.family.name}): {message} (check the function "
            f"role's policy, its credentials and the endpoint; {retry})",
            **extra,
        )
    if category is ErrorCategory.NOT_ACK:
        return action_for(
            candidate,
            ActionStatus.FAILED,
            f"{error.code}: an error answer without an ACK error code (a proxy or gateway answered?): "
            f"{message} (check KCGUARD_CS_ENDPOINT and any proxy; {retry})",
            **extra,
        )
    if error.deferrable(force):
        return action_for(
            candidate,
            ActionStatus.DEFERRED,
            f"ACK refused a Force=false revocation ({error.code}): {message} (recent access within 7 days, "
            "or access records unreadable); retried by the daily summary",
            **extra,
        )
    return action_for(candidate, ActionStatus.FAILED, f"{error.code}: {message} ({retry})", **extra)


async def _revoke_one(
    client: AckClient, inventory: Inventory | None, candidate: Candidate, force: bool, retry_by: str
) -> Attempted:
    cluster_id, uid = candidate.cluster.cluster_id, candidate.uid

    async def clean() -> None:
        await client.clean_user_permissions(candidate.region, cluster_id, uid, force=force)

    try:
        shared = False
        if inventory is not None:
            shared = await inventory.clean_once(cluster_id, uid, clean)
        else:
            await clean()
    except AckApiError as error:
        if inventory is not None:  # the outcome is uncertain: list afresh next time
            inventory.invalidate_cluster(cluster_id)
        # An outcome that is unknown (no answer, a 5xx, throttling, an answer that fits no documented
        # shape): a fresh listing decides. A 2xx answer carrying an error code is ACK saying no.
        if error.may_have_landed and await _confirmed_revoked(client, candidate):
            return Attempted(confirmed_revoked(candidate, force, error))
        action = action_for_error(candidate, error, force, retry_by)
        return Attempted(action, error if may_try_again(action, error) else None)
    if inventory is not None:
        inventory.forget_uid(cluster_id, uid)
    reason = "kubeconfigs revoked" + (" (one call shared with a concurrent invocation)" if shared else "")
    return Attempted(action_for(candidate, ActionStatus.REVOKED, reason, force=force))


def confirmed_revoked(candidate: Candidate, force: bool, error: AckApiError) -> Action:
    """A Clean whose answer was lost (or did not fit its shape) and whose kubeconfigs a fresh listing
    shows gone."""
    return action_for(
        candidate,
        ActionStatus.REVOKED,
        "kubeconfigs revoked (the API's answer was lost or did not fit its documented shape; a fresh "
        "listing confirms it)",
        force=force,
        error_code=error.code,
        request_id=error.request_id,
    )


def may_try_again(action: Action, error: AckApiError) -> bool:
    """May another round of the same invocation try this failed Clean again (after a fresh listing)?
    Only a transient failure (throttling, 5xx, transport, an answer of no documented shape): never
    a refusal, an authorization or request error, a gone cluster or a deferral."""
    return action.status is ActionStatus.FAILED and retryable_error(error)


def retryable_error(error: AckApiError) -> bool:
    """A failure another round may retry: transient (throttling, 5xx, transport, an answer of no
    documented shape), and never a gone cluster, an authorization or a request error."""
    return error.transient and error.category not in (
        ErrorCategory.AUTH,
        ErrorCategory.REQUEST,
        ErrorCategory.CLUSTER_GONE,
    )


async def _confirmed_revoked(client: AckClient, candidate: Candidate) -> bool:
    """After a Clean whose answer was lost: does a fresh listing show the uid's kubeconfigs gone?"""
    try:
        states = await client.list_kubeconfig_states(candidate.region, candidate.cluster.cluster_id)
    except AckApiError:
        return False
    return not any(s.account_id == candidate.uid and s.revokable for s in states)


def log_decisions(actions: list[Action], context: dict[str, object] | None = None) -> None:
    """One log line per action: those decided without an API call (skipped, would-revoke), and the
    event path's Cleans once its rounds are over (``execute_round``)."""
    for action in actions:
        log_action(log, action, context)


async def execute(
    client: AckClient,
    inventory: Inventory | None,
    revocations: list[Revocation],
    *,
    deadline: Deadline,
    retry_by: str,
    context: dict[str, object] | None = None,
) -> list[Action]:
    """Revoke every candidate concurrently (the client enforces the concurrency cap).

    ``retry_by`` says who runs a transiently failed revocation again (Function Compute's
    async retry for an event, the next run for the daily summary). At the deadline, a Clean
    still waiting or in flight is cancelled and reported ``failed`` (``DeadlineReached``): its
    retry lists the cluster afresh, so a Clean that did land costs one listing to confirm.
    """

    actions = [
        attempted.action
        for attempted in await execute_round(
            client, inventory, revocations, deadline=deadline, retry_by=retry_by
        )
    ]
    for action in actions:
        log_action(log, action, context)
    return actions


async def execute_round(
    client: AckClient,
    inventory: Inventory | None,
    revocations: list[Revocation],
    *,
    deadline: Deadline,
    retry_by: str,
) -> list[Attempted]:
    """``execute`` without its log lines, saying which failures another round may try again
    (``Attempted.retryable``): the event path's rounds (``engine.Engine``) log the final actions."""

    def late(revocation: Revocation, reason: str) -> Action:
        return action_for(
            revocation.candidate,
            ActionStatus.FAILED,
            f"{reason}; retried by {retry_by}",
            force=revocation.force,
            error_code=DEADLINE_CODE,
        )

    async def revoke(revocation: Revocation) -> Attempted:
        if deadline.near():
            return Attempted(late(revocation, "not attempted: the invocation deadline was near"))
        return await _revoke_one(client, inventory, revocation.candidate, revocation.force, retry_by)

    done, cut = await run_until([revoke(r) for r in revocations], deadline.remaining())
    if inventory is not None:  # their outcome is unknown: the next look at those clusters lists afresh
        for index in cut:
            inventory.invalidate_cluster(revocations[index].candidate.cluster.cluster_id)
    return [
        attempted
        or Attempted(late(r, "no answer before the invocation's deadline (the Clean may have landed)"))
        for r, attempted in zip(revocations, done, strict=True)
    ]
