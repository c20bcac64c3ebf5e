"""Function Compute entry points: thin adapters from FC to the engine.

* ``kubeconfig_guard.handlers.event_handler``: EventBridge (ActionTrail) events and manual invocations.
* ``kubeconfig_guard.handlers.summary_handler``: the daily timer (see ``summary``).

Both work on the python3.10 runtime (``context.credentials`` carries the role's
STS token) and on python3.12 (no ``context.credentials``: the default credential
chain reads the ``ALIBABA_CLOUD_*`` variables Function Compute sets).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import logs
from .credentials import from_fc_context
from .engine import Deadline
from .errors import RetryableInvocationError
from .events import Ignored, RevocationRequest, parse_event
from .results import BatchResult, Outcome, RevocationResult
from .runtime import Runtime, default_runtime

log = logging.getLogger("kubeconfig_guard.handler")


def deadline_of(context: Any, runtime: Runtime, started: float) -> Deadline:
    timeout = getattr(getattr(context, "function", None), "timeout", None)
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return Deadline(started + float(timeout) - runtime.settings.deadline_margin_seconds)
    return Deadline()


def ignored_result(item: Ignored, mode: str) -> RevocationResult:
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
    """Parse, revoke, log; return the result. Raises only RetryableInvocationError."""
    started = time.monotonic()
    runtime = runtime or default_runtime()
    logs.configure(runtime.settings.log_level)
    runtime.credentials.update(from_fc_context(context))
    deadline = deadline_of(context, runtime, started)
    mode = runtime.settings.mode.value

    results: list[RevocationResult] = []
    crashed = False
    for item in parse_event(event):
        if isinstance(item, Ignored):
            result = ignored_result(item, mode)
        else:
            assert isinstance(item, RevocationRequest)
            try:
                result = runtime.run(runtime.engine.revoke(item, deadline=deadline))
            except Exception as exc:  # never a traceback to FC: report and retry
                logs.log_fields(
                    log, "revocation crashed", logging.ERROR, event_id=item.event_id, error=type(exc).__name__
                )
                result = RevocationResult(
                    event_id=item.event_id,
                    event_name=item.event_name,
                    kind=item.kind,
                    outcome=Outcome.PARTIAL,
                    reason=f"internal error {type(exc).__name__}: retried by Function Compute",
                    mode=mode,
                    principal=item.principal,
                )
                crashed = True
        _log_result(result)
        results.append(result)

    final: RevocationResult | BatchResult
    if len(results) == 1:
        final = results[0]
    else:
        counts: dict[str, int] = {}
        for r in results:
            for k, v in r.counts.items():
                counts[k] = counts.get(k, 0) + v
        outcome = Outcome.PARTIAL if any(r.outcome is Outcome.PARTIAL for r in results) else Outcome.OK
        final = BatchResult(
            outcome=outcome,
            results=results,
            counts=counts,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    if crashed or any(r.needs_retry for r in results):
        raise RetryableInvocationError(
            "some clusters failed or were not attempted; Function Compute retries this event "
            f"(result: {final.model_dump_json()})"
        )
    return final


def _log_result(result: RevocationResult) -> None:
    logs.log_fields(
        log,
        f"event {result.outcome.value}",
        event_id=result.event_id,
        event_name=result.event_name,
        outcome=result.outcome.value,
        reason=result.reason,
        mode=result.mode,
        counts=result.counts,
        duration_ms=result.duration_ms,
    )


def event_handler(event: Any, context: Any) -> str:
    """Function Compute handler of the event function."""
    return handle_event(event, context).model_dump_json()
