"""The report's charts as geometry: bars per region and cluster, columns of expiries per month.

Pure functions from a ``Report`` to dataclasses of positions and sizes that the HTML template
(``templates/report.html.j2``) draws as inline SVG. Colours are per kubeconfig class and the
same in every chart, table and pill (``CLASS_COLORS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .classify import CLASS_ORDER, KubeconfigClass, parse_time
from .report import ClusterCounts, Report

CLASS_COLORS: dict[str, str] = {
    KubeconfigClass.ORPHANED.value: "#d62839",  # red
    KubeconfigClass.ROOT.value: "#7b2cbf",  # purple
    KubeconfigClass.EXPIRED.value: "#8d99ae",  # grey
    KubeconfigClass.EXPIRING.value: "#f77f00",  # orange
    KubeconfigClass.UNKNOWN.value: "#f2c12e",  # yellow
    KubeconfigClass.HEALTHY.value: "#2a9d4b",  # green
}
# Text drawn on top of a class colour (yellow needs dark text).
CLASS_INK: dict[str, str] = {c: ("#3d3000" if c == "unknown" else "#ffffff") for c in CLASS_COLORS}
LATER_COLOR = CLASS_COLORS["healthy"]

MAX_CHART_CLUSTERS = 30  # the cluster chart shows the clusters with the most urgent items
MONTHLY_SPAN_LIMIT = 72  # more months than this between first and last expiry: one bar per year

CHART_WIDTH = 980
LABEL_WIDTH = 230
ROW_HEIGHT = 24
BAR_HEIGHT = 16


# --- chart geometry (rendered by the template) ---------------------------------------------------


@dataclass
class Segment:
    cls: str
    count: int
    x: float
    width: float
    color: str
    ink: str
    show_count: bool
    title: str


@dataclass
class BarRow:
    y: float
    label: str
    full_label: str
    total: int
    total_x: float
    segments: list[Segment]


@dataclass
class Tick:
    pos: float
    label: str


@dataclass
class BarChart:
    title: str
    width: int
    height: int
    plot_x: float
    plot_w: float
    top: float
    bottom: float
    rows: list[BarRow]
    ticks: list[Tick]
    note: str = ""


@dataclass
class Column:
    x: float
    y: float
    width: float
    height: float
    center: float
    color: str
    count: int
    label: str
    sublabel: str
    title: str
    show_count: bool


@dataclass
class ColumnChart:
    width: int
    height: int
    left: float
    right: float
    top: float
    baseline: float
    columns: list[Column]
    ticks: list[Tick]
    separator_x: float | None
    legend: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""


def _nice_step(maximum: float, target: int = 5) -> int:
    if maximum <= target:
        return 1
    raw = maximum / target
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw:
            return max(1, int(m * magnitude))
    return max(1, int(10 * magnitude))  # pragma: no cover - the loop always returns


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cluster_urgency(c: ClusterCounts) -> tuple[int, ...]:
    g = c.counts.get
    return (
        g("orphaned", 0) + g("root", 0) + g("expiring", 0),
        g("orphaned", 0),
        g("root", 0),
        g("expiring", 0),
        g("unknown", 0),
        g("expired", 0),
        c.total,
    )


def _bar_chart(title: str, rows: list[tuple[str, str, dict[str, int]]], note: str = "") -> BarChart:
    """Stacked horizontal bars: one row per (label, full label, counts by class)."""
    top, plot_x = 34.0, float(LABEL_WIDTH)
    plot_w = CHART_WIDTH - plot_x - 70
    maximum = max([sum(counts.values()) for _, _, counts in rows] or [0])
    step = _nice_step(maximum)
    scale_max = max(step, math.ceil(maximum / step) * step) if maximum else 1
    unit = plot_w / scale_max
    out: list[BarRow] = []
    for index, (label, full, counts) in enumerate(rows):
        y = top + index * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2
        x = plot_x
        segments: list[Segment] = []
        total = sum(counts.values())
        for cls in CLASS_ORDER:
            n = counts.get(cls.value, 0)
            if not n:
                continue
            width = max(n * unit, 2.0)
            segments.append(
                Segment(
                    cls=cls.value,
                    count=n,
                    x=round(x, 2),
                    width=round(width, 2),
                    color=CLASS_COLORS[cls.value],
                    ink=CLASS_INK[cls.value],
                    show_count=width >= 9 + 7 * len(str(n)),
                    title=f"{full}: {n} {cls.value}",
                )
            )
            x += width
        out.append(
            BarRow(
                y=y,
                label=_short(label, 34),
                full_label=full,
                total=total,
                total_x=round(x + 6, 2),
                segments=segments,
            )
        )
    bottom = top + len(rows) * ROW_HEIGHT
    ticks = [Tick(pos=round(plot_x + v * unit, 2), label=f"{v:,}") for v in range(0, scale_max + 1, step)]
    return BarChart(
        title=title,
        width=CHART_WIDTH,
        height=int(bottom + 26),
        plot_x=plot_x,
        plot_w=plot_w,
        top=top,
        bottom=bottom,
        rows=out,
        ticks=ticks,
        note=note,
    )


def region_chart(report: Report) -> BarChart:
    """One row per watched region (in the configured order), also those with nothing scanned."""
    names = list(dict.fromkeys([*report.regions, *sorted(report.by_region)]))
    rows = [(region, region, report.by_region.get(region, {})) for region in names]
    return _bar_chart("Kubeconfigs by region", rows)


def cluster_chart(report: Report) -> BarChart:
    ranked = sorted(report.by_cluster, key=lambda c: tuple(-v for v in cluster_urgency(c)))
    shown = ranked[:MAX_CHART_CLUSTERS]
    note = ""
    if len(ranked) > MAX_CHART_CLUSTERS:
        note = (
            f"Showing the {MAX_CHART_CLUSTERS} clusters with the most urgent items "
            f"(orphaned, root, expiring) of {len(ranked)} scanned."
        )
    rows = [
        (
            f"{c.cluster_name or c.cluster_id} · {c.region}",
            f"{c.cluster_name} ({c.cluster_id}, {c.region})",
            c.counts,
        )
        for c in shown
    ]
    return _bar_chart("Kubeconfigs by cluster", rows, note)


def _month_buckets(months: dict[str, int]) -> tuple[list[tuple[datetime, str, str, int]], bool]:
    """(start, label, sub label, count) for every month from the first to the last (gaps as 0).

    Spans longer than ``MONTHLY_SPAN_LIMIT`` months get one bucket per year (second value True).
    """
    parsed: dict[tuple[int, int], int] = {}
    for key, count in months.items():
        try:
            year, month = (int(part) for part in key.split("-", 1))
        except ValueError:
            continue
        if 1 <= month <= 12:
            parsed[(year, month)] = parsed.get((year, month), 0) + count
    if not parsed:
        return [], False
    first, last = min(parsed), max(parsed)
    span = (last[0] - first[0]) * 12 + last[1] - first[1] + 1
    out: list[tuple[datetime, str, str, int]] = []
    if span > MONTHLY_SPAN_LIMIT:
        for year in range(first[0], last[0] + 1):
            count = sum(n for (y, _), n in parsed.items() if y == year)
            out.append((datetime(year, 1, 1, tzinfo=timezone.utc), str(year), "", count))
        return out, True
    year, month = first
    for index in range(span):
        start = datetime(year, month, 1, tzinfo=timezone.utc)
        sub = str(year) if month == 1 or index == 0 else ""
        out.append((start, start.strftime("%b"), sub, parsed.get((year, month), 0)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out, False


def expiry_chart(report: Report) -> ColumnChart:
    """Unexpired certificates by month of expiry, after one column of the already expired."""
    now = parse_time(report.generated_at) or datetime.now(timezone.utc)
    window_end = now + timedelta(days=report.expiring_days)
    buckets, yearly = _month_buckets(report.expiry_by_month)
    expired = report.totals.get("expired", 0)
    width, height = CHART_WIDTH, 280
    left, right, top, baseline = 52.0, CHART_WIDTH - 16.0, 24.0, 230.0
    maximum = max([expired, *(n for *_, n in buckets)])
    step = _nice_step(maximum, 4)
    scale_max = max(step, math.ceil(maximum / step) * step) if maximum else 1
    unit = (baseline - top) / scale_max
    slots = len(buckets) + 1.6  # the expired column, a gap, then the months
    slot = (right - left) / max(slots, 8)
    bar = max(min(slot * 0.78, 48.0), 1.5)
    label_every = max(1, math.ceil(30 / slot))
    columns: list[Column] = []

    def column(index_pos: float, count: int, color: str, label: str, sub: str, title: str) -> Column:
        center = left + index_pos * slot + slot / 2
        h = count * unit
        return Column(
            x=round(center - bar / 2, 2),
            y=round(baseline - h, 2),
            width=round(bar, 2),
            height=round(h, 2),
            center=round(center, 2),
            color=color,
            count=count,
            label=label,
            sublabel=sub,
            title=title,
            show_count=count > 0 and slot >= 7 * len(str(count)) + 4,
        )

    columns.append(
        column(0, expired, CLASS_COLORS["expired"], "expired", "", f"{expired} certificates already expired")
    )
    for index, (start, label, sub, count) in enumerate(buckets):
        soon = start <= window_end
        shown = index % label_every == 0
        if index == 0 and not yearly and start.month != 1 and (13 - start.month) * slot < 44:
            sub = ""  # the next January's year label would collide with this one
        when = label if yearly else start.strftime("%B %Y")
        columns.append(
            column(
                index + 1.6,
                count,
                CLASS_COLORS["expiring"] if soon else LATER_COLOR,
                label if shown else "",
                sub,
                f"{count} certificates expire in {when}",
            )
        )
    ticks = [Tick(pos=round(baseline - v * unit, 2), label=f"{v:,}") for v in range(0, scale_max + 1, step)]
    legend = [
        ("already expired", CLASS_COLORS["expired"]),
        (
            f"{'year' if yearly else 'month'} overlaps the expiring window (next {report.expiring_days} days)",
            CLASS_COLORS["expiring"],
        ),
        ("expires later", LATER_COLOR),
    ]
    note = "" if buckets else "No unexpired certificate has a known expiry time."
    return ColumnChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        baseline=baseline,
        columns=columns,
        ticks=ticks,
        separator_x=round(left + 1.3 * slot, 2) if buckets else None,
        legend=legend,
        note=note,
    )


# --- tables ------------------------------------------------------------------------------------
