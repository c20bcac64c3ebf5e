"""The fake ACK on the wire: routing, ACS3 signatures, and real clients through both front ends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from kubeconfig_guard.client import AckClient
from kubeconfig_guard.credentials import (
    DEMO_ACCESS_KEY_ID,
    DEMO_ACCESS_KEY_SECRET,
    Credentials,
    StaticCredentials,
    from_environment_or_demo,
)
from kubeconfig_guard.errors import AckApiError
from kubeconfig_guard.fake import FakeAck, FakeAckError, FakeAckServer, FakeAckTransport
from kubeconfig_guard.fake.testing import signed_request, small_world
from kubeconfig_guard.fake.wire import handle
from kubeconfig_guard.fake.world import STATE_FIELDS
from kubeconfig_guard.settings import Settings

TOM, ANN = "200000000000000001", "200000000000000002"
STATES = "/clusters/c-big/kubeconfig/states"


pytestmark = pytest.mark.usefixtures("demo_env")


def body_of(answer: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(answer.body)
    return parsed


# --- signatures ------------------------------------------------------------------------


def test_signed_request_is_accepted_and_every_answer_has_a_request_id(backend: FakeAck) -> None:
    target, headers = signed_request("GET", STATES, {"pageNumber": "2", "pageSize": "50"})
    answer = handle(backend, "GET", target, headers)
    assert answer.status == 200
    assert answer.headers["x-acs-request-id"]
    assert body_of(answer)["page"] == {"page_number": 2, "page_size": 50, "total_count": 123}


def test_unsigned_request_is_refused_by_default(backend: FakeAck) -> None:
    answer = handle(backend, "GET", STATES, {"host": "x"})
    body = body_of(answer)
    assert (answer.status, body["code"]) == (400, "IncompleteSignature")
    assert set(body) == {"code", "message", "requestId", "status"}
    assert body["requestId"] == answer.headers["x-acs-request-id"] and body["status"] == 400


def test_unsigned_request_is_accepted_when_verification_is_off(backend: FakeAck) -> None:
    backend.verify_signatures = False
    assert handle(backend, "GET", STATES, {}).status == 200


def test_malformed_authorization_and_missing_headers_are_incomplete(backend: FakeAck) -> None:
    target, headers = signed_request("GET", STATES)
    broken = dict(headers, authorization="ACS3-HMAC-SHA256 garbage")
    assert body_of(handle(backend, "GET", target, broken))["code"] == "IncompleteSignature"
    missing = {k: v for k, v in headers.items() if k != "x-acs-date"}
    assert body_of(handle(backend, "GET", target, missing))["code"] == "IncompleteSignature"


def test_wrong_secret_is_signature_does_not_match(backend: FakeAck) -> None:
    target, headers = signed_request("GET", STATES, access_key_secret="not-the-secret")
    answer = handle(backend, "GET", target, headers)
    assert (answer.status, body_of(answer)["code"]) == (400, "SignatureDoesNotMatch")


def test_unknown_access_key_is_404(backend: FakeAck) -> None:
    target, headers = signed_request("GET", STATES, access_key_id="LTAI-unknown")
    answer = handle(backend, "GET", target, headers)
    assert (answer.status, body_of(answer)["code"]) == (404, "InvalidAccessKeyId.NotFound")


def test_query_changed_after_signing_is_refused(backend: FakeAck) -> None:
    target, headers = signed_request("GET", STATES, {"pageNumber": "1", "pageSize": "10"})
    tampered = target.replace("pageNumber=1", "pageNumber=2")
    answer = handle(backend, "GET", tampered, headers)
    assert (answer.status, body_of(answer)["code"]) == (400, "SignatureDoesNotMatch")


def test_body_not_matching_its_hash_is_refused(backend: FakeAck) -> None:
    target, headers = signed_request("DELETE", f"/cluster/c-prod/user/{TOM}/permissions", {"Force": "true"})
    answer = handle(backend, "DELETE", target, headers, b"{}")
    assert (answer.status, body_of(answer)["code"]) == (400, "SignatureDoesNotMatch")
    assert backend.revocations == []


def test_security_token_from_the_environment_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "sts-token-1")
    backend = FakeAck(small_world())
    target, headers = signed_request("GET", STATES, security_token="sts-token-2")
    answer = handle(backend, "GET", target, headers)
    assert (answer.status, body_of(answer)["code"]) == (400, "InvalidSecurityToken")
    target, headers = signed_request("GET", STATES, security_token="sts-token-1")
    assert handle(backend, "GET", target, headers).status == 200


def test_key_pair_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-test")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "test-secret")
    backend = FakeAck(small_world())
    target, headers = signed_request("GET", STATES)  # the demo pair
    assert body_of(handle(backend, "GET", target, headers))["code"] == "InvalidAccessKeyId.NotFound"
    target, headers = signed_request(
        "GET", STATES, access_key_id="LTAI-test", access_key_secret="test-secret"
    )
    assert handle(backend, "GET", target, headers).status == 200


# --- routing -----------------------------------------------------------------------------


def test_unknown_route_is_invalid_action_not_found(backend: FakeAck) -> None:
    for method, path in (("GET", "/api/v2/clusters"), ("POST", "/api/v1/clusters"), ("GET", "/")):
        target, headers = signed_request(method, path, action="DescribeClustersV1")
        answer = handle(backend, method, target, headers)
        assert (answer.status, body_of(answer)["code"]) == (404, "InvalidAction.NotFound")


def test_action_header_must_match_the_route(backend: FakeAck) -> None:
    target, headers = signed_request("GET", STATES, action="DescribeClustersV1")
    answer = handle(backend, "GET", target, headers)
    assert (answer.status, body_of(answer)["code"]) == (400, "InvalidAction")


def test_path_parameters_are_percent_decoded(backend: FakeAck) -> None:
    backend.add_kubeconfig("c-prod", {"account_id": "uid with/slash+plus", "account_name": "odd"})
    target, headers = signed_request(
        "DELETE", "/cluster/c-prod/user/uid%20with%2Fslash%2Bplus/permissions", {"Force": "true"}
    )
    assert handle(backend, "DELETE", target, headers).status == 200
    assert [r.uid for r in backend.revocations] == ["uid with/slash+plus"]


def test_errors_of_operations_are_rendered_like_ack(backend: FakeAck) -> None:
    target, headers = signed_request("GET", "/clusters/c-nope/kubeconfig/states")
    answer = handle(backend, "GET", target, headers)
    assert (answer.status, body_of(answer)["code"]) == (404, "ErrorClusterNotFound")
    target, headers = signed_request("DELETE", f"/cluster/c-prod/user/{TOM}/permissions")
    answer = handle(backend, "DELETE", target, headers)
    assert (answer.status, body_of(answer)["code"]) == (400, "ErrorKubeconfigInUse")
    assert backend.calls == {"ListClusterKubeconfigStates": 1, "CleanClusterUserPermissions": 1}


# --- parameters: strings decoded into the backend's typed arguments, answers shaped -------


def call(
    backend: FakeAck, method: str, path: str, query: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """A signed request through ``handle``: (status, JSON body)."""
    target, headers = signed_request(method, path, query)
    answer = handle(backend, method, target, headers)
    return answer.status, body_of(answer)


def clean_path(cluster_id: str, uid: str) -> str:
    return f"/cluster/{cluster_id}/user/{uid}/permissions"


def test_listing_without_paging_parameters_is_page_1_of_10(backend: FakeAck) -> None:
    status, body = call(backend, "GET", STATES)
    assert status == 200 and list(body) == ["states", "page"]
    assert body["page"] == {"page_number": 1, "page_size": 10, "total_count": 123}
    assert [s["account_name"] for s in body["states"]] == [f"user-{i:03d}" for i in range(10)]


def test_states_carry_every_documented_field_in_order_and_never_last_access(backend: FakeAck) -> None:
    status, body = call(backend, "GET", "/clusters/c-prod/kubeconfig/states")
    first = body["states"][0]
    assert status == 200 and tuple(first) == STATE_FIELDS
    assert first == {
        "account_id": TOM,
        "account_name": "tom",
        "account_display_name": "tom",
        "account_type": "RamUser",
        "account_state": "Active",
        "cert_expire_time": "2027-07-15T01:32:20Z",
        "cert_state": "Unexpired",
        "revokable": True,
    }


def test_describe_answer_is_shaped_like_ack(backend: FakeAck) -> None:
    target, headers = signed_request(
        "GET", "/api/v1/clusters", {"region_id": "cn-hangzhou", "page_size": "1"}
    )
    answer = handle(backend, "GET", target, headers)
    assert answer.body == (
        b'{"clusters":[{"cluster_id":"c-prod","name":"prod","region_id":"cn-hangzhou",'
        b'"cluster_type":"ManagedKubernetes","state":"running","vpc_id":"vpc-prod"}],'
        b'"page_info":{"page_number":1,"page_size":1,"total_count":3}}'
    )
    for query in ({}, {"region_id": ""}):
        status, body = call(backend, "GET", "/api/v1/clusters", query)
        assert status == 200 and body["page_info"] == {"page_number": 1, "page_size": 10, "total_count": 4}
    _, body = call(backend, "GET", "/api/v1/clusters", {"region_id": "ap-southeast-1"})
    assert [(c["cluster_id"], c["state"]) for c in body["clusters"]] == [("c-sg", "failed")]


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        (STATES, {"pageNumber": "0", "pageSize": "10"}, "pageNumber must be >= 1, got 0"),
        (STATES, {"pageNumber": "1", "pageSize": "9"}, "pageSize must be between 10 and 50, got 9"),
        (STATES, {"pageNumber": "1", "pageSize": "51"}, "pageSize must be between 10 and 50, got 51"),
        (STATES, {"pageNumber": "x", "pageSize": "10"}, "pageNumber must be an integer, got 'x'"),
        (STATES, {"pageNumber": "1", "pageSize": "1.5"}, "pageSize must be an integer, got '1.5'"),
        ("/api/v1/clusters", {"page_size": "0"}, "page_size must be between 1 and 100, got 0"),
        ("/api/v1/clusters", {"page_size": "101"}, "page_size must be between 1 and 100, got 101"),
        ("/api/v1/clusters", {"page_number": "0"}, "page_number must be >= 1, got 0"),
        ("/api/v1/clusters", {"page_number": "two"}, "page_number must be an integer, got 'two'"),
    ],
)
def test_bad_paging_parameters_are_invalid_parameter(
    backend: FakeAck, path: str, query: dict[str, str], message: str
) -> None:
    status, body = call(backend, "GET", path, query)
    assert (status, body["code"], body["message"], body["status"]) == (400, "InvalidParameter", message, 400)


def test_force_is_true_or_false_in_any_case_and_defaults_to_false(backend: FakeAck) -> None:
    assert call(backend, "DELETE", clean_path("c-prod", ANN), {"Force": "TRUE"}) == (200, {})
    assert [(r.uid, r.force) for r in backend.revocations] == [(ANN, True)]
    status, body = call(backend, "DELETE", clean_path("c-prod", TOM), {"Force": "yes"})
    assert (status, body["code"], body["message"]) == (
        400,
        "InvalidParameter",
        "Force must be true or false, got 'yes'",
    )
    for query in ({"Force": "False"}, {"Force": ""}, {}):  # false: tom's recent access is checked
        status, body = call(backend, "DELETE", clean_path("c-prod", TOM), query)
        assert (status, body["code"]) == (400, "ErrorKubeconfigInUse")
    assert [c.force for c in backend.clean_calls] == [True, False, False, False]  # "yes" reached no Clean


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("DELETE", clean_path("c-nope", TOM), {"Force": "bogus"}),
        ("DELETE", clean_path("c-nope", TOM), {"Force": "true"}),
        ("GET", "/clusters/c-nope/kubeconfig/states", {"pageNumber": "0", "pageSize": "9"}),
    ],
)
def test_unknown_cluster_is_404_before_parameters_are_judged(
    backend: FakeAck, method: str, path: str, query: dict[str, str]
) -> None:
    status, body = call(backend, method, path, query)
    assert (status, body["code"], body["message"]) == (
        404,
        "ErrorClusterNotFound",
        "cluster c-nope not found",
    )


def test_hooks_see_the_request_strings_before_the_operation(backend: FakeAck) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def drift(b: FakeAck, operation: str, params: dict[str, str]) -> None:
        seen.append((operation, dict(params)))
        if operation == "CleanClusterUserPermissions" and params["Uid"] == TOM:
            b.delete_cluster(params["ClusterId"])

    backend.hooks.append(drift)
    status, body = call(backend, "DELETE", clean_path("c-prod", TOM), {"Force": "true"})
    assert (status, body["code"]) == (404, "ErrorClusterNotFound")
    call(backend, "GET", STATES, {"pageNumber": "x"})  # refused by decoding, seen by the hook first
    call(backend, "GET", "/api/v1/clusters")
    assert seen == [
        ("CleanClusterUserPermissions", {"Force": "true", "ClusterId": "c-prod", "Uid": TOM}),
        ("ListClusterKubeconfigStates", {"pageNumber": "x", "ClusterId": "c-big"}),
        ("DescribeClustersV1", {}),
    ]
    assert backend.clean_calls == []  # the operation never ran on the deleted cluster


def test_a_hook_may_answer_or_change_the_parameters(backend: FakeAck) -> None:
    def refuse_listing(b: FakeAck, operation: str, params: dict[str, str]) -> None:
        if operation == "ListClusterKubeconfigStates":
            raise FakeAckError(503, "ServiceUnavailable", "listing is down")

    def force_every_clean(b: FakeAck, operation: str, params: dict[str, str]) -> None:
        if operation == "CleanClusterUserPermissions":
            params["Force"] = "true"

    backend.hooks += [refuse_listing, force_every_clean]
    status, body = call(backend, "GET", STATES)
    assert (status, body["code"], body["message"]) == (503, "ServiceUnavailable", "listing is down")
    assert call(backend, "DELETE", clean_path("c-prod", TOM), {"Force": "false"}) == (200, {})
    assert [(r.uid, r.force) for r in backend.revocations] == [(TOM, True)]


# --- our client through both front ends --------------------------------------------------


async def exercise_client(client: AckClient, backend: FakeAck) -> None:
    clusters = await client.describe_clusters("cn-hangzhou")
    assert [c.cluster_id for c in clusters] == ["c-prod", "c-noaudit", "c-big"]
    assert clusters[0].vpc_id == "vpc-prod"
    states = await client.list_kubeconfig_states("cn-hangzhou", "c-big")
    assert sorted(s.account_name for s in states) == [f"user-{i:03d}" for i in range(123)]
    assert backend.calls["ListClusterKubeconfigStates"] == 3
    await client.clean_user_permissions("cn-hangzhou", "c-prod", TOM, force=True)
    assert [(r.cluster_id, r.uid, r.force) for r in backend.revocations] == [("c-prod", TOM, True)]
    remaining = await client.list_kubeconfig_states("cn-hangzhou", "c-prod")
    assert TOM not in {s.account_id for s in remaining}
    with pytest.raises(AckApiError) as excinfo:
        await client.clean_user_permissions("cn-hangzhou", "c-prod", "5000000000000001", force=True)
    assert (excinfo.value.status, excinfo.value.code) == (400, "ErrorRootAccountNotAllowed")
    assert excinfo.value.request_id


def test_ack_client_through_the_transport(backend: FakeAck) -> None:
    async def run() -> None:
        async with AckClient(
            Settings(), StaticCredentials(from_environment_or_demo()), transport=FakeAckTransport(backend)
        ) as client:
            await exercise_client(client, backend)

    asyncio.run(run())


def test_ack_client_through_the_server(backend: FakeAck, server: FakeAckServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")

    async def run() -> None:
        async with AckClient(
            Settings(cs_endpoint=server.url), StaticCredentials(from_environment_or_demo())
        ) as client:
            await exercise_client(client, backend)

    asyncio.run(run())


def test_ack_client_with_a_wrong_secret_is_refused(backend: FakeAck, server: FakeAckServer) -> None:
    wrong = Credentials(DEMO_ACCESS_KEY_ID, SecretStr("wrong"))

    async def run() -> None:
        async with AckClient(Settings(cs_endpoint=server.url), StaticCredentials(wrong)) as client:
            with pytest.raises(AckApiError) as excinfo:
                await client.describe_clusters("cn-hangzhou")
            assert (excinfo.value.status, excinfo.value.code) == (400, "SignatureDoesNotMatch")

    asyncio.run(run())


def test_sync_httpx_client_through_the_transport(backend: FakeAck) -> None:
    target, headers = signed_request("GET", "/api/v1/clusters", {"region_id": "ap-southeast-1"})
    with httpx.Client(
        transport=FakeAckTransport(backend), base_url="https://cs.cn-hangzhou.aliyuncs.com"
    ) as http:
        response = http.get(target, headers=headers)
    assert response.status_code == 200
    assert [c["cluster_id"] for c in response.json()["clusters"]] == ["c-sg"]


def test_server_keeps_connections_alive(backend: FakeAck, server: FakeAckServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        for _ in range(3):
            target, headers = signed_request("GET", "/api/v1/clusters", host=f"127.0.0.1:{server.port}")
            response = http.get(target, headers=headers)
            assert response.status_code == 200
            assert response.headers["connection"].lower() == "keep-alive"
            assert response.headers["x-acs-request-id"]


# --- the official SDK --------------------------------------------------------------------


def sdk_client(server: FakeAckServer, secret: str = DEMO_ACCESS_KEY_SECRET) -> Any:
    from alibabacloud_cs20151215.client import Client
    from alibabacloud_tea_openapi.models import Config

    config = Config(
        access_key_id=DEMO_ACCESS_KEY_ID,
        access_key_secret=secret,
        endpoint=f"127.0.0.1:{server.port}",
        protocol="http",
        read_timeout=5000,
        connect_timeout=2000,
    )
    return Client(config)


def test_official_sdk_pages_and_cleans(backend: FakeAck, server: FakeAckServer) -> None:
    from alibabacloud_cs20151215 import models as cs_models

    client = sdk_client(server)
    names: list[str] = []
    page_number = 1
    while True:
        response = client.list_cluster_kubeconfig_states(
            "c-big", cs_models.ListClusterKubeconfigStatesRequest(page_number=page_number, page_size=10)
        )
        assert response.status_code == 200
        body = response.body
        assert body.page.total_count == 123 and body.page.page_size == 10
        names += [state.account_name for state in body.states]
        if page_number * 10 >= body.page.total_count:
            break
        page_number += 1
    assert page_number == 13
    assert names == [f"user-{i:03d}" for i in range(123)]
    first = client.list_cluster_kubeconfig_states(
        "c-prod", cs_models.ListClusterKubeconfigStatesRequest(page_size=10)
    ).body.states[0]
    assert (first.account_id, first.account_type, first.revokable) == (TOM, "RamUser", True)

    response = client.clean_cluster_user_permissions(
        "c-prod", TOM, cs_models.CleanClusterUserPermissionsRequest(force=True)
    )
    assert response.status_code == 200
    assert [(r.cluster_id, r.uid, r.force) for r in backend.revocations] == [("c-prod", TOM, True)]


def test_official_sdk_with_a_wrong_secret_is_refused(backend: FakeAck, server: FakeAckServer) -> None:
    from alibabacloud_cs20151215 import models as cs_models

    client = sdk_client(server, secret="definitely-wrong")
    with pytest.raises(Exception) as excinfo:
        client.list_cluster_kubeconfig_states("c-big", cs_models.ListClusterKubeconfigStatesRequest())
    assert getattr(excinfo.value, "code", None) == "SignatureDoesNotMatch"
    assert getattr(excinfo.value, "status_code", None) == 400
    assert backend.calls["ListClusterKubeconfigStates"] == 1


def test_server_counts_every_request_under_concurrency(backend: FakeAck, server: FakeAckServer) -> None:
    async def run() -> int:
        async with AckClient(
            Settings(cs_endpoint=server.url, max_concurrency=32),
            StaticCredentials(from_environment_or_demo()),
        ) as client:
            listings = await asyncio.gather(
                *(client.list_kubeconfig_states("cn-hangzhou", "c-big") for _ in range(40))
            )
            assert all(len(states) == 123 for states in listings)
            return client.stats.calls["ListClusterKubeconfigStates"]

    sent = asyncio.run(run())
    assert sent == backend.calls["ListClusterKubeconfigStates"] == 40 * 3
