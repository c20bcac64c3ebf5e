"""The HTML report: one self-contained page (inline CSS, server-side SVG charts, no script).

Nothing is loaded from anywhere: no scripts, stylesheets, fonts or images by URL,
so the page renders the same from OSS, a mail attachment or a local file, and
cannot leak who opened it. Account and cluster names are untrusted input: the
template autoescapes everything (SVG text included), and every rendered value first goes
through ``inert.html_value`` (the one redactor, then no control, bidi or zero-width
character: a name cannot reverse or hide the text around it).

Colours are per class and the same in every chart, table and pill
(``CLASS_COLORS``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..inert import html_value
from ..results import Action, ActionStatus
from .charts import (
    BAR_HEIGHT,
    CLASS_COLORS,
    CLASS_INK,
    cluster_chart,
    cluster_urgency,
    expiry_chart,
    region_chart,
)
from .classify import CLASS_ORDER, parse_time
from .deferrals import AUDIT_LOG_WHERE
from .report import KubeconfigEntry, Report

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"
# scripts/build compiles the templates into Python modules here (shipped with their .pyc), so a
# summary loads them instead of compiling report.html.j2 at every cold start (about 90 ms of CPU,
# 0.35 s at the summary's 0.25 vCPU; BENCHMARKS.md). A source tree has none: it compiles them.
COMPILED_TEMPLATES = Path(__file__).parent / "templates_compiled"

CLASS_LABELS: dict[str, str] = {
    "orphaned": "Orphaned",
    "root": "Root account",
    "expired": "Expired",
    "expiring": "Expiring",
    "unknown": "Unknown",
    "healthy": "Healthy",
}
CLASS_HELP: dict[str, str] = {
    "orphaned": "account deleted or locked, kubeconfig still valid",
    "root": "issued to the root account",
    "expired": "certificate expired",
    "expiring": "certificate expires soon",
    "unknown": "certificate state unknown",
    "healthy": "active account, valid certificate",
}
STATUS_COLORS: dict[str, str] = {
    ActionStatus.REVOKED.value: "#2a9d4b",
    ActionStatus.WOULD_REVOKE.value: "#2f6fde",
    ActionStatus.DEFERRED.value: "#f77f00",
    ActionStatus.FAILED.value: "#d62839",
    ActionStatus.SKIPPED.value: "#8d99ae",
}
MAX_TABLE_ROWS = 500  # rows of the actions and clusters tables (the entry lists are capped by the report)


def _date(value: str | None) -> str:
    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M") if parsed else (value or "unknown")


def _sorted_actions(actions: list[Action]) -> list[Action]:
    return sorted(actions, key=lambda a: (a.status.urgency, a.region, a.cluster_name or a.cluster_id))


def _expiring_sorted(items: list[KubeconfigEntry]) -> list[KubeconfigEntry]:
    return sorted(items, key=lambda e: (e.days_left is None, e.days_left or 0, e.cert_expire_time or ""))


def _attention(report: Report) -> list[str]:
    t = report.totals
    out: list[str] = []
    decision = report.needs_decision
    if decision is not None and (n := decision.total):
        out.append(f"{n} revocation{'s' if n != 1 else ''} need{'s' if n == 1 else ''} a decision")
    if decision is not None and (n := decision.locked_not_retried):
        out.append(f"{n} locked account kubeconfig{'s' if n != 1 else ''} not retried")
    if n := t.get("orphaned", 0):
        out.append(f"{n} orphaned kubeconfig{'s' if n != 1 else ''}")
    if n := t.get("root", 0):
        out.append(f"{n} root account kubeconfig{'s' if n != 1 else ''}")
    if n := t.get("expiring", 0):
        out.append(f"{n} expiring within {report.expiring_days} days")
    if n := len(report.skipped_clusters):
        out.append(f"{n} cluster{'s' if n != 1 else ''} not scanned")
    rec = report.reconciliation
    if rec is not None and (n := rec.counts.get(ActionStatus.FAILED.value, 0)):
        out.append(f"{n} revocation{'s' if n != 1 else ''} failed")
    return out


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """The report's environment: the build's compiled templates when the package has them."""
    import jinja2

    if COMPILED_TEMPLATES.is_dir():
        return _new_environment(jinja2.ModuleLoader(str(COMPILED_TEMPLATES)))
    return _new_environment(jinja2.FileSystemLoader(str(TEMPLATES)))


def compile_templates(target: Path) -> list[Path]:
    """Compile every template into a Python module in ``target`` (``scripts/build``: into
    ``COMPILED_TEMPLATES`` of the package), by the very environment that renders them (its
    autoescape, filters and finalize are compiled in); a template that does not compile raises."""
    import jinja2

    _new_environment(jinja2.FileSystemLoader(str(TEMPLATES))).compile_templates(
        str(target), zip=None, ignore_errors=False
    )
    return sorted(target.glob("*.py"))


def _new_environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=html_value,  # every value redacted and on one line; then autoescaped
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["date"] = _date
    return env


def render_html(report: Report) -> str:
    """The full report as one self-contained HTML page."""
    rec = report.reconciliation
    actions = _sorted_actions(rec.actions) if rec is not None else []
    clusters = sorted(report.by_cluster, key=lambda c: tuple(-v for v in cluster_urgency(c)))
    total = sum(report.totals.values())
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            generated=_date(report.generated_at) + " UTC",
            classes=[c.value for c in CLASS_ORDER],
            colors=CLASS_COLORS,
            inks=CLASS_INK,
            labels=CLASS_LABELS,
            helps=CLASS_HELP,
            status_colors=STATUS_COLORS,
            percent={c: (100.0 * n / total if total else 0.0) for c, n in report.totals.items()},
            attention=_attention(report),
            decision=report.needs_decision if report.needs_decision and report.needs_decision.shown else None,
            audit_log_where=AUDIT_LOG_WHERE,
            region_chart=region_chart(report),
            cluster_chart=cluster_chart(report),
            expiry_chart=expiry_chart(report),
            actions=actions[:MAX_TABLE_ROWS],
            actions_total=rec.actions_total if rec is not None else 0,
            expiring=_expiring_sorted(report.expiring.items),
            clusters=clusters[:MAX_TABLE_ROWS],
            clusters_total=len(clusters),
            max_rows=MAX_TABLE_ROWS,
            bar_h=BAR_HEIGHT,
            api={k: v for k, v in report.api.items() if isinstance(v, (int, float, str))},
        )
    )
