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
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from . import logs
from .admission import Guard, admit, guarded_account
from .credentials import from_fc_context
from .deadline import Deadline
from .errors import RetryableInvocationError
from .events import Ignored, RevocationRequest, parse_event
from .results import DEADLINE_CODE, REGION_NOT_WATCHED, BatchResult, Outcome, RevocationResult
from .runtime import Runtime, default_runtime

if TYPE_CHECKING:
    from .summary.notify import Delivery
    from .summary.report import Report
    from .summary.scan import Progress

log = logging.getLogger("kubeconfig_guard.handler")


class SummaryResult(BaseModel):
    """What the summary function returns (the full report goes to the channels and OSS)."""

    schema_version: int = 1
    outcome: Outcome
    reason: str = ""
    mode: str
    kubeconfigs: int = 0
    clusters_scanned: int = 0
    clusters_total: int = 0
    clusters_not_scanned: int = 0
    totals: dict[str, int] = Field(default_factory=dict)
    reconciliation: dict[str, int] = Field(default_factory=dict)
    deliveries: list[dict[str, Any]] = Field(default_factory=list)
    stored: list[str] = Field(default_factory=list)
    storage_error: str | None = None
    delivery_error: str | None = None
    duration_ms: int = 0


@dataclass
class SummaryOutcome:
    result: SummaryResult
    report: Report | None = None
    markdown: str = ""
    html: str = ""
    report_json: str = ""


def function_timeout(context: Any) -> float | None:
    """The function's timeout in seconds, from Function Compute's context (``context.function.timeout``)."""
    timeout = getattr(getattr(context, "function", None), "timeout", None)
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return None


def deadline_of(context: Any, runtime: Runtime, started: float, *, reserve: float = 0.0) -> Deadline:
    """Stop ``KCGUARD_DEADLINE_MARGIN_SECONDS`` (+ ``reserve``) before Function Compute would kill us."""
    timeout = function_timeout(context)
    if timeout is None:
        return Deadline()
    return Deadline.after(started, timeout - runtime.settings.deadline_margin_seconds - reserve)


# The engine stops its own work at the deadline; this is the last resort if something still hangs.
BACKSTOP_GRACE_SECONDS = 2.0
# The summary keeps this share of its time (at most a minute) to render, store and deliver.
SUMMARY_DELIVERY_SHARE, SUMMARY_DELIVERY_MAX_SECONDS = 0.15, 60.0


def backstop(deadline: Deadline) -> float | None:
    remaining = deadline.remaining()
    return None if remaining is None else remaining + BACKSTOP_GRACE_SECONDS


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
    """Parse, admit, revoke, log; return the result. Raises only RetryableInvocationError."""
    started = time.monotonic()
    runtime = runtime or default_runtime()
    logs.configure(runtime.settings.log_level)
    runtime.credentials.update(from_fc_context(context))
    deadline = deadline_of(context, runtime, started)
    mode = runtime.settings.mode.value
    guard = Guard.of(runtime.settings, context)

    items = [admit(p, guard) if isinstance(p, RevocationRequest) else p for p in parse_event(event)]
    requests = [item for item in items if isinstance(item, RevocationRequest)]
    crashed = False
    revoked: list[RevocationResult] = []
    if requests:
        try:
            revoked = runtime.run(
                runtime.engine.revoke_all(
                    requests, deadline=deadline, received_at=started, account_id=guard.account_id
                ),
                backstop(deadline),
            )
        except Exception as exc:  # never a traceback to FC: report and retry
            logs.log_fields(log, "revocation crashed", logging.ERROR, error=type(exc).__name__)
            revoked = [_crashed_result(r, exc, mode) for r in requests]
            crashed = True
    done = iter(revoked)
    results = [ignored_result(i, mode) if isinstance(i, Ignored) else next(done) for i in items]
    for result in results:
        _log_result(result)

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
            logs.redact(
                "some clusters failed or were not attempted; Function Compute retries this event "
                f"(result: {final.model_dump_json()})"
            ),
            result=final,
        )
    return final


def _crashed_result(request: RevocationRequest, exc: Exception, mode: str) -> RevocationResult:
    return RevocationResult(
        event_id=request.event_id,
        event_name=request.event_name,
        kind=request.kind,
        outcome=Outcome.PARTIAL,
        reason=(
            "the invocation's deadline came before the work finished: retried by Function Compute"
            if isinstance(exc, TimeoutError)
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
        mode=result.mode,
        counts=result.counts,
        clusters_scanned=result.clusters_scanned,
        clusters_total=result.clusters_total,
        clusters_not_done=[f"{c.cluster_id}: {c.status.value}" for c in result.clusters][:50],
        duration_ms=result.duration_ms,
    )


def event_handler(event: Any, context: Any) -> str:
    """Function Compute handler of the event function."""
    return handle_event(event, context).model_dump_json()


# --- the daily summary ---------------------------------------------------------------------


def handle_summary(
    event: Any,
    context: Any = None,
    *,
    runtime: Runtime | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> SummaryOutcome:
    """Parse the timer event, scan, reconcile, render, notify, store. Never loses the report."""
    # Imported here: the event function never pays for the summary's modules.
    from .summary.html import render_html
    from .summary.markdown import render_markdown
    from .summary.notify import deliver_all
    from .summary.options import OptionsError, parse_summary_event
    from .summary.scan import run_summary
    from .summary.storage import store_reports

    started = time.monotonic()
    runtime = runtime or default_runtime()
    settings = runtime.settings
    logs.configure(settings.log_level)
    runtime.credentials.update(from_fc_context(context))
    try:
        options = parse_summary_event(event)
    except OptionsError as exc:
        logs.log_fields(log, "summary ignored", logging.WARNING, reason=str(exc))
        return SummaryOutcome(
            result=SummaryResult(outcome=Outcome.IGNORED, reason=str(exc), mode=settings.mode.value)
        )
    timeout = function_timeout(context)
    reserve = min(SUMMARY_DELIVERY_SHARE * timeout, SUMMARY_DELIVERY_MAX_SECONDS) if timeout else 0.0
    final = deadline_of(context, runtime, started)
    report = runtime.run(
        run_summary(
            runtime.engine,
            options,
            now=now,
            deadline=deadline_of(context, runtime, started, reserve=reserve),
            progress=progress,
            account_id=guarded_account(settings, context),
        )
    )
    digest = render_markdown(report, report_url=settings.report_url)
    html = render_html(report)
    report_json = report.model_dump_json(indent=2)
    stored: list[str] = []
    storage_error: str | None = None
    try:
        stored = store_reports(
            report_json,
            html,
            settings,
            now=now or datetime.now(timezone.utc),
            credentials=from_fc_context(context),
        )
    except Exception as exc:  # a storage failure must not lose the report: it still goes to the channels
        storage_error = logs.redact(f"{type(exc).__name__}: {exc}")[:300]
    deliveries: list[Delivery] = []
    delivery_error: str | None = None
    try:
        deliveries = runtime.run(deliver_all(report, settings), final.remaining())
    except TimeoutError:
        delivery_error = "delivering the digest did not finish before the invocation's deadline"
    rec = report.reconciliation
    failed = bool(rec and rec.counts.get("failed"))
    problems = failed or any(not d.ok for d in deliveries) or storage_error or delivery_error
    result = SummaryResult(
        outcome=Outcome.PARTIAL if problems else Outcome.OK,
        reason=_summary_reason(report, deliveries, storage_error, delivery_error),
        mode=report.mode,
        kubeconfigs=report.kubeconfigs,
        clusters_scanned=report.clusters_scanned,
        clusters_total=report.clusters_total,
        clusters_not_scanned=len(report.skipped_clusters),
        totals=report.totals,
        reconciliation=rec.counts if rec else {},
        deliveries=[d.model_dump(mode="json") for d in deliveries],
        stored=stored,
        storage_error=storage_error,
        delivery_error=delivery_error,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    logs.log_fields(log, "summary done", **result.model_dump(mode="json"))
    return SummaryOutcome(result=result, report=report, markdown=digest, html=html, report_json=report_json)


def _summary_reason(
    report: Report, deliveries: list[Delivery], storage_error: str | None, delivery_error: str | None
) -> str:
    t = report.totals
    parts = [
        f"{t.get('orphaned', 0)} orphaned, {t.get('root', 0)} root, {t.get('expiring', 0)} expiring "
        f"on {report.clusters_scanned}/{report.clusters_total} clusters"
    ]
    if refused := [c.region for c in report.skipped_clusters if c.error_code == REGION_NOT_WATCHED]:
        parts.append(f"regions outside KCGUARD_REGIONS refused: {', '.join(refused)}")
    if failed := [d.channel for d in deliveries if not d.ok]:
        parts.append(f"delivery failed: {', '.join(failed)}")
    if storage_error:
        parts.append("storing the report failed")
    if delivery_error:
        parts.append(delivery_error)
    if late := sum(1 for c in report.skipped_clusters if c.error_code == DEADLINE_CODE):
        parts.append(f"{late} clusters not scanned before the deadline")
    return "; ".join(parts)


def summary_handler(event: Any, context: Any) -> str:
    """Function Compute handler of the daily summary (timer trigger)."""
    return handle_summary(event, context).result.model_dump_json()
