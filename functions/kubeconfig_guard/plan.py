"""Decisions, with no I/O: which kubeconfig states an event matches, and what to do about each.

States in, decisions out. The event path and the daily summary's reconciliation
both decide here, so they follow exactly the same safety rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from .models import AccountType, Cluster, KubeconfigState
from .principal import EventKind, Principal
from .results import Action, ActionStatus
from .state_rule import agrees


def _names(principal: Principal) -> set[str]:
    names = {n for n in (principal.name, principal.upn) if n}
    if principal.upn and "@" in principal.upn:
        names.add(principal.upn.split("@", 1)[0])
    return names


# The longest uid or account name a state may have to be matched (or to name a principal): a
# listing from a broken or hostile endpoint may carry huge names; such a state is never matched.
MAX_IDENTITY_LENGTH = 256


def _identity_forms(*values: str) -> set[str]:
    """Every form a uid, name or UPN stands for, lowercased: itself, and a UPN's logon name."""
    forms: set[str] = set()
    for value in values:
        if value:
            lowered = value.strip().lower()
            forms.add(lowered)
            if "@" in lowered:
                forms.add(lowered.split("@", 1)[0])
    forms.discard("")
    return forms


def _too_long(state: KubeconfigState) -> bool:
    return len(state.account_id) > MAX_IDENTITY_LENGTH or len(state.account_name) > MAX_IDENTITY_LENGTH


@dataclass(frozen=True, slots=True)
class PrincipalMatcher:
    """``matches`` and ``named_by`` for one principal, its names worked out once.

    The event path asks both of every kubeconfig state of the fleet (tens of thousands per
    event): the principal's type, uid and names are compared as they are, a set lookup per
    state, and the length check runs only on a state that would otherwise match.
    """

    type: AccountType
    uid: str | None
    names: frozenset[str]

    @classmethod
    def of(cls, principal: Principal) -> PrincipalMatcher:
        return cls(principal.type, principal.uid or None, frozenset(_names(principal) - {""}))

    def matches(self, state: KubeconfigState) -> bool:
        """Does this kubeconfig state belong to the principal? A RootAccount state never does.

        Users match RamUser states by uid when the event carries it, otherwise by name
        (the user name, the part of a UPN before ``@``, or the full UPN). Roles match
        RamRole states by role name (or uid). A state whose uid or name is longer than
        ``MAX_IDENTITY_LENGTH`` never matches.
        """
        if state.account_type is not self.type:
            return False
        found = state.account_id == self.uid if self.uid else state.account_name in self.names
        return found and not _too_long(state)

    def named_by(self, state: KubeconfigState) -> bool:
        """Does any way the event names the principal (uid, name, UPN) find this state?

        Wider than ``matches`` (which prefers the uid): these are the states ``identity_conflict``
        weighs, gathered over every cluster of the invocation.
        """
        if state.account_type is not self.type or not state.account_id:
            return False
        found = state.account_id == self.uid or state.account_name in self.names
        return found and not _too_long(state)

    def select(
        self, states: Iterable[KubeconfigState]
    ) -> tuple[list[KubeconfigState], list[KubeconfigState]]:
        """(the states that ``matches``, the states ``named_by``), in listing order, in one pass.

        The event path's loop over every listing: one comparison of type, uid and name per
        state instead of two method calls (most states are someone else's).
        """
        matched: list[KubeconfigState] = []
        named: list[KubeconfigState] = []
        kind, uid, names = self.type, self.uid, self.names
        for state in states:
            if state.account_type is not kind:
                continue
            by_uid = state.account_id == uid
            by_name = state.account_name in names
            if not (by_uid or by_name) or _too_long(state):
                continue
            if by_uid if uid else by_name:
                matched.append(state)
            if state.account_id:
                named.append(state)
        return matched, named


def matches(principal: Principal, state: KubeconfigState) -> bool:
    """``PrincipalMatcher.matches`` for one state (over a listing, make the matcher once)."""
    return PrincipalMatcher.of(principal).matches(state)


def named_by(principal: Principal, state: KubeconfigState) -> bool:
    """``PrincipalMatcher.named_by`` for one state (over a listing, make the matcher once)."""
    return PrincipalMatcher.of(principal).named_by(state)


def identity_conflict(principal: Principal, states: Iterable[KubeconfigState]) -> str | None:
    """Does the event name one principal two ways that these states show to be different principals?

    An event may carry a uid and a name, or a UserName and a UserPrincipalName. When each way
    of naming it finds a different account (different uids), the event is ambiguous (a
    forged or garbled record, or a name reused since): it is not acted on. ``states`` are those
    of every cluster of the invocation (``named_by``): two names found on two different clusters
    are as much a conflict as on one.
    """
    wanted = principal.type
    ways: dict[str, set[str]] = {}
    typed = [s for s in states if s.account_type is wanted and s.account_id]
    if principal.uid:
        ways["uid " + principal.uid] = {s.account_id for s in typed if s.account_id == principal.uid}
    if principal.name:
        ways["name " + principal.name] = {s.account_id for s in typed if s.account_name == principal.name}
    if principal.upn:
        upn_names = _names(principal.model_copy(update={"name": None}))
        ways["UPN " + principal.upn] = {s.account_id for s in typed if s.account_name in upn_names}
    found = {label: uids for label, uids in ways.items() if uids}
    if len({frozenset(uids) for uids in found.values()}) > 1:
        shown = "; ".join(f"{label} -> {', '.join(sorted(uids))}" for label, uids in sorted(found.items()))
        return f"the event names different principals ({shown}): not acted on"
    return None


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
        """The pattern that protects this state's uid or account name. Display names are free text
        that others may edit, so they never protect (nor exempt) anyone.

        Protection matches every form matching accepts, case-insensitively: a pattern and a name
        that are UPNs (``name@domain``) also stand for their logon name (``name``), as they do
        when an event names a principal. Protecting too much is safe; too little is not.
        """
        values = _identity_forms(state.account_id, state.account_name)
        for pattern in self.protected_principals:
            if any(fnmatchcase(v, p) for p in _identity_forms(pattern) for v in values):
                return pattern
        return None

    def force_for(self, kind: EventKind) -> bool:
        return self.force_on_delete if kind is EventKind.DELETED else self.force_on_lock


def state_disagreement(kind: EventKind, states: Iterable[KubeconfigState]) -> str | None:
    """Why ACK's account state forbids revoking for this kind of event, or None when it agrees.

    The rule itself is ``state_rule.agrees``. A documented state that disagrees is skipped (the
    daily summary reconciles once ACK catches up); an undocumented one (not exactly Active,
    InActive or Deleted) is skipped as undocumented."""
    for s in states:
        if s.account_state is None:
            return "ACK reports no account_state: never revoked"
        if not s.account_state.is_known:
            return f"undocumented account_state {s.account_state.value[:40]!r}: never revoked"
    for s in states:
        if s.account_state is None or agrees(kind, s.account_state):
            continue
        state = s.account_state.value
        if kind is EventKind.DELETED:
            return (
                f"the account is {state} on ACK, not Deleted: a new principal may have reused the name, "
                "or ACK has not caught up; not revoked (the daily summary re-checks it)"
            )
        return (
            f"the account is {state} on ACK, not InActive or Deleted: the lock has not reached ACK, or "
            "the user was unlocked or only lost a console password; not revoked (the daily summary re-checks it)"
        )
    return None


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
    """Revocations to execute, and every other decision with its reason.

    ``allowed`` holds what passed the safety rules until the blast-radius limit and the mode are
    applied (``enforce_limit``, ``finalize``); then it is moved to ``to_revoke`` or ``decided``.
    """

    to_revoke: list[Revocation] = field(default_factory=list)
    decided: list[Action] = field(default_factory=list)
    allowed: list[Revocation] = field(default_factory=list)
    limit_exceeded: bool = False
    dry_run: bool = True


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
        account_type=state.account_type or AccountType(""),
        account_state=state.account_state or None,
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
    if why := state_disagreement(kind, states):
        return why
    if not any(s.revokable for s in states):
        return "ACK reports the kubeconfig as not revokable"
    return None


def decide(candidates: Sequence[tuple[Candidate, EventKind]], policy: SafetyPolicy) -> Plan:
    """Apply the safety rules to every (candidate, why it is revoked); the limit comes later."""
    plan = Plan(dry_run=policy.dry_run)
    for candidate, kind in candidates:
        why = refusal(candidate, kind, policy)
        if why:
            plan.decided.append(action_for(candidate, ActionStatus.SKIPPED, why))
        else:
            plan.allowed.append(Revocation(candidate, kind, policy.force_for(kind)))
    return plan


def pairs(plans: Iterable[Plan]) -> set[tuple[str, str]]:
    """The distinct (cluster, uid) pairs the plans would revoke."""
    return {(r.candidate.cluster.cluster_id, r.candidate.uid) for p in plans for r in p.allowed}


def enforce_limit(plans: Sequence[Plan], max_revocations: int) -> bool:
    """The blast-radius limit over every plan of one invocation (a batch counts together).

    Over the limit, nothing in any of the plans is revoked. Returns whether it was exceeded.
    """
    wanted = len(pairs(plans))
    if wanted <= max_revocations:
        return False
    reason = (
        f"blast-radius limit: {wanted} revocations in this invocation exceed KCGUARD_MAX_REVOCATIONS="
        f"{max_revocations}; none revoked"
    )
    for plan in plans:
        plan.limit_exceeded = True
        plan.decided += [action_for(r.candidate, ActionStatus.SKIPPED, reason) for r in plan.allowed]
        plan.allowed = []
    return True


def finalize(plan: Plan) -> Plan:
    """Dry-run turns what is allowed into ``would-revoke``; enforce queues it for the executor."""
    if plan.dry_run:
        plan.decided += [
            action_for(r.candidate, ActionStatus.WOULD_REVOKE, "dry-run: would revoke", force=r.force)
            for r in plan.allowed
        ]
    else:
        plan.to_revoke += plan.allowed
    plan.allowed = []
    return plan


def plan_revocations(candidates: Sequence[tuple[Candidate, EventKind]], policy: SafetyPolicy) -> Plan:
    """Safety rules, the blast-radius limit and the mode, for one list of candidates."""
    plan = decide(candidates, policy)
    enforce_limit([plan], policy.max_revocations)
    return finalize(plan)
