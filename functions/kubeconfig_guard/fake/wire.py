"""The wire layer of the fake ACK: HTTP request in, HTTP response out, nothing else.

``handle`` routes the three ROA operations, verifies the ACS3-HMAC-SHA256 signature
with the same canonicalization functions the client signs with, asks the fault
injector what goes wrong, decodes the request's query and path strings into the
backend's typed arguments, runs the operation on the backend and shapes its typed
answer into ACK's JSON. Front ends (``FakeAckTransport``, ``FakeAckServer``) carry out
the returned delays, hangs and resets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .. import api, signing
from ..api import API_VERSION
from .backend import (
    ClustersPage,
    DescribedCluster,
    FakeAck,
    FakeAckError,
    KubeconfigStatesPage,
    invalid_parameter,
)
from .faults import NO_DECISION, FaultDecision
from .world import STATE_FIELDS

JSON_CONTENT_TYPE = "application/json;charset=utf-8"
# Headers every signed request must carry.
REQUIRED_SIGNED_HEADERS = ("x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce")
REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class WireResponse:
    """What to answer: status, headers, body, and the fault the front end must carry out.

    ``fault.kind``: ``hang`` (answer nothing), ``slow`` (answer after ``fault.seconds``),
    ``reset`` (reset the connection: mid-response when ``fault.reset_after_apply``, else
    before the operation ran and without any answer). ``fault.latency_seconds`` is added
    before answering.
    """

    status: int
    headers: dict[str, str]
    body: bytes
    fault: FaultDecision = field(default=NO_DECISION)
    operation: str | None = None

    @property
    def reason(self) -> str:
        return REASONS.get(self.status, "Unknown")


# --- parameters in, typed call, JSON out -------------------------------------------------------
#
# Parameter names and answer keys come from the API table (``api.py``), path parameters
# (``ClusterId``, ``Uid``) from its path templates through ``api.route``.
REGION_PARAM = api.CLUSTERS_REGION_PARAM  # DescribeClustersV1
FORCE_PARAM = api.CLEAN_FORCE_PARAM  # CleanClusterUserPermissions

Params = dict[str, str]
_Page = ClustersPage | KubeconfigStatesPage


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid_parameter(f"{name} must be an integer, got {raw!r}") from None


def _bool_param(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return False
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise invalid_parameter(f"{name} must be true or false, got {raw!r}")
    return lowered == "true"


def _page_info(page: _Page) -> dict[str, Any]:
    return {"page_number": page.page_number, "page_size": page.page_size, "total_count": page.total_count}


def _cluster_item(cluster: DescribedCluster) -> dict[str, Any]:
    item: dict[str, Any] = {
        "cluster_id": cluster.cluster_id,
        "name": cluster.name,
        "region_id": cluster.region_id,
        "cluster_type": cluster.cluster_type,
        "state": cluster.state,
    }
    for key, value in cluster.extra.items():
        item.setdefault(key, value)
    return item


def _describe_clusters(backend: FakeAck, params: Params) -> dict[str, Any]:
    paging = api.CLUSTERS_PAGING
    page = backend.describe_clusters(
        params.get(REGION_PARAM) or None,
        _int_param(params, paging.number_param, 1),
        _int_param(params, paging.size_param, paging.default_size),
    )
    return {
        paging.items_key: [_cluster_item(cluster) for cluster in page.clusters],
        paging.page_key: _page_info(page),
    }


def _list_kubeconfig_states(backend: FakeAck, params: Params) -> dict[str, Any]:
    paging = api.STATES_PAGING
    page = backend.list_kubeconfig_states(
        params["ClusterId"],
        _int_param(params, paging.number_param, 1),
        _int_param(params, paging.size_param, paging.default_size),
    )
    states = [{name: getattr(k, name) for name in STATE_FIELDS} for k in page.states]
    return {paging.items_key: states, paging.page_key: _page_info(page)}


def _clean_user_permissions(backend: FakeAck, params: Params) -> dict[str, Any]:
    cluster_id = params["ClusterId"]
    backend.require_cluster(cluster_id)  # ACK answers an unknown cluster 404 before judging Force
    backend.clean_user_permissions(cluster_id, params["Uid"], _bool_param(params, FORCE_PARAM))
    return {}


_OPERATIONS: dict[str, Callable[[FakeAck, Params], dict[str, Any]]] = {
    api.DESCRIBE_CLUSTERS_V1.name: _describe_clusters,
    api.LIST_CLUSTER_KUBECONFIG_STATES.name: _list_kubeconfig_states,
    api.CLEAN_CLUSTER_USER_PERMISSIONS.name: _clean_user_permissions,
}


def _run_operation(backend: FakeAck, operation: str, params: Params) -> dict[str, Any]:
    """Run the backend's hooks, decode ``params``, call the typed operation, shape its JSON answer.

    Hooks run here, in the wire layer, not in the backend: their contract is the request's
    string parameters (``hook(backend, operation, params)``, before the operation, free to
    raise FakeAckError or change the world or ``params``), and strings exist only on the wire.
    The backend's operations stay typed end to end and keep the list only as state
    (``FakeAck.hooks``); a test calling them directly runs no hook. Hooks see ``params``
    after the fault's page rewrite (``_hostile_paging``) and before any decoding, so a hook
    also sees requests whose parameters the decoding then refuses.
    """
    serve = _OPERATIONS.get(operation)
    if serve is None:
        raise FakeAckError(404, "InvalidAction.NotFound", f"unknown operation {operation}")
    for hook in list(backend.hooks):
        hook(backend, operation, params)
    return serve(backend, params)


# Listing operations and how they page (the API table's page parameters and answer keys).
_PAGED = {op.name: op.paging for op in api.OPERATIONS if op.paging is not None}


def _hostile_paging(backend: FakeAck, operation: str, params: Params, fault: FaultDecision) -> dict[str, Any]:
    """Run a listing operation and bend its shaped answer as the fault's ``page_*`` fields say.

    ``page_repeat_first`` serves page 1 whatever was asked, echoing the asked page number
    (as an integer when it is one, else as the string received).
    """
    paging = _PAGED[operation]
    asked = params.get(paging.number_param, "1")
    if fault.page_repeat_first:
        params = {**params, paging.number_param: "1"}
    payload = _run_operation(backend, operation, params)
    page = payload.setdefault(paging.page_key, {})
    if fault.page_repeat_first:
        page["page_number"] = int(asked) if asked.isdigit() else asked
    if fault.page_empty:
        payload[paging.items_key] = []
    if fault.page_total_count is not None:
        page["total_count"] = fault.page_total_count
    if fault.page_number_echo is not None:
        page["page_number"] = fault.page_number_echo
    return payload


def new_request_id() -> str:
    """A request id as Alibaba Cloud writes them (an upper-case UUID)."""
    return str(uuid.uuid4()).upper()


_request_id = new_request_id


def json_response(
    status: int, payload: Any, request_id: str, fault: FaultDecision, operation: str | None
) -> WireResponse:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {"content-type": JSON_CONTENT_TYPE, "x-acs-request-id": request_id}
    return WireResponse(status, headers, body, fault, operation)


def canned_response(fault: FaultDecision, request_id: str, operation: str) -> WireResponse:
    """The fault's canned answer (``FaultSpec.answer_*``), with the request id header."""
    assert fault.answer_status is not None
    headers = {"content-type": fault.answer_content_type, "x-acs-request-id": request_id}
    return WireResponse(fault.answer_status, headers, fault.answer_body.encode("utf-8"), fault, operation)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str | None = None,
    fault: FaultDecision = NO_DECISION,
    operation: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> WireResponse:
    """An ACK-shaped error: ``{"code", "message", "requestId", "status"}`` (plus ``detail``'s keys)."""
    rid = request_id or _request_id()
    payload: dict[str, Any] = {"code": code, "message": message, "requestId": rid, "status": status}
    if detail:
        payload.update(detail)
    return json_response(status, payload, rid, fault, operation)


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs, in order (percent-decoding only: ``+`` stays ``+``)."""
    pairs: list[tuple[str, str]] = []
    if not raw_query:
        return pairs
    for item in raw_query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def lower_headers(headers: Mapping[str, str] | list[tuple[str, str]]) -> dict[str, str]:
    """Lower-case header names; repeated headers are joined with ``,``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    lowered: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    return lowered


# An answer refusing a request: (HTTP status, error code, message).
Problem = tuple[int, str, str]
# ``resolve(access_key_id, lowered headers)``: the key's secret, or why the key (or the security
# token that must come with it) is refused. Whose key it is belongs to the caller: one backend's
# pair (``backend_keys``) or every account of a ``FakeCloud``.
KeyResolver = Callable[[str, Mapping[str, str]], "str | Problem"]


def backend_keys(backend: FakeAck) -> KeyResolver:
    """The single-account fake's rule: its one key pair, and its security token when it has one."""

    def resolve(access_key_id: str, headers: Mapping[str, str]) -> str | Problem:
        if access_key_id != backend.access_key_id:
            return 404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
        if (
            backend.security_token is not None
            and headers.get("x-acs-security-token") != backend.security_token
        ):
            return 400, "InvalidSecurityToken", "The security token you provided is invalid."
        return backend.access_key_secret

    return resolve


def access_key_of(headers: Mapping[str, str]) -> str | None:
    """The access key id a request claims (its Authorization header's Credential), unverified."""
    auth = signing.parse_authorization(headers.get("authorization", ""))
    return auth["Credential"] if auth is not None else None


def check_signature(
    resolve: KeyResolver,
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
) -> Problem | None:
    """None when the request is correctly signed, else (status, code, message)."""
    auth_value = headers.get("authorization")
    if not auth_value:
        return 400, "IncompleteSignature", "The request is not signed: the Authorization header is missing."
    auth = signing.parse_authorization(auth_value)
    if auth is None:
        return 400, "IncompleteSignature", "The Authorization header is malformed."
    missing = [name for name in (*REQUIRED_SIGNED_HEADERS, "x-acs-content-sha256") if name not in headers]
    if missing:
        return 400, "IncompleteSignature", f"Required headers are missing: {', '.join(missing)}."
    signed_names = [name for name in auth["SignedHeaders"].split(";") if name]
    if any(name != name.lower() for name in signed_names):
        return 400, "IncompleteSignature", "SignedHeaders must be lower-case header names."
    unsigned = [name for name in ("host", *REQUIRED_SIGNED_HEADERS) if name not in signed_names]
    if unsigned:
        return 400, "IncompleteSignature", f"Headers must be signed: {', '.join(unsigned)}."
    absent = [name for name in signed_names if name not in headers]
    if absent:
        return (
            400,
            "IncompleteSignature",
            f"Signed headers are missing from the request: {', '.join(absent)}.",
        )
    secret = resolve(auth["Credential"], headers)
    if not isinstance(secret, str):
        return secret
    payload_hash = headers["x-acs-content-sha256"]
    if not hmac.compare_digest(payload_hash.lower(), hashlib.sha256(body).hexdigest()):
        return (
            400,
            "SignatureDoesNotMatch",
            "The x-acs-content-sha256 header does not match the request body.",
        )
    to_sign, _ = signing.string_to_sign(method, raw_path, query, headers, signed_names, payload_hash)
    expected = signing.signature(secret, to_sign)
    if not hmac.compare_digest(expected, auth["Signature"].strip().lower()):
        return (
            400,
            "SignatureDoesNotMatch",
            "The request signature does not conform to Aliyun standards. "
            "Check the AccessKey secret and the canonical request.",
        )
    return None


def not_found(method: str, raw_path: str, request_id: str) -> WireResponse:
    """No operation answers ``method raw_path``: 404 ``InvalidAction.NotFound``."""
    return error_response(
        404,
        "InvalidAction.NotFound",
        f"Specified api is not found, please check your url and method: {method} {raw_path}",
        request_id=request_id,
    )


def handle(
    backend: FakeAck,
    method: str,
    raw_target: str,
    headers: Mapping[str, str] | list[tuple[str, str]],
    body: bytes = b"",
) -> WireResponse:
    """Answer one HTTP request (``raw_target`` is the path and query exactly as received)."""
    request_id = _request_id()
    method = method.upper()
    raw_path, _, raw_query = raw_target.partition("?")
    routed = api.route(method, raw_path)
    if routed is None:
        return not_found(method, raw_path, request_id)
    return serve_roa(
        backend,
        routed,
        method,
        raw_path,
        raw_query,
        lower_headers(headers),
        body,
        request_id,
        resolve=backend_keys(backend),
        verify=backend.verify_signatures,
    )


# ``authorize(operation)``: None when the verified caller may call the operation, else the refusal.
Authorizer = Callable[[api.Operation], "FakeAckError | None"]


def serve_roa(
    backend: FakeAck,
    routed: tuple[api.Operation, dict[str, str]],
    method: str,
    raw_path: str,
    raw_query: str,
    lowered: dict[str, str],
    body: bytes,
    request_id: str,
    *,
    resolve: KeyResolver,
    verify: bool,
    authorize: Authorizer | None = None,
) -> WireResponse:
    """Serve one routed ACK request on ``backend``: count it, check it, fault it, run it, shape it.

    ``resolve`` says whose keys are valid; ``authorize`` (after a valid signature) whether the
    caller's RAM permissions allow the operation (a ``FakeCloud``'s STS sessions).
    """
    routed_op, path_params = routed
    operation = routed_op.name
    backend.count_call(operation)

    action = lowered.get("x-acs-action")
    if action is not None and action != operation:
        return error_response(
            400,
            "InvalidAction",
            f"x-acs-action {action!r} does not match {method} {raw_path} ({operation}).",
            request_id=request_id,
            operation=operation,
        )
    version = lowered.get("x-acs-version")
    if version is not None and version != API_VERSION:
        return error_response(
            400,
            "InvalidVersion",
            f"Specified parameter Version is not valid: {version!r} (expected {API_VERSION}).",
            request_id=request_id,
            operation=operation,
        )
    query = parse_query(raw_query)
    if verify:
        problem = check_signature(resolve, method, raw_path, query, lowered, body)
        if problem is not None:
            status, code, message = problem
            return error_response(status, code, message, request_id=request_id, operation=operation)
    if authorize is not None and (denied := authorize(routed_op)) is not None:
        return error_response(
            denied.status,
            denied.code,
            denied.message,
            request_id=request_id,
            operation=operation,
            detail=denied.detail,
        )

    decision = backend.faults.decide(operation)
    if decision.throttled:
        return error_response(
            429,
            "Throttling.User",
            "Request was denied due to user flow control.",
            request_id=request_id,
            fault=decision,
            operation=operation,
        )
    if decision.error_status is not None:
        status = decision.error_status
        code, message = (
            ("ServiceUnavailable", "The request has failed due to a temporary failure of the server.")
            if status == 503
            else ("InternalError", "The request processing has failed due to some unknown error.")
        )
        return error_response(
            status, code, message, request_id=request_id, fault=decision, operation=operation
        )
    if decision.kind == "hang" or (decision.kind == "reset" and not decision.reset_after_apply):
        return WireResponse(0, {"x-acs-request-id": request_id}, b"", decision, operation)
    if decision.answer_status is not None and not decision.answer_after_apply:
        return canned_response(decision, request_id, operation)

    params = dict(query)
    params.update(path_params)
    hostile = (
        decision.page_total_count is not None
        or decision.page_repeat_first
        or decision.page_empty
        or decision.page_number_echo is not None
    )
    try:
        if hostile and operation in _PAGED:
            payload = _hostile_paging(backend, operation, params, decision)
        else:
            payload = _run_operation(backend, operation, params)
    except FakeAckError as exc:
        return error_response(
            exc.status,
            exc.code,
            exc.message,
            request_id=request_id,
            fault=decision,
            operation=operation,
            detail=exc.detail,
        )
    if decision.answer_status is not None:  # answer_after_apply: the operation ran
        return canned_response(decision, request_id, operation)
    return json_response(200, payload, request_id, decision, operation)
