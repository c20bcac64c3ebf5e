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
from .deferrals import AUDIT_LOG_WHERE
from .report import DecisionItem, EntryList, KubeconfigEntry, NeedsDecision, Report


def _who(e: KubeconfigEntry, d: Dialect) -> str:
    return (
        f"{d.code(e.account_name or e.account_id)} "
        f"({d.text(e.account_type.value)}, {d.text(e.account_state.value if e.account_state else '?')})"
    )


def _where(d: Dialect, name: str, cluster_id: str, region: str, account: str | None = None) -> str:
    """``cluster [region]``; in organization mode ``cluster [region, account id]``."""
    if account:
        return f"{d.text(name or cluster_id)} [{d.text(region)}, account {d.text(account)}]"
    return f"{d.text(name or cluster_id)} [{d.text(region)}]"


def _accounts_to_fix(report: Report, max_items: int, d: Dialect) -> list[str]:
    """Organization mode's first section: accounts whose role could not be used, and a member list
    that could not be read. Each is something to fix today: until then, nothing there is guarded."""
    broken = report.accounts_needing_action
    if not broken and not report.directory_error:
        return []
    out = [d.heading(f"Accounts to fix today ({len(broken) + bool(report.directory_error)})", 3)]
    if report.directory_error:
        out.append(d.bullet(f"{d.bold('Resource Directory')}: {d.text(report.directory_error)}"))
    out += [
        d.bullet(
            f"{d.bold(a.status.value)} {d.text(a.display_name or a.account_id)} ({d.text(a.account_id)}): "
            f"{d.text(a.reason)}"
        )
        for a in broken[:max_items]
    ]
    out += _more(min(len(broken), max_items), len(broken), None, d)
    if broken:
        out.append(
            d.quote(
                "Nothing in these accounts was listed or revoked. A denied account's member role is "
                "missing, or its trust policy or ExternalId does not admit this deployment: "
                "docs/organization.md says how to deploy it."
            )
        )
    return [*out, ""]


def _accounts(report: Report, max_items: int, report_url: str | None, d: Dialect) -> list[str]:
    """Organization mode: one line per guarded account (skipped ones are counted, listed in the report)."""
    if not report.accounts:
        return []
    shown = [a for a in report.accounts if a.status.value in ("ok",)]
    skipped = sum(1 for a in report.accounts if a.status.value == "skipped")
    out = [d.heading(f"Accounts ({len(report.accounts) - skipped} guarded, {skipped} skipped)", 3)]
    for a in shown[:max_items]:
        t = a.totals
        out.append(
            d.bullet(
                f"{d.text(a.display_name or a.account_id)} ({d.text(a.account_id)}): "
                f"{t.get('orphaned', 0)} orphaned · {t.get('root', 0)} root · {t.get('expiring', 0)} expiring · "
                f"{a.kubeconfigs} kubeconfigs on {a.clusters_scanned}/{a.clusters_total} clusters"
                + (f" — {d.text(a.reason)}" if a.reason else "")
            )
        )
    out += _more(min(len(shown), max_items), len(shown), report_url, d)
    return [*out, ""]


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
                where=_where(d, e.cluster_name, e.cluster_id, e.region, e.cloud_account_id),
                days_left=e.days_left,
                until=d.text(e.cert_expire_time or "unknown"),
            )
        )
        for e in shown
    ]
    out += _more(len(shown), entries.total, report_url, d)
    return [*out, ""]


def _decision(item: DecisionItem, d: Dialect) -> str:
    who = (
        f"{d.code(item.account_name or item.uid)} ({d.text(item.account_type.value)}, "
        f"{d.text(item.account_state.value if item.account_state else '?')})"
    )
    since = item.since.isoformat() if item.since else "?"
    command = d.code(item.command) if item.command else "(an id has unexpected characters: see report.json)"
    return (
        f"{who} on {_where(d, item.cluster_name, item.cluster_id, item.region, item.cloud_account_id)}: "
        "Force=false refused on every "
        f"run since {d.text(since)} ({item.days} days) — by hand: {command}"
    )


def _needs_decision(
    section: NeedsDecision | None, max_items: int, report_url: str | None, d: Dialect
) -> list[str]:
    """The first section: what waiting will not fix, with the fix. Only our words and counts are
    outside ``d.text``/``d.code``; no link but the report's (ACK's documentation is in report.json)."""
    if section is None or not section.shown:
        return []
    out = [d.heading(f"Needs a decision ({section.total})", 3)]
    if section.total:
        out.append(
            d.quote(
                f"ACK has refused these Force=false revocations for more than {section.after_days} days. Its "
                "check looks 7 days back, so waiting will not help: each kubeconfig was used after the lock, "
                "or ACK cannot read the cluster's audit log. Fix: set "
                f"{d.code('KCGUARD_FORCE_ON_LOCK=true')} ({d.code('KCGUARD_FORCE_ON_DELETE=true')} for a "
                "deleted account) and the next run revokes with Force=true, turn on the cluster's audit log "
                f"({AUDIT_LOG_WHERE}), or revoke by hand with the command shown."
            )
        )
        shown = section.items[:max_items]
        out += [d.bullet(_decision(item, d)) for item in shown]
        out += _more(len(shown), section.total, report_url, d)
    if n := (section.deferred if not section.ages_tracked else 0):
        refused = f"{n} revocation{'s were' if n != 1 else ' was'} refused today"
        out.append(d.quote(f"{refused}; {d.text(section.note)}."))
    elif section.note and section.total:
        out.append(d.quote(f"{d.text(section.note)}."))
    if n := section.locked_not_retried:
        out.append(
            d.quote(
                f"{n} kubeconfig{'s' if n != 1 else ''} of locked accounts {'are' if n != 1 else 'is'} not "
                f"retried: {d.code('KCGUARD_REMEDIATE_LOCKED')} is false, so a lock the event function "
                f"deferred stays until you revoke it or set {d.code('KCGUARD_REMEDIATE_LOCKED=true')}."
            )
        )
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
    if report.accounts:
        counts = {
            s: sum(1 for a in report.accounts if a.status.value == s)
            for s in ("ok", "denied", "error", "skipped")
        }
        head.insert(
            -1,
            f"{len(report.accounts) - counts['skipped']} accounts: {counts['ok']} ok · {counts['denied']} denied · "
            f"{counts['error']} error · {counts['skipped']} skipped",
        )
    body: list[str] = _accounts_to_fix(report, max_items, d)
    body += _needs_decision(report.needs_decision, max_items, report_url, d)
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
                f"{_where(d, a.cluster_name, a.cluster_id, a.region, a.cloud_account_id)}: {d.text(a.reason)}"
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
                f"{_where(d, c.cluster_name, c.cluster_id, c.region, c.cloud_account_id)} "
                f"{d.bold(c.status.value)}: {d.text(c.reason)}"
            )
            for c in report.skipped_clusters[:max_items]
        ]
        body += _more(
            min(len(report.skipped_clusters), max_items), len(report.skipped_clusters), report_url, d
        )
        body.append("")
    body += _accounts(report, max_items, report_url, d)
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
