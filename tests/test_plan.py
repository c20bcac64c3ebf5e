"""Matching and safety rules (pure functions: states in, decisions out)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_
from pydantic import TypeAdapter

from kubeconfig_guard.models import AccountType, CertState, Cluster, KubeconfigState
from kubeconfig_guard.plan import (
    MAX_IDENTITY_LENGTH,
    PrincipalMatcher,
    SafetyPolicy,
    enforce_limit,
    finalize,
    group_candidates,
    identity_conflict,
    matches,
    named_by,
    plan_revocations,
)
from kubeconfig_guard.plan import decide as plan_decide
from kubeconfig_guard.principal import EventKind, Principal
from kubeconfig_guard.results import ActionStatus
from support.worlds import kubeconfig_state

USER = AccountType.RAM_USER
ROLE = AccountType.RAM_ROLE
CLUSTER = Cluster(cluster_id="c1", name="prod", region_id="cn-hangzhou", state="running")


def state(uid: str = "2001", name: str = "alice", **fields: Any) -> KubeconfigState:
    fields.setdefault("cert_expire_time", None)  # no expiry unless the test gives one
    return kubeconfig_state(uid, name, **fields)


@pytest.mark.parametrize(
    ("principal", "st", "expected"),
    [
        (Principal(type=USER, name="alice"), state(), True),
        (Principal(type=USER, name="alice"), state(name="alice2"), False),
        (Principal(type=USER, name="Alice"), state(), False),  # exact names only
        (Principal(type=USER, uid="2001", name="bob"), state(), True),  # uid wins over name
        (Principal(type=USER, uid="2002", name="alice"), state(), False),
        (Principal(type=USER, upn="alice@5000.onaliyun.com"), state(), True),
        (Principal(type=USER, upn="alice@5000.onaliyun.com"), state(name="alice@5000.onaliyun.com"), True),
        (Principal(type=USER, name="alice"), state(account_type="RamRole"), False),
        (Principal(type=ROLE, name="alice"), state(account_type="RamRole"), True),
        (Principal(type=ROLE, name="alice"), state(), False),
        (Principal(type=USER, name="root"), state(name="root", account_type="RootAccount"), False),
        (Principal(type=USER, uid="5000"), state(uid="5000", account_type="RootAccount"), False),
        (Principal(type=USER, name="alice"), state(account_type="FederatedUser"), False),  # unknown type
        (Principal(type=USER, name=""), state(name=""), False),
        (Principal(type=USER, upn="@5000.onaliyun.com"), state(name=""), False),  # an empty logon name
    ],
)
def test_matching(principal: Principal, st: KubeconfigState, expected: bool) -> None:
    assert matches(principal, st) is expected


def _spec_names(p: Principal) -> set[str]:
    names = {n for n in (p.name, p.upn) if n}
    if p.upn and "@" in p.upn:
        names.add(p.upn.split("@", 1)[0])
    return names


def _spec_too_long(s: KubeconfigState) -> bool:
    return len(s.account_id) > MAX_IDENTITY_LENGTH or len(s.account_name) > MAX_IDENTITY_LENGTH


def _spec_matches(p: Principal, s: KubeconfigState) -> bool:
    """The matching rule as written out in its docstring, state by state (the reference)."""
    if s.account_type is not p.type or _spec_too_long(s):
        return False
    if p.uid:
        return s.account_id == p.uid
    return bool(s.account_name) and s.account_name in _spec_names(p)


def _spec_named_by(p: Principal, s: KubeconfigState) -> bool:
    if s.account_type is not p.type or _spec_too_long(s) or not s.account_id:
        return False
    if p.uid and s.account_id == p.uid:
        return True
    return bool(s.account_name) and s.account_name in _spec_names(p)


# Few distinct values, so that uids and names collide often; "" and the over-long identity too.
_IDS = st_.sampled_from(["", "2001", "2002", "x" * (MAX_IDENTITY_LENGTH + 1)])
_NAMES = st_.sampled_from(["", "alice", "Alice", "alice@5000.onaliyun.com", "@5000", "bob", "a" * 257])
_TYPES = st_.sampled_from(["RamUser", "RamRole", "RootAccount", "FederatedUser"])


@settings(max_examples=200, deadline=None)
@given(
    ptype=st_.sampled_from([USER, ROLE]),
    name=st_.none() | _NAMES,
    upn=st_.none() | _NAMES,
    uid=st_.none() | _IDS,
    states=st_.lists(st_.tuples(_IDS, _NAMES, _TYPES), max_size=6),
)
def test_the_matcher_decides_as_the_rule_reads(
    ptype: AccountType,
    name: str | None,
    upn: str | None,
    uid: str | None,
    states: list[tuple[str, str, str]],
) -> None:
    """``PrincipalMatcher`` (names worked out once per event) decides every state exactly as
    the rule does state by state, over colliding, empty, over-long and odd-typed identities."""
    principal = Principal(type=ptype, name=name, upn=upn, uid=uid)
    matcher = PrincipalMatcher.of(principal)
    for account_id, account_name, account_type in states:
        s = state(uid=account_id, name=account_name, account_type=account_type)
        assert matcher.matches(s) is matches(principal, s) is _spec_matches(principal, s)
        assert matcher.named_by(s) is named_by(principal, s) is _spec_named_by(principal, s)
    listed = [state(uid=i, name=n, account_type=t) for i, n, t in states]
    assert matcher.select(listed) == (
        [s for s in listed if _spec_matches(principal, s)],
        [s for s in listed if _spec_named_by(principal, s)],
    )


def test_undocumented_enum_values_parse_and_are_kept() -> None:
    s = state(account_type="FederatedUser", account_state="Frozen", cert_state="Revoked")
    assert s.account_type is not None and not s.account_type.is_known and s.account_type == "FederatedUser"
    assert (
        s.account_type.name == "UNDOCUMENTED"
        and s.cert_state is not None
        and s.cert_state.name == "UNDOCUMENTED"
    )
    assert TypeAdapter(KubeconfigState).dump_python(s, mode="json")["account_state"] == "Frozen"
    # "Unknown" is a documented certificate state, not an undocumented value
    documented = state(cert_state="Unknown").cert_state
    assert documented is CertState.UNKNOWN and documented.is_known


def decide(states: list[KubeconfigState], kind: EventKind = EventKind.DELETED, **policy: Any) -> Any:
    pol = SafetyPolicy(**{"dry_run": False, **policy})
    return plan_revocations([(c, kind) for c in group_candidates("cn-hangzhou", CLUSTER, states)], pol)


def test_one_clean_per_uid_however_many_states() -> None:
    plan = decide([state(), state(cert_expire_time="2030-01-01T00:00:00Z"), state(uid="2002", name="alice")])
    assert sorted(r.candidate.uid for r in plan.to_revoke) == ["2001", "2002"]
    assert len(plan.to_revoke[0].candidate.states) == 2


@pytest.mark.parametrize(
    ("kind", "account_state", "revoked", "why"),
    [
        (EventKind.DELETED, "Deleted", True, ""),
        (EventKind.DELETED, "Active", False, "reused the name"),
        (EventKind.DELETED, "InActive", False, "not Deleted"),
        (EventKind.LOCKED, "InActive", True, ""),
        (EventKind.LOCKED, "Deleted", True, ""),
        (EventKind.LOCKED, "Active", False, "not InActive or Deleted"),
        # Undocumented values are never revoked, whatever the event says.
        (EventKind.DELETED, "active", False, "undocumented account_state 'active'"),
        (EventKind.DELETED, "Suspended", False, "undocumented account_state 'Suspended'"),
        (EventKind.LOCKED, "inactive", False, "undocumented account_state"),
        (EventKind.DELETED, None, False, "no account_state"),
    ],
)
def test_ack_state_must_agree_with_the_event(
    kind: EventKind, account_state: str | None, revoked: bool, why: str
) -> None:
    plan = decide([state(account_state=account_state)], kind)
    assert bool(plan.to_revoke) is revoked
    if not revoked:
        assert plan.decided[0].status is ActionStatus.SKIPPED and why in plan.decided[0].reason


def test_one_disagreeing_state_of_a_uid_stops_its_clean() -> None:
    plan = decide([state(), state(account_state="Active", cert_expire_time="2030-01-01T00:00:00Z")])
    assert not plan.to_revoke and "not Deleted" in plan.decided[0].reason


def test_not_revokable_is_skipped() -> None:
    plan = decide([state(revokable=False)])
    assert plan.decided[0].status is ActionStatus.SKIPPED and "not revokable" in plan.decided[0].reason


@pytest.mark.parametrize("pattern", ["alice", "2001", "ali*", "20*"])
def test_protected_principals(pattern: str) -> None:
    plan = decide([state(account_display_name="Alice Wang")], protected_principals=(pattern,))
    assert not plan.to_revoke and "protected" in plan.decided[0].reason


@pytest.mark.parametrize("pattern", ["Alice W*", "Alice Wang", "*Wang"])
def test_display_names_never_protect(pattern: str) -> None:
    """Display names are free text anyone with RAM write access can edit: they exempt nobody."""
    plan = decide([state(account_display_name="Alice Wang")], protected_principals=(pattern,))
    assert [r.candidate.uid for r in plan.to_revoke] == ["2001"]


@pytest.mark.parametrize(
    ("principal", "states", "conflict"),
    [
        # UserName and UPN name two different accounts on ACK: ambiguous.
        (
            Principal(type=USER, name="bob", upn="alice@5000.onaliyun.com"),
            [state(uid="2001", name="alice"), state(uid="2002", name="bob")],
            True,
        ),
        # A uid and a name that ACK shows belong to different accounts.
        (
            Principal(type=USER, name="bob", uid="2001"),
            [state(uid="2001"), state(uid="2002", name="bob")],
            True,
        ),
        (
            Principal(type=ROLE, name="ops", uid="9"),
            [
                state(uid="8", name="ops", account_type="RamRole"),
                state(uid="9", name="x", account_type="RamRole"),
            ],
            True,
        ),
        # Consistent: both ways find the same account, or only one way finds anything.
        (Principal(type=USER, name="alice", upn="alice@5000.onaliyun.com"), [state()], False),
        (Principal(type=USER, name="alice", uid="2001"), [state()], False),
        (Principal(type=USER, name="bob", uid="2001"), [state()], False),
        (
            Principal(type=USER, name="alice", uid="2001"),
            [state(uid="2002", name="alice", account_type="RamRole")],
            False,
        ),
    ],
)
def test_identity_conflict(principal: Principal, states: list[KubeconfigState], conflict: bool) -> None:
    why = identity_conflict(principal, states)
    assert (why is not None) is conflict
    if why:
        assert "different principals" in why and principal.describe().split()[1] in why


def test_blast_radius_counts_a_whole_batch_together() -> None:
    policy = SafetyPolicy(dry_run=False, max_revocations=5)
    plans = [
        plan_decide(
            [
                (c, EventKind.DELETED)
                for c in group_candidates("r", CLUSTER, [state(uid=f"{i}{j}") for j in range(3)])
            ],
            policy,
        )
        for i in range(1, 3)
    ]
    assert enforce_limit(plans, policy.max_revocations)
    for plan in plans:
        finalize(plan)
        assert plan.limit_exceeded and not plan.to_revoke
        assert all("6 revocations in this invocation" in a.reason for a in plan.decided)
    # The same pairs named by two items of a batch count once.
    same = [
        plan_decide(
            [
                (c, EventKind.DELETED)
                for c in group_candidates("r", CLUSTER, [state(uid=f"1{j}") for j in range(5)])
            ],
            policy,
        )
        for _ in range(2)
    ]
    assert not enforce_limit(same, policy.max_revocations)


def test_root_and_self_never_revoked() -> None:
    plan = decide(
        [state(uid="5000"), state(uid="3001")], root_account_id="5000", caller_uids=frozenset({"3001"})
    )
    assert not plan.to_revoke
    reasons = {a.uid: a.reason for a in plan.decided}
    assert "root account" in reasons["5000"] and "own identity" in reasons["3001"]


def test_blast_radius_limit_revokes_none() -> None:
    plan = decide([state(uid=str(i)) for i in range(4)], max_revocations=3)
    assert plan.limit_exceeded and not plan.to_revoke
    assert {a.status for a in plan.decided} == {ActionStatus.SKIPPED}
    assert "blast-radius" in plan.decided[0].reason
    assert len(decide([state(uid=str(i)) for i in range(3)], max_revocations=3).to_revoke) == 3


def test_dry_run_and_force_policy() -> None:
    plan = decide([state()], dry_run=True)
    assert not plan.to_revoke and plan.decided[0].status is ActionStatus.WOULD_REVOKE
    assert decide([state()], force_on_delete=True).to_revoke[0].force is True
    assert decide([state()], EventKind.LOCKED, force_on_lock=False).to_revoke[0].force is False
