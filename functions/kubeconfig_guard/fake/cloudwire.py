"""The wire layer of the fake cloud: HTTP request in, HTTP response out, for every account.

ACK's ROA requests (routed by method and path, as ``wire.handle`` routes them) go to the backend
of the account that owns the request's access key (``FakeCloud.principal_of``), with the cloud's
key rules (``FakeCloud.resolve_key``: permanent keys, STS tokens and their expiry) and the
caller's RAM permissions (an STS session's role and session policy). RPC requests (``POST /`` or
``GET /``, the operation named by the signed ``x-acs-action`` and ``x-acs-version`` headers, the
parameters in the query string and, form-encoded, in the body) go to STS ``AssumeRole`` and
Resource Manager ``ListAccounts`` (``api.RPC_BY_VERSION_AND_NAME``), signed ACS3-HMAC-SHA256 as the
ROA requests are (the official SDKs' ``do_request``). RPC errors have the RPC shape
``{"RequestId", "HostId", "Code", "Message", "Recommend"}``. Sources: ``cloud.py``'s docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

from .. import api
from . import wire
from .backend import FakeAck, FakeAckError
from .cloud import FakeCloud, Principal, expiration_text, listed_account_fields
from .faults import NO_DECISION, FaultDecision
from .wire import WireResponse

Served = FakeAck | FakeCloud

_PRODUCTS = {"sts": "Sts", "resourcemanager": "ResourceManager"}
# [throttle] in cloud.py: the RPC products answer flow control with 400 Throttling.User.
THROTTLED = (400, "Throttling.User", "Request was denied due to user flow control.")
_FORM = "application/x-www-form-urlencoded"


def answer(
    target: Served,
    method: str,
    raw_target: str,
    headers: Mapping[str, str] | list[tuple[str, str]],
    body: bytes = b"",
) -> WireResponse:
    """Answer one HTTP request for a single-account ``FakeAck`` or a whole ``FakeCloud``."""
    if isinstance(target, FakeCloud):
        return handle(target, method, raw_target, headers, body)
    return wire.handle(target, method, raw_target, headers, body)


def handle(
    cloud: FakeCloud,
    method: str,
    raw_target: str,
    headers: Mapping[str, str] | list[tuple[str, str]],
    body: bytes = b"",
) -> WireResponse:
    """Answer one HTTP request to the fake cloud (``raw_target``: the path and query as received)."""
    request_id = wire.new_request_id()
    method = method.upper()
    raw_path, _, raw_query = raw_target.partition("?")
    lowered = wire.lower_headers(headers)
    routed = api.route(method, raw_path)
    if routed is not None:
        return _serve_ack(cloud, routed, method, raw_path, raw_query, lowered, body, request_id)
    if raw_path in ("", "/") and method in ("POST", "GET"):
        return _serve_rpc(cloud, method, raw_path or "/", raw_query, lowered, body, request_id)
    return wire.not_found(method, raw_path, request_id)


# --- ACK ----------------------------------------------------------------------------------------


def _serve_ack(
    cloud: FakeCloud,
    routed: tuple[api.Operation, dict[str, str]],
    method: str,
    raw_path: str,
    raw_query: str,
    lowered: dict[str, str],
    body: bytes,
    request_id: str,
) -> WireResponse:
    principal = cloud.principal_of(wire.access_key_of(lowered))
    if principal is not None:
        backend = cloud.accounts[principal.account_id]
    elif cloud.verify_signatures:
        backend = cloud.unattributed  # refused by the key check; counted apart from every account
    else:
        backend = cloud.central
    return wire.serve_roa(
        backend,
        routed,
        method,
        raw_path,
        raw_query,
        lowered,
        body,
        request_id,
        resolve=cloud.resolve_key,
        verify=cloud.verify_signatures,
        authorize=_ack_authorizer(principal) if principal is not None else None,
    )


def _ack_authorizer(principal: Principal) -> wire.Authorizer:
    """ACK's RAM check ([ack-ram] in cloud.py): 403 StatusForbidden with an accessDeniedDetail."""

    def authorize(operation: api.Operation) -> FakeAckError | None:
        action = operation.ram_action
        denial = principal.denial(action)
        if denial is None:
            return None
        who = "STSToken" if principal.session is not None else "RAM"
        return FakeAckError(
            403,
            "StatusForbidden",
            f"{who} policy Forbidden for action {action}",
            detail={"accessDeniedDetail": principal.access_denied_detail(action, denial)},
        )

    return authorize


# --- RPC: STS and Resource Manager ----------------------------------------------------------------


def rpc_error(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str,
    host: str,
    product: str | None = None,
    fault: FaultDecision = NO_DECISION,
    operation: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> WireResponse:
    """An RPC-shaped error: ``{"RequestId", "HostId", "Code", "Message", "Recommend"}`` (plus ``detail``)."""
    payload: dict[str, Any] = {
        "RequestId": request_id,
        "HostId": host,
        "Code": code,
        "Message": message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={quote(code)}&product={product or ''}",
    }
    if detail:
        payload.update(detail)
    return wire.json_response(status, payload, request_id, fault, operation)


def _serve_rpc(
    cloud: FakeCloud,
    method: str,
    raw_path: str,
    raw_query: str,
    lowered: dict[str, str],
    body: bytes,
    request_id: str,
) -> WireResponse:
    host = lowered.get("host", "")
    action = lowered.get("x-acs-action")
    version = lowered.get("x-acs-version", "")

    def error(status: int, code: str, message: str, **kwargs: Any) -> WireResponse:
        return rpc_error(status, code, message, request_id=request_id, host=host, **kwargs)

    if not action:
        return error(400, "MissingAction", "Action is mandatory for this request (the x-acs-action header).")
    op = api.RPC_BY_VERSION_AND_NAME.get((version, action))
    if op is None:
        if any(known.name == action for known in api.ORGANIZATION_OPERATIONS):
            return error(400, "InvalidVersion", f"Specified parameter Version is not valid: {version!r}.")
        return error(
            404, "InvalidAction.NotFound", f"Specified api is not found, please check your action: {action}"
        )
    service = cloud.sts if op.product == "sts" else cloud.resource_manager
    product = _PRODUCTS.get(op.product, op.product)
    operation = op.name
    principal = cloud.principal_of(wire.access_key_of(lowered))
    service.count(operation, principal.account_id if principal is not None else "")

    query = parse_rpc_query(raw_query)
    if cloud.verify_signatures:
        problem = wire.check_signature(cloud.resolve_key, method, raw_path, query, lowered, body)
        if problem is not None:
            return error(*problem, product=product, operation=operation)
    if principal is None:  # signatures not verified and no known key: the demo key's caller
        principal = cloud.principal_of(cloud.central.access_key_id)
        assert principal is not None
    denial = principal.denial(op.ram_action)
    if denial is not None:
        detail = {"AccessDeniedDetail": principal.access_denied_detail(op.ram_action, denial)}
        if op.product == "sts":  # [assumerole]
            return error(
                403,
                "NoPermission",
                "You are not authorized to do this action. You should be authorized by RAM.",
                product=product,
                operation=operation,
                detail=detail,
            )
        return error(  # [rpc-ram]
            403,
            "Forbidden.RAM",
            "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
            product=product,
            operation=operation,
            detail=detail,
        )
    params = dict(query)
    if body and lowered.get("content-type", "").split(";")[0].strip().lower() == _FORM:
        try:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            return error(
                400, "InvalidParameter", "The form body is not UTF-8.", product=product, operation=operation
            )

    decision = service.faults.decide(operation)
    if decision.throttled:
        return error(*THROTTLED, product=product, fault=decision, operation=operation)
    if decision.error_status is not None:
        status = decision.error_status
        code, message = (
            ("ServiceUnavailable", "The request has failed due to a temporary failure of the server.")
            if status == 503
            else ("InternalError", "The request processing has failed due to some unknown error.")
        )
        return error(status, code, message, product=product, fault=decision, operation=operation)
    if decision.kind == "hang" or (decision.kind == "reset" and not decision.reset_after_apply):
        return WireResponse(0, {"x-acs-request-id": request_id}, b"", decision, operation)
    if decision.answer_status is not None and not decision.answer_after_apply:
        return wire.canned_response(decision, request_id, operation)
    try:
        for hook in list(service.hooks):
            hook(cloud, operation, params, principal)
        if op is api.ASSUME_ROLE:
            payload = _assume_role(cloud, principal, params)
        else:
            payload = _list_accounts(cloud, principal, params, decision)
    except FakeAckError as exc:
        return error(
            exc.status,
            exc.code,
            exc.message,
            product=product,
            fault=decision,
            operation=operation,
            detail=exc.detail,
        )
    if decision.answer_status is not None:  # answer_after_apply: the operation ran
        return wire.canned_response(decision, request_id, operation)
    payload = {"RequestId": request_id, **payload}
    return wire.json_response(200, payload, request_id, decision, operation)


def parse_rpc_query(raw_query: str) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs of an RPC query, form-decoded: ``+`` is a space.

    The official SDKs build the URL with urllib's ``urlencode`` (a space becomes ``+``) and sign
    the value percent-encoded (``%20``): the gateway reads ``+`` as a space. (ROA paths and
    queries keep ``+``: ``wire.parse_query``.)
    """
    return [(k, v) for k, v in parse_qsl(raw_query, keep_blank_values=True)] if raw_query else []


def _optional(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return value if value else None


def _int(params: Mapping[str, str], name: str, code: str) -> int | None:
    raw = _optional(params, name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise FakeAckError(400, code, f"The parameter {name} must be an integer, got {raw!r}.") from None


def _assume_role(cloud: FakeCloud, caller: Principal, params: Mapping[str, str]) -> dict[str, Any]:
    session = cloud.assume_role(
        caller,
        _optional(params, "RoleArn"),
        _optional(params, "RoleSessionName"),
        duration_seconds=_int(params, "DurationSeconds", "InvalidParameter.DurationSeconds"),
        policy=_optional(params, "Policy"),
        external_id=_optional(params, "ExternalId"),
    )
    return {
        "AssumedRoleUser": {"Arn": session.arn, "AssumedRoleId": session.assumed_role_id},
        "Credentials": {
            "AccessKeyId": session.access_key_id,
            "AccessKeySecret": session.access_key_secret,
            "SecurityToken": session.security_token,
            "Expiration": expiration_text(session),
        },
    }


def _list_accounts(
    cloud: FakeCloud, caller: Principal, params: Mapping[str, str], fault: FaultDecision
) -> dict[str, Any]:
    """ListAccounts' answer; hostile paging faults (``FaultSpec.page_*``) bend it as for ACK's listings."""
    paging = api.LIST_ACCOUNTS_PAGING
    asked = _int(params, paging.number_param, f"InvalidParameter.{paging.number_param}")
    size = _int(params, paging.size_param, f"InvalidParameter.{paging.size_param}")
    number = 1 if fault.page_repeat_first or asked is None else asked
    page = cloud.list_accounts(caller, number, paging.default_size if size is None else size)
    accounts = [] if fault.page_empty else [listed_account_fields(a) for a in page.accounts]
    echoed: Any = page.page_number
    if fault.page_repeat_first:
        echoed = asked if asked is not None else 1
    if fault.page_number_echo is not None:
        echoed = fault.page_number_echo
    total = fault.page_total_count if fault.page_total_count is not None else page.total_count
    return {
        "PageNumber": echoed,
        "PageSize": page.page_size,
        "TotalCount": total,
        "Accounts": {"Account": accounts},
    }


__all__ = ["Served", "answer", "handle", "rpc_error"]
