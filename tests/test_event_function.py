"""The event function end to end: the real handler, the real client, the fake ACK (in-process and HTTP)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.fake import FakeAck, FakeAckError
from kubeconfig_guard.handlers import event_handler, handle_event
from kubeconfig_guard.results import ActionStatus, Outcome, RevocationResult
from kubeconfig_guard.settings import Mode
from support.events import delete_user
from support.resilience import result_of
from support.worlds import ACCOUNT, CALLER, EVENTS, cluster, kc, world

ALICE = "200000000000000011"


def manual(
    name: str | None = "alice", kind: str = "deleted", dry_run: bool = False, **principal: Any
) -> bytes:
    body = {"action": "revoke", "principal": {"type": "RamUser", "name": name, **principal}, "kind": kind}
    body["dryRun"] = dry_run
    return json.dumps(body).encode()


def basic_world() -> Any:
    return world(
        {
            "cn-hangzhou": [
                cluster(
                    "c1",
                    kc(ALICE, "alice"),
                    kc("2002", "bob", account_state="Active"),
                    kc(ACCOUNT, "root", account_type="RootAccount", account_state="Active", revokable=False),
                ),
                cluster("c2", kc(ALICE, "alice"), kc("2003", "carol", account_state="InActive")),
                cluster("c3", kc("2002", "bob", account_state="Active")),
                cluster("c4", kc(ALICE, "alice"), state="deleting"),
            ],
            "cn-beijing": [cluster("b1", kc(ALICE, "alice"))],
        }
    )


def run(h: Any, event: bytes, context: Any = None, **settings: Any) -> RevocationResult:
    result = handle_event(event, context, runtime=h.runtime(**settings))
    assert isinstance(result, RevocationResult)
    return result


def by_cluster(result: RevocationResult) -> dict[str, str]:
    return {a.cluster_id: a.status.value for a in result.actions}


def listed_uids(backend: FakeAck, cluster_id: str) -> set[str]:
    return {k.account_id for k in backend.kubeconfigs(cluster_id)}


def test_deleted_user_is_revoked_everywhere_once(make_harness: Any) -> None:
    h = make_harness(basic_world())
    result = run(h, delete_user())
    assert result.outcome is Outcome.OK and result.mode is Mode.ENFORCE
    assert by_cluster(result) == {"c1": "revoked", "c2": "revoked"}
    assert all(a.force is True for a in result.actions)
    assert result.counts["revoked"] == 2
    assert [(c.cluster_id, c.status.value) for c in result.clusters] == [("c4", "skipped")]
    assert "no working API server" in result.clusters[0].reason
    assert sorted((r.cluster_id, r.uid) for r in h.backend.revocations) == [("c1", ALICE), ("c2", ALICE)]
    assert ALICE not in listed_uids(h.backend, "c1") and "2002" in listed_uids(h.backend, "c1")
    # A region outside KCGUARD_REGIONS is never touched.
    assert ALICE in listed_uids(h.backend, "b1")

    again = run(h, delete_user())  # idempotent: nothing revoked twice, nothing counted twice
    assert again.outcome is Outcome.OK and again.actions == [] and "no kubeconfig found" in again.reason
    assert len(h.backend.revocations) == 2


def test_regions_list_is_respected(make_harness: Any) -> None:
    h = make_harness(basic_world())
    touched: list[str] = []
    h.backend.hooks.append(lambda b, op, p: touched.append(p.get("ClusterId") or p.get("region_id", "")))
    result = run(h, delete_user(), regions=["cn-beijing"])
    assert by_cluster(result) == {"b1": "revoked"}
    assert set(touched) == {"cn-beijing", "b1"}


def test_dry_run_writes_nothing(make_harness: Any) -> None:
    h = make_harness(basic_world())
    result = run(h, delete_user(), mode="dry-run")
    assert result.mode is Mode.DRY_RUN and set(by_cluster(result).values()) == {"would-revoke"}
    assert h.backend.calls["CleanClusterUserPermissions"] == 0 and not h.backend.revocations
    # A manual invocation can ask for dry-run even when the function enforces.
    result = run(h, manual(dry_run=True))
    assert set(by_cluster(result).values()) == {"would-revoke"} and not h.backend.revocations


def test_by_uid_and_by_upn(make_harness: Any) -> None:
    h = make_harness(basic_world())
    by_uid = run(h, manual(name=None, uid=ALICE), allow_manual_enforce=True)
    assert by_cluster(by_uid) == {"c1": "revoked", "c2": "revoked"}
    h = make_harness(basic_world())
    ims = (EVENTS / "ims-delete-user-console.json").read_bytes()
    assert by_cluster(run(h, ims)) == {"c1": "revoked", "c2": "revoked"}


def test_deleted_role(make_harness: Any) -> None:
    role = kc("3009", "old-ops", account_type="RamRole")
    same_name_user = kc("2009", "old-ops")
    h = make_harness(world({"cn-hangzhou": [cluster("c1", role, same_name_user)]}))
    result = run(h, (EVENTS / "ram-delete-role.json").read_bytes())
    assert [(a.uid, a.status.value) for a in result.actions] == [("3009", "revoked")]


def test_name_reuse_keeps_the_new_principal(make_harness: Any) -> None:
    new_bob = kc("2050", "bob", account_state="Active")
    old_bob = kc("2040", "bob", account_state="Deleted")
    h = make_harness(world({"cn-hangzhou": [cluster("c1", new_bob), cluster("c2", old_bob)]}))
    result = run(h, delete_user("bob"))
    assert {(a.cluster_id, a.status.value) for a in result.actions} == {("c1", "skipped"), ("c2", "revoked")}
    skipped = next(a for a in result.actions if a.cluster_id == "c1")
    assert "Active" in skipped.reason and "reused the name" in skipped.reason
    assert "2050" in listed_uids(h.backend, "c1")


def test_locked_user_force_false_is_deferred(make_harness: Any) -> None:
    recent = kc("2003", "carol", account_state="InActive", last_access="2026-11-24T10:00:00Z")
    old = kc("2003", "carol", account_state="InActive", last_access="2026-10-01T10:00:00Z")
    h = make_harness(
        world(
            {
                "cn-hangzhou": [
                    cluster("c1", recent),
                    cluster("c2", old),
                    cluster("c3", kc("2003", "carol", account_state="InActive"), audit_log=False),
                ]
            }
        )
    )
    result = run(h, (EVENTS / "ims-lock-user.json").read_bytes())
    assert by_cluster(result) == {"c1": "deferred", "c2": "revoked", "c3": "deferred"}
    assert all(a.force is False for a in result.actions)
    deferred = next(a for a in result.actions if a.cluster_id == "c1")
    assert deferred.error_code and "Force=false" in deferred.reason
    assert result.outcome is Outcome.OK  # deferred is not a failure: no retry storm
    # With KCGUARD_FORCE_ON_LOCK the same event revokes.
    result = run(h, (EVENTS / "ims-lock-user.json").read_bytes(), force_on_lock=True)
    assert by_cluster(result) == {"c1": "revoked", "c3": "revoked"}


def test_protected_principals_are_never_revoked(make_harness: Any) -> None:
    h = make_harness(world({"cn-hangzhou": [cluster("c1", kc("2100", "breakglass-admin"))]}))
    result = run(h, delete_user("breakglass-admin"), protected_principals=["breakglass-*"])
    assert by_cluster(result) == {"c1": "skipped"} and "protected" in result.actions[0].reason
    assert not h.backend.revocations


def test_blast_radius_limit(make_harness: Any) -> None:
    h = make_harness(world({"cn-hangzhou": [cluster(f"c{i}", kc(ALICE, "alice")) for i in range(4)]}))
    result = run(h, delete_user(), max_revocations=3)
    assert result.outcome is Outcome.LIMIT_EXCEEDED and set(by_cluster(result).values()) == {"skipped"}
    assert h.backend.calls["CleanClusterUserPermissions"] == 0


def test_root_and_caller_are_never_revoked(make_harness: Any) -> None:
    root_as_user = kc(ACCOUNT, "admin", account_type="RamUser")
    caller = kc(CALLER, "kcguard-role", account_type="RamRole")
    h = make_harness(world({"cn-hangzhou": [cluster("c1", root_as_user, caller)]}))
    assert run(h, delete_user("admin")).actions[0].status is ActionStatus.SKIPPED  # account id from the event
    role = json.loads((EVENTS / "ram-delete-role.json").read_text())
    role["data"]["requestParameters"]["RoleName"] = "kcguard-role"
    with pytest.raises(RetryableInvocationError) as raised:
        run(h, json.dumps(role).encode())
    result = raised.value.result
    # No public source names ACK's code for refusing the caller: the refusal is reported with its raw
    # code (failed: a deletion uses Force=true), never taken for a revocation.
    assert result.actions[0].status is ActionStatus.FAILED
    assert (
        result.actions[0].error_code == "ErrorSelfRevokeNotAllowed"
        and "ErrorSelfRevokeNotAllowed" in result.actions[0].reason
    )
    assert not h.backend.revocations


def test_ignored_events_call_nothing(make_harness: Any) -> None:
    h = make_harness(basic_world())
    for name in ("ignored-failed-call.json", "ignored-unlock-user.json", "ignored-create-user.json"):
        result = run(h, (EVENTS / name).read_bytes())
        assert result.outcome is Outcome.IGNORED and result.reason
    assert sum(h.backend.calls.values()) == 0


def test_failed_cluster_finishes_the_rest_then_raises_and_the_retry_completes(make_harness: Any) -> None:
    h = make_harness(basic_world())

    def break_c2(backend: FakeAck, op: str, params: dict[str, str]) -> None:
        if params.get("ClusterId") == "c2":
            raise FakeAckError(503, "ServiceUnavailable", "injected")

    h.backend.hooks.append(break_c2)
    rt = h.runtime()
    with pytest.raises(RetryableInvocationError) as raised:
        handle_event(delete_user(), None, runtime=rt)
    doc = result_of(raised.value)
    assert doc["outcome"] == "partial" and "c2" in {c["cluster_id"] for c in doc["clusters"]}, doc
    assert [(r.cluster_id, r.uid) for r in h.backend.revocations] == [("c1", ALICE)]
    h.backend.hooks.clear()
    result = handle_event(delete_user(), None, runtime=rt)  # Function Compute's retry
    assert isinstance(result, RevocationResult) and by_cluster(result) == {"c2": "revoked"}
    assert sorted(r.cluster_id for r in h.backend.revocations) == ["c1", "c2"]


def test_cluster_deleted_between_listing_and_cleaning(make_harness: Any) -> None:
    h = make_harness(basic_world())

    def delete_c1_before_clean(backend: FakeAck, op: str, params: dict[str, str]) -> None:
        if op == "CleanClusterUserPermissions" and params.get("ClusterId") == "c1":
            backend.delete_cluster("c1")

    h.backend.hooks.append(delete_c1_before_clean)
    result = run(h, delete_user())
    assert by_cluster(result) == {"c1": "skipped", "c2": "revoked"}
    assert "no longer exists" in next(a.reason for a in result.actions if a.cluster_id == "c1")
    assert result.outcome is Outcome.OK


def test_deadline_stops_new_work_and_asks_for_a_retry(make_harness: Any) -> None:
    h = make_harness(basic_world())
    context = SimpleNamespace(function=SimpleNamespace(timeout=1), request_id="r1")
    with pytest.raises(RetryableInvocationError) as raised:
        handle_event(delete_user(), context, runtime=h.runtime(deadline_margin_seconds=5))
    assert "not-attempted" in {c["status"] for c in result_of(raised.value)["clusters"]}
    assert not h.backend.revocations


def test_batch_result(make_harness: Any) -> None:
    h = make_harness(basic_world())
    result = handle_event((EVENTS / "batch.json").read_bytes(), None, runtime=h.runtime())
    assert result.outcome is Outcome.OK
    assert [r.event_name for r in result.results] == ["DeleteUser", "DeleteRole"]  # type: ignore[union-attr]
    assert result.counts["revoked"] == 2


def test_fc_context_credentials_are_used(inproc_harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    h = inproc_harness(basic_world())
    rt = h.runtime()
    creds = SimpleNamespace(
        access_key_id="kcguard-demo-access-key-id",
        access_key_secret="wrong-secret-value",
        security_token="sts-token-value",
    )
    with pytest.raises(RetryableInvocationError) as raised:
        handle_event(delete_user(), SimpleNamespace(credentials=creds), runtime=rt)
    assert "wrong-secret-value" not in str(raised.value) and "sts-token-value" not in str(raised.value)
    assert "SignatureDoesNotMatch" in {c["error_code"] for c in result_of(raised.value)["clusters"]}
    assert not h.backend.revocations


def test_event_handler_returns_json(monkeypatch: pytest.MonkeyPatch, make_harness: Any) -> None:
    from kubeconfig_guard import runtime as runtime_module

    h = make_harness(basic_world())
    previous = runtime_module.install(h.runtime())
    try:
        body = json.loads(event_handler(delete_user(), None))
    finally:
        runtime_module.install(previous)
    assert body["outcome"] == "ok" and body["counts"]["revoked"] == 2 and body["schema_version"] == 1
