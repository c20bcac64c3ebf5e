"""The Markdown digest: short, most urgent first.

``max_items`` caps every list (``... and N more`` points to the full report), so
each chat channel can shrink the digest until it fits its message size limit.

``dialect`` (``inert.MARKDOWN``, the default, for report.md and the terminal; the chat
dialects for the channels) writes the structure (headings, bold, bullets, links) and
makes every value that comes from the API or an event inert (``inert`` explains how):
names, ids, regions, states, times, reasons. Only counts and our own words are trusted.
"""

from __future__ import annotations

from ..inert import MARKDOWN, Dialect
from ..results import ActionStatus
from .report import EntryList, KubeconfigEntry, Report


def _who(e: KubeconfigEntry, d: Dialect) -> str:
    return (
        f"{d.code(e.account_name or e.account_id)} "
        f"({d.text(e.account_type.value)}, {d.text(e.account_state.value if e.account_state else '?')})"
    )


def _where(d: Dialect, name: str, cluster_id: str, region: str) -> str:
    return f"{d.text(name or cluster_id)} [{d.text(region)}]"


def _more(shown: int, total: int, report_url: str | None, d: Dialect) -> list[str]:
    if total <= shown:
        return []
    pointer = (
        f" — see the {d.link('full report', report_url)}"
        if report_url
        else " — see report.html / report.json"
    )
    return [d.bullet(f"... and {total - shown} more{pointer}")]


def _section(
    title: str, entries: EntryList, line: str, max_items: int, report_url: str | None, d: Dialect
) -> list[str]:
    if not entries.total:
        return []
    shown = entries.items[:max_items]
    out = [d.heading(f"{title} ({entries.total})", 3)]
    out += [
        d.bullet(
            line.format(
                who=_who(e, d),
                where=_where(d, e.cluster_name, e.cluster_id, e.region),
                days_left=e.days_left,
                until=d.text(e.cert_expire_time or "unknown"),
            )
        )
        for e in shown
    ]
    out += _more(len(shown), entries.total, report_url, d)
    return [*out, ""]


def render_markdown(
    report: Report, *, max_items: int = 20, report_url: str | None = None, dialect: Dialect = MARKDOWN
) -> str:
    d = dialect
    t = report.totals
    rec = report.reconciliation
    head = [
        d.heading(f"kubeconfig-guard daily summary — {d.text(report.generated_at[:10])}", 2),
        "",
        f"{d.bold(str(t.get('orphaned', 0)) + ' orphaned')} · {d.bold(str(t.get('root', 0)) + ' root')} · "
        f"{t.get('expiring', 0)} expiring ≤ {report.expiring_days} d · {t.get('expired', 0)} expired · "
        f"{t.get('unknown', 0)} unknown · {t.get('healthy', 0)} healthy",
        f"{report.kubeconfigs} kubeconfigs on {report.clusters_scanned}/{report.clusters_total} clusters "
        f"in {', '.join(d.text(r) for r in report.regions)} · mode {d.code(report.mode.value)}",
        "",
    ]
    body: list[str] = []
    if rec is not None and rec.enabled and rec.actions:
        n = {s: rec.counts.get(s.value, 0) for s in ActionStatus}
        body.append(
            d.heading(
                f"Reconciliation: {n[ActionStatus.REVOKED]} revoked · {n[ActionStatus.WOULD_REVOKE]} would revoke · "
                f"{n[ActionStatus.DEFERRED]} deferred · {n[ActionStatus.FAILED]} failed · "
                f"{n[ActionStatus.SKIPPED]} skipped",
                3,
            )
        )
        if rec.reason:
            body.append(d.quote(d.text(rec.reason)))
        # The report's list is in urgency order already; what needs attention stays on top of the cut.
        urgent = sorted(rec.actions, key=lambda a: not a.status.needs_attention)
        body += [
            d.bullet(
                f"{d.bold(a.status.value)} {d.code(a.account_name or a.uid)} on "
                f"{_where(d, a.cluster_name, a.cluster_id, a.region)}: {d.text(a.reason)}"
            )
            for a in urgent[:max_items]
        ]
        body += _more(min(len(urgent), max_items), len(urgent), report_url, d)
        body.append("")
    body += _section(
        "Orphaned: account deleted or locked, kubeconfig still valid",
        report.orphaned,
        "{who} on {where}, cert until {until}",
        max_items,
        report_url,
        d,
    )
    body += _section(
        "Root account kubeconfigs",
        report.root,
        "{who} on {where}, cert until {until}",
        max_items,
        report_url,
        d,
    )
    if report.skipped_clusters:
        body.append(d.heading(f"Clusters not scanned ({len(report.skipped_clusters)})", 3))
        body += [
            d.bullet(
                f"{_where(d, c.cluster_name, c.cluster_id, c.region)} {d.bold(c.status.value)}: {d.text(c.reason)}"
            )
            for c in report.skipped_clusters[:max_items]
        ]
        body += _more(
            min(len(report.skipped_clusters), max_items), len(report.skipped_clusters), report_url, d
        )
        body.append("")
    body += _section(
        f"Expiring within {report.expiring_days} days",
        report.expiring,
        "{who} on {where}: {days_left} d left ({until})",
        max_items,
        report_url,
        d,
    )
    if not body:
        body = ["Nothing needs attention today.", ""]
    tail = [d.link("Full report", report_url)] if report_url else []
    return "\n".join(head + body + tail).rstrip() + "\n"
