"""The fake ACK's state and business rules through its typed operations (no HTTP, no strings).

Decoding a request's strings and shaping the JSON answer are the wire layer's: tests/test_fake_wire.py.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields
from pathlib import Path

import pytest

from kubeconfig_guard.fake import FakeAck, FakeAckError, dump_world, generate_world, load_world
from kubeconfig_guard.fake.backend import CleanOutcome, DescribedCluster, ListedKubeconfig
from kubeconfig_guard.fake.testing import kubeconfig
from kubeconfig_guard.fake.world import STATE_FIELDS, parse_world_time

EXAMPLE_WORLD = Path(__file__).resolve().parent.parent / "examples" / "world.json"
TOM, ANN, JIM = "200000000000000001", "200000000000000002", "200000000000000003"


def error_of(excinfo: pytest.ExceptionInfo[FakeAckError]) -> tuple[int, str, str]:
    return excinfo.value.status, excinfo.value.code, excinfo.value.message


def names_on(backend: FakeAck, cluster_id: str) -> list[str]:
    return [k.account_name for k in backend.list_kubeconfig_states(cluster_id).states]


# --- ListClusterKubeconfigStates -------------------------------------------------------


def test_list_defaults_to_page_1_of_10(backend: FakeAck) -> None:
    page = backend.list_kubeconfig_states("c-big")
    assert (page.page_number, page.page_size, page.total_count) == (1, 10, 123)
    assert [k.account_name for k in page.states] == [f"user-{i:03d}" for i in range(10)]


def test_list_pages_cover_every_state_once(backend: FakeAck) -> None:
    names: list[str] = []
    for number in range(1, 4):
        names += [k.account_name for k in backend.list_kubeconfig_states("c-big", number, 50).states]
    assert len(names) == 123 == len(set(names))
    past_the_end = backend.list_kubeconfig_states("c-big", 4, 50)
    assert past_the_end.states == () and past_the_end.total_count == 123


@pytest.mark.parametrize(
    ("page_number", "page_size", "message"),
    [
        (0, 10, "pageNumber must be >= 1, got 0"),
        (1, 9, "pageSize must be between 10 and 50, got 9"),
        (1, 51, "pageSize must be between 10 and 50, got 51"),
    ],
)
def test_list_refuses_pages_outside_the_documented_bounds(
    backend: FakeAck, page_number: int, page_size: int, message: str
) -> None:
    with pytest.raises(FakeAckError) as excinfo:
        backend.list_kubeconfig_states("c-big", page_number, page_size)
    assert error_of(excinfo) == (400, "InvalidParameter", message)


def test_list_returns_snapshots_of_every_documented_field(backend: FakeAck) -> None:
    assert tuple(field.name for field in fields(ListedKubeconfig)) == STATE_FIELDS  # never last_access
    first = backend.list_kubeconfig_states("c-prod").states[0]
    assert first == ListedKubeconfig(
        account_id=TOM,
        account_name="tom",
        account_display_name="tom",
        account_type="RamUser",
        account_state="Active",
        cert_expire_time="2027-07-15T01:32:20Z",
        cert_state="Unexpired",
        revokable=True,
    )
    first.account_state = "Deleted"  # a snapshot: the fake's state does not change
    assert backend.list_kubeconfig_states("c-prod").states[0].account_state == "Active"


# --- DescribeClustersV1 ----------------------------------------------------------------


def test_describe_filters_by_region(backend: FakeAck) -> None:
    hangzhou = backend.describe_clusters("cn-hangzhou")
    assert [c.cluster_id for c in hangzhou.clusters] == ["c-prod", "c-noaudit", "c-big"]
    assert {c.region_id for c in hangzhou.clusters} == {"cn-hangzhou"}
    assert (hangzhou.page_number, hangzhou.page_size, hangzhou.total_count) == (1, 10, 3)
    assert backend.describe_clusters().total_count == backend.describe_clusters("").total_count == 4
    assert backend.describe_clusters("eu-central-1").clusters == ()


def test_describe_returns_stored_extra_fields_but_not_private_ones(backend: FakeAck) -> None:
    prod = backend.describe_clusters("cn-hangzhou").clusters[0]
    assert prod == DescribedCluster(
        cluster_id="c-prod",
        name="prod",
        region_id="cn-hangzhou",
        cluster_type="ManagedKubernetes",
        state="running",
        extra={"vpc_id": "vpc-prod"},
    )


def test_describe_pages(backend: FakeAck) -> None:
    first = backend.describe_clusters(None, 1, 3)
    second = backend.describe_clusters(None, 2, 3)
    assert [c.cluster_id for c in first.clusters + second.clusters] == [
        "c-prod",
        "c-noaudit",
        "c-big",
        "c-sg",
    ]
    assert (second.page_number, second.page_size, second.total_count) == (2, 3, 4)


@pytest.mark.parametrize(
    ("page_number", "page_size", "message"),
    [
        (1, 0, "page_size must be between 1 and 100, got 0"),
        (1, 101, "page_size must be between 1 and 100, got 101"),
        (0, 10, "page_number must be >= 1, got 0"),
    ],
)
def test_describe_refuses_pages_outside_the_documented_bounds(
    backend: FakeAck, page_number: int, page_size: int, message: str
) -> None:
    with pytest.raises(FakeAckError) as excinfo:
        backend.describe_clusters(None, page_number, page_size)
    assert error_of(excinfo) == (400, "InvalidParameter", message)


# --- unknown clusters -------------------------------------------------------------------


def test_unknown_cluster_is_404_before_paging_is_judged(backend: FakeAck) -> None:
    for call in (
        lambda: backend.list_kubeconfig_states("c-nope"),
        lambda: backend.list_kubeconfig_states("c-nope", 0, 9),
        lambda: backend.clean_user_permissions("c-nope", TOM, force=True),
        lambda: backend.require_cluster("c-nope"),
    ):
        with pytest.raises(FakeAckError) as excinfo:
            call()
        assert error_of(excinfo) == (404, "ErrorClusterNotFound", "cluster c-nope not found")
    backend.require_cluster("c-prod")  # a known cluster: no error
    assert [c.outcome for c in backend.clean_calls] == ["ErrorClusterNotFound"]


def test_deleted_cluster_is_404_and_gone_from_describe(backend: FakeAck) -> None:
    backend.delete_cluster("c-prod")
    with pytest.raises(FakeAckError) as excinfo:
        backend.clean_user_permissions("c-prod", TOM, True)
    assert error_of(excinfo)[:2] == (404, "ErrorClusterNotFound")
    assert "c-prod" not in [c.cluster_id for c in backend.describe_clusters().clusters]


# --- CleanClusterUserPermissions ---------------------------------------------------------


def test_clean_removes_from_listing_into_recycle_bin(backend: FakeAck) -> None:
    outcome = backend.clean_user_permissions("c-prod", TOM, force=True)
    assert outcome == CleanOutcome("c-prod", TOM, True, revoked=1) and outcome.outcome == "revoked"
    assert names_on(backend, "c-prod") == ["ann", "root", "jim"]
    [revoked] = backend.recycle_bin("c-prod")
    assert (revoked.account_id, revoked.force, revoked.revoked_at) == (TOM, True, "2026-11-25T00:00:00Z")
    assert [(r.cluster_id, r.uid, r.force, r.revoked) for r in backend.revocations] == [
        ("c-prod", TOM, True, 1)
    ]
    # Other clusters keep tom's kubeconfig.
    assert [k.account_id for k in backend.list_kubeconfig_states("c-sg").states] == [TOM]


def test_force_false_refuses_recent_access(backend: FakeAck) -> None:
    with pytest.raises(FakeAckError) as excinfo:
        backend.clean_user_permissions("c-prod", TOM)  # Force defaults to false, as in ACK
    assert error_of(excinfo)[:2] == (400, "ErrorKubeconfigInUse")
    assert backend.revocations == []
    assert backend.clean_calls[-1].outcome == "ErrorKubeconfigInUse"
    # Five days later the last access (2 days before "now") is outside the 7-day window.
    backend.advance(5 * 86400 + 1)
    assert backend.clean_user_permissions("c-prod", TOM, force=False).revoked == 1
    assert backend.revocations[-1].uid == TOM


def test_force_false_allows_old_access(backend: FakeAck) -> None:
    backend.clean_user_permissions("c-prod", ANN, force=False)
    assert [r.uid for r in backend.revocations] == [ANN]


def test_force_false_refuses_when_audit_log_unreadable(backend: FakeAck) -> None:
    with pytest.raises(FakeAckError) as excinfo:
        backend.clean_user_permissions("c-noaudit", ANN, force=False)
    assert error_of(excinfo)[:2] == (400, "ErrorAuditLogUnavailable")
    assert backend.list_kubeconfig_states("c-noaudit").total_count == 1


def test_force_true_skips_the_access_check(backend: FakeAck) -> None:
    backend.clean_user_permissions("c-noaudit", ANN, force=True)
    backend.clean_user_permissions("c-prod", TOM, force=True)
    assert [(r.cluster_id, r.uid) for r in backend.revocations] == [("c-noaudit", ANN), ("c-prod", TOM)]


def test_root_account_is_refused(backend: FakeAck) -> None:
    with pytest.raises(FakeAckError) as excinfo:
        backend.clean_user_permissions("c-prod", "5000000000000001", force=True)
    assert error_of(excinfo)[:2] == (400, "ErrorRootAccountNotAllowed")
    # A RootAccount state under another uid is refused too.
    backend.add_kubeconfig("c-big", kubeconfig("5999999999999999", "other-root", account_type="RootAccount"))
    with pytest.raises(FakeAckError) as excinfo:
        backend.clean_user_permissions("c-big", "5999999999999999", force=True)
    assert error_of(excinfo)[:2] == (400, "ErrorRootAccountNotAllowed")
    assert "Alibaba Cloud account" in excinfo.value.message


def test_caller_is_refused(backend: FakeAck) -> None:
    backend.add_kubeconfig("c-prod", kubeconfig("300000000000000001", "kcguard", account_type="RamRole"))
    with pytest.raises(FakeAckError) as excinfo:
        backend.clean_user_permissions("c-prod", "300000000000000001", force=True)
    assert error_of(excinfo)[:2] == (400, "ErrorSelfRevokeNotAllowed")
    assert backend.revocations == []


def test_clean_with_nothing_issued_is_an_idempotent_noop(backend: FakeAck) -> None:
    first = backend.clean_user_permissions("c-prod", ANN, force=True)
    again = backend.clean_user_permissions("c-prod", ANN, force=True)
    never = backend.clean_user_permissions("c-noaudit", "299999999999999999", force=False)
    assert (first.revoked, again.revoked, never.revoked) == (1, 0, 0)
    assert (again.outcome, never.outcome) == ("noop", "noop")
    assert len(backend.revocations) == 1
    assert [c.outcome for c in backend.clean_calls] == ["revoked", "noop", "noop"]


def test_not_revokable_kubeconfigs_stay(backend: FakeAck) -> None:
    assert backend.clean_user_permissions("c-prod", JIM, force=True).revoked == 0
    assert JIM in [k.account_id for k in backend.list_kubeconfig_states("c-prod").states]
    assert backend.revocations == []


def test_typed_operations_run_no_hooks(backend: FakeAck) -> None:
    seen: list[str] = []
    backend.hooks.append(lambda b, operation, params: seen.append(operation))
    backend.describe_clusters()
    backend.list_kubeconfig_states("c-prod")
    backend.clean_user_permissions("c-prod", ANN, force=True)
    assert seen == []  # hooks belong to requests: the wire layer runs them (tests/test_fake_wire.py)


def test_mutators_change_later_reads(backend: FakeAck) -> None:
    backend.add_kubeconfig("c-prod", {"account_id": "200000000000000009", "account_name": "new"}, index=0)
    assert names_on(backend, "c-prod")[0] == "new"
    assert backend.remove_kubeconfig("c-prod", "200000000000000009") == 1
    assert backend.update_kubeconfigs(None, TOM, account_state="Deleted") == 2
    assert {k.account_state for k in backend.list_kubeconfig_states("c-sg").states} == {"Deleted"}
    backend.set_cluster_state("c-prod", "updating")
    assert backend.describe_clusters("cn-hangzhou").clusters[0].state == "updating"
    backend.set_audit_log("c-prod", False)
    with pytest.raises(FakeAckError):
        backend.clean_user_permissions("c-prod", ANN, force=False)


# --- world files -------------------------------------------------------------------------


def test_dump_and_load_round_trip(backend: FakeAck, tmp_path: Path) -> None:
    backend.clean_user_permissions("c-prod", TOM, force=True)
    path = tmp_path / "world.json"
    dump_world(backend.to_world(), path)
    raw = json.loads(path.read_text())
    prod = raw["regions"]["cn-hangzhou"]["clusters"][0]
    assert prod["recycle_bin"][0]["account_id"] == TOM
    assert prod["recycle_bin"][0]["force"] is True
    assert raw["now"] == "2026-11-25T00:00:00Z"
    reloaded = FakeAck(load_world(path))
    assert reloaded.to_world() == backend.to_world()
    assert names_on(reloaded, "c-prod") == ["ann", "root", "jim"]


def test_generate_world_is_reproducible_and_realistic() -> None:
    kwargs = {
        "regions": ["cn-hangzhou", "cn-shanghai"],
        "clusters_per_region": 10,
        "kubeconfigs_per_cluster": 30,
        "deleted_user": "alice",
        "deleted_user_clusters": 4,
    }
    world = generate_world(7, **kwargs)  # type: ignore[arg-type]
    assert world == generate_world(7, **kwargs)  # type: ignore[arg-type]
    assert world != generate_world(8, **kwargs)  # type: ignore[arg-type]
    clusters = [c for r in world.regions.values() for c in r.clusters]
    states = [k for c in clusters for k in c.kubeconfigs]
    assert len(clusters) == 20
    alice = [(c, k) for c in clusters for k in c.kubeconfigs if k.account_name == "alice"]
    assert len(alice) == 4 and len({k.account_id for _, k in alice}) == 1
    assert all(c.state == "running" for c, _ in alice)
    assert all(
        (k.account_type, k.account_state, k.revokable) == ("RamUser", "Deleted", True) for _, k in alice
    )
    mix = Counter((k.account_type, k.account_state, k.cert_state) for k in states)
    assert {t for t, _, _ in mix} == {"RamUser", "RamRole", "RootAccount"}
    assert {s for _, s, _ in mix} == {"Active", "InActive", "Deleted"}
    assert {c for _, _, c in mix} == {"Unexpired", "Expired", "Unknown"}
    assert {c.audit_log for c in clusters} == {True, False}
    assert any(c.state != "running" for c in clusters)
    assert any(not k.revokable for k in states if k.account_type != "RootAccount")
    now = parse_world_time(world.now or "")
    accesses = [parse_world_time(k.last_access) for k in states if k.last_access]
    assert any((now - a).days < 7 for a in accesses) and any((now - a).days > 30 for a in accesses)
    assert any(k.last_access is None for k in states)
    for k in states:
        if k.account_type == "RootAccount":
            assert k.account_id == world.account_id
        else:
            assert len(k.account_id) in (18, 19) and k.account_id.isdigit()
            assert k.account_id != world.caller_uid
    expiries = [parse_world_time(k.cert_expire_time) for k in states if k.cert_expire_time]
    assert min(expiries) < now < max(expiries)


def test_generate_world_refuses_more_deleted_clusters_than_running() -> None:
    with pytest.raises(ValueError, match="running"):
        generate_world(
            1,
            regions=["cn-hangzhou"],
            clusters_per_region=2,
            kubeconfigs_per_cluster=5,
            deleted_user="x",
            deleted_user_clusters=3,
        )


def test_example_world_has_the_documented_cases() -> None:
    world = load_world(EXAMPLE_WORLD)
    assert (world.account_id, world.caller_uid) == ("5000000000000001", "300000000000000001")
    assert {r: len(v.clusters) for r, v in world.regions.items()} == {"cn-hangzhou": 3, "ap-southeast-1": 1}
    clusters = [c for r in world.regions.values() for c in r.clusters]
    assert [c.state for c in world.regions["cn-hangzhou"].clusters].count("deleting") == 1
    by_name: dict[str, set[tuple[str, str, str]]] = {}
    for c in clusters:
        for k in c.kubeconfigs:
            by_name.setdefault(k.account_name, set()).add((k.account_id, k.account_type, k.account_state))
    alice_clusters = [c for c in clusters if any(k.account_name == "alice" for k in c.kubeconfigs)]
    assert len(alice_clusters) == 2 and all(c.state == "running" for c in alice_clusters)
    assert by_name["alice"] == {("200000000000000101", "RamUser", "Deleted")}
    assert {s for _, _, s in by_name["bob"]} == {"Active"}
    assert {s for _, _, s in by_name["carol"]} == {"InActive"}
    assert {(t, s) for _, t, s in by_name["ci-deployer"]} == {("RamRole", "Active")}
    assert {(t, s) for _, t, s in by_name["old-ops"]} == {("RamRole", "Deleted")}
    assert {(t, s) for _, t, s in by_name["dave"]} == {("RamUser", "Active"), ("RamUser", "Deleted")}
    assert len({uid for uid, _, _ in by_name["dave"]}) == 2
    assert "breakglass-admin" in by_name
    root_states = [k for c in clusters for k in c.kubeconfigs if k.account_type == "RootAccount"]
    assert root_states and all(k.account_id == world.account_id and not k.revokable for k in root_states)
    backend = FakeAck(world)
    assert backend.describe_clusters().total_count == 4
