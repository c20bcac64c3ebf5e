"""The fake cloud of an organization: STS AssumeRole, Resource Manager ListAccounts, ACK per account.

Through the real HTTP server with the official SDKs (alibabacloud-sts20150401,
alibabacloud-resourcemanager20200331, alibabacloud-cs20151215: the reference clients), and in
process with requests signed by ``fake.testing`` (``signed_rpc``, ``signed_request``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeconfig_guard import api
from kubeconfig_guard.credentials import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from kubeconfig_guard.fake import (
    FakeAck,
    FakeAckServer,
    FakeAckTransport,
    FakeCloud,
    FaultSpec,
    RoleRecord,
    World,
    dump_world,
    generate_organization,
    generate_world,
    load_world,
)
from kubeconfig_guard.fake.cloudwire import handle
from kubeconfig_guard.fake.testing import (
    CENTRAL_ID,
    EXTERNAL_ID,
    LEAVER,
    MEMBER_ROLE,
    OUTSIDER_ID,
    OUTSIDER_KEY,
    PROD_ADMIN_KEY,
    PROD_ID,
    SANDBOX_ID,
    STAGING_ID,
    STAGING_LEAVER,
    member_role,
    signed_request,
    signed_rpc,
    small_organization,
)
from kubeconfig_guard.fake.world import member_account_id, parse_world_time, role_arn
from support.harness import fake_ack_process

pytestmark = pytest.mark.usefixtures("demo_env")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ORGANIZATION = ROOT / "examples" / "organization.json"
PROD_ROLE = role_arn(PROD_ID, MEMBER_ROLE)
RPC_ERROR_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}
ACK_ERROR_KEYS = {"code", "message", "requestId", "status"}


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud(small_organization())


@pytest.fixture
def org_server(cloud: FakeCloud) -> Iterator[FakeAckServer]:
    with FakeAckServer(cloud) as running:
        yield running


# --- the official SDKs, over the real HTTP server ------------------------------------------------


def sdk_config(server: FakeAckServer, key: str, secret: str, token: str | None = None) -> Any:
    from alibabacloud_tea_openapi.models import Config

    return Config(
        access_key_id=key,
        access_key_secret=secret,
        security_token=token,
        endpoint=f"127.0.0.1:{server.port}",
        protocol="http",
        read_timeout=5000,
        connect_timeout=2000,
    )


def sts_client(
    server: FakeAckServer, key: str = DEMO_ACCESS_KEY_ID, secret: str = DEMO_ACCESS_KEY_SECRET
) -> Any:
    from alibabacloud_sts20150401.client import Client

    return Client(sdk_config(server, key, secret))


def rm_client(
    server: FakeAckServer,
    key: str = DEMO_ACCESS_KEY_ID,
    secret: str = DEMO_ACCESS_KEY_SECRET,
    token: str | None = None,
) -> Any:
    from alibabacloud_resourcemanager20200331.client import Client

    return Client(sdk_config(server, key, secret, token))


def cs_client(server: FakeAckServer, credentials: Any) -> Any:
    from alibabacloud_cs20151215.client import Client

    return Client(
        sdk_config(
            server, credentials.access_key_id, credentials.access_key_secret, credentials.security_token
        )
    )


def sdk_assume(
    server: FakeAckServer,
    role: str = PROD_ROLE,
    *,
    external_id: str | None = EXTERNAL_ID,
    duration: int | None = None,
    policy: str | None = None,
    key: str = DEMO_ACCESS_KEY_ID,
    secret: str = DEMO_ACCESS_KEY_SECRET,
) -> Any:
    from alibabacloud_sts20150401 import models as sts_models

    request = sts_models.AssumeRoleRequest(
        role_arn=role,
        role_session_name="kcguard-event.req-1@test",
        external_id=external_id,
        duration_seconds=duration,
        policy=policy,
    )
    return sts_client(server, key, secret).assume_role(request)


def sdk_error(call: Any) -> Any:
    """The official SDK's exception for a refused call (its code, status and parsed answer)."""
    with pytest.raises(Exception) as raised:
        call()
    return raised.value


def test_official_sts_sdk_assumes_a_member_role_and_cs_sdk_sees_only_that_member(
    cloud: FakeCloud, org_server: FakeAckServer
) -> None:
    from alibabacloud_cs20151215 import models as cs_models

    before = cloud.clock.now()
    response = sdk_assume(org_server, duration=1800)
    assert response.status_code == 200
    body = response.body
    creds = body.credentials
    assert creds.access_key_id.startswith("STS.") and creds.access_key_secret and creds.security_token
    assert body.assumed_role_user.arn == f"acs:ram::{PROD_ID}:role/{MEMBER_ROLE}/kcguard-event.req-1@test"
    assert body.assumed_role_user.assumed_role_id.endswith(":kcguard-event.req-1@test")
    assert body.request_id
    expiration = parse_world_time(creds.expiration)
    assert 1790 <= (expiration - before).total_seconds() <= 1810
    [session] = cloud.sessions()
    assert (session.account_id, session.access_key_id, session.caller_arn) == (
        PROD_ID,
        creds.access_key_id,
        role_arn(CENTRAL_ID, "kubeconfig-guard-event"),
    )

    cs = cs_client(org_server, creds)
    clusters = cs.describe_clusters_v1(cs_models.DescribeClustersV1Request()).body.clusters
    assert (
        sorted(c.cluster_id for c in clusters)
        == sorted(cloud.account(PROD_ID).cluster_ids())
        == [
            "c-prod-a",
            "c-prod-b",
        ]
    )
    states = cs.list_cluster_kubeconfig_states(
        "c-prod-a", cs_models.ListClusterKubeconfigStatesRequest()
    ).body
    assert [s.account_id for s in states.states] == [LEAVER, "200000000000000701"]
    cs.clean_cluster_user_permissions(
        "c-prod-a", LEAVER, cs_models.CleanClusterUserPermissionsRequest(force=True)
    )
    assert [(r.cluster_id, r.uid) for r in cloud.account(PROD_ID).revocations] == [("c-prod-a", LEAVER)]
    # The member's token reached the member's ACK only.
    calls = cloud.calls_by_account()
    assert calls[PROD_ID] == {
        "DescribeClustersV1": 1,
        "ListClusterKubeconfigStates": 1,
        "CleanClusterUserPermissions": 1,
    }
    assert calls[CENTRAL_ID] == {"AssumeRole": 1}
    assert not calls[STAGING_ID] and not calls[SANDBOX_ID]
    assert cloud.account(STAGING_ID).kubeconfigs("c-staging")[0].account_id == STAGING_LEAVER
    # A central cluster id is unknown to the member's ACK (the token never reaches the central account).
    error = sdk_error(
        lambda: cs.list_cluster_kubeconfig_states("c-prod", cs_models.ListClusterKubeconfigStatesRequest())
    )
    assert (error.code, error.status_code) == ("ErrorClusterNotFound", 404)
    assert sum(cloud.central.calls.values()) == 0


def test_an_expired_token_is_refused_and_a_fresh_one_works(
    cloud: FakeCloud, org_server: FakeAckServer
) -> None:
    from alibabacloud_cs20151215 import models as cs_models

    creds = sdk_assume(org_server, duration=900).body.credentials
    cs = cs_client(org_server, creds)
    assert len(cs.describe_clusters_v1(cs_models.DescribeClustersV1Request()).body.clusters) == 2
    cloud.clock.advance(899)
    assert len(cs.describe_clusters_v1(cs_models.DescribeClustersV1Request()).body.clusters) == 2
    cloud.clock.advance(1)
    error = sdk_error(lambda: cs.describe_clusters_v1(cs_models.DescribeClustersV1Request()))
    assert (error.code, error.status_code) == ("InvalidSecurityToken.Expired", 400)
    assert set(error.data) >= ACK_ERROR_KEYS
    assert cloud.account(PROD_ID).calls["DescribeClustersV1"] == 3  # counted on its account, refused or not
    fresh = sdk_assume(org_server, duration=900).body.credentials
    assert (
        len(
            cs_client(org_server, fresh)
            .describe_clusters_v1(cs_models.DescribeClustersV1Request())
            .body.clusters
        )
        == 2
    )


def test_a_wrong_external_id_is_refused(cloud: FakeCloud, org_server: FakeAckServer) -> None:
    for external_id in ("kcguard-wrong-external-id", None):
        error = sdk_error(lambda external_id=external_id: sdk_assume(org_server, external_id=external_id))
        assert (error.code, error.status_code) == ("NoPermission", 403)
        assert set(error.data) >= RPC_ERROR_KEYS and "does not trust you" in error.data["Message"]
    assert [d.reason for d in cloud.sts_denials] == ["external-id", "external-id"]
    assert cloud.sessions() == []


def test_an_untrusted_caller_is_refused(cloud: FakeCloud, org_server: FakeAckServer) -> None:
    # sandbox's member role trusts only sandbox itself.
    error = sdk_error(lambda: sdk_assume(org_server, role_arn(SANDBOX_ID, MEMBER_ROLE)))
    assert (error.code, error.status_code) == ("NoPermission", 403)
    # A role of an account outside the organization, with the right ExternalId.
    error = sdk_error(lambda: sdk_assume(org_server, key=OUTSIDER_KEY[0], secret=OUTSIDER_KEY[1]))
    assert (error.code, error.status_code) == ("NoPermission", 403)
    assert [(d.caller_arn, d.reason) for d in cloud.sts_denials] == [
        (role_arn(CENTRAL_ID, "kubeconfig-guard-event"), "untrusted"),
        (role_arn(OUTSIDER_ID, "intruder"), "untrusted"),
    ]
    assert cloud.sessions() == []


def test_an_unknown_role_is_refused(cloud: FakeCloud, org_server: FakeAckServer) -> None:
    for arn in (role_arn(PROD_ID, "no-such-role"), role_arn("1399999999999999", MEMBER_ROLE)):
        error = sdk_error(lambda arn=arn: sdk_assume(org_server, arn))
        assert (error.code, error.status_code) == ("EntityNotExist.Role", 404)
        assert error.data["Message"] == "The specified Role not exists."
    # Role names are case-insensitive.
    assert sdk_assume(org_server, role_arn(PROD_ID, MEMBER_ROLE.upper())).status_code == 200


def test_official_rm_sdk_pages_list_accounts_to_the_end() -> None:
    from alibabacloud_resourcemanager20200331 import models as rm_models

    world = generate_organization(
        5, members=250, regions=["cn-hangzhou"], clusters_per_account=0, kubeconfigs_per_cluster=0
    )
    assert world.organization is not None
    world.organization.members[7].listed = False  # a member that left the directory
    cloud = FakeCloud(world)
    expected = [m.account_id for m in world.organization.members if m.listed]
    with FakeAckServer(cloud) as server:
        client = rm_client(server)
        seen: list[str] = []
        page_number = 1
        while True:
            body = client.list_accounts(
                rm_models.ListAccountsRequest(page_number=page_number, page_size=100)
            ).body
            assert (body.page_number, body.page_size, body.total_count) == (page_number, 100, 249)
            seen += [a.account_id for a in body.accounts.account]
            if page_number * body.page_size >= body.total_count:
                break
            page_number += 1
        assert page_number == 3 and seen == expected and member_account_id(7) not in seen
        first = client.list_accounts(rm_models.ListAccountsRequest()).body
        assert (first.page_number, first.page_size, len(first.accounts.account)) == (1, 10, 10)
        account = first.accounts.account[0]
        assert (account.resource_directory_id, account.status) == (
            "rd-3k4v2x",
            world.organization.members[0].status,
        )
        assert account.resource_directory_path == f"rd-3k4v2x/r-3k4v2x/{account.account_id}"
        error = sdk_error(lambda: client.list_accounts(rm_models.ListAccountsRequest(page_size=101)))
        assert (error.code, error.status_code) == ("InvalidParameter.PageSize", 400)
    assert cloud.resource_manager.calls["ListAccounts"] == 5
    assert cloud.calls_by_account()[world.account_id]["ListAccounts"] == 5


def test_a_members_caller_may_not_list_accounts(cloud: FakeCloud, org_server: FakeAckServer) -> None:
    from alibabacloud_resourcemanager20200331 import models as rm_models

    # A member session: its role allows only ACK actions (RAM refuses first).
    creds = sdk_assume(org_server).body.credentials
    client = rm_client(org_server, creds.access_key_id, creds.access_key_secret, creds.security_token)
    error = sdk_error(lambda: client.list_accounts(rm_models.ListAccountsRequest()))
    assert (error.code, error.status_code) == ("Forbidden.RAM", 403)
    assert error.data["AccessDeniedDetail"]["AuthAction"] == "resourcemanager:ListAccounts"
    # A member's administrator (every action allowed): the directory refuses a member account.
    client = rm_client(org_server, *PROD_ADMIN_KEY)
    error = sdk_error(lambda: client.list_accounts(rm_models.ListAccountsRequest()))
    assert (error.code, error.status_code) == ("NoPermission.ResourceDirectory.MemberAccount", 409)
    # An account outside the directory has none.
    client = rm_client(org_server, *OUTSIDER_KEY)
    error = sdk_error(lambda: client.list_accounts(rm_models.ListAccountsRequest()))
    assert (error.code, error.status_code) == ("EntityNotExists.ResourceDirectory", 404)
    # The management account's caller may.
    body = rm_client(org_server).list_accounts(rm_models.ListAccountsRequest()).body
    assert [a.account_id for a in body.accounts.account] == [PROD_ID, STAGING_ID, SANDBOX_ID]
    assert cloud.resource_manager.calls_by_account == {PROD_ID: 2, OUTSIDER_ID: 1, CENTRAL_ID: 1}


def test_a_session_policy_narrower_than_the_call_is_refused(
    cloud: FakeCloud, org_server: FakeAckServer
) -> None:
    from alibabacloud_cs20151215 import models as cs_models

    policy = json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["cs:DescribeClustersV1", "cs:ListClusterKubeconfigStates"],
                    "Resource": "*",
                }
            ],
        }
    )
    cs = cs_client(org_server, sdk_assume(org_server, policy=policy).body.credentials)
    assert len(cs.describe_clusters_v1(cs_models.DescribeClustersV1Request()).body.clusters) == 2
    error = sdk_error(
        lambda: cs.clean_cluster_user_permissions(
            "c-prod-a", LEAVER, cs_models.CleanClusterUserPermissionsRequest(force=True)
        )
    )
    assert (error.code, error.status_code) == ("StatusForbidden", 403)
    assert error.data["message"] == "STSToken policy Forbidden for action cs:CleanClusterUserPermissions"
    detail = error.data["accessDeniedDetail"]
    assert (detail["NoPermissionType"], detail["PolicyType"], detail["AuthPrincipalOwnerId"]) == (
        "ImplicitDeny",
        "SessionPolicy",
        PROD_ID,
    )
    assert cloud.account(PROD_ID).revocations == [] and cloud.account(PROD_ID).clean_calls == []
    # The role's own policies bound a session too (a session policy cannot widen them).
    cloud.set_role(PROD_ID, member_role(actions=("cs:DescribeClustersV1",)))
    wide = json.dumps({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    cs = cs_client(org_server, sdk_assume(org_server, policy=wide).body.credentials)
    error = sdk_error(
        lambda: cs.list_cluster_kubeconfig_states("c-prod-a", cs_models.ListClusterKubeconfigStatesRequest())
    )
    assert error.data["accessDeniedDetail"]["PolicyType"] == "AccountLevelIdentityBasedPolicy"
    # A grammatically wrong policy is refused by STS itself.
    error = sdk_error(lambda: sdk_assume(org_server, policy='{"Version": "1", "Statement": "all"}'))
    assert (error.code, error.status_code) == ("InvalidParameter.PolicyGrammar", 400)


def test_per_account_faults_throttle_one_account_only(cloud: FakeCloud, org_server: FakeAckServer) -> None:
    from alibabacloud_cs20151215 import models as cs_models

    cloud.account(PROD_ID).faults.set(None, FaultSpec(throttle_rate=1.0))
    prod = cs_client(org_server, sdk_assume(org_server).body.credentials)
    staging = cs_client(
        org_server, sdk_assume(org_server, role_arn(STAGING_ID, MEMBER_ROLE)).body.credentials
    )
    error = sdk_error(lambda: prod.describe_clusters_v1(cs_models.DescribeClustersV1Request()))
    assert (error.code, error.status_code) == ("Throttling.User", 429)
    for _ in range(3):
        assert [
            c.cluster_id
            for c in staging.describe_clusters_v1(cs_models.DescribeClustersV1Request()).body.clusters
        ] == ["c-staging"]
    assert cloud.account(PROD_ID).fault_counts["throttled"] == 1
    assert (
        cloud.account(STAGING_ID).fault_counts["throttled"] == 0
        and cloud.central.fault_counts["throttled"] == 0
    )


# --- in process: FakeAckTransport and signed requests -----------------------------------------


def rpc(
    cloud: FakeCloud,
    operation: api.Operation,
    params: dict[str, str] | None = None,
    *,
    key: tuple[str, str] = (DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET),
    token: str | None = None,
    form: bool = False,
) -> httpx.Response:
    target, headers, body = signed_rpc(
        operation, params, access_key_id=key[0], access_key_secret=key[1], security_token=token, form=form
    )
    with httpx.Client(transport=FakeAckTransport(cloud), base_url="https://sts.aliyuncs.com") as http:
        return http.post(target, headers=headers, content=body)


def assume(cloud: FakeCloud, role: str = PROD_ROLE, **params: str) -> dict[str, Any]:
    answer = rpc(
        cloud,
        api.ASSUME_ROLE,
        {"RoleArn": role, "RoleSessionName": "kcguard-summary", "ExternalId": EXTERNAL_ID, **params},
    )
    assert answer.status_code == 200, answer.text
    credentials: dict[str, Any] = answer.json()["Credentials"]
    return credentials


def ack(
    cloud: FakeCloud, method: str, path: str, creds: dict[str, Any] | None = None, **query: str
) -> httpx.Response:
    if creds is None:
        target, headers = signed_request(method, path, query)
    else:
        target, headers = signed_request(
            method,
            path,
            query,
            access_key_id=creds["AccessKeyId"],
            access_key_secret=creds["AccessKeySecret"],
            security_token=creds.get("SecurityToken"),
        )
    with httpx.Client(
        transport=FakeAckTransport(cloud), base_url="https://cs.cn-hangzhou.aliyuncs.com"
    ) as http:
        return http.request(method, target, headers=headers)


def test_in_process_assume_role_answer_matches_the_api_reference(cloud: FakeCloud) -> None:
    answer = rpc(
        cloud, api.ASSUME_ROLE, {"RoleArn": PROD_ROLE, "RoleSessionName": "ab", "ExternalId": EXTERNAL_ID}
    )
    body = answer.json()
    assert set(body) == {"RequestId", "AssumedRoleUser", "Credentials"}
    assert set(body["AssumedRoleUser"]) == {"Arn", "AssumedRoleId"}
    assert set(body["Credentials"]) == {"AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}
    assert body["RequestId"] == answer.headers["x-acs-request-id"]
    [session] = cloud.sessions()
    assert body["Credentials"]["Expiration"] == session.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (session.expiration - cloud.clock.now()).total_seconds() == pytest.approx(
        3600, abs=2
    )  # the default


def test_in_process_form_body_is_read_and_its_hash_verified(cloud: FakeCloud) -> None:
    params = {"RoleArn": PROD_ROLE, "RoleSessionName": "kcguard form", "ExternalId": EXTERNAL_ID}
    answer = rpc(cloud, api.ASSUME_ROLE, params, form=True)
    assert answer.json()["Code"] == "InvalidParameter.RoleSessionName"  # the space came through the body
    params["RoleSessionName"] = "kcguard-form"
    assert rpc(cloud, api.ASSUME_ROLE, params, form=True).status_code == 200
    target, headers, body = signed_rpc(api.ASSUME_ROLE, params, form=True)
    tampered = body.replace(b"kcguard-form", b"kcguard-evil")
    answer = handle(cloud, "POST", target, headers, tampered)
    assert (answer.status, json.loads(answer.body)["Code"]) == (400, "SignatureDoesNotMatch")
    assert len(cloud.sessions()) == 1


def test_in_process_a_token_is_honoured_only_by_its_accounts_ack(cloud: FakeCloud) -> None:
    creds = assume(cloud, role_arn(STAGING_ID, MEMBER_ROLE))
    answer = ack(cloud, "GET", "/api/v1/clusters", creds)
    assert [c["cluster_id"] for c in answer.json()["clusters"]] == ["c-staging"]
    # prod's cluster, named with staging's token: staging's ACK does not know it.
    answer = ack(cloud, "DELETE", f"/cluster/c-prod-a/user/{LEAVER}/permissions", creds, Force="true")
    assert (answer.status_code, answer.json()["code"]) == (404, "ErrorClusterNotFound")
    assert sum(cloud.account(PROD_ID).calls.values()) == 0
    assert [k.account_id for k in cloud.account(PROD_ID).kubeconfigs("c-prod-a")] == [
        LEAVER,
        "200000000000000701",
    ]
    # The demo key is the central account's.
    answer = ack(cloud, "GET", "/api/v1/clusters")
    assert {c["cluster_id"] for c in answer.json()["clusters"]} == set(cloud.central.cluster_ids())


def test_in_process_token_errors(cloud: FakeCloud) -> None:
    creds = assume(cloud)
    cases = [
        ({**creds, "SecurityToken": None}, 400, "MissingSecurityToken"),
        ({**creds, "SecurityToken": "CAISnot-the-token"}, 400, "InvalidSecurityToken.MismatchWithAccessKey"),
        ({**creds, "AccessKeyId": "STS.unknown"}, 404, "InvalidAccessKeyId.NotFound"),
        ({**creds, "AccessKeySecret": "wrong"}, 400, "SignatureDoesNotMatch"),
    ]
    for bad, status, code in cases:
        answer = ack(cloud, "GET", "/api/v1/clusters", bad)
        assert (answer.status_code, answer.json()["code"]) == (status, code)
        assert set(answer.json()) == ACK_ERROR_KEYS
    assert cloud.unattributed.calls["DescribeClustersV1"] == 1  # the unknown key belongs to no account
    assert cloud.account(PROD_ID).calls["DescribeClustersV1"] == 3
    cloud.expire_sessions()
    answer = ack(cloud, "GET", "/api/v1/clusters", creds)
    assert answer.json()["code"] == "InvalidSecurityToken.Expired"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"RoleArn": ""}, 400, "MissingRoleArn"),
        ({"RoleSessionName": ""}, 400, "MissingRoleSessionName"),
        ({"RoleArn": f"acs:ram::{PROD_ID}:user/bob"}, 400, "InvalidParameter.RoleArn"),
        ({"RoleSessionName": "a"}, 400, "InvalidParameter.RoleSessionName"),
        ({"RoleSessionName": "x" * 65}, 400, "InvalidParameter.RoleSessionName"),
        ({"RoleSessionName": "no*stars"}, 400, "InvalidParameter.RoleSessionName"),
        ({"DurationSeconds": "899"}, 400, "InvalidParameter.DurationSeconds"),
        ({"DurationSeconds": "3601"}, 400, "InvalidParameter.DurationSeconds"),
        ({"DurationSeconds": "ten"}, 400, "InvalidParameter.DurationSeconds"),
        ({"Policy": "not json"}, 400, "InvalidParameter.PolicyGrammar"),
        ({"Policy": json.dumps({"Version": "2", "Statement": []})}, 400, "InvalidParameter.PolicyGrammar"),
        ({"Policy": "x" * 2049}, 400, "InvalidParameter.PolicySize"),
        ({"ExternalId": "x"}, 400, "InvalidParameter.ExternalId"),
        ({"ExternalId": "bad external id"}, 400, "InvalidParameter.ExternalId"),
    ],
)
def test_in_process_assume_role_parameters_are_checked(
    cloud: FakeCloud, params: dict[str, str], status: int, code: str
) -> None:
    base = {"RoleArn": PROD_ROLE, "RoleSessionName": "kcguard", "ExternalId": EXTERNAL_ID}
    answer = rpc(cloud, api.ASSUME_ROLE, {**base, **params})
    assert (answer.status_code, answer.json()["Code"]) == (status, code)
    assert set(answer.json()) == RPC_ERROR_KEYS
    assert (
        answer.json()["HostId"] == "sts.aliyuncs.com"
        and answer.json()["RequestId"] == answer.headers["x-acs-request-id"]
    )
    assert cloud.sessions() == []


def test_in_process_longer_sessions_need_a_longer_role_maximum(cloud: FakeCloud) -> None:
    role = member_role()
    role.max_session_duration = 7200
    cloud.set_role(PROD_ID, role)
    assume(cloud, DurationSeconds="7200")
    assert (
        rpc(
            cloud,
            api.ASSUME_ROLE,
            {
                "RoleArn": PROD_ROLE,
                "RoleSessionName": "kc",
                "ExternalId": EXTERNAL_ID,
                "DurationSeconds": "7201",
            },
        ).json()["Code"]
        == "InvalidParameter.DurationSeconds"
    )
    cloud.remove_role(PROD_ID, MEMBER_ROLE)
    answer = rpc(
        cloud, api.ASSUME_ROLE, {"RoleArn": PROD_ROLE, "RoleSessionName": "kc", "ExternalId": EXTERNAL_ID}
    )
    assert (answer.status_code, answer.json()["Code"]) == (404, "EntityNotExist.Role")


def test_in_process_root_and_chained_callers() -> None:
    world = small_organization()
    assert world.organization is not None
    world.organization.access_keys[0].role_name = None  # the outsider key now is its account's root
    world.organization.roles.append(
        RoleRecord(
            role_name="open", trusted_principals=[f"acs:ram::{OUTSIDER_ID}:root", f"acs:ram::{PROD_ID}:root"]
        )
    )
    cloud = FakeCloud(world)
    answer = rpc(
        cloud,
        api.ASSUME_ROLE,
        {"RoleArn": role_arn(CENTRAL_ID, "open"), "RoleSessionName": "root"},
        key=OUTSIDER_KEY,
    )
    assert (answer.status_code, answer.json()["Code"], answer.json()["Message"]) == (
        403,
        "NoPermission",
        "Roles may not be assumed by root accounts.",
    )
    # A prod session whose role may not call sts:AssumeRole: RAM refuses the chain.
    creds = assume(cloud)
    answer = rpc(
        cloud,
        api.ASSUME_ROLE,
        {"RoleArn": role_arn(CENTRAL_ID, "open"), "RoleSessionName": "chain"},
        key=(creds["AccessKeyId"], creds["AccessKeySecret"]),
        token=creds["SecurityToken"],
    )
    assert (answer.status_code, answer.json()["Code"]) == (403, "NoPermission")
    assert answer.json()["AccessDeniedDetail"]["AuthAction"] == "sts:AssumeRole"
    # A prod role allowed every action (a permanent key) may assume a role trusting prod's account.
    answer = rpc(
        cloud,
        api.ASSUME_ROLE,
        {"RoleArn": role_arn(CENTRAL_ID, "open"), "RoleSessionName": "admin"},
        key=PROD_ADMIN_KEY,
    )
    assert answer.status_code == 200
    chained = answer.json()["Credentials"]
    answer = ack(cloud, "GET", "/api/v1/clusters", chained)
    assert [c["cluster_id"] for c in answer.json()["clusters"]] == cloud.central.cluster_ids()


def test_in_process_rpc_routing_errors(cloud: FakeCloud) -> None:
    target, headers, body = signed_rpc(api.ASSUME_ROLE, {"RoleArn": PROD_ROLE})
    wrong_version = dict(headers, **{"x-acs-version": "2099-01-01"})
    answer = handle(cloud, "POST", target, wrong_version, body)
    assert (answer.status, json.loads(answer.body)["Code"]) == (400, "InvalidVersion")
    unknown = dict(headers, **{"x-acs-action": "DeleteEverything"})
    answer = handle(cloud, "POST", target, unknown, body)
    assert (answer.status, json.loads(answer.body)["Code"]) == (404, "InvalidAction.NotFound")
    missing = {k: v for k, v in headers.items() if k != "x-acs-action"}
    answer = handle(cloud, "POST", target, missing, body)
    assert (answer.status, json.loads(answer.body)["Code"]) == (400, "MissingAction")
    # A signature over other headers than those sent is refused.
    answer = handle(cloud, "POST", target, dict(headers, host="resourcemanager.aliyuncs.com"), body)
    assert json.loads(answer.body)["Code"] == "SignatureDoesNotMatch"
    # The single-account fake serves no RPC operation.
    single = FakeAckTransport(FakeAck(World()))
    with httpx.Client(transport=single, base_url="https://sts.aliyuncs.com") as http:
        response = http.post(target, headers=headers, content=body)
    assert (response.status_code, response.json()["code"]) == (404, "InvalidAction.NotFound")


def test_in_process_sts_and_rm_faults(cloud: FakeCloud) -> None:
    cloud.sts.faults.set(api.ASSUME_ROLE.name, FaultSpec(throttle_rate=1.0))
    answer = rpc(
        cloud, api.ASSUME_ROLE, {"RoleArn": PROD_ROLE, "RoleSessionName": "kc", "ExternalId": EXTERNAL_ID}
    )
    assert (answer.status_code, answer.json()["Code"]) == (400, "Throttling.User")
    assert cloud.sts.faults.counts["throttled"] == 1 and cloud.sessions() == []
    cloud.sts.faults.clear()
    assume(cloud)
    cloud.resource_manager.faults.set(None, FaultSpec(error_rate_5xx=1.0))
    answer = rpc(cloud, api.LIST_ACCOUNTS, {})
    assert answer.status_code in (500, 503) and answer.json()["Code"] in (
        "InternalError",
        "ServiceUnavailable",
    )
    cloud.resource_manager.faults.set(None, FaultSpec(page_total_count=10**6, page_number_echo=1))
    body = rpc(cloud, api.LIST_ACCOUNTS, {"PageNumber": "2", "PageSize": "1"}).json()
    assert (
        body["TotalCount"],
        body["PageNumber"],
        [a["AccountId"] for a in body["Accounts"]["Account"]],
    ) == (
        10**6,
        1,
        [STAGING_ID],
    )
    cloud.resource_manager.faults.set(None, FaultSpec(answer_status=200, answer_body="<html>proxy</html>"))
    answer = rpc(cloud, api.LIST_ACCOUNTS, {})
    assert (answer.status_code, answer.text) == (200, "<html>proxy</html>")
    assert cloud.sts.calls == {"AssumeRole": 2} and cloud.resource_manager.calls == {"ListAccounts": 3}


def test_in_process_list_accounts_options(cloud: FakeCloud) -> None:
    cloud.set_member(SANDBOX_ID, listed=False)
    body = rpc(cloud, api.LIST_ACCOUNTS, {}).json()
    assert [a["AccountId"] for a in body["Accounts"]["Account"]] == [PROD_ID, STAGING_ID]
    assert set(body["Accounts"]["Account"][0]) == {
        "AccountId",
        "DisplayName",
        "Status",
        "Type",
        "FolderId",
        "JoinMethod",
        "JoinTime",
        "ModifyTime",
        "ResourceDirectoryId",
        "ResourceDirectoryPath",
        "AccountName",
    }
    assert body["Accounts"]["Account"][0]["AccountName"] == "prod@rd-3k4v2x.aliyunid.com"
    # A member that left is an account outside the directory now.
    sandbox_admin = small_organization()
    assert sandbox_admin.organization is not None
    sandbox_admin.organization.access_keys[1].account_id = SANDBOX_ID
    sandbox_admin.organization.members[2].listed = False
    answer = rpc(FakeCloud(sandbox_admin), api.LIST_ACCOUNTS, {}, key=PROD_ADMIN_KEY)
    assert (answer.status_code, answer.json()["Code"]) == (404, "EntityNotExists.ResourceDirectory")
    # The management account itself, when the world says it is listed.
    world = small_organization()
    assert world.organization is not None
    world.organization.list_management_account = True
    body = rpc(FakeCloud(world), api.LIST_ACCOUNTS, {"PageSize": "2"}).json()
    assert (body["TotalCount"], [a["AccountId"] for a in body["Accounts"]["Account"]]) == (
        4,
        [CENTRAL_ID, PROD_ID],
    )
    # A world without an organization: an account outside any directory.
    answer = rpc(FakeCloud(World()), api.LIST_ACCOUNTS, {})
    assert (answer.status_code, answer.json()["Code"]) == (404, "EntityNotExists.ResourceDirectory")


def test_in_process_rate_limit_scope_all_shares_one_bucket_across_operations(cloud: FakeCloud) -> None:
    creds = assume(cloud)
    cloud.account(PROD_ID).faults.set(None, FaultSpec(rate_limit_rps=0.001, burst=2, rate_limit_scope="all"))
    codes = [
        ack(cloud, "GET", "/api/v1/clusters", creds).status_code,
        ack(cloud, "GET", "/clusters/c-prod-a/kubeconfig/states", creds).status_code,
        ack(cloud, "GET", "/clusters/c-prod-b/kubeconfig/states", creds).status_code,
    ]
    assert codes == [200, 200, 429]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operation=st.sampled_from([api.ASSUME_ROLE, api.LIST_ACCOUNTS]),
    params=st.dictionaries(
        st.sampled_from(
            [
                "RoleArn",
                "RoleSessionName",
                "DurationSeconds",
                "Policy",
                "ExternalId",
                "PageNumber",
                "PageSize",
                "Other",
            ]
        ),
        st.text(max_size=40),
        max_size=6,
    ),
    form=st.booleans(),
)
def test_in_process_any_rpc_parameters_get_an_api_shaped_answer(
    cloud: FakeCloud, operation: api.Operation, params: dict[str, str], form: bool
) -> None:
    answer = rpc(cloud, operation, params, form=form)
    body = answer.json()
    if answer.status_code == 200:
        assert "RequestId" in body
    else:
        assert 400 <= answer.status_code < 500 and set(body) >= RPC_ERROR_KEYS, body


# --- the world: generation, round trip, the command line ----------------------------------------


def test_generate_organization_is_reproducible_and_shaped_as_asked() -> None:
    kwargs: dict[str, Any] = {
        "members": 4,
        "regions": ["cn-hangzhou", "cn-beijing"],
        "clusters_per_account": 5,
        "kubeconfigs_per_cluster": 6,
        "deleted_user": "leaver",
        "deleted_user_account": 2,
        "deleted_user_clusters": 2,
        "central_clusters": 1,
    }
    world = generate_organization(11, **kwargs)
    assert world == generate_organization(11, **kwargs) and world != generate_organization(12, **kwargs)
    assert world.organization is not None
    members = world.organization.members
    assert [m.account_id for m in members] == [member_account_id(i) for i in range(4)]
    for member in members:
        counts = [len(r.clusters) for r in member.regions.values()]
        assert counts == [3, 2]
        assert all(
            len([k for k in c.kubeconfigs if k.account_type != "RootAccount"]) >= 6
            for r in member.regions.values()
            for c in r.clusters
        )
        [role] = member.roles
        assert role.trusted_principals == [
            role_arn(world.account_id, "kubeconfig-guard-event"),
            role_arn(world.account_id, "kubeconfig-guard-summary"),
        ]
    holders = {
        m.account_id: sum(
            1
            for r in m.regions.values()
            for c in r.clusters
            for k in c.kubeconfigs
            if k.account_name == "leaver"
        )
        for m in members
    }
    assert holders == {
        member_account_id(0): 0,
        member_account_id(1): 0,
        member_account_id(2): 2,
        member_account_id(3): 0,
    }
    assert sum(len(r.clusters) for r in world.regions.values()) == 1
    # Per-region cluster counts for generate_world too; an int keeps giving the same world as before.
    assert [
        len(r.clusters)
        for r in generate_world(
            3, regions=["a", "b"], clusters_per_region=[4, 1], kubeconfigs_per_cluster=2
        ).regions.values()
    ] == [4, 1]


def test_a_cloud_world_round_trips_with_its_revocations(cloud: FakeCloud, tmp_path: Path) -> None:
    creds = assume(cloud)
    answer = ack(cloud, "DELETE", f"/cluster/c-prod-b/user/{LEAVER}/permissions", creds, Force="true")
    assert answer.status_code == 200
    path = tmp_path / "after.json"
    dump_world(cloud.to_world(), path)
    reloaded = load_world(path)
    assert reloaded.organization is not None
    [prod] = [m for m in reloaded.organization.members if m.account_id == PROD_ID]
    [cluster] = prod.regions["ap-southeast-1"].clusters
    assert (cluster.kubeconfigs, [k.account_id for k in cluster.recycle_bin]) == ([], [LEAVER])
    again = FakeCloud(reloaded)
    assert again.account(PROD_ID).recycle_bin("c-prod-b")[0].account_id == LEAVER
    assert again.to_world() == reloaded
    # The single-account fake serves the central account of such a world and keeps its organization.
    assert FakeAck(reloaded).to_world() == reloaded
    # A single-account world's dump has no organization key.
    plain = tmp_path / "plain.json"
    dump_world(FakeAck(World()).to_world(), plain)
    assert "organization" not in json.loads(plain.read_text())


def test_kcguard_fake_serve_serves_the_example_organization(tmp_path: Path) -> None:
    from alibabacloud_cs20151215 import models as cs_models
    from alibabacloud_resourcemanager20200331 import models as rm_models

    out = tmp_path / "final.json"
    prod_payments = "c7a1e0b2d3c4f5a6b7c8d9e0f1a2b3c01"
    with fake_ack_process(EXAMPLE_ORGANIZATION, out) as url:
        port = int(url.rsplit(":", 1)[1])

        class Server:  # what sdk_config needs of a FakeAckServer
            pass

        server: Any = Server()
        server.port = port
        accounts = rm_client(server).list_accounts(rm_models.ListAccountsRequest()).body.accounts.account
        assert [(a.display_name, a.account_id) for a in accounts] == [
            ("prod", PROD_ID),
            ("staging", STAGING_ID),
            ("sandbox", SANDBOX_ID),
        ]
        creds = sdk_assume(server, external_id="kcguard-demo-external-id").body.credentials
        cs = cs_client(server, creds)
        ids = {
            c.cluster_id for c in cs.describe_clusters_v1(cs_models.DescribeClustersV1Request()).body.clusters
        }
        assert prod_payments in ids and len(ids) == 2
        cs.clean_cluster_user_permissions(
            prod_payments, LEAVER, cs_models.CleanClusterUserPermissionsRequest(force=True)
        )
        error = sdk_error(
            lambda: sdk_assume(
                server, role_arn(SANDBOX_ID, MEMBER_ROLE), external_id="kcguard-demo-external-id"
            )
        )
        assert error.code == "NoPermission"
    final = json.loads(out.read_text())
    members = {m["display_name"]: m for m in final["organization"]["members"]}
    [payments] = members["prod"]["regions"]["cn-hangzhou"]["clusters"]
    assert [k["account_id"] for k in payments["recycle_bin"]] == [LEAVER]
    [staging] = members["staging"]["regions"]["cn-hangzhou"]["clusters"]
    assert staging["recycle_bin"] == []
    assert [k["account_id"] for k in staging["kubeconfigs"]] == [STAGING_LEAVER, "200000000000000801"]


def test_the_example_organization_is_what_its_readme_says() -> None:
    world = load_world(EXAMPLE_ORGANIZATION)
    cloud = FakeCloud(world)
    assert world.organization is not None and world.account_id == CENTRAL_ID
    assert cloud.member_ids() == [PROD_ID, STAGING_ID, SANDBOX_ID]

    def holders(uid: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for account_id, backend in cloud.accounts.items():
            for cluster_id in backend.cluster_ids():
                if any(k.account_id == uid for k in backend.kubeconfigs(cluster_id)):
                    found.setdefault(account_id, []).append(cluster_id)
        return found

    assert {a: len(c) for a, c in holders(LEAVER).items()} == {PROD_ID: 2}
    assert {a: len(c) for a, c in holders(STAGING_LEAVER).items()} == {STAGING_ID: 1}
    [sandbox_role] = cloud.roles(SANDBOX_ID)
    assert sandbox_role.trusted_principals == [f"acs:ram::{SANDBOX_ID}:root"]


def test_the_async_client_side_of_the_transport_serves_the_cloud(cloud: FakeCloud) -> None:
    async def run() -> int:
        target, headers, body = signed_rpc(api.LIST_ACCOUNTS, {"PageSize": "100"})
        async with httpx.AsyncClient(
            transport=FakeAckTransport(cloud), base_url="https://resourcemanager.aliyuncs.com"
        ) as http:
            answers = await asyncio.gather(
                *(http.post(target, headers=headers, content=body) for _ in range(5))
            )
        return sum(a.json()["TotalCount"] for a in answers)

    assert asyncio.run(run()) == 15
