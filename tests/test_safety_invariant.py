"""Safety, round two (issue 16): nothing revoked that ACK's current state and the rules would not
revoke for that principal, whatever an invoker sends; nothing the rules call for abandoned.

Every test runs the real handler and client against the fake ACK, in-process and over its real
HTTP server (``make_harness``), and checks what the fake actually revoked.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.results import RevocationResult
from support.events import sample as envelope
from support.worlds import ACCOUNT, cluster, kc, world

OTHER = "5999999999999999"
ALICE, BOB, CAROL = "200000000000000101", "200000000000000102", "200000000000000103"
CONTEXT = SimpleNamespace(account_id=ACCOUNT, function=SimpleNamespace(timeout=300))


def run(h: Any, event: Any, context: Any = CONTEXT, **settings: Any) -> Any:
    settings.setdefault("account_id", None)  # the context says which account is guarded
    raw = event if isinstance(event, bytes) else json.dumps(event).encode()
    return handle_event(raw, context, runtime=h.runtime(**settings))


def revoked(h: Any) -> set[tuple[str, str]]:
    return {(r.cluster_id, r.uid) for r in h.backend.revocations}


def people(alice: str = "Deleted", bob: str = "Active", carol: str = "InActive") -> Any:
    """Two clusters; alice, bob and carol on both, with the given ACK account states."""
    states = [
        kc(ALICE, "alice", account_state=alice),
        kc(BOB, "bob", account_state=bob),
        kc(CAROL, "carol", account_state=carol),
        kc(ACCOUNT, "root", account_type="RootAccount", account_state="Active", revokable=False),
    ]
    return world({"cn-hangzhou": [cluster("c1", *states), cluster("c2", *states)]})


# --- 1. routed events whose account fields disagree ------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "changes"),
    [
        # this account's envelope around another account's record, routed from that account's bus
        (
            "ram-delete-user.json",
            {"aliyunoriginalaccountid": OTHER, "data.recipientAccountId": OTHER},
        ),
        ("ims-lock-user.json", {"aliyunoriginalaccountid": OTHER, "data.recipientAccountId": OTHER}),
        # routed from another account, every other field ours
        ("ram-delete-user.json", {"aliyunoriginalaccountid": OTHER}),
        ("ims-lock-user.json", {"aliyunoriginalaccountid": OTHER}),
        # the record names another owner than the envelope
        ("ram-delete-user.json", {"data.recipientAccountId": OTHER}),
        ("ims-lock-user.json", {"data.recipientAccountId": OTHER}),
        # an owner field that is not an account id cannot hide another account
        ("ram-delete-user.json", {"aliyunoriginalaccountid": {"id": OTHER}}),
        ("ram-delete-user.json", {"data.recipientAccountId": f"{OTHER}\u0661"}),
    ],
)
def test_account_fields_that_disagree_revoke_nothing(
    make_harness: Any, sample: str, changes: dict[str, Any]
) -> None:
    h = make_harness(people())
    result = run(h, envelope(sample, **changes), mode="enforce")
    assert isinstance(result, RevocationResult)
    assert result.outcome.value == "ignored", result.reason
    assert "not acted on" in result.reason
    if OTHER in changes.values():  # the reason names both accounts
        assert ACCOUNT in result.reason and OTHER in result.reason, result.reason
    else:  # the field that is not an account id
        assert "is not an account id" in result.reason, result.reason
    assert not revoked(h) and h.backend.calls["ListClusterKubeconfigStates"] == 0


def test_an_event_routed_within_the_account_is_acted_on(make_harness: Any) -> None:
    """Same-account routing (default bus to a custom bus) keeps every owner field the same."""
    h = make_harness(people())
    result = run(h, envelope("ram-delete-user.json", aliyunoriginalaccountid=ACCOUNT), mode="enforce")
    assert result.outcome.value == "ok", result.reason
    assert revoked(h) == {("c1", ALICE), ("c2", ALICE)}


# --- 2. the delivery form the trigger sends --------------------------------------------------------


def test_a_bare_record_is_not_what_the_trigger_sends(make_harness: Any) -> None:
    h = make_harness(people())
    record = envelope("ram-delete-user.json")["data"]
    result = run(h, record, mode="enforce")
    assert result.outcome.value == "ignored"
    assert "KCGUARD_EVENT_FORMAT=cloudevents" in result.reason and "bare ActionTrail record" in result.reason
    assert not revoked(h) and h.backend.calls["ListClusterKubeconfigStates"] == 0
    # A function whose trigger sends RawData takes the record, and refuses the envelope instead.
    acted = run(h, record, mode="enforce", event_format="rawdata")
    assert acted.outcome.value == "ok" and revoked(h) == {("c1", ALICE), ("c2", ALICE)}
    wrapped = run(make_harness(people()), envelope("ram-delete-user.json"), event_format="rawdata")
    assert wrapped.outcome.value == "ignored" and "CloudEvents envelope" in wrapped.reason


def test_a_batch_of_bare_records_is_ignored_item_by_item(make_harness: Any) -> None:
    h = make_harness(people())
    record = envelope("ram-delete-user.json")["data"]
    result = run(h, [record, envelope("ims-lock-user.json")], mode="enforce")
    [bare, lock] = result.results
    assert bare.outcome.value == "ignored" and lock.outcome.value == "ok"
    assert revoked(h) == {("c1", CAROL), ("c2", CAROL)}  # only what ACK's state calls for: carol locked
