"""The final failure: Function Compute's retries could not finish an event. Tell people once.

The event function's asynchronous invocations have a failure destination (template.yml,
docs/deploy.md): when an event's last attempt fails (the handler raised
``RetryableInvocationError`` on every attempt, or the invocation timed out or crashed), Function
Compute invokes ``kubeconfig-guard-notify`` (``handlers.failure_handler``) asynchronously with its
record of the invocation, "after ... all retry attempts" and once per failed invocation
(Function Compute, "Destinations for asynchronous invocations":
https://www.alibabacloud.com/help/en/fc/user-guide/result-callback). The record holds
``requestContext`` (``requestId``, ``functionArn``, ``condition``, ``approximateInvokeCount``), the
original event (``requestPayload``), ``responseContext`` (``statusCode``, ``functionError``) and the
invocation's answer (``responsePayload``: for a Python error ``errorMessage`` and ``errorType``).
The event function puts its result document in the error's message (``(result: {...})``), so the
notice says exactly what the last attempt left; when it cannot be read, the notice is built from the
event itself (no API call: this function holds no role).

The record is untrusted input (whoever may invoke the function can send one): it is validated
(pydantic; sizes bounded), and anything that is not a failure record of an event the event function
acts on is answered ``ignored`` with the reason. The handler never raises, so Function Compute never
retries it (its ``maxAsyncRetryAttempts`` is 0 too): one record, one notice per channel.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import logs
from .events import MAX_EVENT_BYTES, RevocationRequest, parse_event
from .notices import NOTICE_SCHEMA_VERSION, EventNotice, deliver
from .redaction import redact_cut
from .results import BatchResult, Notice, Outcome, RevocationResult
from .settings import EventNotify, Mode, Settings

log = logging.getLogger("kubeconfig_guard.notices")


class FinalFailure(BaseModel):
    """What Function Compute's failure destination said about the event's last attempt."""

    model_config = ConfigDict(frozen=True)

    request_id: str | None = None
    condition: str | None = None
    attempts: int | None = None
    error_type: str | None = None
    error: str | None = None
    result_read: bool = Field(
        False, description="The last attempt's result document was read (else rebuilt from the event)."
    )


RESULT_MARKER = "(result: "


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class DestinationRequestContext(_Lenient):
    request_id: str | None = Field(None, alias="requestId", max_length=256)
    function_arn: str | None = Field(None, alias="functionArn", max_length=1024)
    condition: str | None = Field(None, max_length=256)
    approximate_invoke_count: int | None = Field(None, alias="approximateInvokeCount", ge=0, le=10_000)


class DestinationResponseContext(_Lenient):
    status_code: int | None = Field(None, alias="statusCode")
    function_error: str | None = Field(None, alias="functionError", max_length=1024)


class DestinationRecord(_Lenient):
    """Function Compute's record of an asynchronous invocation, sent to its destination.

    ``requestContext`` (request id, function ARN, ``condition``, ``approximateInvokeCount``), the
    original event (``requestPayload``), ``responseContext`` (``statusCode``, ``functionError``)
    and what the invocation answered (``responsePayload``: for an error, ``errorMessage`` and
    ``errorType``); both payloads arrive as JSON text or as JSON values, and both are read.
    """

    timestamp: str | int | float | None = None
    request_context: DestinationRequestContext = Field(alias="requestContext")
    request_payload: Any = Field(None, alias="requestPayload")
    response_context: DestinationResponseContext | None = Field(None, alias="responseContext")
    response_payload: Any = Field(None, alias="responsePayload")


class FailureResult(BaseModel):
    """What the failure handler returns (and logs): the notice it sent about a final failure, or why not."""

    schema_version: int = NOTICE_SCHEMA_VERSION
    outcome: Outcome
    reason: str = ""
    failure: FinalFailure | None = None
    results: list[RevocationResult] = Field(
        default_factory=list, description="The last attempt's results (or what the event asked for)."
    )
    notices: list[Notice] = Field(default_factory=list)


def _json_value(value: Any) -> Any:
    """A payload that may be JSON text (or bytes) as a JSON value; anything else as it is."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _errors(exc: ValidationError) -> str:
    """A validation error's places and messages, never the (untrusted) input values."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors(include_input=False)[:3]
    )


def _results_from_message(message: str) -> list[RevocationResult] | None:
    """The result document ``handlers.handle_event`` put in its ``RetryableInvocationError`` message."""
    start = message.find(RESULT_MARKER)
    if start < 0:
        return None
    try:
        doc, _ = json.JSONDecoder().raw_decode(message, start + len(RESULT_MARKER))
        if isinstance(doc, dict) and "results" in doc:
            return BatchResult.model_validate(doc).results
        return [RevocationResult.model_validate(doc)]
    except (ValueError, ValidationError):
        return None


def _results_from_request(payload: Any, settings: Settings) -> list[RevocationResult]:
    """What the event asked for, when the last attempt's result cannot be read (no API call)."""
    if payload is None:
        return []
    if isinstance(payload, (dict, list)):
        raw: bytes | str = json.dumps(payload)
    elif isinstance(payload, (bytes, str)):
        raw = payload
    else:
        return []
    return [
        RevocationResult(
            event_id=item.event_id,
            event_name=item.event_name,
            kind=item.kind,
            outcome=Outcome.PARTIAL,
            reason="not finished: the last attempt's result could not be read",
            mode=Mode.DRY_RUN if item.dry_run else settings.mode,
            account_id=item.account_id,
            principal=item.principal,
        )
        for item in parse_event(raw, settings.event_format)
        if isinstance(item, RevocationRequest)
    ]


def read_failure(event: Any, settings: Settings) -> tuple[FinalFailure, list[RevocationResult]] | str:
    """Function Compute's failure record as a ``FinalFailure`` and the results it is about; else why not."""
    raw = event
    if isinstance(raw, (bytes, bytearray, str)):
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > MAX_EVENT_BYTES:
            return f"a failure record larger than {MAX_EVENT_BYTES} bytes"
        raw = _json_value(raw)
        if isinstance(raw, str):
            return "not a JSON document"
    if not isinstance(raw, dict):
        return "not a Function Compute destination record (not a JSON object)"
    try:
        record = DestinationRecord.model_validate(raw)
    except ValidationError as exc:
        return f"not a Function Compute destination record: {_errors(exc)}"
    request = _json_value(record.request_payload)
    if isinstance(request, dict) and "requestContext" in request:
        return "a destination record about a destination record (not an event of the event function)"
    response = _json_value(record.response_payload)
    error_message = response.get("errorMessage") if isinstance(response, dict) else None
    error_type = response.get("errorType") if isinstance(response, dict) else None
    function_error = record.response_context.function_error if record.response_context else None
    if not (record.request_context.condition or function_error or error_message or error_type):
        return "not a failure: the record carries no error (a success destination?)"
    results = _results_from_message(error_message) if isinstance(error_message, str) else None
    read = results is not None
    if results is None:
        results = _results_from_request(request, settings)
    results = [r for r in results if r.outcome is not Outcome.IGNORED]
    if not results:
        return "the record names no event the event function acts on"
    error = error_message if isinstance(error_message, str) and not read else None
    failure = FinalFailure(
        request_id=record.request_context.request_id,
        condition=record.request_context.condition,
        attempts=record.request_context.approximate_invoke_count,
        error_type=redact_cut(str(error_type or function_error), 200)
        if (error_type or function_error)
        else None,
        error=redact_cut(error, 300) if error else None,
        result_read=read,
    )
    return failure, results


def handle_final_failure(
    event: Any, settings: Settings, *, account_id: str | None, budget: float
) -> FailureResult:
    """Tell people, once, that Function Compute's retries could not finish an event. Never raises."""
    read = read_failure(event, settings)
    if isinstance(read, str):
        outcome = FailureResult(outcome=Outcome.IGNORED, reason=read)
    else:
        failure, results = read
        if settings.event_notify is EventNotify.OFF:
            reason = "not told: KCGUARD_EVENT_NOTIFY is off"
            notices: list[Notice] = []
        else:
            notices = deliver(
                EventNotice(tuple(results), account_id=account_id, failure=failure), settings, budget
            )
            sent = [n.channel for n in notices if n.ok]
            reason = (
                f"final failure told to {', '.join(sent)}"
                if sent
                else "final failure: no channel took the notice"
                if notices
                else "final failure: no channel is configured"
            )
        outcome = FailureResult(
            outcome=Outcome.OK, reason=reason, failure=failure, results=results, notices=notices
        )
    logs.log_fields(
        log,
        f"final failure {outcome.outcome.value}",
        logging.INFO if outcome.outcome is Outcome.OK else logging.WARNING,
        reason=outcome.reason,
        request_id=outcome.failure.request_id if outcome.failure else None,
        condition=outcome.failure.condition if outcome.failure else None,
        attempts=outcome.failure.attempts if outcome.failure else None,
        notices=[n.model_dump(mode="json") for n in outcome.notices],
    )
    return outcome
