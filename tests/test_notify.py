"""Chat channels and the generic webhook, against a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from kubeconfig_guard import channels, inert
from kubeconfig_guard.channels import Delivery, base, deliver_all, registry, slack, wecom
from kubeconfig_guard.settings import Settings, secret_fields
from kubeconfig_guard.summary.digest import Digest
from kubeconfig_guard.summary.report import Report
from support.chat import (
    CHANNEL_ENV,
    DINGTALK_SECRET,
    FEISHU_SECRET,
    REPORT_URL,
    Receiver,
    assert_no_secret,
    channel_settings,
    refused_base,
    running_receiver,
    urls,
)
from support.reports import EVIL_NAME, build_report

NOW_S = 1_764_122_400.25  # the fixed clock of the tests
WAIT = 0.001  # retry back-off ceiling in the tests


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as rec:
        yield rec


@pytest.fixture(autouse=True)
def _no_channel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CHANNEL_ENV:
        monkeypatch.delenv(f"KCGUARD_{name}", raising=False)


def all_channels(base: str, **overrides: Any) -> Settings:
    return Settings(**channel_settings(base, **overrides))


def deliver(report: Report, settings: Settings, **kwargs: Any) -> list[Delivery]:
    kwargs.setdefault("retry_wait_max", WAIT)
    message = Digest(report, settings.report_url)
    return asyncio.run(deliver_all(message, settings, clock=lambda: NOW_S, **kwargs))


def by_channel(deliveries: list[Delivery]) -> dict[str, Delivery]:
    return {d.channel: d for d in deliveries}


# --- formats ------------------------------------------------------------------------------------


def test_every_channel_gets_its_documented_format(receiver: Receiver) -> None:
    report = build_report()
    deliveries = deliver(report, all_channels(receiver.url))
    assert [d.channel for d in deliveries] == ["dingtalk", "feishu", "wecom", "slack", "webhook"]
    for d in deliveries:
        assert d.ok and d.attempts == 1 and d.error is None, d
    assert len(receiver.requests) == 5
    for r in receiver.requests:
        assert r.method == "POST"
        assert r.headers["content-type"].startswith("application/json")
        assert int(r.headers["content-length"]) == len(r.body)
    sizes = {d.channel: d.bytes for d in deliveries}

    # DingTalk: markdown message, signature in the query string.
    (ding,) = receiver.on("/robot/send")
    body = ding.json()
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("kubeconfig-guard 2026-11-26: 20 orphaned")
    text = body["markdown"]["text"]
    assert text.startswith("## kubeconfig-guard daily summary — 2026-11-26")
    assert f"[Full report]({REPORT_URL})" in text
    assert ding.query["access_token"] == "tok123dingtalk"
    timestamp = ding.query["timestamp"]
    assert timestamp == str(int(NOW_S * 1000))
    expected = base64.b64encode(
        hmac.new(
            DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256
        ).digest()
    ).decode()
    assert ding.query["sign"] == expected
    raw_sign = re.search(r"(?:^|&)sign=([^&]+)", ding.raw_query)
    assert raw_sign is not None and unquote(raw_sign.group(1)) == expected  # URL-encoded (+, /, =)
    assert not set(raw_sign.group(1)) & set("+/=")
    assert sizes["dingtalk"] == len(ding.body)

    # Feishu: interactive card with a lark_md div; timestamp and sign in the body.
    (feishu,) = receiver.on("/open-apis/bot/v2/hook/5a1e2c3d-feishu-hook-token")
    body = feishu.json()
    assert body["msg_type"] == "interactive"
    assert body["timestamp"] == str(int(NOW_S))
    string_to_sign = f"{body['timestamp']}\n{FEISHU_SECRET}"
    assert (
        body["sign"]
        == base64.b64encode(hmac.new(string_to_sign.encode(), b"", hashlib.sha256).digest()).decode()
    )
    card = body["card"]
    assert card["header"]["title"]["tag"] == "plain_text"
    assert card["header"]["template"] == "red"
    (element,) = card["elements"]
    assert element["tag"] == "div" and element["text"]["tag"] == "lark_md"
    content = element["text"]["content"]
    assert content.startswith("**kubeconfig-guard daily summary — 2026-11-26**")
    assert "\n#" not in content and "\n> " not in content
    assert f"[Full report]({REPORT_URL})" in content
    assert len(feishu.body) <= 20 * 1024

    # WeCom: markdown content within 4096 bytes.
    (wecom,) = receiver.on("/cgi-bin/webhook/send")
    assert wecom.query == {"key": "wecom-key-693a91f6"}
    body = wecom.json()
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
    assert len(body["markdown"]["content"].encode()) <= 4096
    assert body["markdown"]["content"].startswith("## kubeconfig-guard daily summary")

    # Slack: fallback text and mrkdwn sections.
    (slack,) = receiver.on("/services/T0001/B0002/slackToken123456")
    body = slack.json()
    assert body["text"].startswith("kubeconfig-guard 2026-11-26")
    assert 1 <= len(body["blocks"]) <= 50
    for block in body["blocks"]:
        assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
        assert len(block["text"]["text"]) <= 3000
    mrkdwn = "\n".join(b["text"]["text"] for b in body["blocks"])
    assert mrkdwn.startswith("*kubeconfig-guard daily summary — 2026-11-26*")
    assert "*20 orphaned*" in mrkdwn and "**" not in mrkdwn
    assert f"<{REPORT_URL}|Full report>" in mrkdwn
    assert "\n• *failed* `" in mrkdwn

    # Generic webhook: the JSON report.
    (hook,) = receiver.on("/hook/generic-token-42")
    assert hook.json() == report.model_dump(mode="json")
    assert hook.headers["content-type"] == "application/json; charset=utf-8"
    assert by_channel(deliveries)["webhook"].status_code == 202


def test_unsigned_when_no_secret(receiver: Receiver) -> None:
    settings = all_channels(receiver.url, dingtalk_secret=None, feishu_secret=None)
    assert all(d.ok for d in deliver(build_report(), settings))
    (ding,) = receiver.on("/robot/send")
    assert ding.query == {"access_token": "tok123dingtalk"}
    (feishu,) = receiver.on("/open-apis/bot/v2/hook/5a1e2c3d-feishu-hook-token")
    assert "sign" not in feishu.json() and "timestamp" not in feishu.json()


def test_untrusted_names_cannot_mention(receiver: Receiver) -> None:
    report = build_report(evil_name=True)
    deliver(report, all_channels(receiver.url))
    for r in receiver.requests:
        if r.path.startswith("/hook/"):
            continue
        text = r.body.decode()
        assert "<script>" not in text, r.path
    slack = receiver.on("/services/T0001/B0002/slackToken123456")[0].body.decode()
    assert "&lt;script&gt;alert('x')&lt;/script&gt;&amp;co" in slack


def _sample(d: inert.Dialect) -> list[str]:
    """The digest's building blocks in one dialect: our structure around untrusted values."""
    return [
        d.heading("Title", 2),
        "",
        f"{d.bold('3 orphaned')} · x",
        d.quote(f"why {d.text('<!channel>')}"),
        d.bullet(
            f"{d.bold('failed')} {d.code('a&b')} {d.link('Full report', 'https://r.example/x?a=1&b=2')}"
        ),
    ]


def test_markdown_dialects() -> None:
    assert _sample(inert.SLACK) == [
        "*Title*",
        "",
        "*3 orphaned* · x",
        "> why &lt;!channel&gt;",
        "• *failed* `a&amp;b` <https://r.example/x?a=1&amp;b=2|Full report>",
    ]
    assert _sample(inert.FEISHU) == [
        "**Title**",
        "",
        "**3 orphaned** · x",
        "why ＜!channel＞",
        "- **failed** `a＆b` [Full report](https://r.example/x?a=1&b=2)",
    ]
    for d in (inert.DINGTALK, inert.WECOM):
        assert _sample(d) == [
            "## Title",
            "",
            "**3 orphaned** · x",
            "> why ＜!channel＞",
            "- **failed** `a＆b` [Full report](https://r.example/x?a=1&b=2)",
        ]
    assert _sample(inert.MARKDOWN)[3:] == [
        "> why \\<!channel>",
        "- **failed** `a&b` [Full report](https://r.example/x?a=1&b=2)",
    ]
    for d in (inert.DINGTALK, inert.WECOM, inert.FEISHU):
        assert "<" not in d.text("<at id=all></at> <@alice> <b>")
        assert "@" not in d.text("@all")


def test_slack_sections_split_on_lines() -> None:
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(100))
    sections = slack.sections(text)
    assert all(len(s) <= 3000 for s in sections) and len(sections) > 3
    assert "\n".join(sections) == text
    long = slack.sections("y" * 7000)
    assert [len(s) for s in long] == [3000, 3000, 1000]


# --- size limits ----------------------------------------------------------------------------------


def test_size_limits_with_2000_orphans(receiver: Receiver) -> None:
    report = build_report(orphans=2000)
    assert report.orphaned.total == 2020
    deliveries = by_channel(deliver(report, all_channels(receiver.url)))
    assert all(d.ok for d in deliveries.values())
    for name in ("dingtalk", "feishu", "wecom", "slack"):
        assert deliveries[name].truncated, name
    assert not deliveries["webhook"].truncated

    ding = receiver.on("/robot/send")[0].json()["markdown"]["text"]
    assert len(ding.encode()) <= 20_000
    assert "... and 2000 more — see the [full report](" in ding  # 20 of 2020 shown

    feishu = receiver.on("/open-apis/bot/v2/hook/5a1e2c3d-feishu-hook-token")[0]
    assert len(feishu.body) <= 20 * 1024
    assert "... and 2000 more" in feishu.json()["card"]["elements"][0]["text"]["content"]

    wecom = receiver.on("/cgi-bin/webhook/send")[0].json()["markdown"]["content"]
    assert len(wecom.encode()) <= 4096
    shown = re.search(r"\.\.\. and (\d+) more", wecom.split("### Orphaned", 1)[1])
    assert shown is not None and 2000 <= int(shown.group(1)) < 2020
    assert deliveries["wecom"].bytes < deliveries["dingtalk"].bytes

    slack = receiver.on("/services/T0001/B0002/slackToken123456")[0].json()
    assert len(slack["blocks"]) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in slack["blocks"])
    assert "... and 2000 more" in "\n".join(b["text"]["text"] for b in slack["blocks"])


def test_small_report_is_not_truncated(receiver: Receiver) -> None:
    report = build_report(clusters_per_region=1, users_per_cluster=5)
    deliveries = deliver(report, all_channels(receiver.url, feishu_webhook=None, wecom_webhook=None))
    assert [d.truncated for d in deliveries] == [False, False, False]


def test_hard_cut_at_a_utf8_boundary(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wecom, "CONTENT_LIMIT_BYTES", 300)
    (delivery,) = deliver(build_report(), Settings(wecom_webhook=urls(receiver.url)["wecom_webhook"]))
    assert delivery.ok and delivery.truncated
    content = receiver.requests[0].json()["markdown"]["content"]
    assert len(content.encode()) <= 300
    assert content.endswith(base.TRUNCATION_LINE + "\n")
    assert content.startswith("## kubeconfig-guard daily summary")


def test_cut_utf8() -> None:
    text = "ab—·≤c"
    for n in range(len(text.encode()) + 2):
        cut = base.cut_utf8(text, n)
        assert len(cut.encode()) <= n and text.startswith(cut)
    assert base.cut_utf8(text, 3) == "ab"


# --- failures and retries ------------------------------------------------------------------------


def test_500_then_200_is_retried(receiver: Receiver) -> None:
    receiver.script("/robot/send", (500, {"errcode": -1, "errmsg": "busy"}, {}))
    settings = Settings(
        dingtalk_webhook=urls(receiver.url)["dingtalk_webhook"], dingtalk_secret=DINGTALK_SECRET
    )
    (d,) = deliver(build_report(), settings)
    assert d.ok and d.attempts == 2 and d.status_code == 200 and d.error is None
    first, second = receiver.requests
    assert first.body == second.body
    assert first.query["sign"] == second.query["sign"]  # same fixed clock


def test_always_500_reports_failure_without_secrets(receiver: Receiver) -> None:
    hook = urls(receiver.url)["dingtalk_webhook"]
    echo = f"upstream failed for POST {hook}&timestamp=1&sign=x secret={DINGTALK_SECRET}"
    receiver.script("/robot/send", *[(500, echo, {"Content-Type": "text/plain"})] * 10)
    settings = Settings(dingtalk_webhook=hook, dingtalk_secret=DINGTALK_SECRET)
    (d,) = deliver(build_report(), settings, max_attempts=3)
    assert not d.ok and d.attempts == 3 and d.status_code == 500
    assert len(receiver.requests) == 3
    assert d.error is not None and d.error.startswith("dingtalk: HTTP 500")
    assert_no_secret(d.error, receiver.url)
    assert "after 3 attempts" in d.error


def test_default_attempts(receiver: Receiver) -> None:
    receiver.script("/hook/generic-token-42", *[(503, "", {})] * 10)
    (d,) = deliver(build_report(), Settings(webhook_url=urls(receiver.url)["webhook_url"]))
    assert not d.ok and d.attempts == base.MAX_ATTEMPTS == len(receiver.requests)
    assert d.error == f"webhook: HTTP 503 (after {base.MAX_ATTEMPTS} attempts)"


def test_dingtalk_rate_limit_code_is_retried(receiver: Receiver) -> None:
    receiver.script(
        "/robot/send", (200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}, {})
    )
    (d,) = deliver(build_report(), all_channels(receiver.url, feishu_webhook=None, wecom_webhook=None,
                                                 slack_webhook=None, webhook_url=None))  # fmt: skip
    assert d.ok and d.attempts == 2
    assert len(receiver.on("/robot/send")) == 2


def test_dingtalk_error_code_is_not_retried(receiver: Receiver) -> None:
    receiver.script("/robot/send", (200, {"errcode": 310000, "errmsg": "sign not match"}, {}))
    (d,) = deliver(build_report(), Settings(dingtalk_webhook=urls(receiver.url)["dingtalk_webhook"]))
    assert not d.ok and d.attempts == 1 and d.status_code == 200
    assert d.error == "dingtalk: HTTP 200 errcode 310000: sign not match"


def test_wecom_rate_limit_then_ok(receiver: Receiver) -> None:
    receiver.script("/cgi-bin/webhook/send", (200, {"errcode": 45009, "errmsg": "api freq out of limit"}, {}))
    (d,) = deliver(build_report(), Settings(wecom_webhook=urls(receiver.url)["wecom_webhook"]))
    assert d.ok and d.attempts == 2


def test_feishu_errors(receiver: Receiver) -> None:
    path = "/open-apis/bot/v2/hook/5a1e2c3d-feishu-hook-token"
    receiver.script(path, (200, {"code": 11232, "msg": "frequency limited"}, {}))
    receiver.script(
        path, (200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}, {})
    )
    settings = Settings(feishu_webhook=urls(receiver.url)["feishu_webhook"], feishu_secret=FEISHU_SECRET)
    (d,) = deliver(build_report(), settings)
    assert not d.ok and d.attempts == 2
    assert (
        d.error
        == "feishu: HTTP 200 code 19021: sign match fail or timestamp is not within one hour (after 2 attempts)"
    )


def test_slack_429_honours_retry_after_then_ok(receiver: Receiver) -> None:
    path = "/services/T0001/B0002/slackToken123456"
    receiver.script(path, (429, "rate_limited", {"Retry-After": "0", "Content-Type": "text/plain"}))
    (d,) = deliver(build_report(), Settings(slack_webhook=urls(receiver.url)["slack_webhook"]))
    assert d.ok and d.attempts == 2
    receiver.script(path, (200, "invalid_blocks", {"Content-Type": "text/plain"}))
    (d,) = deliver(build_report(), Settings(slack_webhook=urls(receiver.url)["slack_webhook"]))
    assert not d.ok and d.attempts == 1 and d.error == "slack: HTTP 200: invalid_blocks"


def test_connection_refused_is_reported() -> None:
    base = refused_base()
    deliveries = deliver(build_report(), all_channels(base), max_attempts=2)
    assert len(deliveries) == 5
    for d in deliveries:
        assert not d.ok and d.attempts == 2 and d.status_code is None
        assert d.error is not None and d.error.startswith(f"{d.channel}: ConnectError")
        assert_no_secret(d.error, base)


def test_one_failing_channel_does_not_affect_the_others(receiver: Receiver) -> None:
    receiver.script("/cgi-bin/webhook/send", *[(502, "", {})] * 10)
    deliveries = by_channel(deliver(build_report(), all_channels(receiver.url), max_attempts=2))
    assert not deliveries["wecom"].ok
    assert all(d.ok for name, d in deliveries.items() if name != "wecom")


def test_disabled_channels_send_nothing(receiver: Receiver) -> None:
    assert deliver(build_report(), Settings()) == []
    assert receiver.requests == []
    (d,) = deliver(
        build_report(), Settings(slack_webhook=urls(receiver.url)["slack_webhook"], dingtalk_secret="x")
    )
    assert d.channel == "slack"
    assert [r.path for r in receiver.requests] == ["/services/T0001/B0002/slackToken123456"]


def test_custom_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    settings = Settings(wecom_webhook="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123456")
    (d,) = deliver(build_report(), settings, transport=httpx.MockTransport(handler))
    assert d.ok and len(seen) == 1 and seen[0].url.params["key"] == "abc-123456"


def test_a_broken_channel_builder_never_raises(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    def boom(*_: Any) -> Any:
        raise RuntimeError(f"bad url {urls(receiver.url)['slack_webhook']}")

    monkeypatch.setattr(
        registry,
        "CHANNELS",
        tuple(dataclasses.replace(c, prepare=boom) if c.name == "slack" else c for c in channels.CHANNELS),
    )
    deliveries = by_channel(deliver(build_report(), all_channels(receiver.url)))
    assert not deliveries["slack"].ok and deliveries["slack"].attempts == 0
    assert_no_secret(deliveries["slack"].error, receiver.url)
    assert deliveries["dingtalk"].ok


def test_escaped_name_in_json_webhook_is_exact(receiver: Receiver) -> None:
    report = build_report(evil_name=True)
    deliver(report, Settings(webhook_url=urls(receiver.url)["webhook_url"]))
    names = [e["account_name"] for e in receiver.requests[0].json()["orphaned"]["items"]]
    assert EVIL_NAME in names


# --- the registry -------------------------------------------------------------------------------


def test_registry_names_settings_that_exist() -> None:
    names = [c.name for c in channels.CHANNELS]
    assert names == ["dingtalk", "feishu", "wecom", "slack", "webhook"]
    fields = Settings.model_fields
    for channel in channels.CHANNELS:
        assert channel.url_setting in fields, channel
        assert all(name in fields for name in channel.secret_settings), channel
        # Secret by construction, which the event function relies on: with no secret setting
        # set, no channel is on, and it does not even import the channels (notices.deliver).
        assert {channel.url_setting, *channel.secret_settings} <= set(secret_fields(Settings)), channel
    assert {n for c in channels.CHANNELS for n in c.secret_settings} == {"dingtalk_secret", "feishu_secret"}


def test_a_channel_added_to_the_registry_is_delivered_retried_and_scrubbed(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    """What the package docstring promises: one module (here: a prepare and a check) + one registry line."""

    def check(response: httpx.Response) -> channels.Verdict:
        if (verdict := base.http_verdict(response)) is not None:
            return verdict
        ok = base.json_body(response).get("errcode") == 0
        return channels.Verdict(ok, False, 200, None if ok else "HTTP 200: not accepted")

    def prepare(message: base.Message, settings: Settings, clock: base.Clock) -> channels.Prepared:
        url = base.setting(settings.webhook_url)
        text, truncated = base.fit_message(message, base.utf8_within(600), inert.MARKDOWN)
        return channels.Prepared("newchat", url, {"text": text}, truncated, check, base.url_secrets(url))

    newchat = channels.Channel("newchat", "webhook_url", prepare)
    monkeypatch.setattr(registry, "CHANNELS", (*channels.CHANNELS[:-1], newchat))
    path = urlsplit(urls(receiver.url)["webhook_url"]).path
    receiver.script(path, (503, {"errcode": 1, "errmsg": "busy"}, {}), (200, {"errcode": 0}, {}))

    (d,) = deliver(build_report(), Settings(webhook_url=urls(receiver.url)["webhook_url"]))
    assert d.channel == "newchat" and d.ok and d.attempts == 2 and d.truncated
    sent = receiver.on(path)[-1].json()["text"]
    assert len(sent.encode("utf-8")) <= 600 and sent.endswith(base.TRUNCATION_LINE + "\n")

    receiver.script(
        path, *[(500, {"errcode": 1, "errmsg": f"bad {urls(receiver.url)['webhook_url']}"}, {})] * 4
    )
    (failed,) = deliver(build_report(), Settings(webhook_url=urls(receiver.url)["webhook_url"]))
    assert not failed.ok and failed.attempts == base.MAX_ATTEMPTS
    assert failed.error is not None and failed.error.startswith("newchat: HTTP 500 code 1: bad ")
    assert_no_secret(failed.error, receiver.url)
