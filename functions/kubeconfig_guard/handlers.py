"""Function Compute entry points: thin adapters from FC to the engine.

* ``kubeconfig_guard.handlers.event_handler``: EventBridge (ActionTrail) events and manual invocations.
* ``kubeconfig_guard.handlers.summary_handler``: the daily timer (see ``summary``).
* ``kubeconfig_guard.handlers.failure_handler``: the event function's asynchronous-invocation
  failure destination: tells people once that Function Compute's retries gave up (``failures``).

Both work on the python3.10 runtime (``context.credentials`` carries the role's
STS token) and on python3.12 (no ``context.credentials``: the default credential
chain reads the ``ALIBABA_CLOUD_*`` variables Function Compute sets).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import logs
from .admission import Guard, admit, guarded_account
from .credentials import from_fc_context
from .deadline import Deadline, invocation_deadline
from .errors import CredentialsError, RetryableInvocationError
from .events import Ignored, RevocationRequest, parse_event
from .redaction import redact
from .results import BatchResult, Notice, Outcome, RevocationResult
from .runtime import Runtime, default_runtime
from .settings import EventNotify, Mode, Settings

if TYPE_CHECKING:
    from .failures import FailureResult
    from .summary.pipeline import SummaryResult
    from .summary.scan import Progress

log = logging.getLogger("kubeconfig_guard.handler")


# The engine stops its own work at the deadline; this is the last resort if something still hangs.
BACKSTOP_GRACE_SECONDS = 2.0


def backstop(deadline: Deadline) -> float | None:
    remaining = deadline.remaining()
    return None if remaining is None else remaining + BACKSTOP_GRACE_SECONDS


def ignored_result(item: Ignored, mode: Mode) -> RevocationResult:
    return RevocationResult(
        event_id=item.event_id,
        event_name=item.event_name,
        outcome=Outcome.IGNORED,
        reason=item.reason,
        mode=mode,
    )


def handle_event(
    event: Any, context: Any = None, *, runtime: Runtime | None = None
) -> RevocationResult | BatchResult:
    """Parse, admit, revoke, log; return the result. Raises only RetryableInvocationError."""
    started = time.monotonic()
    runtime = runtime or default_runtime()
    logs.configure(runtime.settings.log_level)
    runtime.credentials.update(from_fc_context(context))
    deadline = invocation_deadline(context, started, runtime.settings.deadline_margin_seconds)
    mode = runtime.settings.mode
    guard = Guard.of(runtime.settings, context)

    organization = runtime.organization
    if organization is None:
        items = [
            admit(p, guard) if isinstance(p, RevocationRequest) else p
            for p in parse_event(event, runtime.settings.event_format)
        ]
    else:  # each event is admitted against its own account (organization.revoke_in_accounts)
        organization.invocation_id = _request_id(context)
        items = parse_event(event, runtime.settings.event_format, receiving_account=guard.account_id)
    requests = [item for item in items if isinstance(item, RevocationRequest)]
    crashed = False
    revoked: list[RevocationResult | Ignored] = []
    if requests:
        try:
            if organization is None:
                revoked = list(
                    runtime.run(
                        runtime.engine.revoke_all(
                            requests, deadline=deadline, received_at=started, account_id=guard.account_id
                        ),
                        backstop(deadline),
                    )
                )
            else:
                from .organization import revoke_in_accounts  # organization mode only

                revoked = runtime.run(
                    revoke_in_accounts(organization, requests, guard, deadline=deadline, received_at=started),
                    backstop(deadline),
                )
        except Exception as exc:  # never a traceback to FC: report and retry
            logs.log_fields(log, "revocation crashed", logging.ERROR, error=type(exc).__name__)
            revoked = [_crashed_result(r, exc, mode) for r in requests]
            crashed = True
    done = iter(revoked)
    results: list[RevocationResult] = []
    for item in items:
        outcome = item if isinstance(item, Ignored) else next(done)
        results.append(ignored_result(outcome, mode) if isinstance(outcome, Ignored) else outcome)
    for result in results:
        _log_result(result)

    final = results[0] if len(results) == 1 else BatchResult.of(results, time.monotonic() - started)
    retrying = crashed or any(r.needs_retry for r in results)
    final.notices = _send_notices(results, runtime, deadline, guard.account_id, retrying)  # after the work
    if retrying:
        raise RetryableInvocationError(
            redact(
                "some clusters failed or were not attempted; Function Compute retries this event "
                f"(result: {_result_text(final)})"
            ),
            result=final,
        )
    return final


# The result document in a RetryableInvocationError's message stays under this size: Function
# Compute hands the message of the last attempt to the failure destination (failures.read_failure).
MESSAGE_RESULT_BYTES = 48_000


def _result_text(final: RevocationResult | BatchResult) -> str:
    text = final.model_dump_json()
    if len(text) <= MESSAGE_RESULT_BYTES // 4:  # even all 4-byte characters fit
        return text
    from .notices import result_for_message  # a large result only

    return result_for_message(final, MESSAGE_RESULT_BYTES)


def _send_notices(
    results: list[RevocationResult],
    runtime: Runtime,
    deadline: Deadline,
    account_id: str | None,
    retrying: bool,
) -> list[Notice]:
    """The invocation's notice (``notices.py``): sent after the Cleans, within what is left of the
    deadline; never raises, never a reason to retry. Nothing to tell: ``notices`` is not even imported.
    """
    settings = runtime.settings
    if settings.event_notify is EventNotify.OFF or not any(
        r.actions or r.outcome is Outcome.LIMIT_EXCEEDED for r in results
    ):
        return []
    try:
        from .notices import notice_budget, notify_event  # only now: the cold start stays as it was

        budget = notice_budget(deadline.remaining())
        return notify_event(
            results, settings, account_id=account_id, retrying=retrying, budget=budget, run=runtime.run
        )
    except Exception as exc:  # a notice never fails a revocation
        logs.log_fields(log, "event notice not sent", logging.ERROR, error=type(exc).__name__)
        return []


def _request_id(context: Any) -> str | None:
    """The invocation's request id (Function Compute's context), as plain short text."""
    value = getattr(context, "request_id", None)
    return value[:64] if isinstance(value, str) and value else None


def _crashed_result(request: RevocationRequest, exc: Exception, mode: str) -> RevocationResult:
    return RevocationResult(
        event_id=request.event_id,
        event_name=request.event_name,
        kind=request.kind,
        outcome=Outcome.PARTIAL,
        reason=(
            "the invocation's deadline came before the work finished: retried by Function Compute"
            if isinstance(exc, TimeoutError)
            # our own message, never a value: "no credentials found", "the security token holds ..."
            else f"credentials: {redact(str(exc))}: retried by Function Compute"
            if isinstance(exc, CredentialsError)
            else f"internal error {type(exc).__name__}: retried by Function Compute"
        ),
        mode=mode,
        principal=request.principal,
    )


def _log_result(result: RevocationResult) -> None:
    logs.log_fields(
        log,
        f"event {result.outcome.value}",
        event_id=result.event_id,
        event_name=result.event_name,
        outcome=result.outcome.value,
        reason=result.reason,
        mode=result.mode.value,
        counts=result.counts,
        clusters_scanned=result.clusters_scanned,
        clusters_total=result.clusters_total,
        clusters_not_done=[f"{c.cluster_id}: {c.status.value}" for c in result.clusters][:50],
        duration_ms=result.duration_ms,
    )


def event_handler(event: Any, context: Any) -> str:
    """Function Compute handler of the event function."""
    return handle_event(event, context).model_dump_json()


# --- the final failure ---------------------------------------------------------------------


def handle_failure(event: Any, context: Any = None, *, settings: Settings | None = None) -> FailureResult:
    """Function Compute's record of an event whose retries gave up: one notice (``notices``)."""
    from .failures import handle_final_failure
    from .notices import notice_budget

    started = time.monotonic()
    settings = settings or Settings()
    logs.configure(settings.log_level)
    deadline = invocation_deadline(context, started, settings.deadline_margin_seconds)
    return handle_final_failure(
        event,
        settings,
        account_id=guarded_account(settings, context),
        budget=notice_budget(deadline.remaining()),
    )


def failure_handler(event: Any, context: Any) -> str:
    """Function Compute handler of ``kubeconfig-guard-notify``, the event function's failure destination."""
    return handle_failure(event, context).model_dump_json()


# --- the daily summary ---------------------------------------------------------------------


def handle_summary(
    event: Any,
    context: Any = None,
    *,
    runtime: Runtime | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> SummaryResult:
    """The daily summary (``summary.pipeline.summarize``) on the process's runtime."""
    from .summary.pipeline import summarize  # the event function never imports the summary

    return summarize(event, context, runtime=runtime or default_runtime(), now=now, progress=progress)


def summary_handler(event: Any, context: Any) -> str:
    """Function Compute handler of the daily summary (timer trigger)."""
    return handle_summary(event, context).model_dump_json()
