"""Safety at the trust boundaries (issue 9): whose event, which envelope, which state, how many.

Every test runs the real handler and client against the fake ACK, in-process and over its real
HTTP server (``make_harness``), and checks what the fake actually revoked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kubeconfig_guard.admission import upn_account
from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.fake import FakeAck
from kubeconfig_guard.fake.backend import FakeAckError
from kubeconfig_guard.handlers import handle_event, handle_summary
from kubeconfig_guard.results import BatchResult, Outcome, RevocationResult
from support.events import encode
from support.events import sample as envelope
from support.people import ALICE, BOB, CAROL, CONTEXT, OTHER, people, revoked, run
from support.worlds import ACCOUNT, cluster, kc, world

# --- account isolation -------------------------------------------------------------------------


def test_lock_event_of_another_account_is_ignored(make_harness: Any) -> None:
    h = make_harness(people(carol="Active"))
    event = envelope(
        "ims-lock-user.json",
        aliyunaccountid=OTHER,
        **{
            "data.userIdentity.accountId": OTHER,
            "data.requestParameters.UserPrincipalName": f"carol@{OTHER}.onaliyun.com",
        },
    )
    result = run(h, event)
    assert result.outcome is Outcome.IGNORED
    assert result.reason == f"event from account {OTHER}; this function guards {ACCOUNT}"
    assert h.backend.calls["ListClusterKubeconfigStates"] == 0 and not revoked(h)


@pytest.mark.parametrize(
    ("changes", "acted"),
    [
        ({"aliyunaccountid": OTHER}, False),  # the envelope's account wins
        ({"aliyunaccountid": None, "data.recipientAccountId": OTHER}, False),
        (
            {"aliyunaccountid": None, "data.recipientAccountId": None, "data.userIdentity.accountId": OTHER},
            False,
        ),
        # A caller of another account acting on this account (recipientAccountId is ours): acted on.
        (
            {
                "aliyunaccountid": None,
                "data.recipientAccountId": ACCOUNT,
                "data.userIdentity.accountId": OTHER,
            },
            True,
        ),
    ],
)
def test_the_events_account_decides(make_harness: Any, changes: dict[str, Any], acted: bool) -> None:
    h = make_harness(people())
    result = run(h, envelope("ram-delete-user.json", **changes))
    assert (result.outcome is Outcome.OK) is acted, result.reason
    assert revoked(h) == ({("c1", ALICE), ("c2", ALICE)} if acted else set())


def test_an_actiontrail_event_without_an_account_is_ignored(make_harness: Any) -> None:
    h = make_harness(people())
    raw = envelope("ram-delete-user.rawdata.json", **{"userIdentity.accountId": None})
    result = run(h, raw, event_format="rawdata")
    assert result.outcome is Outcome.IGNORED and "names no account" in result.reason and not revoked(h)


def test_unknown_guarded_account_enforces_nothing(make_harness: Any) -> None:
    h = make_harness(people())
    result = run(h, envelope("ram-delete-user.json"), context=None)
    assert result.outcome is Outcome.IGNORED and "KCGUARD_ACCOUNT_ID" in result.reason
    assert not revoked(h)
    # Dry-run cannot harm: it still shows what would happen.
    preview = run(h, envelope("ram-delete-user.json"), context=None, mode="dry-run")
    assert preview.counts["would-revoke"] == 2
    # KCGUARD_ACCOUNT_ID says it when the context cannot.
    done = run(h, envelope("ram-delete-user.json"), context=None, account_id=ACCOUNT)
    assert done.counts["revoked"] == 2 and revoked(h) == {("c1", ALICE), ("c2", ALICE)}


def test_setting_overrides_the_context(make_harness: Any) -> None:
    h = make_harness(people())
    result = run(h, envelope("ram-delete-user.json"), account_id=OTHER)
    assert result.outcome is Outcome.IGNORED and f"this function guards {OTHER}" in result.reason


@pytest.mark.parametrize(
    ("upn", "acted"),
    [
        (f"alice@{ACCOUNT}.onaliyun.com", True),
        (f"alice@{OTHER}.onaliyun.com", False),  # names another account
        (f"alice@{OTHER}.ONALIYUN.COM", False),
        ("alice@corp.example.com", True),  # a domain alias: cannot be checked offline, account matches
    ],
)
def test_upn_domain_naming_another_account(make_harness: Any, upn: str, acted: bool) -> None:
    h = make_harness(people())
    event = envelope("ims-delete-user-console.json", **{"data.requestParameters": {"UserPrincipalName": upn}})
    result = run(h, event)
    assert (result.counts.get("revoked", 0) == 2) is acted, result.reason
    if not acted:
        assert result.outcome is Outcome.IGNORED and "belongs to account" in result.reason and not revoked(h)


def test_upn_account() -> None:
    assert upn_account(f"a@{ACCOUNT}.onaliyun.com") == ACCOUNT
    assert upn_account("a@b@123.onaliyun.com") == "123"
    assert upn_account("a@123.onaliyun.com.evil.example") is None
    assert upn_account("a@corp.example") is None and upn_account(None) is None


# --- ACK's state must agree with the event -----------------------------------------------------


def test_lock_revokes_only_inactive_or_deleted(make_harness: Any) -> None:
    h = make_harness(people(carol="Active"))
    result = run(h, envelope("ims-lock-user.json"))
    assert {a.status.value for a in result.actions} == {"skipped"}
    assert all("not InActive or Deleted" in a.reason for a in result.actions)
    assert not revoked(h)
    h = make_harness(people(carol="InActive"))
    assert run(h, envelope("ims-lock-user.json"), force_on_lock=True).counts["revoked"] == 2


def test_console_password_removal_of_an_active_api_user_revokes_nothing(make_harness: Any) -> None:
    h = make_harness(people(carol="Active"))
    result = run(h, envelope("ram-delete-login-profile.json"))
    assert result.counts["skipped"] == 2 and not revoked(h)


def test_late_deletion_of_an_old_name_spares_a_newer_locked_user(make_harness: Any) -> None:
    new_bob = kc("200000000000000199", "bob", account_state="InActive")
    h = make_harness(world({"cn-hangzhou": [cluster("c1", new_bob)]}))
    result = run(h, envelope("ram-delete-user.json", **{"data.requestParameters": {"UserName": "bob"}}))
    assert [a.status.value for a in result.actions] == ["skipped"] and "not Deleted" in result.actions[
        0
    ].reason
    assert not revoked(h)


@pytest.mark.parametrize("state", ["active", "Suspended", "deleted", ""])
def test_undocumented_states_are_never_revoked(make_harness: Any, state: str) -> None:
    h = make_harness(people(alice=state))
    result = run(h, envelope("ram-delete-user.json"))
    assert not revoked(h) and result.counts["skipped"] == 2
    assert all("account_state" in a.reason for a in result.actions)


# --- only real ActionTrail envelopes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"source": "my.app", "type": "my.app:Custom:Anything"}, "event source 'my.app'"),
        ({"source": "acs.ram", "type": "my.app:Custom:Anything"}, "event type"),
        ({"type": "ram:ActionTrail:AliyunServiceEvent"}, "event type"),
        ({"source": None}, "event source None"),
        ({"type": None}, "event type"),
        ({"data.eventType": "AliyunServiceEvent"}, "record eventType"),
        ({"data.eventType": None}, "record eventType"),
    ],
)
def test_forged_or_foreign_envelopes_are_ignored(
    make_harness: Any, changes: dict[str, Any], why: str
) -> None:
    h = make_harness(people())
    result = run(h, envelope("ram-delete-user.json", **changes))
    assert result.outcome is Outcome.IGNORED and why in result.reason and not revoked(h)


@pytest.mark.parametrize(
    "changes",
    [
        {"data.errorCode": ""},  # empty: the call succeeded
        {"data.eventVersion": "1"},
        {"data.eventTime": "2020-11-19T21:04:42.179PRC"},
        {"time": "2020-11-19T21:04:42.179PRC", "data.eventTime": 1605790000},
        {"aliyunpublishtime": "not a time", "data.recipientAccountId": ACCOUNT},
    ],
)
def test_published_sample_quirks_are_accepted(make_harness: Any, changes: dict[str, Any]) -> None:
    h = make_harness(people())
    result = run(h, envelope("ram-delete-user.json", **changes))
    assert result.outcome is Outcome.OK and result.counts["revoked"] == 2


@pytest.mark.parametrize(
    "params",
    [
        {"UserPrincipalName": f"alice@{ACCOUNT}.onaliyun.com", "UserName": "bob"},
        {"UserPrincipalName": f"bob@{ACCOUNT}.onaliyun.com", "UserId": ALICE},
    ],
)
def test_an_event_naming_two_principals_is_ignored(make_harness: Any, params: dict[str, str]) -> None:
    h = make_harness(people(bob="Deleted"))
    result = run(h, envelope("ims-delete-user-console.json", **{"data.requestParameters": params}))
    assert result.outcome is Outcome.IGNORED and "different principals" in result.reason
    assert not revoked(h)


# --- manual invocations and the blast radius ---------------------------------------------------


def manual(name: str, dry_run: bool = False) -> dict[str, Any]:
    return {
        "action": "revoke",
        "principal": {"type": "RamUser", "name": name},
        "kind": "deleted",
        "dryRun": dry_run,
    }


def test_manual_invocations_are_dry_run_unless_allowed(make_harness: Any) -> None:
    h = make_harness(people())
    result = run(h, manual("alice"))
    assert result.mode == "dry-run" and result.counts["would-revoke"] == 2 and not revoked(h)
    assert "KCGUARD_ALLOW_MANUAL_ENFORCE" in result.reason
    allowed = run(h, manual("alice"), allow_manual_enforce=True)
    assert allowed.mode == "enforce" and allowed.counts["revoked"] == 2


def test_blast_radius_covers_a_whole_batch(make_harness: Any) -> None:
    leavers = [(f"20000000000000090{i}", f"leaver{i}") for i in range(3)]
    clusters = [cluster(f"c{n}", *(kc(uid, name) for uid, name in leavers)) for n in range(3)]
    h = make_harness(world({"cn-hangzhou": clusters}))
    batch = json.dumps([manual(name) for _, name in leavers]).encode()
    rt = h.runtime(account_id=None, allow_manual_enforce=True, max_revocations=5)
    final = handle_event(batch, CONTEXT, runtime=rt)
    assert isinstance(final, BatchResult) and not revoked(h)
    assert [r.outcome for r in final.results] == [Outcome.LIMIT_EXCEEDED] * 3
    assert all("9 revocations in this invocation" in a.reason for r in final.results for a in r.actions)
    # Within the limit, the same batch revokes all nine.
    rt = h.runtime(account_id=None, allow_manual_enforce=True, max_revocations=9)
    handle_event(batch, CONTEXT, runtime=rt)
    assert len(revoked(h)) == 9


# --- summary scope -----------------------------------------------------------------------------


def test_summary_regions_option_only_narrows(make_harness: Any) -> None:
    w = world(
        {
            "cn-hangzhou": [cluster("c1", kc(ALICE, "alice"))],
            "cn-beijing": [cluster("b1", kc(ALICE, "alice"))],
        }
    )
    h = make_harness(w)
    rt = h.runtime(account_id=None, regions=["cn-hangzhou"])
    outcome = handle_summary({"regions": ["cn-beijing", "cn-hangzhou"]}, CONTEXT, runtime=rt)
    assert revoked(h) == {("c1", ALICE)} and h.backend.kubeconfigs("b1")
    assert outcome.report is not None and outcome.report.regions == ["cn-hangzhou"]
    refused = [c for c in outcome.report.skipped_clusters if c.region == "cn-beijing"]
    assert refused and "outside KCGUARD_REGIONS" in refused[0].reason
    assert "cn-beijing" in outcome.reason


# --- error mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, "Forbidden.RAM", "failed"),
        (403, "StatusForbidden", "failed"),
        (400, "NoPermission", "failed"),
        (400, "InvalidParameter.Uid", "failed"),
        (400, "ErrorKubeconfigInUse", "deferred"),
    ],
)
def test_force_false_refusals_defer_but_auth_errors_fail(
    make_harness: Any, status: int, code: str, expected: str
) -> None:
    h = make_harness(people())

    def refuse(backend: FakeAck, op: str, params: dict[str, str]) -> None:
        if op == "CleanClusterUserPermissions":
            raise FakeAckError(status, code, "refused")

    h.backend.hooks.append(refuse)
    rt = h.runtime(account_id=None)
    try:
        result = handle_event(encode(envelope("ims-lock-user.json")), CONTEXT, runtime=rt)
    except RetryableInvocationError as exc:
        result = exc.result
    assert isinstance(result, RevocationResult)
    assert {(a.status.value, a.error_code) for a in result.actions} == {(expected, code)}


def test_the_retryable_error_carries_its_result_and_no_secret(make_harness: Any, monkeypatch: Any) -> None:
    secret = "kcguard-demo-access-key-secret"
    h = make_harness(people())

    def leak(backend: FakeAck, op: str, params: dict[str, str]) -> None:
        if op == "CleanClusterUserPermissions":
            raise FakeAckError(503, "ServiceUnavailable", f"upstream said {secret}")

    h.backend.hooks.append(leak)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
    rt = h.runtime(account_id=None)
    with pytest.raises(RetryableInvocationError) as raised:
        handle_event(encode(envelope("ram-delete-user.json")), CONTEXT, runtime=rt)
    assert isinstance(raised.value.result, RevocationResult)
    assert raised.value.result.counts["failed"] == 2
    assert secret not in str(raised.value) and secret not in raised.value.result.model_dump_json()


# --- property: nothing is ever revoked outside the event's account, principal and state rule ---

STATES = ["Active", "InActive", "Deleted", "active", "Suspended"]
NAMES = ["alice", "bob"]


@st.composite
def worlds_and_events(draw: st.DrawFn) -> tuple[Any, dict[str, Any], set[tuple[str, str]]]:
    clusters = []
    owners: dict[str, tuple[str, str]] = {}  # uid -> (name, state)
    for n in range(draw(st.integers(1, 3))):
        states = []
        for uid, name in ((ALICE, "alice"), (BOB, "bob"), ("200000000000000177", "alice")):
            if draw(st.booleans()):
                state = owners.setdefault(uid, (name, draw(st.sampled_from(STATES))))[1]
                states.append(kc(uid, name, account_state=state, revokable=draw(st.booleans())))
        clusters.append(cluster(f"c{n}", *states))
    w = world({"cn-hangzhou": clusters})
    name = draw(st.sampled_from(NAMES))
    kind = draw(st.sampled_from(["delete", "lock"]))
    account = draw(st.sampled_from([ACCOUNT, ACCOUNT, OTHER, None]))
    domain = draw(st.sampled_from([f"{ACCOUNT}.onaliyun.com", f"{OTHER}.onaliyun.com", "corp.example"]))
    sample = "ims-delete-user-console.json" if kind == "delete" else "ims-lock-user.json"
    params: dict[str, Any] = {"UserPrincipalName": f"{name}@{domain}"}
    if kind == "lock":
        params["Status"] = "Inactive"
    if draw(st.booleans()):
        params["UserId"] = draw(st.sampled_from([ALICE, BOB, "200000000000000177"]))
    event = envelope(
        sample,
        aliyunaccountid=account,
        **{"data.requestParameters": params, "data.userIdentity.accountId": account},
    )
    # What the rules allow at most: this account's event, a UPN of this account (or an alias), and
    # a uid whose ACK state agrees with the event.
    allowed: set[tuple[str, str]] = set()
    agree = {"Deleted"} if kind == "delete" else {"InActive", "Deleted"}
    if account == ACCOUNT and not domain.startswith(OTHER):
        for c in clusters:
            for k in c["kubeconfigs"]:
                by_uid = "UserId" in params and k["account_id"] == params["UserId"]
                by_name = "UserId" not in params and k["account_name"] == name
                if (by_uid or by_name) and k["account_state"] in agree and k["revokable"]:
                    allowed.add((c["cluster_id"], k["account_id"]))
    return w, event, allowed


@hsettings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=worlds_and_events())
def test_nothing_is_revoked_outside_the_rules(inproc_harness: Any, case: Any) -> None:
    w, event, allowed = case
    h = inproc_harness(w)
    result = run(h, event, allow_manual_enforce=False)
    assert revoked(h) <= allowed, (result.reason, [a.reason for a in result.actions])
    if result.outcome is Outcome.OK:
        assert revoked(h) == allowed  # nothing the rules allow is lost either


def test_summary_reconciliation_follows_the_same_state_and_protection_rules(make_harness: Any) -> None:
    """The daily summary revokes orphans with the event path's rules: documented states only, never
    a display-name 'protection', never the root account."""
    states = [
        kc(ALICE, "alice", account_state="Deleted", account_display_name="Break Glass"),
        kc(CAROL, "carol", account_state="InActive"),
        kc("200000000000000104", "dave", account_state="active"),  # undocumented spelling
        kc("200000000000000105", "erin", account_state="Suspended"),
        kc(BOB, "bob", account_state="Active"),
        kc(ACCOUNT, "root", account_type="RootAccount", account_state="Deleted"),
    ]
    h = make_harness(world({"cn-hangzhou": [cluster("c1", *states)]}))
    rt = h.runtime(account_id=None, remediate_locked=True, protected_principals=["Break Glass"])
    outcome = handle_summary(None, CONTEXT, runtime=rt)
    assert revoked(h) == {("c1", ALICE), ("c1", CAROL)}
    assert outcome.report is not None and outcome.report.reconciliation is not None
    skipped = {a.uid: a.reason for a in outcome.report.reconciliation.actions if a.status.value == "skipped"}
    assert "root account" in skipped[ACCOUNT]
