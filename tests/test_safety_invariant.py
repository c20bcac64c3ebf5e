"""Safety, round two (issue 16): nothing revoked that ACK's current state and the rules would not
revoke for that principal, whatever an invoker sends; nothing the rules call for abandoned.

Every test runs the real handler and client against the fake ACK, in-process and over its real
HTTP server (``make_harness``), and checks what the fake actually revoked.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kubeconfig_guard.admission import Guard, admit
from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.events import Ignored, RevocationRequest, parse_event
from kubeconfig_guard.handlers import handle_event, handle_summary
from kubeconfig_guard.results import RevocationResult
from support.events import sample as envelope
from support.people import ALICE, BOB, CAROL, CONTEXT, OTHER, people, revoked, run
from support.worlds import ACCOUNT, cluster, kc, world

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


# --- 4. the two-names check over every cluster of the invocation --------------------------------


def test_two_names_on_two_clusters_are_one_conflict(make_harness: Any) -> None:
    """UPN alice@... and UserName bob: alice on c1 only, bob on c2 only. Before any Clean, over all
    listings, the event is seen to name two principals: nothing is revoked."""
    c1 = cluster("c1", kc(ALICE, "alice"))
    c2 = cluster("c2", kc(BOB, "bob"))
    h = make_harness(world({"cn-hangzhou": [c1, c2]}))
    event = envelope(
        "ims-delete-user-console.json",
        **{
            "data.requestParameters.UserPrincipalName": f"alice@{ACCOUNT}.onaliyun.com",
            "data.requestParameters.UserName": "bob",
        },
    )
    result = run(h, event, mode="enforce")
    assert result.outcome.value == "ignored", result.reason
    assert ALICE in result.reason and BOB in result.reason and "different principals" in result.reason
    assert {a.status.value for a in result.actions} == {"skipped"} and not revoked(h)


# --- 5. a past publish time never lets an older listing decide --------------------------------------


@pytest.mark.parametrize("published", ["2020-01-01T00:00:00Z", "2026-11-25T08:30:01.123Z", None])
def test_a_listing_from_before_the_invocation_never_decides(make_harness: Any, published: str | None) -> None:
    """carol was locked (InActive), then unlocked. A lock event (late, retried or crafted, with an
    old publish time) arrives on a warm instance that listed her as InActive before the unlock: the
    revocation is decided on a state read after the invocation started, so nothing is revoked."""
    h = make_harness(people())
    rt = h.runtime(account_id=None, mode="enforce", listing_ttl_seconds=600)
    warm = handle_event(json.dumps(envelope("ram-delete-user.json")).encode(), CONTEXT, runtime=rt)
    assert warm.outcome.value == "ok" and revoked(h) == {("c1", ALICE), ("c2", ALICE)}
    h.backend.update_kubeconfigs(None, CAROL, account_state="Active")  # carol unlocked since
    lock = envelope("ims-lock-user.json", aliyunpublishtime=published)
    result = handle_event(json.dumps(lock).encode(), CONTEXT, runtime=rt)
    assert {(a.cluster_id, a.status.value) for a in result.actions} == {("c1", "skipped"), ("c2", "skipped")}
    assert all("Active on ACK" in a.reason for a in result.actions), result.actions
    assert revoked(h) == {("c1", ALICE), ("c2", ALICE)}  # carol's kubeconfigs still work


# --- 11. protection covers every form matching accepts -----------------------------------------------


@pytest.mark.parametrize(
    "pattern", [f"breakglass@{ACCOUNT}.onaliyun.com", "BreakGlass", "BREAK*", "200000000000000199"]
)
def test_protection_matches_every_form_matching_accepts(make_harness: Any, pattern: str) -> None:
    glass = "200000000000000199"
    h = make_harness(world({"cn-hangzhou": [cluster("c1", kc(glass, "breakglass"), kc(ALICE, "alice"))]}))
    for event in (
        envelope("ram-delete-user.json", **{"data.requestParameters.UserName": "breakglass"}),
        envelope(
            "ims-delete-user-console.json",
            **{"data.requestParameters.UserPrincipalName": f"breakglass@{ACCOUNT}.onaliyun.com"},
        ),
    ):
        result = run(h, event, mode="enforce", protected_principals=[pattern])
        [action] = result.actions
        assert action.status.value == "skipped" and "protected principal" in action.reason
    summary = handle_summary(
        json.dumps({}).encode(), CONTEXT, runtime=h.runtime(mode="enforce", protected_principals=[pattern])
    )
    assert summary.reconciliation.get("revoked") == 1  # alice only
    assert revoked(h) == {("c1", ALICE)}


# --- 12. a batch's outcome is the most urgent of its items' -------------------------------------------


def test_a_batch_whose_items_all_exceed_the_limit_says_so(make_harness: Any) -> None:
    h = make_harness(people())
    batch = [envelope("ram-delete-user.json"), envelope("ims-lock-user.json")]
    result = run(h, batch, mode="enforce", max_revocations=1)
    assert [r.outcome.value for r in result.results] == ["limit-exceeded", "limit-exceeded"]
    assert result.outcome.value == "limit-exceeded" and not revoked(h)
    ignored_and_ok = run(make_harness(people()), [{"triggerTime": "x"}, envelope("ram-delete-user.json")])
    assert ignored_and_ok.outcome.value == "ok"
    all_ignored = run(make_harness(people()), [{"triggerTime": "x"}, {"nothing": 1}])
    assert all_ignored.outcome.value == "ignored"


# --- properties: account fields of every shape; no crafted input revokes beyond the invariant -------

ACCOUNT_VALUES = st.one_of(
    st.none(),
    st.just(""),
    st.just(ACCOUNT),
    st.just(OTHER),
    st.just(int(ACCOUNT)),
    st.just(f" {ACCOUNT}"),
    st.text(max_size=20),
    st.lists(st.just(ACCOUNT), max_size=2),
    st.just({"id": ACCOUNT}),
)


@hsettings(max_examples=300, deadline=None)
@given(
    envelope_account=ACCOUNT_VALUES,
    original=ACCOUNT_VALUES,
    recipient=ACCOUNT_VALUES,
    caller=ACCOUNT_VALUES,
    sample=st.sampled_from(["ram-delete-user.json", "ims-lock-user.json"]),
)
def test_an_event_is_acted_on_only_when_every_owner_field_names_this_account(
    envelope_account: Any, original: Any, recipient: Any, caller: Any, sample: str
) -> None:
    event = envelope(
        sample,
        aliyunaccountid=envelope_account,
        aliyunoriginalaccountid=original,
        **{"data.recipientAccountId": recipient, "data.userIdentity.accountId": caller},
    )
    [parsed] = parse_event(json.dumps(event).encode())
    admitted = (
        admit(parsed, Guard(account_id=ACCOUNT, enforce=True)) if not isinstance(parsed, Ignored) else parsed
    )

    def says(value: Any) -> str | None:
        """What a field says: None when absent or empty, else its plain text (or a junk marker)."""
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return "junk"
        return str(value).strip() if str(value).strip().isascii() and str(value).strip().isdigit() else "junk"

    owners = [says(v) for v in (envelope_account, original, recipient) if says(v) is not None]
    named = owners or ([says(caller)] if says(caller) is not None else [])
    should_act = bool(named) and all(v == ACCOUNT for v in named)
    assert isinstance(admitted, RevocationRequest) is should_act, (named, admitted)
    if isinstance(admitted, RevocationRequest):
        assert admitted.account_id == ACCOUNT


RANDOM_EVENTS = st.fixed_dictionaries(
    {
        "sample": st.sampled_from(
            ["ram-delete-user.json", "ims-lock-user.json", "ims-delete-user-console.json"]
        ),
        "name": st.sampled_from(
            ["alice", "bob", "carol", "root", "Alice", "alice@" + ACCOUNT + ".onaliyun.com"]
        ),
        "uid": st.sampled_from([None, ALICE, BOB, CAROL, ACCOUNT]),
        "original": st.sampled_from([None, ACCOUNT, OTHER]),
        "bare": st.booleans(),
    }
)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(RANDOM_EVENTS, min_size=1, max_size=4))
def test_no_crafted_input_revokes_beyond_the_invariant(
    inproc_harness: Any, events: list[dict[str, Any]]
) -> None:
    """Whatever is sent, only states ACK shows Deleted (or InActive, for a lock) of the named
    principal are revoked: alice (Deleted) by a deletion or a lock, carol (InActive) by a lock; bob
    (Active) and the root account never."""
    h = inproc_harness(people())
    batch = []
    for e in events:
        params = (
            {"UserName": e["name"]}
            if e["sample"] == "ram-delete-user.json"
            else {
                "UserPrincipalName": e["name"] if "@" in e["name"] else f"{e['name']}@{ACCOUNT}.onaliyun.com"
            }
        )
        if e["sample"] == "ims-lock-user.json":
            params["Status"] = "Inactive"
        if e["uid"]:
            params["UserId"] = e["uid"]
        doc = envelope(
            e["sample"], aliyunoriginalaccountid=e["original"], **{"data.requestParameters": params}
        )
        batch.append(doc["data"] if e["bare"] else doc)
    with contextlib.suppress(RetryableInvocationError):
        run(h, batch, mode="enforce", allow_manual_enforce=True)
    # The bound: for each event that may be acted on (the trigger's form, this account), the
    # principal it names, as far as ACK's state calls for it (alice Deleted: any event; carol
    # InActive: a lock only; bob Active and the root account: never).
    allowed: set[tuple[str, str]] = set()
    for e in events:
        if e["bare"] or e["original"] == OTHER:
            continue
        named = {e["name"].split("@", 1)[0], e["uid"]}
        if "alice" in named or ALICE in named:
            allowed |= {("c1", ALICE), ("c2", ALICE)}
        if e["sample"] == "ims-lock-user.json" and ("carol" in named or CAROL in named):
            allowed |= {("c1", CAROL), ("c2", CAROL)}
    assert revoked(h) <= allowed, (revoked(h), allowed)


# --- properties: answers of random shapes and types --------------------------------------------------

JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _bent_states_page(draw: Any) -> Any:
    """A ListClusterKubeconfigStates answer with one part replaced by a value of a random type."""
    states = [
        {
            "account_id": BOB,
            "account_name": "bob",
            "account_type": "RamUser",
            "account_state": "Active",
            "revokable": True,
        },
        {
            "account_id": ALICE,
            "account_name": "alice",
            "account_type": "RamUser",
            "account_state": "Deleted",
            "revokable": True,
        },
    ]
    page: dict[str, Any] = {"states": states, "page": {"page_number": 1, "page_size": 50, "total_count": 2}}
    where = draw(
        st.sampled_from(
            [
                "states",
                "page",
                "state",
                "account_state",
                "account_id",
                "revokable",
                "page_number",
                "code",
                "requestId",
            ]
        )
    )
    # Bent, never into a state that calls for revocation (then the API would say bob is gone).
    value = draw(JSON_VALUES.filter(lambda v: v not in ("Deleted", "InActive")))
    if where in ("states", "page"):
        page[where] = value
    elif where == "state":
        states[0] = value
    elif where in ("account_state", "account_id", "revokable"):
        states[0][where] = value  # bob's record bent: never a reason to revoke him
    elif where == "page_number":
        page["page"]["page_number"] = value
    else:
        page[where] = value
    return page


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_answers_of_any_shape_never_revoke_beyond_the_invariant(
    inproc_harness: Any, data: st.DataObject
) -> None:
    """A states listing answered with random JSON, or the real shape with one part of another type:
    a result always comes back (never a traceback), and at most what ACK's true state calls for is
    revoked (alice, Deleted); bob (Active) and carol (InActive, and this is a deletion) never."""
    from kubeconfig_guard.fake.faults import FaultSpec

    h = inproc_harness(people())
    body = _bent_states_page(data.draw) if data.draw(st.booleans()) else data.draw(JSON_VALUES)
    h.backend.faults.set(
        "ListClusterKubeconfigStates",
        FaultSpec(
            answer_status=200, answer_body=json.dumps(body), answer_limit=data.draw(st.integers(1, 12))
        ),
    )
    try:
        result = run(
            h, envelope("ram-delete-user.json", **{"data.requestParameters.UserName": "bob"}), mode="enforce"
        )
        outcome = result.outcome.value
    except RetryableInvocationError as retry:
        outcome = retry.result.outcome.value
    assert outcome in ("ok", "partial", "ignored")
    assert not revoked(h)  # bob is Active on ACK: no answer of any shape revokes him
    with contextlib.suppress(RetryableInvocationError):
        run(h, envelope("ram-delete-user.json"), mode="enforce")
    assert revoked(h) <= {("c1", ALICE), ("c2", ALICE)}
