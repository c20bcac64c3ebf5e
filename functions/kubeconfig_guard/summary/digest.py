"""The daily digest as a channel message (``channels.base.Message``).

The channels render, fit and post it without knowing what a report is: the Markdown digest in
their dialect (``markdown.render_markdown``, lists capped), the title below, and the whole JSON
report for the generic webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..inert import Dialect
from .markdown import render_markdown
from .report import Report


def title(report: Report) -> str:
    """The one-line title of the digest (plain text: the channel escapes it if it must)."""
    t = report.totals
    decisions = report.needs_decision.total if report.needs_decision is not None else 0
    first = f"{decisions} need{'s' if decisions == 1 else ''} a decision, " if decisions else ""
    return (
        f"kubeconfig-guard {report.generated_at[:10]}: {first}{t.get('orphaned', 0)} orphaned, "
        f"{t.get('root', 0)} root, {t.get('expiring', 0)} expiring"
    )


@dataclass(frozen=True)
class Digest:
    """The daily summary's message: ``report`` rendered, linking ``report_url`` when set."""

    report: Report
    report_url: str | None = None

    @property
    def kind(self) -> str:
        return "summary"

    @property
    def needs_attention(self) -> bool:
        return self.report.needs_attention

    def title(self) -> str:
        return title(self.report)

    def render(self, dialect: Dialect, max_items: int) -> str:
        return render_markdown(self.report, max_items=max_items, report_url=self.report_url, dialect=dialect)

    def longest_list(self) -> int:
        """The longest list the digest caps with ``max_items``."""
        report = self.report
        rec = report.reconciliation
        actions = len(rec.actions) if rec is not None and rec.enabled else 0
        decisions = report.needs_decision.total if report.needs_decision is not None else 0
        return max(
            report.orphaned.total,
            report.root.total,
            report.expiring.total,
            len(report.skipped_clusters),
            actions,
            decisions,
        )

    def document(self) -> Any:
        return self.report.model_dump(mode="json")
