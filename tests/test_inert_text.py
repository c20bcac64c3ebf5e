"""Untrusted text is inert in every output: chat payloads, the Markdown digest, the HTML report.

Hostile names (markdown and mrkdwn metacharacters, mentions, URLs, backticks, line and
paragraph separators, bidi and zero-width characters) go through a real ``Report`` and the
real payload builders of every channel; the outputs are parsed in their own dialect.
"""

from __future__ import annotations

import functools
import io
import json
import re
import threading
import unicodedata
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kubeconfig_guard import inert
from kubeconfig_guard.channels import dingtalk as dingtalk_channel
from kubeconfig_guard.channels import feishu as feishu_channel
from kubeconfig_guard.channels import slack as slack_channel
from kubeconfig_guard.channels import wecom as wecom_channel
from kubeconfig_guard.handlers import handle_summary
from kubeconfig_guard.models import AccountState, AccountType, Cluster, KubeconfigState
from kubeconfig_guard.results import Action, ActionStatus, ClusterIssue, ClusterStatus, count_actions
from kubeconfig_guard.settings import Settings
from kubeconfig_guard.summary.digest import Digest
from kubeconfig_guard.summary.html import render_html
from kubeconfig_guard.summary.markdown import render_markdown
from kubeconfig_guard.summary.report import Reconciliation, Report, ReportBuilder
from support.receivers import local_http_server
from support.reports import NOW
from support.worlds import ACCOUNT, cluster, iso, kc, kubeconfig_state, world

REPORT_URL = "https://reports.example.com/kcguard/2026-11-26/report.html"
CHAT = (inert.DINGTALK, inert.WECOM, inert.FEISHU, inert.SLACK)
ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

FRAGMENTS = [
    "[Reset password](https://evil.example/login)",
    "[x](!channel)",
    "![img](https://evil.example/x.png)",
    "<https://evil.example|click>",
    "<https://evil.example>",
    "[ref]: https://evil.example",
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123>",
    "<!subteam^S1>",
    "<at id=all></at>",
    '<at user_id="all">',
    "@all",
    "@here",
    "@channel",
    "`",
    "```",
    "**",
    "*",
    "_",
    "__",
    "~",
    "~~",
    "#",
    "# ",
    "> ",
    "- ",
    "+ ",
    "1. ",
    "2) ",
    "|",
    "\\",
    "&lt;",
    "&amp;",
    "&#60;",
    "\n",
    "\r\n",
    "\n\n# heading\n",
    "\u2028",
    "\u2029",
    "\u0085",
    "\u202e",
    "\u202a",
    "\u2066",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\x1b[31m",
    "\x00",
    "www.evil.example",
    "https://evil.example/login",
    "evil.example",
    "mailto:a@evil.example",
    "<script>alert(1)</script>",
    "<font color=red>",
    ":rotating_light:",
    "{{ x }}",
    "${x}",
    "中文名",
    "alice",
    "dev_alice",
    "prod-cluster-01",
]
hostile = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(
            st.characters(
                categories=["Cc", "Cf", "Zl", "Zp", "Zs", "Po", "Ps", "Pe", "Pd", "Sm", "Sk", "So", "Ll"]
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    min_size=1,
    max_size=5,
).map("".join)
NAMES = 15


# --- a report full of hostile names ---------------------------------------------------------------


def hostile_report(names: list[str]) -> Report:
    """A small report (no list truncated, no channel size limit reached) with ``names`` everywhere."""
    n = iter(names)
    builder = ReportBuilder(now=NOW, expiring_days=30, list_limit=200)
    region = "cn-hangzhou"
    target = Cluster(cluster_id=next(n), name=next(n), region_id=region, state="running")

    def state(name: str, uid: str, **fields: Any) -> KubeconfigState:
        fields.setdefault("cert_expire_time", iso(NOW + timedelta(days=300)))
        return kubeconfig_state(uid, name, **fields)

    orphan, orphan_uid = next(n), next(n)
    builder.add_cluster(
        region,
        target,
        [
            state(orphan, orphan_uid),
            state(next(n), "2000000000000002", account_state=AccountState.INACTIVE),
            state(next(n), ACCOUNT, account_type=AccountType.ROOT_ACCOUNT, account_state=AccountState.ACTIVE),
            state(
                next(n),
                "2000000000000003",
                account_state=AccountState.ACTIVE,
                cert_expire_time=(NOW + timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            ),
        ],
    )
    actions = [
        Action(
            region=region,
            cluster_id=target.cluster_id,
            cluster_name=target.name,
            uid=orphan_uid,
            account_name=orphan,
            account_type="RamUser",
            account_state="Deleted",
            status=status,
            reason=next(n),
            error_code="Forbidden.RAM" if status is ActionStatus.FAILED else None,
        )
        for status in (ActionStatus.FAILED, ActionStatus.WOULD_REVOKE)
    ]
    skipped = [
        ClusterIssue(
            region=region,
            cluster_id=next(n),
            cluster_name=next(n),
            status=ClusterStatus.FAILED,
            reason=next(n),
            error_code="Throttling.User",
        )
    ]
    report = builder.build(
        generated_at=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        mode="dry-run",
        regions=[region],
        clusters_total=2,
        clusters_scanned=1,
        skipped_clusters=skipped,
        reconciliation=Reconciliation(
            enabled=True,
            mode="dry-run",
            outcome="partial",
            reason=next(n),
            actions=actions,
            counts=count_actions(actions),
        ),
    )
    # Undocumented account types and states come through as free text too.
    entry = report.orphaned.items[0]
    report.orphaned.items[0] = entry.model_copy(
        update={"account_type": AccountType(next(n)), "account_state": AccountState(next(n))}
    )
    return report


@functools.lru_cache(maxsize=1)
def benign_report() -> Report:
    return hostile_report([f"x{i}" for i in range(NAMES)])


@functools.cache
def benign_markdown(dialect: inert.Dialect) -> str:
    return render_markdown(benign_report(), report_url=REPORT_URL, dialect=dialect)


@functools.lru_cache(maxsize=1)
def benign_html() -> Tags:
    return parse_html(render_html(benign_report()))


# --- reading the outputs in their own dialect ----------------------------------------------------


def md_tokens(line: str) -> str:
    """A CommonMark line with escaped characters and code-span contents blanked (they are literal)."""
    out: list[str] = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] in ASCII_PUNCT:
            out.append("xx")
            i += 2
            continue
        if c == "`":
            j = line.find("`", i + 1)
            if j != -1:
                out.append("`" + "x" * (j - i - 1) + "`")
                i = j + 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def slack_tokens(line: str) -> str:
    return re.sub(r"&(?:amp|lt|gt);", "x", line)


INTRAWORD_UNDERSCORE = re.compile(r"(?<=[^\W_])_(?=[^\W_])")


def skeleton(line: str, dialect: inert.Dialect) -> str:
    """The markup characters of a line that a renderer would act on."""
    if dialect is inert.MARKDOWN:
        live = md_tokens(line)
        keep = "*`[]<~\\"
    else:
        live = slack_tokens(line) if dialect is inert.SLACK else line
        keep = "*`[]<>~\\#@&_"
    live = INTRAWORD_UNDERSCORE.sub("", live)
    return "".join(c for c in live if c in keep)


NESTED_BLOCK = re.compile(r"^(?:[-+*>#=]|\d+[.)])(?:\s|$)")


def assert_same_structure(hostile: str, benign: str, dialect: inert.Dialect) -> None:
    """Hostile names add no line, no block and no live markup character to the benign rendering."""
    h_lines, b_lines = hostile.split("\n"), benign.split("\n")
    assert len(h_lines) == len(b_lines), (dialect.name, hostile)
    for line in h_lines:
        for bullet in ("- ", "• "):
            if line.startswith(bullet):
                rest = md_tokens(line[2:]) if dialect is inert.MARKDOWN else line[2:]
                assert not NESTED_BLOCK.match(rest), (dialect.name, line)
    assert sorted(skeleton(x, dialect) for x in h_lines) == sorted(skeleton(x, dialect) for x in b_lines), (
        dialect.name,
        hostile,
    )


def assert_chat_inert(text: str, dialect: inert.Dialect) -> None:
    """No raw control character, link to elsewhere, mention, URL or domain in a chat message."""
    assert set(inert.UNSAFE.findall(text)) <= {"\n"}, (dialect.name, text)
    if dialect is inert.SLACK:
        links = re.findall(r"<([^>]*)>", text)
        assert all(link.startswith(REPORT_URL + "|") for link in links), (links, text)
        rest = re.sub(r"<[^>]*>", "", text)
    else:
        links = re.findall(r"\]\(([^)]*)\)", text)
        assert all(link == REPORT_URL for link in links), (links, text)
        rest = re.sub(r"\[[^\]]*\]\([^)]*\)", "", text)
        assert "<" not in rest and ">" not in rest.replace("\n> ", "\n"), (dialect.name, text)
    assert "](" not in rest and "@" not in rest and "<" not in rest, (dialect.name, text)
    assert not re.search(r"(?i)[a-z]+:/|www\.|evil\.example", rest), (dialect.name, text)


def assert_digest_inert(text: str) -> None:
    """The CommonMark digest: links only to the report, no autolink, HTML or raw control character."""
    assert set(inert.UNSAFE.findall(text)) <= {"\n"}
    for line in text.split("\n"):
        live = md_tokens(line)
        assert all(target == REPORT_URL for target in re.findall(r"\]\(([^)]*)\)", live)), line
        assert "<" not in live, line
        without_ours = live.replace(REPORT_URL, "")
        assert not re.search(r"(?i)(?:https?|ftp)://|www\.", without_ours), line
        for m in re.finditer("_", live):  # an unescaped underscore is intraword: it cannot emphasize
            around = live[max(0, m.start() - 1) : m.end() + 1]
            assert re.fullmatch(r"[^\W_]_[^\W_]", around), line


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            self.attrs.add(name)
            if name in ("href", "src", "xlink:href", "action"):
                self.hrefs.append(value or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser


def channel_texts(report: Report) -> dict[str, tuple[inert.Dialect, str]]:
    """The message text every chat channel's payload builder produces."""
    settings = Settings(
        dingtalk_webhook="https://oapi.dingtalk.com/robot/send?access_token=t0k3n-dingtalk",
        feishu_webhook="https://open.feishu.cn/open-apis/bot/v2/hook/feishu-token-1",
        wecom_webhook="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wecom-key-1",
        slack_webhook="https://hooks.slack.com/services/T0001/B0002/slackToken123456",
        report_url=REPORT_URL,
    )
    clock = NOW.timestamp
    digest = Digest(report, settings.report_url)
    ding = dingtalk_channel.prepare(digest, settings, clock).payload
    feishu = feishu_channel.prepare(digest, settings, clock).payload
    wecom = wecom_channel.prepare(digest, settings, clock).payload
    slack = slack_channel.prepare(digest, settings, clock).payload
    for block in slack["blocks"]:
        assert block["text"] == {"type": "mrkdwn", "text": block["text"]["text"], "verbatim": True}
    assert not set(inert.UNSAFE.findall(slack["text"]))
    return {
        "dingtalk": (inert.DINGTALK, ding["markdown"]["text"]),
        "feishu": (inert.FEISHU, feishu["card"]["elements"][0]["text"]["content"]),
        "wecom": (inert.WECOM, wecom["markdown"]["content"]),
        "slack": (inert.SLACK, "\n".join(b["text"]["text"] for b in slack["blocks"])),
    }


# --- the property ---------------------------------------------------------------------------------


@hsettings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(names=st.lists(hostile, min_size=NAMES, max_size=NAMES))
def test_hostile_names_are_inert_in_every_output(names: list[str]) -> None:
    report = hostile_report(names)
    for dialect in inert.DIALECTS:
        rendered = render_markdown(report, report_url=REPORT_URL, dialect=dialect)
        assert_same_structure(rendered, benign_markdown(dialect), dialect)
        if dialect is inert.MARKDOWN:
            assert_digest_inert(rendered)
        else:
            assert_chat_inert(rendered, dialect)
    for name, (dialect, text) in channel_texts(report).items():
        assert_chat_inert(text, dialect)
        assert text.startswith(("## kubeconfig-guard", "**kubeconfig-guard", "*kubeconfig-guard")), name

    page, reference = parse_html(render_html(report)), benign_html()
    assert page.tags <= reference.tags and page.attrs <= reference.attrs
    assert all(href.startswith("#") for href in page.hrefs)
    assert not [t for t in page.text if set(inert.UNSAFE.findall(t)) - {"\n"}]


# --- the issue's examples, one by one --------------------------------------------------------------


def test_the_reported_injections_in_every_channel() -> None:
    names = [
        "c-evil",
        "[Reset password](https://evil.example/login)",
        "[x](!channel)",
        "2000000000000001",
        "<at id=all></at>",
        "root",
        "a`b``c",
        "# Heading\n- item",
        "bidi \u202eevil\u2028next\u0085line",
        "c-skip",
        "<!channel> @all <@U123>",
        "message with `code` and ~strike~",
        "reason",
        "RamUser",
        "Deleted](https://evil.example)",
    ]
    report = hostile_report(names)
    for name, (dialect, text) in channel_texts(report).items():
        assert_chat_inert(text, dialect)
        assert "Reset password" in text, name  # still readable
        if dialect is inert.SLACK:
            assert "<!channel" not in text and "|Reset password" not in text
    digest = render_markdown(report, report_url=REPORT_URL)
    assert_digest_inert(digest)
    assert "\\[Reset password\\](https\\://evil.example/login)" in digest
    assert "`[x](!channel)`" in digest  # a code span keeps the exact name
    assert "`aˋbˋˋc`" in digest
    assert "bidi \ufffdevil next line" in digest


def test_normal_names_read_the_same_everywhere() -> None:
    for value in (
        "alice",
        "prod-cluster-01",
        "中文名",
        "dev_alice",
        "cluster state is 'failed': no API server",
    ):
        for dialect in inert.DIALECTS:
            assert dialect.text(value) == value, (dialect.name, value)
            assert dialect.code(value) == f"`{value}`", (dialect.name, value)


def test_long_values_are_cut() -> None:
    for dialect in inert.DIALECTS:
        assert len(dialect.text("a" * 5000)) == inert.MAX_CHARS


def test_unsafe_covers_every_control_format_and_separator_character() -> None:
    missing = [
        hex(cp)
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Zl", "Zp", "Cs") and not inert.UNSAFE.match(chr(cp))
    ]
    assert not missing
    assert not inert.UNSAFE.search("alice 中文名 prod-cluster-01 é ß 🙂 \u00a0\u3000")


def test_html_report_values_are_redacted_and_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCGUARD_DINGTALK_SECRET", "SEC-html-secret-0123")
    names = [f"n{i}" for i in range(NAMES)]
    names[1] = "evil\u202ename\u2028SEC-html-secret-0123"
    names[12] = "see https://oapi.dingtalk.com/robot/send?access_token=abcdef123456"
    page = render_html(hostile_report(names))
    assert "SEC-html-secret-0123" not in page and "abcdef123456" not in page
    assert "\u202e" not in page and "\u2028" not in page
    assert "evil\ufffdname ***" in page


# --- end to end: the summary function over the fake, to real chat receivers ----------------------


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]]
    lock: threading.Lock

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.lock:
            self.bodies.append((self.path, body))
        answer = b"ok" if "/services/" in self.path else b'{"errcode": 0, "code": 0, "msg": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if answer == b"ok" else "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    bodies: list[tuple[str, bytes]] = []
    handler = type("Receiver", (_Receiver,), {"bodies": bodies, "lock": threading.Lock()})
    with local_http_server(handler) as url:
        yield url, bodies


def test_summary_over_the_fake_delivers_inert_messages(
    make_harness: Any, receiver: tuple[str, list[tuple[str, bytes]]], demo_env: None
) -> None:
    url, bodies = receiver
    evil_cluster = "[Reset password](https://evil.example/login)"
    evil_user = "<!channel> [x](!channel) `x` @all\u2028# h"
    h = make_harness(
        world(
            {
                "cn-hangzhou": [
                    cluster("c-evil", kc("2001", evil_user), name=evil_cluster),
                    cluster("c-ok", kc("2002", "alice")),
                ]
            }
        )
    )
    runtime = h.runtime(
        mode="dry-run",
        dingtalk_webhook=f"{url}/robot/send?access_token=tok-dingtalk",
        feishu_webhook=f"{url}/open-apis/bot/v2/hook/tok-feishu",
        wecom_webhook=f"{url}/cgi-bin/webhook/send?key=tok-wecom",
        slack_webhook=f"{url}/services/T1/B2/tokslack",
        report_url=REPORT_URL,
    )
    outcome = handle_summary(b"{}", None, runtime=runtime)
    assert outcome.report is not None and outcome.report.orphaned.total == 2
    assert all(d["ok"] for d in outcome.deliveries), outcome.deliveries
    assert len(bodies) == 4
    for path, body in bodies:
        payload = json.loads(body)
        if path.startswith("/services/"):
            dialect, text = inert.SLACK, "\n".join(b["text"]["text"] for b in payload["blocks"])
        elif path.startswith("/open-apis/"):
            dialect, text = inert.FEISHU, payload["card"]["elements"][0]["text"]["content"]
        elif path.startswith("/robot/"):
            dialect, text = inert.DINGTALK, payload["markdown"]["text"]
        else:
            dialect, text = inert.WECOM, payload["markdown"]["content"]
        assert_chat_inert(text, dialect)
        assert "Reset password" in text
    assert_digest_inert(outcome.markdown)
    # The JSON report keeps the exact names (it is data, not markup).
    data = json.loads(outcome.report_json)
    assert evil_user in [e["account_name"] for e in data["orphaned"]["items"]]


def test_rich_text_cannot_become_console_markup() -> None:
    from rich.console import Console
    from rich.text import Text

    hostile = "[link=https://evil.example/login]Reset password[/link] [bold red]x\u202e\x1b[2J"
    text = Text.from_markup(inert.rich_text(hostile))
    assert not text.spans  # no style, no link: the markup is shown as text
    assert text.plain == "[link=https://evil.example/login]Reset password[/link] [bold red]x\\u202e\\x1b[2J"
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(inert.rich_text(hostile))
    assert "\x1b]8;" not in console.file.getvalue()  # no OSC 8 hyperlink
