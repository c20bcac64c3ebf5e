"""The HTML report: self-contained, escaped, and really rendered by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from kubeconfig_guard.channels import base as channel_base
from kubeconfig_guard.inert import DIALECTS, MARKDOWN
from kubeconfig_guard.results import ACTION_URGENCY, Action, ActionStatus
from kubeconfig_guard.summary import charts
from kubeconfig_guard.summary import html as html_module
from kubeconfig_guard.summary.charts import CLASS_COLORS, MAX_CHART_CLUSTERS
from kubeconfig_guard.summary.deferrals import Ledger, LedgerEntry, needs_decision
from kubeconfig_guard.summary.digest import Digest
from kubeconfig_guard.summary.html import render_html
from kubeconfig_guard.summary.markdown import render_markdown
from kubeconfig_guard.summary.report import NeedsDecision, Report
from support.reports import EVIL_NAME, build_report, empty_report

# --- structure -----------------------------------------------------------------------------------

EXTERNAL_REF = re.compile(
    r"""(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*(?:https?:|//|ftp:)""", re.IGNORECASE
)


def test_self_contained_no_external_references() -> None:
    page = render_html(build_report())
    assert page.startswith("<!DOCTYPE html>")
    assert not EXTERNAL_REF.search(page)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "<img" not in page.lower()
    assert "@import" not in page and "url(" not in page
    # Any URL in the page is the SVG namespace identifier, never fetched.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert page.count("<svg") == 3  # by region, by cluster, expiry


def test_the_builds_compiled_templates_render_the_same_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/build ships the templates compiled (``COMPILED_TEMPLATES``); a package that has
    them renders byte for byte what the templates render, untrusted names escaped alike."""
    report = build_report(evil_name=True, orphans=3)
    html_module._environment.cache_clear()
    from_source = render_html(report)
    compiled = tmp_path / "templates_compiled"
    modules = html_module.compile_templates(compiled)
    assert [m.name.startswith("tmpl_") for m in modules] == [True]  # one template, one module
    monkeypatch.setattr(html_module, "COMPILED_TEMPLATES", compiled)
    html_module._environment.cache_clear()
    try:
        import jinja2

        assert isinstance(html_module._environment().loader, jinja2.ModuleLoader)
        assert render_html(report) == from_source
        assert EVIL_NAME not in from_source
    finally:
        html_module._environment.cache_clear()


def test_untrusted_names_are_escaped() -> None:
    report = build_report(evil_name=True)
    assert any(e.account_name == EVIL_NAME for e in report.orphaned.items)
    page = render_html(report)
    assert EVIL_NAME not in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;co" in page


def test_contents_headline_tables_and_colors() -> None:
    report = build_report()
    page = render_html(report)
    assert "2026-11-26" in page and "dry-run" in page
    for region in report.regions:
        assert region in page
    for cls, color in CLASS_COLORS.items():
        assert color in page, cls
        assert f"{report.totals[cls]:,}" in page
    for section in ("reconciliation", "orphaned", "root", "not-scanned", "expiring", "types", "clusters"):
        assert f'id="{section}"' in page
    for issue in report.skipped_clusters:
        assert issue.reason.replace("'", "&#39;") in page
    rec = report.reconciliation
    assert rec is not None and rec.actions
    for action in rec.actions:
        assert action.uid in page
    for type_name in report.by_account_type:
        assert f'<td class="name">{type_name}</td>' in page
    # expiring: soonest first
    days = [int(d) for d in re.findall(r'<tr><td class="num(?: soon)?">(-?\d+)</td>', page)]
    assert days == sorted(days) and len(days) == len(report.expiring.items)
    # every month bar of the expiry chart has a tooltip
    assert page.count("certificates expire in") >= len(report.expiry_by_month)
    assert f"{report.totals['expired']} certificates already expired" in page


def test_html_and_digest_list_actions_in_the_one_urgency_order() -> None:
    assert sorted(ACTION_URGENCY) == sorted(ActionStatus) and len(set(ACTION_URGENCY)) == len(ActionStatus)
    assert [s.urgency for s in ACTION_URGENCY] == list(range(len(ActionStatus)))
    report = build_report()
    rec = report.reconciliation
    assert rec is not None
    actions = [
        Action(
            region="cn-hangzhou",
            cluster_id="c-order",
            uid=f"uid-{status.value}",
            account_name=f"who-{status.value}",
            account_type="RamUser",
            status=status,
            reason="order",
        )
        for status in reversed(ACTION_URGENCY)
    ]
    rec.actions = actions
    expected = [f"uid-{s.value}" for s in ActionStatus.by_urgency()]
    page = render_html(report)
    assert re.findall(r"uid-[a-z-]+", page) == expected
    digest = render_markdown(report, max_items=10)
    given = [s.value for s in reversed(ACTION_URGENCY)]
    attention = [s.value for s in ACTION_URGENCY if s.needs_attention]
    assert attention == ["failed", "deferred"]
    # the digest keeps the report's order (urgency order, from reconcile) with failed/deferred on top
    assert re.findall(r"who-([a-z-]+)", digest) == [s for s in given if s in attention] + [
        s for s in given if s not in attention
    ]
    rec.actions = actions[::-1]
    assert re.findall(r"who-([a-z-]+)", render_markdown(report)) == [s.value for s in ACTION_URGENCY]


# --- "Needs a decision": the first section, in the page and in every dialect ----------------------

HOSTILE_CLUSTER = "[Reset password](https://evil.example/login) <!channel> @all"


def decision_report(*, names: tuple[str, str] = (EVIL_NAME, "dev-alice")) -> Report:
    """``build_report()`` with two revocations ACK refused for 12 and 9 days (hostile names first)."""
    report = build_report()
    today = date(2026, 11, 26)
    actions = [
        Action(
            region="cn-hangzhou",
            cluster_id=cluster_id,
            cluster_name=cluster_name,
            uid=uid,
            account_name=name,
            account_type="RamUser",
            account_state="InActive",
            status=ActionStatus.DEFERRED,
            reason="ACK refused a Force=false revocation",
        )
        for cluster_id, cluster_name, uid, name in (
            ("c-blind-01", HOSTILE_CLUSTER, "276543218765432", names[0]),
            ("c-busy-02", "prod-busy", "276543218765433", names[1]),
        )
    ]
    ledger = Ledger(
        True,
        {
            ("c-blind-01", "276543218765432"): LedgerEntry(
                region="cn-hangzhou",
                cluster_id="c-blind-01",
                uid="276543218765432",
                since=today - timedelta(days=12),
                last=today,
            ),
            ("c-busy-02", "276543218765433"): LedgerEntry(
                region="cn-hangzhou",
                cluster_id="c-busy-02",
                uid="276543218765433",
                since=today - timedelta(days=9),
                last=today,
            ),
        },
    )
    report.needs_decision = needs_decision(
        ledger, actions, today=today, after_days=8, locked_not_retried=3, limit=200
    )
    return report


def test_needs_decision_is_the_first_section_of_the_page() -> None:
    report = decision_report()
    page = render_html(report)
    assert page.index('id="decisions"') < page.index('class="cards"') < page.index('id="charts"')
    assert "2 revocations need a decision" in page and "3 locked account kubeconfigs not retried" in page
    assert (
        "<code>aliyun cs DELETE /cluster/c-blind-01/user/276543218765432/permissions --Force true</code>"
        in page
    )
    assert ">12</td>" in page and "2026-11-14" in page and "KCGUARD_REMEDIATE_LOCKED" in page
    # Names stay text; the page still links nowhere and loads nothing.
    assert EVIL_NAME not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;co" in page
    assert not EXTERNAL_REF.search(page) and '<a href="h' not in page
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page)) - {"http://www.w3.org/2000/svg"}
    assert all(u.startswith("https://evil.example/login") for u in urls), urls  # the hostile name, as text


def test_needs_decision_is_the_first_section_in_every_dialect() -> None:
    report = decision_report()
    for dialect in DIALECTS:
        text = render_markdown(report, dialect=dialect, report_url="https://reports.example.com/r.html")
        head = text.index("Needs a decision (2)")
        assert head < text.index("Reconciliation") < text.index("Orphaned"), dialect.name
        section = text[head : text.index("Reconciliation")]
        assert "KCGUARD_FORCE_ON_LOCK=true" in section and "Cluster Auditing" in section
        assert (
            "(12 days)" in section and "(9 days)" in section and "3 kubeconfigs of locked accounts" in section
        )
        assert "/cluster/c-blind-01/user/276543218765432/permissions --Force true" in section
        assert section.index("12 days") < section.index("9 days")  # most overdue first
        # The hostile names are inert: no link, mention, HTML or URL comes from them.
        assert "](https://evil" not in section and "https://" not in section, dialect.name
        if dialect is MARKDOWN:  # CommonMark: escaped text, the exact name in a code span
            assert "`<script>alert('x')</script>&co`" in section
            assert "\\[Reset password\\](https\\://evil.example/login) \\<!channel> @all" in section
        else:  # chat: look-alikes, no mention, no domain
            assert "<script" not in section and "<!channel>" not in section and "@all" not in section
            assert "evil.example" not in section and "［Reset password］" in section, dialect.name


def test_chat_title_and_fitting_keep_the_decision_first() -> None:
    report = decision_report(names=("carol", "dave"))
    digest = Digest(report)
    assert digest.title().startswith("kubeconfig-guard 2026-11-26: 2 need a decision, ")
    text, truncated = channel_base.fit_message(digest, channel_base.utf8_within(2_000))
    assert truncated and "Needs a decision (2)" in text
    assert text.index("Needs a decision") < text.index("Reconciliation")
    assert report.needs_attention


def test_no_section_when_nothing_needs_a_decision() -> None:
    report = build_report()
    assert report.needs_decision is None
    assert "Needs a decision" not in render_markdown(report) and 'id="decisions"' not in render_html(report)
    report.needs_decision = NeedsDecision(after_days=8, ages_tracked=True)
    assert not report.needs_decision.shown and "Needs a decision" not in render_markdown(report)


def test_truncation_notes() -> None:
    report = build_report(orphans=2000, list_limit=50, clusters_per_region=15)
    assert report.orphaned.truncated
    page = render_html(report)
    assert f"Showing the first 50 of {report.orphaned.total}" in page
    assert f"of {report.expiring.total}" in page or not report.expiring.truncated
    assert f"Showing the {MAX_CHART_CLUSTERS} clusters with the most urgent items" in page
    assert f"of {len(report.by_cluster)} scanned" in page
    cluster_svg = page.split("By cluster", 1)[1].split("</svg>", 1)[0]
    assert cluster_svg.count(" kubeconfigs</title>") == MAX_CHART_CLUSTERS


def test_cluster_chart_keeps_the_most_urgent() -> None:
    report = build_report(clusters_per_region=15, orphans=31)
    chart = charts.cluster_chart(report)
    shown = {row.full_label for row in chart.rows}
    urgent = [c for c in report.by_cluster if c.counts["orphaned"] + c.counts["root"] + c.counts["expiring"]]
    most = max(urgent, key=lambda c: c.counts["orphaned"])
    assert any(most.cluster_id in label for label in shown)
    calm = [
        c for c in report.by_cluster if not (c.counts["orphaned"] + c.counts["root"] + c.counts["expiring"])
    ]
    if len(urgent) >= MAX_CHART_CLUSTERS:
        assert not any(c.cluster_id in label for c in calm for label in shown)


def test_region_chart_lists_every_watched_region() -> None:
    report = build_report().model_copy(update={"regions": ["eu-central-1", *build_report().regions]})
    chart = charts.region_chart(report)
    assert [row.label for row in chart.rows] == report.regions
    assert chart.rows[0].total == 0 and not chart.rows[0].segments


def test_empty_report_renders() -> None:
    page = render_html(empty_report())
    assert "Nothing needs attention today." in page
    assert "No cluster was scanned." in page
    assert "No unexpired certificate has a known expiry time." in page


def test_long_expiry_span_is_bucketed_by_year() -> None:
    report = build_report().model_copy(update={"expiry_by_month": {"2026-12": 3, "2035-06": 2, "2031-01": 1}})
    chart = charts.expiry_chart(report)
    labels = [c.label for c in chart.columns[1:]]
    assert labels[0] == "2026" and labels[-1] == "2035" and len(labels) == 10
    assert sum(c.count for c in chart.columns[1:]) == 6


def test_jinja2_is_imported_lazily() -> None:
    code = (
        "import sys, kubeconfig_guard.handlers, kubeconfig_guard.summary.html;print('jinja2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_template_is_package_data() -> None:
    template = Path(html_module.__file__).parent / "templates" / "report.html.j2"
    assert template.is_file()


# --- a real render --------------------------------------------------------------------------------


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw pixels) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, bytearray()
    width = height = bpp = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and color in (2, 6), (depth, color, interlace)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    high = int.from_bytes(b"\x80" * stride, "big")
    low = int.from_bytes(b"\x7f" * stride, "big")
    out = bytearray()
    prev = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = raw[start + 1 : start + 1 + stride]
        if kind == 0:
            row = bytes(line)
        elif kind == 2:  # Up: bytewise add without carries between bytes
            a, b = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            row = (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(stride, "big")
        else:
            cur = bytearray(line)
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                up = prev[i]
                if kind == 1:
                    cur[i] = (cur[i] + left) & 0xFF
                elif kind == 3:
                    cur[i] = (cur[i] + ((left + up) >> 1)) & 0xFF
                elif kind == 4:
                    corner = prev[i - bpp] if i >= bpp else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                    cur[i] = (cur[i] + pred) & 0xFF
                else:
                    raise AssertionError(f"bad PNG filter {kind}")
            row = bytes(cur)
        out += row
        prev = row
    return width, height, bpp, bytes(out)


def color_histogram(width: int, height: int, bpp: int, pixels: bytes) -> Counter[tuple[int, int, int]]:
    hist: Counter[tuple[int, int, int]] = Counter()
    stride = width * bpp
    for y in range(height):
        row = pixels[y * stride : (y + 1) * stride]
        hist.update(zip(row[0::bpp], row[1::bpp], row[2::bpp], strict=True))
    return hist


def _rgb(hex_color: str) -> tuple[int, int, int]:
    value = hex_color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def near(hist: Counter[tuple[int, int, int]], color: tuple[int, int, int], tolerance: int = 3) -> int:
    return sum(
        n for c, n in hist.items() if all(abs(a - b) <= tolerance for a, b in zip(c, color, strict=True))
    )


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: Path, out: Path, size: str = "1280,2000") -> bytes:
    binary = chromium_binary()
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="kcguard-chromium-") as profile:
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            f"--window-size={size}",
            page.as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert out.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return out.read_bytes()


@pytest.mark.chromium
@pytest.mark.skipif(
    chromium_binary() is None, reason="chromium is not installed (apt-get install -y chromium)"
)
def test_chromium_renders_the_charts(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(build_report(evil_name=True)), encoding="utf-8")
    shot = tmp_path / "shot.png"
    width, height, bpp, pixels = decode_png(screenshot(page, shot))
    keep = os.environ.get("KCGUARD_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "report.png")
    assert (width, height) == (1280, 2000)
    hist = color_histogram(width, height, bpp, pixels)
    assert len(hist) > 200, f"the screenshot looks blank: {len(hist)} colours"
    counts = {cls: near(hist, _rgb(color)) for cls, color in CLASS_COLORS.items()}
    # Bars, cards and legend swatches: every class colour covers a real area of the page.
    assert counts["orphaned"] > 5000, counts
    assert counts["healthy"] > 20000, counts
    for cls in ("root", "expired", "expiring", "unknown"):
        assert counts[cls] > 500, counts
    # The top of the page is the dark header, the region chart sits in the upper half.
    assert near(hist, (0x1D, 0x2B, 0x3A)) > 50_000


@pytest.mark.chromium
@pytest.mark.skipif(
    chromium_binary() is None, reason="chromium is not installed (apt-get install -y chromium)"
)
def test_chromium_page_without_the_report_has_no_chart_colors(tmp_path: Path) -> None:
    """The check above would notice a page that did not render the report: a page with only an
    error text has none of the colours. (Chromium 156 writes no screenshot at all for a missing
    file, so the control renders a real page.)"""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><title>x</title><p>This page failed to load.</p>", encoding="utf-8")
    shot = tmp_path / "broken.png"
    width, height, bpp, pixels = decode_png(screenshot(page, shot, "800,600"))
    hist = color_histogram(width, height, bpp, pixels)
    assert near(hist, _rgb(CLASS_COLORS["orphaned"])) < 50
    assert near(hist, _rgb(CLASS_COLORS["healthy"])) < 50


def test_png_decoder_roundtrip() -> None:
    """The test's PNG decoder against every filter type (an encoder written the simple way)."""
    width, height, bpp = 7, 5, 3
    pixels = bytes(
        (x * 37 + y * 91 + c * 53) % 256 for y in range(height) for x in range(width) for c in range(bpp)
    )
    stride = width * bpp
    raw = bytearray()
    prev = bytes(stride)
    for y in range(height):
        row = pixels[y * stride : (y + 1) * stride]
        kind = y % 5
        out = bytearray()
        for i in range(stride):
            left = row[i - bpp] if i >= bpp else 0
            up = prev[i]
            corner = prev[i - bpp] if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            paeth = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            pred = [0, left, up, (left + up) >> 1, paeth][kind]
            out.append((row[i] - pred) & 0xFF)
        raw += bytes([kind]) + out
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )
    assert decode_png(png) == (width, height, bpp, pixels)
