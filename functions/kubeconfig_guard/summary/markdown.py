"""The Markdown digest: short, most urgent first.

``max_items`` caps every list (``... and N more`` points to the full report), so
each chat channel can shrink the digest until it fits its message size limit.
"""

from __future__ import annotations

from ..results import ActionStatus
from .report import EntryList, KubeconfigEntry, Report


def _who(e: KubeconfigEntry) -> str:
    return f"`{e.account_name or e.account_id}` ({e.account_type}, {e.account_state or '?'})"


def _where(e: KubeconfigEntry) -> str:
    return f"{e.cluster_name or e.cluster_id} [{e.region}]"


def _more(shown: int, total: int, report_url: str | None) -> list[str]:
    if total <= shown:
        return []
    pointer = f" — see the [full report]({report_url})" if report_url else " — see report.html / report.json"
    return [f"- ... and {total - shown} more{pointer}"]


def _section(title: str, entries: EntryList, line: str, max_items: int, report_url: str | None) -> list[str]:
    if not entries.total:
        return []
    shown = entries.items[:max_items]
    out = [f"### {title} ({entries.total})"]
    out += [
        line.format(who=_who(e), where=_where(e), e=e, until=e.cert_expire_time or "unknown") for e in shown
    ]
    out += _more(len(shown), entries.total, report_url)
    return [*out, ""]


def render_markdown(report: Report, *, max_items: int = 20, report_url: str | None = None) -> str:
    t = report.totals
    rec = report.reconciliation
    head = [
        f"## kubeconfig-guard daily summary — {report.generated_at[:10]}",
        "",
        f"**{t.get('orphaned', 0)} orphaned** · **{t.get('root', 0)} root** · "
        f"{t.get('expiring', 0)} expiring ≤ {report.expiring_days} d · {t.get('expired', 0)} expired · "
        f"{t.get('unknown', 0)} unknown · {t.get('healthy', 0)} healthy",
        f"{report.kubeconfigs} kubeconfigs on {report.clusters_scanned}/{report.clusters_total} clusters "
        f"in {', '.join(report.regions)} · mode `{report.mode}`",
        "",
    ]
    body: list[str] = []
    if rec is not None and rec.enabled and rec.actions:
        c = rec.counts
        body.append(
            f"### Reconciliation: {c.get('revoked', 0)} revoked · {c.get('would-revoke', 0)} would revoke · "
            f"{c.get('deferred', 0)} deferred · {c.get('failed', 0)} failed · {c.get('skipped', 0)} skipped"
        )
        if rec.reason:
            body.append(f"> {rec.reason}")
        urgent = [a for a in rec.actions if a.status in (ActionStatus.FAILED, ActionStatus.DEFERRED)]
        urgent += [a for a in rec.actions if a.status not in (ActionStatus.FAILED, ActionStatus.DEFERRED)]
        body += [
            f"- **{a.status.value}** `{a.account_name or a.uid}` on {a.cluster_name or a.cluster_id} "
            f"[{a.region}]: {a.reason}"
            for a in urgent[:max_items]
        ]
        body += _more(min(len(urgent), max_items), len(urgent), report_url)
        body.append("")
    body += _section(
        "Orphaned: account deleted or locked, kubeconfig still valid",
        report.orphaned,
        "- {who} on {where}, cert until {until}",
        max_items,
        report_url,
    )
    body += _section(
        "Root account kubeconfigs",
        report.root,
        "- {who} on {where}, cert until {until}",
        max_items,
        report_url,
    )
    if report.skipped_clusters:
        body.append(f"### Clusters not scanned ({len(report.skipped_clusters)})")
        body += [
            f"- {c.cluster_name or c.cluster_id} [{c.region}] **{c.status.value}**: {c.reason}"
            for c in report.skipped_clusters[:max_items]
        ]
        body += _more(min(len(report.skipped_clusters), max_items), len(report.skipped_clusters), report_url)
        body.append("")
    body += _section(
        f"Expiring within {report.expiring_days} days",
        report.expiring,
        "- {who} on {where}: {e.days_left} d left ({until})",
        max_items,
        report_url,
    )
    if not body:
        body = ["Nothing needs attention today.", ""]
    tail = [f"[Full report]({report_url})"] if report_url else []
    return "\n".join(head + body + tail).rstrip() + "\n"
