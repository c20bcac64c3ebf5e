"""Event notices (issue 18): the event function tells people what it revoked and, above all, what it could not.

Everything runs for real: the event handler against the fake ACK (in-process and over its HTTP
server), the channels posting over HTTP to a loopback chat robot (``support.chat``) that plays
DingTalk, Feishu, WeCom, Slack and the generic webhook, the final-failure handler fed Function
Compute's destination record, and ``kcguard invoke --fake`` as a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kubeconfig_guard import notices
from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.fake import FakeAck, FakeAckError, dump_world
from kubeconfig_guard.handlers import failure_handler, handle_event, handle_failure
from kubeconfig_guard.results import BatchResult, Outcome, RevocationResult
from kubeconfig_guard.settings import Settings
from support.chat import (
    CHANNEL_ENV,
    PATHS,
    Receiver,
    assert_no_secret,
    channel_environment,
    channel_settings,
    refused_base,
    running_receiver,
)
from support.events import delete_user, encode, lock_user, sample
from support.worlds import ACCOUNT, EVENTS, EXAMPLE_WORLD, ROOT, cluster, kc, world

ALICE = "200000000000000011"
CAROL = "200000000000000033"
EVIL = "<!channel> [prod](https://evil.example) @all"
CHATS = ("dingtalk", "feishu", "wecom", "slack")
KCGUARD = shutil.which("kcguard", path=str(Path(sys.executable).parent)) or "kcguard"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as rec:
        yield rec


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*CHANNEL_ENV, "EVENT_NOTIFY", "MODE"):
        monkeypatch.delenv(f"KCGUARD_{name}", raising=False)
    # Short back-offs between a channel's attempts (the attempts themselves are real).
    monkeypatch.setattr(notices, "NOTICE_RETRY_WAIT_MAX", 0.01)


# --- worlds, runs, what the robot received ----------------------------------------------------------


def deletion_world() -> Any:
    return world(
        {
            "cn-hangzhou": [
                cluster("c1", kc(ALICE, "alice"), kc("2002", "bob", account_state="Active")),
                cluster("c2", kc(ALICE, "alice")),
                cluster("c3", kc("2002", "bob", account_state="Active")),
            ]
        }
    )


def lock_world() -> Any:
    """Carol locked: ACK accepts Force=false on ``quiet``, refuses it on ``busy`` (used an hour ago)."""
    return world(
        {
            "cn-hangzhou": [
                cluster(
                    "quiet", kc(CAROL, "carol", account_state="InActive", last_access="2026-09-01T00:00:00Z")
                ),
                cluster(
                    "busy", kc(CAROL, "carol", account_state="InActive", last_access="2026-11-25T08:00:00Z")
                ),
            ]
        }
    )


def run(h: Any, event: bytes, **settings: Any) -> RevocationResult | BatchResult:
    return handle_event(event, None, runtime=h.runtime(**settings))


def chat_texts(receiver: Receiver) -> dict[str, str]:
    """The one message each channel received, as text (the webhook's: its JSON)."""
    received = {name: receiver.on(path) for name, path in PATHS.items()}
    assert {name: len(r) for name, r in received.items()} == dict.fromkeys(PATHS, 1), received
    ding, feishu, wecom, slack, hook = (received[name][0].json() for name in PATHS)
    return {
        "dingtalk": ding["markdown"]["text"],
        "feishu": feishu["card"]["elements"][0]["text"]["content"],
        "wecom": wecom["markdown"]["content"],
        "slack": "\n".join(b["text"]["text"] for b in slack["blocks"]),
        "webhook": json.dumps(hook, ensure_ascii=False),
    }


def titles(receiver: Receiver) -> dict[str, str]:
    return {
        "dingtalk": receiver.on(PATHS["dingtalk"])[0].json()["markdown"]["title"],
        "feishu": receiver.on(PATHS["feishu"])[0].json()["card"]["header"]["title"]["content"],
        "slack": receiver.on(PATHS["slack"])[0].json()["text"],
    }


def webhook_doc(receiver: Receiver) -> dict[str, Any]:
    (hook,) = receiver.on(PATHS["webhook"])
    doc = hook.json()
    assert isinstance(doc, dict)
    return doc


def destination_record(
    event: bytes,
    *,
    error_message: str,
    error_type: str = "RetryableInvocationError",
    attempts: int = 6,
    payload_as_text: bool = True,
) -> bytes:
    """Function Compute's record of a failed asynchronous invocation, as its failure destination gets it."""
    response = {
        "errorMessage": error_message,
        "errorType": error_type,
        "stackTrace": ['  File "handlers.py"'],
    }
    record = {
        "timestamp": "2026-11-25T09:05:00.000Z",
        "requestContext": {
            "requestId": "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "functionArn": f"acs:fc:cn-hangzhou:{ACCOUNT}:functions/kubeconfig-guard-event",
            "condition": "UnhandledInvocationError",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event.decode() if payload_as_text else json.loads(event),
        "responseContext": {"statusCode": 200, "functionError": "UnhandledInvocationError"},
        "responsePayload": json.dumps(response) if payload_as_text else response,
    }
    return json.dumps(record).encode()


def break_cluster(cluster_id: str) -> Any:
    def hook(backend: FakeAck, op: str, params: dict[str, str]) -> None:
        if params.get("ClusterId") == cluster_id:
            raise FakeAckError(503, "ServiceUnavailable", "injected")

    return hook


# --- when a notice is sent ---------------------------------------------------------------------------


def test_the_default_sends_nothing_on_a_clean_success(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness(deletion_world())
    result = run(h, delete_user(), **channel_settings(receiver.url))
    assert isinstance(result, RevocationResult) and result.outcome is Outcome.OK
    assert result.counts["revoked"] == 2 and len(h.backend.revocations) == 2
    assert receiver.requests == [] and result.notices == []


def test_the_default_sends_one_message_per_channel_on_a_deferral(
    make_harness: Any, receiver: Receiver
) -> None:
    h = make_harness(lock_world())
    result = run(h, lock_user("carol"), **channel_settings(receiver.url))
    assert isinstance(result, RevocationResult) and result.outcome is Outcome.OK
    assert {(a.cluster_id, a.status.value) for a in result.actions} == {
        ("quiet", "revoked"),
        ("busy", "deferred"),
    }
    # One message per channel, each delivered at the first attempt and reported in the result.
    assert [(n.channel, n.ok, n.attempts) for n in result.notices] == [
        (name, True, 1) for name in ("dingtalk", "feishu", "wecom", "slack", "webhook")
    ]
    texts = chat_texts(receiver)
    for name in CHATS:
        text = texts[name]
        assert "deferred" in text and "busy" in text and "quiet" in text and "carol" in text, (name, text)
        assert text.index("busy") < text.index("quiet"), "what needs a person comes first"
        assert ACCOUNT in text and "enforce" in text and "locked" in text, name
    for name, title in titles(receiver).items():
        assert title == "kubeconfig-guard: 1 deferred, 1 revoked", name
    feishu = receiver.on(PATHS["feishu"])[0].json()
    assert feishu["card"]["header"]["template"] == "red" and "sign" in feishu  # signed like the digest
    assert "sign" in receiver.on(PATHS["dingtalk"])[0].query
    doc = webhook_doc(receiver)
    assert doc["kind"] == "event-notice" and doc["final_failure"] is None
    (told,) = doc["results"]
    assert told["account_id"] == ACCOUNT and told["principal"]["name"] == "carol"
    assert {a["status"] for a in told["actions"]} == {"revoked", "deferred"}


def test_the_limit_is_a_problem_too(inproc_harness: Any, receiver: Receiver) -> None:
    h = inproc_harness(deletion_world())
    result = run(h, delete_user(), max_revocations=1, **channel_settings(receiver.url))
    assert result.outcome is Outcome.LIMIT_EXCEEDED and not h.backend.revocations
    for title in titles(receiver).values():
        assert title.startswith("kubeconfig-guard: blast-radius limit exceeded, nothing revoked")
    assert "limit-exceeded" in chat_texts(receiver)["slack"]


def test_all_names_every_revoked_kubeconfig(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness(deletion_world())
    result = run(h, delete_user(), event_notify="all", **channel_settings(receiver.url))
    assert result.outcome is Outcome.OK and len(h.backend.revocations) == 2
    texts = chat_texts(receiver)
    for name in CHATS:
        lines = [line for line in texts[name].splitlines() if "revoked" in line and ALICE in line]
        assert {c for c in ("c1", "c2") if any(c in line for line in lines)} == {"c1", "c2"}, texts[name]
    assert {
        (a["cluster_id"], a["uid"], a["status"]) for a in webhook_doc(receiver)["results"][0]["actions"]
    } == {
        ("c1", ALICE, "revoked"),
        ("c2", ALICE, "revoked"),
    }
    assert titles(receiver)["slack"] == "kubeconfig-guard: 2 revoked"
    assert receiver.on(PATHS["feishu"])[0].json()["card"]["header"]["template"] == "green"


def test_a_dry_run_says_would_revoke(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness(deletion_world())
    result = run(h, delete_user(), mode="dry-run", event_notify="all", **channel_settings(receiver.url))
    assert result.counts["would-revoke"] == 2 and not h.backend.revocations
    for name, text in chat_texts(receiver).items():
        if name != "webhook":
            assert "would revoke" in text and "Dry run: nothing was revoked" in text and "dry-run" in text, (
                name
            )
    for title in titles(receiver).values():
        assert title == "kubeconfig-guard (dry-run): would revoke 2"


def test_the_default_tells_nothing_of_a_dry_run_success(inproc_harness: Any, receiver: Receiver) -> None:
    h = inproc_harness(deletion_world())
    result = run(h, delete_user(), mode="dry-run", **channel_settings(receiver.url))
    assert result.counts["would-revoke"] == 2 and receiver.requests == []


def test_off_sends_nothing(make_harness: Any, receiver: Receiver) -> None:
    h = make_harness(lock_world())
    result = run(h, lock_user("carol"), event_notify="off", **channel_settings(receiver.url))
    assert result.counts["deferred"] == 1 and result.notices == []
    assert receiver.requests == []


def test_a_batch_is_one_message(inproc_harness: Any, receiver: Receiver) -> None:
    h = inproc_harness(
        world(
            {
                "cn-hangzhou": [
                    cluster("c1", kc(ALICE, "alice"), kc("3009", "old-ops", account_type="RamRole"))
                ]
            }
        )
    )
    result = run(
        h, (EVENTS / "batch.json").read_bytes(), event_notify="all", **channel_settings(receiver.url)
    )
    assert isinstance(result, BatchResult) and result.counts["revoked"] == 2
    assert [n.channel for n in result.notices] == ["dingtalk", "feishu", "wecom", "slack", "webhook"]
    assert all(r.notices == [] for r in result.results)  # the batch's one notice, on the batch
    for name in CHATS:
        text = chat_texts(receiver)[name]
        assert "alice" in text and "old-ops" in text, name
    assert len(webhook_doc(receiver)["results"]) == 2


# --- a notice never delays or fails a revocation -------------------------------------------------------


@pytest.mark.parametrize("failure", ["http-500", "refused"])
def test_a_broken_channel_leaves_the_revocations_done_and_the_outcome_unchanged(
    make_harness: Any, receiver: Receiver, failure: str
) -> None:
    h = make_harness(lock_world())
    if failure == "refused":
        base = refused_base()
    else:
        base = receiver.url
        echo = f"upstream failed for {channel_settings(base)['dingtalk_webhook']}"
        for path in PATHS.values():
            receiver.script(path, *[(500, echo, {"Content-Type": "text/plain"})] * 10)
    result = run(h, lock_user("carol"), **channel_settings(base))  # returns: never raises for a notice
    assert isinstance(result, RevocationResult) and result.outcome is Outcome.OK
    assert [(r.cluster_id, r.uid) for r in h.backend.revocations] == [("quiet", CAROL)]
    assert result.counts == {"revoked": 1, "would-revoke": 0, "skipped": 0, "deferred": 1, "failed": 0}
    assert len(result.notices) == 5
    for notice in result.notices:
        assert not notice.ok and notice.attempts == notices.NOTICE_ATTEMPTS, notice
        assert notice.error is not None and notice.error.startswith(notice.channel)
        assert ("HTTP 500" if failure == "http-500" else "ConnectError") in notice.error
    assert_no_secret(result.model_dump_json(), base)
    if failure == "http-500":
        assert len(receiver.requests) == 5 * notices.NOTICE_ATTEMPTS


def test_a_notice_takes_no_more_than_what_is_left_of_the_deadline(
    inproc_harness: Any, receiver: Receiver
) -> None:
    """A robot that does not answer in time: the notice gives up at the deadline, the result stands."""
    h = inproc_harness(lock_world())
    for path in PATHS.values():
        receiver.script(path, (200, "late", {"X-Test-Delay": "8", "Content-Type": "text/plain"}))
    context = SimpleNamespace(function=SimpleNamespace(timeout=8), account_id=ACCOUNT)
    settings = {**channel_settings(receiver.url), "deadline_margin_seconds": 5.5}
    started = time.monotonic()
    result = handle_event(lock_user("carol"), context, runtime=h.runtime(**settings))
    # The work's deadline is 2.5 s after the start; the notice may use 2 s of the margin after it.
    assert time.monotonic() - started < 5.5
    assert isinstance(result, RevocationResult) and result.outcome is Outcome.OK
    assert result.counts["revoked"] == 1 and result.counts["deferred"] == 1
    assert [(n.channel, n.ok, n.error) for n in result.notices] == [
        (name, False, "not delivered before the invocation's deadline")
        for name in ("dingtalk", "feishu", "wecom", "slack", "webhook")
    ]


# --- retries and the final failure --------------------------------------------------------------------


def test_retried_attempts_tell_nothing_and_the_final_failure_tells_once(
    make_harness: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_harness(deletion_world())
    h.backend.hooks.append(break_cluster("c2"))
    rt = h.runtime(**channel_settings(receiver.url))
    raised: list[RetryableInvocationError] = []
    for _attempt in range(3):  # Function Compute's first attempt and its retries, all cut short by c2
        with pytest.raises(RetryableInvocationError) as caught:
            handle_event(delete_user(), None, runtime=rt)
        raised.append(caught.value)
        assert caught.value.result.outcome is Outcome.PARTIAL and caught.value.result.notices == []
    assert receiver.requests == [], "no notice per attempt"
    assert [(r.cluster_id, r.uid) for r in h.backend.revocations] == [("c1", ALICE)]

    # Function Compute gives up and invokes the failure destination with its record, once.
    for name, value in channel_environment(receiver.url).items():
        monkeypatch.setenv(name, value)
    record = destination_record(delete_user(), error_message=str(raised[-1]))
    answer = json.loads(failure_handler(record, SimpleNamespace(account_id=ACCOUNT, function=None)))
    assert answer["outcome"] == "ok" and answer["failure"]["result_read"] is True
    assert answer["failure"]["attempts"] == 6 and answer["reason"].startswith(
        "final failure told to dingtalk"
    )
    assert [n["ok"] for n in answer["notices"]] == [True] * 5
    texts = chat_texts(receiver)  # exactly one message per channel
    for name in CHATS:
        text = texts[name]
        assert "Function Compute gave up after 6 attempts" in text, (name, text)
        assert "c2" in text and "failed" in text and "alice" in text and ACCOUNT in text, name
    for title in titles(receiver).values():
        assert title.startswith("kubeconfig-guard: Function Compute gave up on an event after 6 attempts")
    doc = webhook_doc(receiver)
    assert doc["final_failure"]["request_id"] == "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert doc["results"][0]["outcome"] == "partial"
    assert {c["cluster_id"] for c in doc["results"][0]["clusters"]} == {"c2"}


def test_all_tells_what_a_retried_attempt_revoked_and_nothing_twice(
    inproc_harness: Any, receiver: Receiver
) -> None:
    h = inproc_harness(deletion_world())
    h.backend.hooks.append(break_cluster("c2"))
    rt = h.runtime(event_notify="all", **channel_settings(receiver.url))
    with pytest.raises(RetryableInvocationError) as caught:
        handle_event(delete_user(), None, runtime=rt)
    assert [n.ok for n in caught.value.result.notices] == [True] * 5
    first = chat_texts(receiver)
    for name in CHATS:
        assert "revoked" in first[name] and "c1" in first[name], name
        assert "c2" not in first[name] and "runs this event again" in first[name], name
    h.backend.hooks.clear()
    receiver.requests.clear()
    result = handle_event(delete_user(), None, runtime=rt)  # the retry finishes: c2 only
    assert isinstance(result, RevocationResult) and result.outcome is Outcome.OK
    second = chat_texts(receiver)
    for name in CHATS:
        assert "c2" in second[name] and "c1" not in second[name], name


def test_a_final_failure_without_a_readable_result_names_the_event(receiver: Receiver) -> None:
    settings = Settings(**channel_settings(receiver.url), account_id=ACCOUNT)
    record = destination_record(
        delete_user(), error_message="Function timed out after 300 seconds", error_type="FunctionTimeout",
        payload_as_text=False,
    )  # fmt: skip
    outcome = handle_failure(record, None, settings=settings)
    assert outcome.outcome is Outcome.OK and outcome.failure is not None and not outcome.failure.result_read
    assert [r.principal.name for r in outcome.results if r.principal] == ["alice"]
    texts = chat_texts(receiver)
    for name in CHATS:
        text = texts[name]
        assert "could not be read" in text and "FunctionTimeout" in text and "alice" in text, (name, text)


def _not_a_failure(kind: str) -> bytes:
    event = delete_user()
    ok = json.loads(destination_record(event, error_message="x"))
    if kind == "not json":
        return b"{not json"
    if kind == "not an object":
        return b"[1, 2]"
    if kind == "no request context":
        return json.dumps({"requestPayload": event.decode()}).encode()
    if kind == "hostile count":
        ok["requestContext"]["approximateInvokeCount"] = "<!channel> many"
        return json.dumps(ok).encode()
    if kind == "a success":
        ok["requestContext"]["condition"] = ""
        ok["responseContext"]["functionError"] = ""
        ok["responsePayload"] = json.dumps({"outcome": "ok"})
        return json.dumps(ok).encode()
    if kind == "nested":
        return destination_record(json.dumps(ok).encode(), error_message="x")
    if kind == "an event not acted on":
        return destination_record(encode(sample("ignored-timer.json")), error_message="x")
    if kind == "too large":
        return b" " * 1_000_001
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("not json", "not a JSON document"),
        ("not an object", "not a JSON object"),
        ("no request context", "requestContext: Field required"),
        ("hostile count", "approximateInvokeCount: Input should be a valid integer"),
        ("a success", "not a failure: the record carries no error"),
        ("nested", "a destination record about a destination record"),
        ("an event not acted on", "names no event the event function acts on"),
        ("too large", "larger than 1000000 bytes"),
    ],
)
def test_a_record_that_is_not_a_final_failure_is_ignored(receiver: Receiver, kind: str, reason: str) -> None:
    settings = Settings(**channel_settings(receiver.url), account_id=ACCOUNT)
    outcome = handle_failure(_not_a_failure(kind), None, settings=settings)
    assert outcome.outcome is Outcome.IGNORED and reason in outcome.reason, outcome.reason
    assert "<!channel>" not in outcome.reason  # a validation error never repeats the input
    assert receiver.requests == [] and outcome.notices == []


def test_off_tells_no_final_failure(receiver: Receiver) -> None:
    settings = Settings(**channel_settings(receiver.url), account_id=ACCOUNT, event_notify="off")
    record = destination_record(
        delete_user(), error_message="Function timed out", error_type="FunctionTimeout"
    )
    outcome = handle_failure(record, None, settings=settings)
    assert outcome.outcome is Outcome.OK and "KCGUARD_EVENT_NOTIFY is off" in outcome.reason
    assert receiver.requests == []


def test_a_huge_result_still_fits_the_destination_record(inproc_harness: Any, receiver: Receiver) -> None:
    """Function Compute's function destination takes 128 KB: the error message keeps the result under 48 KB."""
    clusters = [
        cluster(f"c{i:03d}", kc(ALICE, "alice"), name=f"cluster-{i:03d}-" + "x" * 400) for i in range(250)
    ]
    h = inproc_harness(world({"cn-hangzhou": clusters}))

    def no_listing(backend: FakeAck, op: str, params: dict[str, str]) -> None:
        if op == "ListClusterKubeconfigStates":
            raise FakeAckError(503, "ServiceUnavailable", "injected")

    h.backend.hooks.append(no_listing)
    with pytest.raises(RetryableInvocationError) as caught:
        handle_event(delete_user(), None, runtime=h.runtime(max_attempts=1))
    assert len(caught.value.result.model_dump_json()) > 100_000
    assert len(str(caught.value).encode()) < 50_000
    settings = Settings(**channel_settings(receiver.url), account_id=ACCOUNT)
    outcome = handle_failure(
        destination_record(delete_user(), error_message=str(caught.value)), None, settings=settings
    )
    assert outcome.failure is not None and outcome.failure.result_read
    (result,) = outcome.results
    assert result.outcome is Outcome.PARTIAL and 0 < len(result.clusters) < 250
    assert re.search(r"`c\d{3}`", chat_texts(receiver)["slack"])


# --- names from the API stay text --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["event", "final failure"])
def test_hostile_names_stay_inert_in_every_channel(
    inproc_harness: Any, receiver: Receiver, path: str
) -> None:
    h = inproc_harness(world({"cn-hangzhou": [cluster("c-evil", kc(ALICE, EVIL), name=EVIL)]}))
    event = delete_user(EVIL)
    if path == "event":
        result = run(h, event, event_notify="all", **channel_settings(receiver.url))
        assert result.counts["revoked"] == 1
    else:
        h.backend.hooks.append(break_cluster("c-evil"))
        with pytest.raises(RetryableInvocationError) as caught:
            run(h, event, **channel_settings(receiver.url))
        assert receiver.requests == []
        settings = Settings(**channel_settings(receiver.url), account_id=ACCOUNT)
        handle_failure(destination_record(event, error_message=str(caught.value)), None, settings=settings)
    texts = chat_texts(receiver)
    for name in CHATS:
        text = texts[name]
        assert "<!channel>" not in text and "](https://" not in text and "evil.example" not in text, (
            name,
            text,
        )
        assert "[prod]" not in text and "@all" not in text, (name, text)
        shown = "&lt;!channel&gt;" if name == "slack" else "＜!channel＞"
        assert shown in text, (name, text)  # shown, as text
    for title in titles(receiver).values():
        assert "<" not in title and "evil" not in title  # titles hold our words only
    assert EVIL in texts["webhook"]  # the webhook's JSON keeps the exact name


# --- through kcguard invoke --fake ----------------------------------------------------------------------


def kcguard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KCGUARD_")}
    full_env.update({"COLUMNS": "200", **env})
    return subprocess.run(
        [KCGUARD, *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_the_default_tells_nothing_of_a_clean_success_and_all_tells_a_dry_run(receiver: Receiver) -> None:
    env = channel_environment(receiver.url)
    event = str(EVENTS / "ram-delete-user.json")
    run_ = kcguard("invoke", event, "--fake", str(EXAMPLE_WORLD), env={**env, "KCGUARD_MODE": "enforce"})
    assert run_.returncode == 0, run_.stderr
    result = json.loads(run_.stdout)
    assert result["counts"]["revoked"] == 2 and result["notices"] == [] and receiver.requests == []

    run_ = kcguard("invoke", event, "--fake", str(EXAMPLE_WORLD), env={**env, "KCGUARD_EVENT_NOTIFY": "all"})
    assert run_.returncode == 0, run_.stderr
    result = json.loads(run_.stdout)
    assert result["mode"] == "dry-run" and result["counts"]["would-revoke"] == 2
    assert [n["ok"] for n in result["notices"]] == [True] * 5
    texts = chat_texts(receiver)
    for name in CHATS:
        assert "would revoke" in texts[name] and "alice" in texts[name], name
        assert "prod-hangzhou" in texts[name] and "staging-hangzhou" in texts[name], name


@pytest.mark.parametrize("answer", [200, 500])
def test_cli_a_deferral_is_told_once_and_a_broken_channel_changes_nothing(
    receiver: Receiver, tmp_path: Path, answer: int
) -> None:
    world_file, event_file = tmp_path / "world.json", tmp_path / "lock.json"
    dump_world(lock_world(), world_file)
    event_file.write_bytes(lock_user("carol"))
    if answer == 500:
        for path in PATHS.values():
            receiver.script(path, *[(500, "down", {"Content-Type": "text/plain"})] * 10)
    env = {**channel_environment(receiver.url), "KCGUARD_MODE": "enforce"}
    run_ = kcguard("invoke", str(event_file), "--fake", str(world_file), env=env)
    assert run_.returncode == 0, run_.stderr
    result = json.loads(run_.stdout)
    assert (
        result["outcome"] == "ok" and result["counts"]["revoked"] == 1 and result["counts"]["deferred"] == 1
    )
    assert [(n["channel"], n["ok"]) for n in result["notices"]] == [
        (name, answer == 200) for name in ("dingtalk", "feishu", "wecom", "slack", "webhook")
    ]
    if answer == 200:
        for name in CHATS:
            assert "deferred" in chat_texts(receiver)[name], name
    else:
        assert len(receiver.requests) == 5 * notices.NOTICE_ATTEMPTS
        assert "event notice delivery failed" in run_.stderr
        assert_no_secret(run_.stderr + run_.stdout, receiver.url)
