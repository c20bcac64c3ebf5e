"""Organization mode's pure rules: KCGUARD_ACCOUNTS, the roster, which events are whose, the session."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from kubeconfig_guard.accounts import (
    MEMBER_STATUSES,
    AccountEntry,
    AccountsMode,
    AccountsSpecError,
    GuardedAccount,
    Member,
    not_guarded,
    parse_accounts,
    role_session_name,
    roster,
    session_policy,
)
from kubeconfig_guard.api import OPERATIONS
from kubeconfig_guard.events import Ignored, RevocationRequest, parse_event
from kubeconfig_guard.settings import Settings

CENTRAL = "5000000000000001"
PROD = "1300000000000001"
STAGING = "1300000000000002"


def test_self_is_the_default_and_unchanged() -> None:
    spec = Settings().accounts_spec()
    assert spec.mode is AccountsMode.SELF and not spec.organization
    assert roster(spec, CENTRAL, "kubeconfig-guard-member").accounts == [
        GuardedAccount(CENTRAL, "central account", None)
    ]
    assert not_guarded(spec, CENTRAL, CENTRAL) is None
    assert not_guarded(spec, PROD, CENTRAL) == f"event from account {PROD}; this function guards {CENTRAL}"


def test_an_explicit_list_with_roles_and_regions() -> None:
    spec = parse_accounts(f"{PROD}:ops-role@cn-hangzhou+cn-shanghai, {STAGING}, {CENTRAL}@cn-beijing", [])
    assert spec.mode is AccountsMode.LIST
    assert spec.entries == (
        AccountEntry(PROD, "ops-role", ("cn-hangzhou", "cn-shanghai")),
        AccountEntry(STAGING, None, ()),
        AccountEntry(CENTRAL, None, ("cn-beijing",)),
    )
    found = roster(spec, CENTRAL, "kubeconfig-guard-member")
    assert found.accounts == [
        GuardedAccount(CENTRAL, "central account", None, ("cn-beijing",)),
        GuardedAccount(PROD, "", "ops-role", ("cn-hangzhou", "cn-shanghai")),
        GuardedAccount(STAGING, "", "kubeconfig-guard-member", ()),
    ]
    assert found.accounts[1].role_arn == f"acs:ram::{PROD}:role/ops-role"
    assert found.accounts[0].role_arn is None  # the central account: the function's own role
    assert not_guarded(spec, "1300000000000009", CENTRAL) is not None
    assert not_guarded(spec, STAGING, CENTRAL) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("13000x", "is not an account id"),
        (f"{PROD}:bad role", "is not a RAM role name"),
        (f"{PROD}@Not_A_Region", "is not a region id"),
        (f"{PROD},{PROD}", "listed twice"),
        (",,", "no account listed"),
        (f"{PROD}:", "is not a RAM role name"),
    ],
)
def test_a_bad_list_is_a_clear_error(value: str, message: str) -> None:
    with pytest.raises(AccountsSpecError, match=message):
        parse_accounts(value, [])
    with pytest.raises(ValidationError, match=message):
        Settings(accounts=value, member_external_id="x")


def test_organization_mode_requires_an_external_id_and_never_shows_the_settings() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(accounts="resource-directory", slack_webhook="https://hooks.slack.com/services/T0/B0/SECRET")
    assert "KCGUARD_MEMBER_EXTERNAL_ID" in str(caught.value)
    assert "SECRET" not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        Settings(accounts="12x", member_external_id="the-external-id-value")
    assert "the-external-id-value" not in str(caught.value)
    assert Settings(accounts="resource-directory", member_external_id="e").accounts_spec().organization


def test_bad_exclude_list() -> None:
    with pytest.raises(AccountsSpecError, match="KCGUARD_ACCOUNTS_EXCLUDE"):
        parse_accounts("resource-directory", ["12", "abc"])


def test_the_resource_directory_roster() -> None:
    spec = parse_accounts("resource-directory", [STAGING])
    members = [
        Member(PROD, "prod", "CreateSuccess"),
        Member(STAGING, "staging", "InviteSuccess"),
        Member("1300000000000003", "joining", "CreateVerifying"),
        Member("1300000000000004", "odd", "SomethingNew"),
        Member(CENTRAL, "management", "CreateSuccess"),  # listed or not: guarded once, with its own role
        Member("1300000000000005", "upgrading", "PromoteVerifying"),
    ]
    found = roster(spec, CENTRAL, "kubeconfig-guard-member", members)
    assert [(a.account_id, a.role_name) for a in found.accounts] == [
        (CENTRAL, None),
        (PROD, "kubeconfig-guard-member"),
        ("1300000000000005", "kubeconfig-guard-member"),
    ]
    reasons = {s.account_id: s.reason for s in found.skipped}
    assert reasons[STAGING] == "excluded by KCGUARD_ACCOUNTS_EXCLUDE"
    assert "'CreateVerifying' is not a member's" in reasons["1300000000000003"]
    assert "'SomethingNew'" in reasons["1300000000000004"]
    assert not_guarded(spec, STAGING, CENTRAL) == f"account {STAGING} is excluded by KCGUARD_ACCOUNTS_EXCLUDE"
    # Without the member list (it could not be read), the central account is still guarded.
    assert [a.account_id for a in roster(spec, CENTRAL, "m", None).accounts] == [CENTRAL]


def test_member_statuses_are_the_documented_ones() -> None:
    assert {"CreateSuccess", "InviteSuccess", "PromoteSuccess"} <= MEMBER_STATUSES
    assert not {"CreateVerifying", "CreateFailed", "CreateExpired", "CreateCancelled"} & MEMBER_STATUSES


def test_the_session_policy_allows_exactly_the_ack_calls() -> None:
    policy = json.loads(session_policy())
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {a for op in OPERATIONS for a in op.ram_actions}
    assert not any(a.startswith("sts:") or a.startswith("resourcemanager:") for a in statement["Action"])
    assert len(session_policy()) <= 2048  # STS: a session Policy of at most 2,048 characters


@pytest.mark.parametrize(
    ("function", "invocation", "expected"),
    [
        ("kubeconfig-guard-event", "1-abc/def", "kcguard.kubeconfig-guard-event.1-abc-def"),
        ("", None, "kcguard.local.local"),
        ("f" * 100, "x", ("kcguard." + "f" * 100)[:64]),
    ],
)
def test_role_session_names_follow_sts_rules(function: str, invocation: str | None, expected: str) -> None:
    name = role_session_name(function, invocation)
    assert name == expected
    assert 2 <= len(name) <= 64


# --- routed events ---------------------------------------------------------------------------


def routed(owner: str, *, published_in: str, recipient: str | None = None) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": "ev-1",
        "source": "acs.ram",
        "type": "ram:ActionTrail:ApiCall",
        "aliyunaccountid": published_in,
        "aliyunoriginalaccountid": owner,
        "data": {
            "eventId": "rec-1",
            "eventName": "DeleteUser",
            "eventType": "ApiCall",
            "serviceName": "Ram",
            "eventSource": "ram.aliyuncs.com",
            "recipientAccountId": recipient or owner,
            "userIdentity": {"accountId": owner, "type": "root-account"},
            "requestParameters": {"UserName": "leaver"},
        },
    }


def test_a_routed_event_is_its_source_accounts_when_the_receiver_is_named() -> None:
    (parsed,) = parse_event(routed(PROD, published_in=CENTRAL), receiving_account=CENTRAL)
    assert isinstance(parsed, RevocationRequest) and parsed.account_id == PROD
    # In self mode (no receiving account) the same event's fields disagree: ignored, as before.
    (parsed,) = parse_event(routed(PROD, published_in=CENTRAL))
    assert isinstance(parsed, Ignored) and "disagree" in parsed.reason


@pytest.mark.parametrize(
    ("published_in", "recipient"),
    [(STAGING, PROD), (CENTRAL, STAGING), (PROD, STAGING)],
)
def test_a_routed_event_whose_fields_disagree_is_ignored(published_in: str, recipient: str) -> None:
    (parsed,) = parse_event(
        routed(PROD, published_in=published_in, recipient=recipient), receiving_account=CENTRAL
    )
    assert isinstance(parsed, Ignored) and "disagree" in parsed.reason
