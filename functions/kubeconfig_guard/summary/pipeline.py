"""The daily summary as a pipeline that mirrors the event path.

options -> the deferral ledger (``deferrals.py``, from the report bucket) -> scan (``scan.py``:
every listing streamed into the report builder, which classifies, ``classify.py``/``report.py``)
-> reconcile (``reconcile.py``: the orphans, with the event path's rules) -> what needs a decision
(``deferrals.py``) -> render (``markdown.py``, ``html.py``) -> store (``storage.py``: the reports and
the ledger) -> deliver (``digest.py``, through the channels both functions share: ``..channels``) ->
``SummaryResult``. The handler (``handlers.summary_handler``) only adapts Function Compute to
``summarize``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from .. import logs
from ..accounts import AccountStatus, GuardedAccount
from ..admission import guarded_account
from ..channels import Delivery, deliver_all
from ..credentials import Credentials, from_fc_context
from ..deadline import Deadline, function_timeout, invocation_deadline
from ..engine import Engine
from ..errors import ErrorCategory, classify
from ..organization import AccountAccessError, Organization
from ..plan import enforce_limit
from ..redaction import redact
from ..results import (
    DEADLINE_CODE,
    REGION_NOT_WATCHED,
    Action,
    ActionStatus,
    ClusterIssue,
    ClusterStatus,
    Outcome,
    count_actions,
)
from ..runtime import Runtime
from ..settings import Mode, Settings
from .deferrals import Ledger, needs_decision, no_bucket_note, utc_date
from .digest import Digest
from .html import render_html
from .markdown import render_markdown
from .options import OptionsError, SummaryOptions, parse_summary_event
from .reconcile import OrphanPlan, Reconciled, execute_orphans, plan_orphans, reconcile
from .report import AccountSection, Reconciliation, Report, ReportBuilder
from .scan import Progress, Scan, refused_region, scan, scope_regions
from .storage import JSON_CONTENT_TYPE, ReportBucket, StorageError, ledger_key, open_bucket, store_reports

log = logging.getLogger("kubeconfig_guard.summary")

# The summary keeps this share of its time (at most a minute) to render, store and deliver.
DELIVERY_SHARE, DELIVERY_MAX_SECONDS = 0.15, 60.0


class SummaryResult(BaseModel):
    """What the summary function returns (its JSON), and the rendered report for local callers.

    ``report``, ``markdown``, ``html`` and ``report_json`` are excluded from the JSON: the full
    report goes to the channels and OSS, and ``kcguard summary`` writes it to files.
    """

    schema_version: int = 1
    outcome: Outcome
    reason: str = ""
    mode: Mode
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
    report: Report | None = Field(None, exclude=True)
    markdown: str = Field("", exclude=True)
    html: str = Field("", exclude=True)
    report_json: str = Field("", exclude=True)


def unread_ledger(settings: Settings) -> Ledger:
    """The ledger of a run that was given none: ages not tracked, and the note says why."""
    return Ledger.untracked(
        no_bucket_note(ledger_key(settings))
        if not (settings.report_bucket or "").strip()
        else "deferral ages are not tracked in this run: the deferral ledger was not read"
    )


async def run_summary(
    engine: Engine,
    options: SummaryOptions,
    *,
    now: datetime | None = None,
    deadline: Deadline | None = None,
    progress: Progress | None = None,
    account_id: str | None = None,
    ledger: Ledger | None = None,
) -> Report:
    """Scan, classify, reconcile into the report. Never silently omits a cluster.

    ``ledger``: the deferral ledger read from the report bucket, updated in place with this
    run's refusals (``summarize`` writes it back); None: ages are not tracked in this run.
    """
    started = time.monotonic()
    settings = engine.settings
    deadline = deadline or Deadline()
    now = now or datetime.now(timezone.utc)
    ledger = ledger if ledger is not None else unread_ledger(settings)
    regions, refused = scope_regions(options.regions, settings.watched_regions())
    expiring_days = settings.expiring_days if options.expiring_days is None else options.expiring_days
    dry_run = settings.dry_run or bool(options.dry_run)
    builder = ReportBuilder(now=now, expiring_days=expiring_days, list_limit=settings.report_list_limit)
    scanned = await scan(
        engine, regions, builder, not_before=time.monotonic(), deadline=deadline, progress=progress
    )
    reconciled = await reconcile(
        engine,
        scanned.orphans,
        enabled=options.remediate is not False and (settings.remediate_deleted or settings.remediate_locked),
        dry_run=dry_run,
        deadline=deadline,
        account_id=account_id,
    )
    issues: list[ClusterIssue] = [refused_region(r) for r in refused] + scanned.issues
    issues.sort(key=lambda c: (c.region, c.cluster_id))
    today = utc_date(now)
    if reconciled.attempted:  # ACK was asked: its refusals (and what no longer is one) count
        ledger.settle(
            reconciled.actions,
            today=today,
            regions=regions,
            scanned=[c.cluster_id for c in builder.by_cluster],
            issues=issues,
        )
    decision = needs_decision(
        ledger,
        reconciled.actions,
        today=today,
        after_days=settings.decision_after_days,
        locked_not_retried=reconciled.locked_not_retried,
        limit=settings.report_list_limit,
    )
    return builder.build(
        generated_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        mode=reconciled.reconciliation.mode,
        regions=regions,
        clusters_total=scanned.clusters_total,
        clusters_scanned=len(builder.by_cluster),
        skipped_clusters=issues,
        reconciliation=reconciled.reconciliation,
        needs_decision=decision,
        api=engine.client.stats.as_dict(),
        duration_ms=int((time.monotonic() - started) * 1000),
    )


async def run_organization_summary(
    organization: Organization,
    options: SummaryOptions,
    *,
    central_id: str | None,
    now: datetime | None = None,
    deadline: Deadline | None = None,
    progress: Progress | None = None,
    ledger: Ledger | None = None,
) -> Report:
    """Organization mode: one run, one report over every guarded account.

    The roster (the central account, and the Resource Directory's members or the listed accounts),
    a session in each (``denied``/``error`` with the code when AssumeRole fails; the others go on),
    then each account scanned and its orphans planned with its own engine, credentials and rate
    controller; the blast-radius limit over every account's plan together; then the revocations, each
    in its own account. Accounts not guarded (excluded, not members) are sections with status
    ``skipped``; a member list that cannot be read is the report's ``directory_error``, never a silent zero.
    """
    started = time.monotonic()
    settings = organization.settings
    deadline = deadline or Deadline()
    now = now or datetime.now(timezone.utc)
    ledger = ledger if ledger is not None else unread_ledger(settings)
    expiring_days = settings.expiring_days if options.expiring_days is None else options.expiring_days
    dry_run = settings.dry_run or bool(options.dry_run)
    enabled = options.remediate is not False and (settings.remediate_deleted or settings.remediate_locked)
    builder = ReportBuilder(now=now, expiring_days=expiring_days, list_limit=settings.report_list_limit)
    roster, directory_error = await organization.roster(central_id)
    opened = await organization.open_all(roster.accounts)
    sections: dict[str, AccountSection] = {}
    runs: list[_AccountRun] = []
    issues: list[ClusterIssue] = []
    all_regions: set[str] = set()
    for account, scope in zip(roster.accounts, opened, strict=True):
        regions, refused = scope_regions(options.regions, _regions_of(account, settings))
        all_regions.update(regions)
        section = AccountSection(
            account_id=account.account_id,
            display_name=account.display_name,
            central=account.central,
            status=AccountStatus.OK,
            regions=regions,
        )
        sections[account.account_id] = section
        if isinstance(scope, AccountAccessError):
            section.status, section.reason, section.error_code = scope.status, scope.reason, scope.code
            # Its clusters were not looked at: the ledger keeps what it knows of them.
            issues += [
                ClusterIssue.of(r, None, ClusterStatus.FAILED, scope.reason, scope.code).model_copy(
                    update={"cloud_account_id": account.account_id}
                )
                for r in regions
            ]
            continue
        issues += [
            refused_region(r).model_copy(update={"cloud_account_id": account.account_id}) for r in refused
        ]
        runs.append(_AccountRun(account, scope.engine, regions))
    for skipped in roster.skipped:
        sections[skipped.account_id] = AccountSection(
            account_id=skipped.account_id,
            display_name=skipped.display_name,
            status=AccountStatus.SKIPPED,
            reason=skipped.reason,
        )

    progress_total: dict[str, tuple[int, int]] = {}

    def account_progress(account_id: str) -> Progress | None:
        if progress is None:
            return None

        def report(done: int, total: int) -> None:
            progress_total[account_id] = (done, total)
            assert progress is not None
            progress(sum(d for d, _ in progress_total.values()), sum(t for _, t in progress_total.values()))

        return report

    # The accounts share the instance's request cap (KCGUARD_MAX_CONCURRENCY): each lists at most its
    # share of it at once (at least 2), so the cap's slots go round the accounts instead of to one
    # account's clusters at a time, a burst its own ACK quota throttles.
    per_account = max(2, -(-settings.max_concurrency // max(1, len(runs))))

    async def scan_account(run: _AccountRun) -> None:
        run.scanned = await scan(
            run.engine,
            run.regions,
            builder,
            not_before=time.monotonic(),
            deadline=deadline,
            progress=account_progress(run.account.account_id),
            account=run.account.account_id,
            concurrency=per_account,
        )

    await asyncio.gather(*(scan_account(run) for run in runs))
    for run in runs:
        run.planned = plan_orphans(
            run.engine,
            run.scanned.orphans,
            enabled=enabled,
            dry_run=dry_run,
            account_id=run.account.account_id,
        )
        run.scanned.orphans = []  # planned: the plan holds what is still needed
    enforce_limit([r.planned.plan for r in runs if r.planned.plan is not None], settings.max_revocations)

    async def execute_account(run: _AccountRun) -> Reconciled:
        return await execute_orphans(
            run.engine, run.planned, deadline=deadline, account_id=run.account.account_id
        )

    reconciled = await asyncio.gather(*(execute_account(run) for run in runs))
    # (account, action): only the actions kept are copied with their account (the report's list, and
    # the deferred and failed ones the ledger reads), not every orphan over the blast-radius limit.
    tagged: list[tuple[str, Action]] = []
    locked_left = 0
    reconciliation = Reconciliation(enabled=enabled, mode=Mode.DRY_RUN if dry_run else Mode.ENFORCE)
    for run, done in zip(runs, reconciled, strict=True):
        account_id = run.account.account_id
        tagged += [(account_id, a) for a in done.actions]
        locked_left += done.locked_not_retried
        issues += run.scanned.issues
        section = sections[account_id]
        section.kubeconfigs = builder.account_kubeconfigs[account_id]
        section.clusters_total = run.scanned.clusters_total
        section.clusters_scanned = builder.account_clusters[account_id]
        section.clusters_not_scanned = len(run.scanned.issues)
        section.totals = builder.by_account.get(account_id, {})
        section.reconciliation = {k: v for k, v in done.reconciliation.counts.items() if v}
        section.status, section.reason, section.error_code = _scanned_status(run)
        if done.reconciliation.outcome.urgency < reconciliation.outcome.urgency:
            reconciliation.outcome, reconciliation.reason = (
                done.reconciliation.outcome,
                done.reconciliation.reason,
            )
    tagged.sort(key=lambda t: (t[1].status.urgency, t[0], t[1].region, t[1].cluster_id, t[1].uid))
    reconciliation.counts = count_actions([a for _, a in tagged])
    reconciliation.actions_total = len(tagged)
    reconciliation.truncated = len(tagged) > settings.report_list_limit
    reconciliation.actions = [
        a.model_copy(update={"cloud_account_id": account_id})
        for account_id, a in tagged[: settings.report_list_limit]
    ]
    actions = [
        a.model_copy(update={"cloud_account_id": account_id})
        for account_id, a in tagged
        if a.status in (ActionStatus.DEFERRED, ActionStatus.FAILED)
    ]
    issues.sort(key=lambda c: (c.cloud_account_id or "", c.region, c.cluster_id))
    today = utc_date(now)
    attempted = enabled and not dry_run and reconciliation.outcome is not Outcome.LIMIT_EXCEEDED
    if attempted:
        ledger.settle(
            actions,
            today=today,
            regions=sorted(all_regions),
            scanned=[c.cluster_id for c in builder.by_cluster],
            issues=issues,
        )
    decision = needs_decision(
        ledger,
        actions,
        today=today,
        after_days=settings.decision_after_days,
        locked_not_retried=locked_left,
        limit=settings.report_list_limit,
    )
    ordered = sorted(
        sections.values(),
        key=lambda a: (_STATUS_ORDER.index(a.status), not a.central, a.display_name, a.account_id),
    )
    api: dict[str, object] = {"central": organization.central.client.stats.as_dict()}
    api.update(
        {run.account.account_id: run.engine.client.stats.as_dict() for run in runs if not run.account.central}
    )
    return builder.build(
        generated_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        mode=reconciliation.mode,
        regions=sorted(all_regions),
        clusters_total=sum(r.scanned.clusters_total for r in runs),
        clusters_scanned=len(builder.by_cluster),
        skipped_clusters=issues,
        reconciliation=reconciliation,
        needs_decision=decision,
        api=api,
        duration_ms=int((time.monotonic() - started) * 1000),
        accounts_mode=organization.spec.mode.value,
        accounts=ordered,
        directory_error=(
            f"the Resource Directory's members could not be read: {directory_error.code}: "
            f"{redact(directory_error.message)} (the summary role needs resourcemanager:ListAccounts, "
            "and the functions must run in the management account or a delegated administrator)"
            if directory_error is not None
            else None
        ),
    )


# The order of account sections: what to fix today first.
_STATUS_ORDER = (AccountStatus.DENIED, AccountStatus.ERROR, AccountStatus.OK, AccountStatus.SKIPPED)


@dataclass
class _AccountRun:
    account: GuardedAccount
    engine: Engine
    regions: list[str]
    scanned: Scan = field(default_factory=Scan)
    planned: OrphanPlan = field(
        default_factory=lambda: OrphanPlan(Reconciliation(enabled=False, mode=Mode.DRY_RUN))
    )


def _regions_of(account: GuardedAccount, settings: Settings) -> list[str]:
    return list(account.regions) if account.regions else settings.watched_regions()


def _scanned_status(run: _AccountRun) -> tuple[AccountStatus, str, str | None]:
    """``ok`` unless no region of the account could be listed: ``denied`` when ACK refused the member
    role (its policy), ``error`` otherwise; a few clusters not scanned are listed, the account is ok."""
    regional = [i for i in run.scanned.issues if i.cluster_id == "*" and i.status is ClusterStatus.FAILED]
    if run.regions and len(regional) >= len(run.regions):
        codes = [i.error_code or "" for i in regional]
        denied = all(classify(code, 403) is ErrorCategory.AUTH for code in codes)
        status = AccountStatus.DENIED if denied else AccountStatus.ERROR
        return status, f"no region could be listed: {regional[0].reason}", regional[0].error_code
    if run.scanned.issues:
        return AccountStatus.OK, f"{len(run.scanned.issues)} clusters or regions not scanned", None
    return AccountStatus.OK, "", None


def open_ledger(settings: Settings, credentials: Credentials | None) -> tuple[ReportBucket | None, Ledger]:
    """The report bucket and the deferral ledger in it; never raises (the report must not be lost).

    No bucket: ages are not tracked (the note says what to set). A bucket that cannot be used or
    a ledger that cannot be read: not tracked in this run, and the ledger is not overwritten.
    """
    key = ledger_key(settings)
    try:
        bucket = open_bucket(settings, credentials=credentials)
    except StorageError as exc:
        return None, Ledger.untracked(
            f"deferral ages are not tracked: the report bucket cannot be used: {exc}"
        )
    if bucket is None:
        return None, Ledger.untracked(no_bucket_note(key))
    try:
        ledger = Ledger.parse(bucket.get(key))
    except StorageError as exc:
        logs.log_fields(log, "deferral ledger not read", logging.WARNING, error=str(exc))
        return bucket, Ledger.untracked(
            f"deferral ages are not tracked in this run: {exc} (the summary's role needs oss:GetObject on "
            f"oss://{bucket.bucket}/{key})"
        )
    return bucket, ledger


def summarize(
    event: Any,
    context: Any = None,
    *,
    runtime: Runtime,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> SummaryResult:
    """Parse the options, then scan -> classify -> reconcile -> render -> store -> deliver.

    Never loses the report: a storage failure still delivers, a delivery failure still returns it.
    """
    started = time.monotonic()
    settings = runtime.settings
    logs.configure(settings.log_level)
    runtime.credentials.update(from_fc_context(context))
    try:
        options = parse_summary_event(event)
    except OptionsError as exc:
        logs.log_fields(log, "summary ignored", logging.WARNING, reason=str(exc))
        return SummaryResult(outcome=Outcome.IGNORED, reason=str(exc), mode=settings.mode)
    timeout = function_timeout(context)
    reserve = min(DELIVERY_SHARE * timeout, DELIVERY_MAX_SECONDS) if timeout else 0.0
    margin = settings.deadline_margin_seconds
    final = invocation_deadline(context, started, margin)
    now = now or datetime.now(timezone.utc)
    credentials = from_fc_context(context)
    bucket, ledger = open_ledger(settings, credentials)
    scan_deadline = invocation_deadline(context, started, margin, reserve=reserve)
    organization = runtime.organization
    if organization is None:
        report = runtime.run(
            run_summary(
                runtime.engine,
                options,
                now=now,
                deadline=scan_deadline,
                progress=progress,
                account_id=guarded_account(settings, context),
                ledger=ledger,
            )
        )
    else:
        organization.invocation_id = getattr(context, "request_id", None) or None
        report = runtime.run(
            run_organization_summary(
                organization,
                options,
                central_id=guarded_account(settings, context),
                now=now,
                deadline=scan_deadline,
                progress=progress,
                ledger=ledger,
            )
        )
    digest = render_markdown(report, report_url=settings.report_url)
    html = render_html(report)
    report_json = report.model_dump_json(indent=2)
    stored: list[str] = []
    storage_error: str | None = None
    try:
        stored = store_reports(report_json, html, settings, now=now, credentials=credentials, bucket=bucket)
        if bucket is not None and ledger.tracked and ledger.changed:
            key = ledger_key(settings)
            bucket.put(key, ledger.dump(now), JSON_CONTENT_TYPE)
            stored.append(key)
    except Exception as exc:  # a storage failure must not lose the report: it still goes to the channels
        storage_error = redact(f"{type(exc).__name__}: {exc}")[:300]
    deliveries: list[Delivery] = []
    delivery_error: str | None = None
    try:
        digest_message = Digest(report, settings.report_url)
        deliveries = runtime.run(deliver_all(digest_message, settings), final.remaining())
    except TimeoutError:
        delivery_error = "delivering the digest did not finish before the invocation's deadline"
    rec = report.reconciliation
    failed = bool(rec and rec.counts.get(ActionStatus.FAILED.value))
    problems = (
        failed
        or any(not d.ok for d in deliveries)
        or storage_error
        or delivery_error
        or report.accounts_needing_action
        or report.directory_error
    )
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
        report=report,
        markdown=digest,
        html=html,
        report_json=report_json,
    )
    logs.log_fields(log, "summary done", **result.model_dump(mode="json"))
    return result


def _summary_reason(
    report: Report, deliveries: list[Delivery], storage_error: str | None, delivery_error: str | None
) -> str:
    t = report.totals
    parts = [
        f"{t.get('orphaned', 0)} orphaned, {t.get('root', 0)} root, {t.get('expiring', 0)} expiring "
        f"on {report.clusters_scanned}/{report.clusters_total} clusters"
    ]
    if report.accounts:
        guarded = [a for a in report.accounts if a.status is not AccountStatus.SKIPPED]
        parts[0] += f" in {len(guarded)} accounts"
    for account in report.accounts_needing_action:
        parts.append(
            f"account {account.account_id} {account.status.value}: {account.error_code or account.reason}"
        )
    if report.directory_error:
        parts.append(report.directory_error)
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
    if n := (report.needs_decision.total if report.needs_decision else 0):
        parts.append(f"{n} revocation{'s need' if n != 1 else ' needs'} a decision")
    return "; ".join(parts)
