"""Event parsing: every sample in events/, malformed input, and fuzzing (never raises, never revokes)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeconfig_guard.admission import Guard, admit
from kubeconfig_guard.events import SUPPORTED_EVENTS, Ignored, RevocationRequest, parse_event
from kubeconfig_guard.models import AccountType
from kubeconfig_guard.principal import EventKind
from kubeconfig_guard.settings import EventFormat
from support.worlds import ACCOUNT, EVENTS

INDEX = json.loads((EVENTS / "index.json").read_text())["samples"]


def test_every_sample_is_indexed() -> None:
    files = {p.name for p in EVENTS.glob("*.json")} - {"index.json"}
    assert files == {s["file"] for s in INDEX}


@pytest.mark.parametrize("sample", INDEX, ids=lambda s: s["file"])
def test_sample_outcome(sample: dict[str, Any]) -> None:
    """Parsed, then admitted for the account the samples belong to (as the handler does)."""
    guard = Guard(account_id=ACCOUNT, enforce=True)
    parsed = [
        admit(p, guard) if isinstance(p, RevocationRequest) else p
        for p in parse_event(
            (EVENTS / sample["file"]).read_bytes(), EventFormat(sample.get("format", "cloudevents"))
        )
    ]
    assert parsed
    if sample["outcome"] == "ok":
        assert all(isinstance(p, RevocationRequest) for p in parsed), parsed
    else:
        assert all(isinstance(p, Ignored) and p.reason for p in parsed), parsed


def _one(name: str) -> Any:
    [parsed] = parse_event((EVENTS / name).read_bytes())
    return parsed


def test_ram_delete_user() -> None:
    req = _one("ram-delete-user.json")
    assert req.kind is EventKind.DELETED and req.principal.type is AccountType.RAM_USER
    assert req.principal.name == "alice" and req.principal.uid is None
    assert req.account_id == "5000000000000001"
    [raw] = parse_event((EVENTS / "ram-delete-user.rawdata.json").read_bytes(), EventFormat.RAWDATA)
    assert isinstance(raw, RevocationRequest) and raw.principal == req.principal


def test_ims_user_principal_name() -> None:
    req = _one("ims-delete-user-console.json")
    assert req.principal.name == "alice"
    assert req.principal.upn == "alice@5000000000000001.onaliyun.com"
    assert _one("ims-delete-user-by-id.json").principal.uid == "200000000000000011"
    assert _one("ims-delete-user-in-recycle-bin.json").kind is EventKind.DELETED


def test_role_and_lock_events() -> None:
    role = _one("ram-delete-role.json")
    assert role.principal.type is AccountType.RAM_ROLE and role.principal.name == "old-ops"
    for name in ("ims-lock-user.json", "ram-delete-login-profile.json", "ims-delete-login-profile.json"):
        req = _one(name)
        assert req.kind is EventKind.LOCKED and req.principal.name == "carol", name


def test_ignored_reasons_are_specific() -> None:
    assert "failed" in _one("ignored-failed-call.json").reason
    assert "Status='Active'" in _one("ignored-unlock-user.json").reason
    assert "not a supported event" in _one("ignored-create-user.json").reason
    assert "AliyunServiceEvent" in _one("ignored-service-event.json").reason
    assert "names no user" in _one("ignored-no-user.json").reason
    assert "timer" in _one("ignored-timer.json").reason


def test_batch_and_manual() -> None:
    batch = parse_event((EVENTS / "batch.json").read_bytes())
    assert [p.principal.name for p in batch] == ["alice", "old-ops"]
    manual = _one("manual-revoke.json")
    assert manual.dry_run is True and manual.event_name == "ManualRevoke"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "empty batch"),
        (b"42", "expected a JSON object"),
        (b'{"eventName": 5}', "malformed event"),
        (b'{"action": "revoke", "principal": {"type": "RamUser"}}', "needs a name or a uid"),
        (b'{"action": "revoke", "principal": {"type": "Root", "name": "x"}}', "malformed event"),
        (
            b'{"action": "revoke", "principal": {"type": "RootAccount", "name": "x"}}',
            "principal.type: Input should be 'RamUser' or 'RamRole'",
        ),
        (
            b'{"action": "revoke", "principal": {"type": 1, "name": "x"}}',
            "Input should be 'RamUser' or 'RamRole'",
        ),
        (b'{"action": "revoke", "principal": {"type": "RamUser", "uid": "1 OR 1=1"}}', "malformed event"),
        (b'{"specversion": "1.0", "type": "x", "data": "nope"}', "malformed event"),
        (b"[" * 100_000 + b"]" * 100_000, "event is"),
        (b'{"hello": "world"}', "not an ActionTrail event"),
    ],
)
def test_malformed_inputs_are_ignored_with_reason(raw: bytes, fragment: str) -> None:
    parsed = parse_event(raw)
    assert all(isinstance(p, Ignored) for p in parsed)
    assert fragment in parsed[0].reason


def test_supported_table_has_unique_rows() -> None:
    keys = [(e.service, e.event_name) for e in SUPPORTED_EVENTS]
    assert len(keys) == len(set(keys)) == 7


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
record_keys = st.sampled_from(
    [
        "eventName",
        "serviceName",
        "requestParameters",
        "errorCode",
        "userIdentity",
        "eventId",
        "referencedResources",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(record_keys, json_values, max_size=6).map(lambda v: json.dumps(v).encode()),
        st.dictionaries(record_keys, json_values, max_size=6).map(
            lambda d: json.dumps(
                {"specversion": "1.0", "type": "ram:ActionTrail:ApiCall", "data": d}
            ).encode()
        ),
    )
)
def test_parser_never_raises(raw: bytes) -> None:
    for parsed in parse_event(raw):
        assert isinstance(parsed, (Ignored, RevocationRequest))
        if isinstance(parsed, RevocationRequest):
            p = parsed.principal
            assert p.name or p.uid or p.upn


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=2000))
def test_truncated_samples_never_raise(noise: bytes, cut: int) -> None:
    raw = (EVENTS / "ims-delete-user-console.json").read_bytes()
    for parsed in parse_event(raw[:cut] + noise):
        assert isinstance(parsed, (Ignored, RevocationRequest))
