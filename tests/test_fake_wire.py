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
from kubeconfig_guard.fake import FakeAck, FakeAckServer, FakeAckTransport
from kubeconfig_guard.fake.testing import signed_request, small_world
from kubeconfig_guard.fake.wire import handle
from kubeconfig_guard.settings import Settings

TOM = "200000000000000001"
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
