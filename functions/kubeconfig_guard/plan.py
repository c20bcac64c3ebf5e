"""Decisions, with no I/O: which kubeconfig states an event matches, and what to do about each.

States in, decisions out. The event path and the daily summary's reconciliation
both decide here, so they follow exactly the same safety rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from .models import AccountState, AccountType, Cluster, KubeconfigState
from .principal import EventKind, Principal, PrincipalType
from .results import Action, ActionStatus


def matches(principal: Principal, state: KubeconfigState) -> bool:
    """Does this kubeconfig state belong to the principal? A RootAccount state never does.

    Users match RamUser states by uid when the event carries it, otherwise by name
    (the user name, the part of a UPN before ``@``, or the full UPN). Roles match
    RamRole states by role name (or uid).
    """
    wanted = AccountType.RAM_USER if principal.type is PrincipalType.RAM_USER else AccountType.RAM_ROLE
    if state.account_type is not wanted:
        return False
    if principal.uid:
        return state.account_id == principal.uid
    names = {n for n in (principal.name, principal.upn) if n}
    if principal.upn and "@" in principal.upn:
        names.add(principal.upn.split("@", 1)[0])
    return bool(state.account_name) and state.account_name in names


@dataclass(frozen=True)
class SafetyPolicy:
    """The rules that keep a revocation from hitting the wrong kubeconfig."""

    protected_principals: tuple[str, ...] = ()
    root_account_id: str | None = None
    caller_uids: frozenset[str] = frozenset()
    force_on_delete: bool = True
    force_on_lock: bool = False
    dry_run: bool = True
    max_revocations: int = 50

    def is_protected(self, state: KubeconfigState) -> str | None:
        for pattern in self.protected_principals:
            for value in (state.account_id, state.account_name, state.account_display_name):
                if value and fnmatchcase(value, pattern):
                    return pattern
        return None

    def force_for(self, kind: EventKind) -> bool:
        return self.force_on_delete if kind is EventKind.DELETED else self.force_on_lock


@dataclass(frozen=True)
class Candidate:
    """All matched states of one uid on one cluster: one Clean call at most."""

    region: str
    cluster: Cluster
    uid: str
    states: tuple[KubeconfigState, ...]


@dataclass(frozen=True)
class Revocation:
    """A Clean call to make."""

    candidate: Candidate
    kind: EventKind
    force: bool


@dataclass
class Plan:
    """Revocations to execute, and every other decision with its reason."""

    to_revoke: list[Revocation] = field(default_factory=list)
    decided: list[Action] = field(default_factory=list)
    limit_exceeded: bool = False


def group_candidates(region: str, cluster: Cluster, states: Iterable[KubeconfigState]) -> list[Candidate]:
    by_uid: dict[str, list[KubeconfigState]] = {}
    for state in states:
        by_uid.setdefault(state.account_id, []).append(state)
    return [Candidate(region, cluster, uid, tuple(group)) for uid, group in by_uid.items()]


def action_for(candidate: Candidate, status: ActionStatus, reason: str, **extra: Any) -> Action:
    state = candidate.states[0]
    return Action(
        region=candidate.region,
        cluster_id=candidate.cluster.cluster_id,
        cluster_name=candidate.cluster.name,
        uid=candidate.uid,
        account_name=state.account_name,
        account_type=str(state.account_type.value if state.account_type else ""),
        account_state=state.account_state.value if state.account_state else None,
        status=status,
        reason=reason,
        **extra,
    )


def refusal(candidate: Candidate, kind: EventKind, policy: SafetyPolicy) -> str | None:
    """Why this candidate must not be revoked, or None when it may be."""
    states = candidate.states
    if not candidate.uid:
        return "the kubeconfig state has no account id"
    if (
        any(s.account_type is AccountType.ROOT_ACCOUNT for s in states)
        or candidate.uid == policy.root_account_id
    ):
        return "the root account is never revoked (ACK refuses it too)"
    if candidate.uid in policy.caller_uids:
        return "this is kubeconfig-guard's own identity: never revoked (ACK refuses it too)"
    if pattern := next((p for s in states if (p := policy.is_protected(s))), None):
        return f"protected principal (matches {pattern!r} in KCGUARD_PROTECTED_PRINCIPALS)"
    if kind is EventKind.DELETED and any(s.account_state is AccountState.ACTIVE for s in states):
        return (
            "the account is Active on ACK: a new principal may have reused the name; "
            "not revoked (the daily summary re-checks it)"
        )
    if not any(s.revokable for s in states):
        return "ACK reports the kubeconfig as not revokable"
    return None


def plan_revocations(candidates: Sequence[tuple[Candidate, EventKind]], policy: SafetyPolicy) -> Plan:
    """Apply the safety rules and the blast-radius limit to every (candidate, why it is revoked)."""
    plan = Plan()
    allowed: list[Revocation] = []
    for candidate, kind in candidates:
        why = refusal(candidate, kind, policy)
        if why:
            plan.decided.append(action_for(candidate, ActionStatus.SKIPPED, why))
        else:
            allowed.append(Revocation(candidate, kind, policy.force_for(kind)))
    if len(allowed) > policy.max_revocations:
        plan.limit_exceeded = True
        reason = (
            f"blast-radius limit: {len(allowed)} revocations exceed KCGUARD_MAX_REVOCATIONS="
            f"{policy.max_revocations}; none revoked"
        )
        plan.decided += [action_for(r.candidate, ActionStatus.SKIPPED, reason) for r in allowed]
    elif policy.dry_run:
        plan.decided += [
            action_for(r.candidate, ActionStatus.WOULD_REVOKE, "dry-run: would revoke", force=r.force)
            for r in allowed
        ]
    else:
        plan.to_revoke = allowed
    return plan
