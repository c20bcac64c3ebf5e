"""Secrets in partial forms: cut text, every credential source, every secret setting.

* ``redact_cut`` redacts, then cuts: wherever a secret sits in a long message, no part of
  it (6+ characters) survives the cut; a secret's prefix left at the cut is masked too.
* Every ``Credentials`` the process makes is registered, whatever its source: the
  default chain's (CLI profile, ECS role, OIDC, credentials URI; mocked here) included,
  each refreshed STS token too.
* Which settings are secret is read from the settings model (every ``SecretStr`` field),
  a subclass's new fields included; values given explicitly (not by the environment) are
  registered when the settings object is built or copied.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import string
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from pydantic import Field, SecretStr

from kubeconfig_guard import logs, redaction
from kubeconfig_guard.credentials import (
    ENVIRONMENT_KEYS,
    Credentials,
    DefaultChainCredentials,
    from_fc_context,
)
from kubeconfig_guard.redaction import MASK, MIN_SECRET_LENGTH, redact, redact_cut, register_secret
from kubeconfig_guard.runtime import InvocationCredentials
from kubeconfig_guard.settings import Settings, secret_env_var_names, secret_fields

LIMIT = 500
FILLER = (
    "The specified parameter is not valid; check the request and try again later, please. "
    "Request id E8B632B3-7363-4917-B200-A532640C3B60 in region cn-hangzhou. "
)
BASE64 = string.ascii_letters + string.digits + "+/"


def random_secret(seed: int, length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(length))


def grams(text: str, size: int = MIN_SECRET_LENGTH) -> set[str]:
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def message_with(secret: str, offset: int, length: int = 2000) -> str:
    filler = (FILLER * (length // len(FILLER) + 2))[: length - len(secret)]
    return filler[:offset] + secret + filler[offset:]


@pytest.fixture(autouse=True)
def _no_secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets here come from registration, the settings objects and the mocked chain, not the environment."""
    for name in redaction.secret_env_vars():
        monkeypatch.delenv(name, raising=False)


# --- redact first, then cut ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("30-char access key secret", random_secret(1, 30)),
        ("600-char STS token", "CAIS" + random_secret(2, 596, BASE64)),
    ],
)
def test_no_part_of_a_secret_survives_a_cut_at_any_offset(name: str, secret: str) -> None:
    register_secret(secret)
    parts = grams(secret)
    assert not parts & grams(FILLER * 30), "the filler must not share text with the secret"
    leaked_the_old_way = 0
    for offset in range(0, 2000 - len(secret) + 1):
        text = message_with(secret, offset)
        assert len(text) == 2000
        out = redact_cut(text, LIMIT)
        assert len(out) <= LIMIT
        assert not grams(out) & parts, (name, offset, out[-40:])
        if grams(redact(text[:LIMIT])) & parts:  # cut, then redact: what the API errors did
            leaked_the_old_way += 1
    assert leaked_the_old_way >= min(len(secret), LIMIT) - MIN_SECRET_LENGTH  # the bug guarded against


def test_the_old_way_kept_20_of_30_characters() -> None:
    secret = random_secret(3, 30)
    register_secret(secret)
    text = message_with(secret, LIMIT - 20)
    assert secret[:20] in redact(text[:LIMIT])
    assert secret[:MIN_SECRET_LENGTH] not in redact_cut(text, LIMIT)
    assert redact_cut(text, LIMIT) == redact(text)[:LIMIT]
    assert redact_cut(text, LIMIT).startswith(text[: LIMIT - 20] + MASK)


def test_a_secret_prefix_left_at_the_cut_is_masked() -> None:
    """The text already held the secret shortened (so ``redact`` alone cannot see it): the cut masks it."""
    secret = random_secret(4, 40)
    register_secret(secret)
    for kept in range(MIN_SECRET_LENGTH, 36):
        text = "x" * (LIMIT - kept) + secret[:35] + " and more text after it"
        out = redact_cut(text, LIMIT)
        assert len(out) <= LIMIT and out.endswith(MASK), kept
        assert not grams(out) & grams(secret), kept
    for kept in range(1, MIN_SECRET_LENGTH):  # shorter than a secret: ordinary text, kept
        text = "x" * (LIMIT - kept) + secret[:35] + " and more"
        assert redact_cut(text, LIMIT) == text[:LIMIT]


def test_short_text_is_only_redacted() -> None:
    secret = random_secret(5, 24)
    register_secret(secret)
    assert redact_cut(f"error: {secret} denied", LIMIT) == f"error: {MASK} denied"
    assert redact_cut("no secret here", LIMIT) == "no secret here"
    assert redact_cut("x" * 600, LIMIT) == "x" * LIMIT


# --- every credential, whatever its source ---------------------------------------------------------


class FakeChainClient:
    """``alibabacloud_credentials.client.Client``: an STS token that changes at every refresh."""

    calls = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def get_credential_async(self) -> SimpleNamespace:
        FakeChainClient.calls += 1
        n = FakeChainClient.calls
        return SimpleNamespace(
            access_key_id=f"STS.NUk7q{n}RoleKeyId",
            access_key_secret=f"ecsRoleSecret{n}x9Qz7LmNp",
            security_token=f"CAIS{n}" + random_secret(100 + n, 300, BASE64),
        )


def log_lines(message: str) -> list[str]:
    record = logging.LogRecord("kubeconfig_guard.client", logging.WARNING, __file__, 1, message, None, None)
    record.fields = {"error": message, "detail": [message]}
    return [logs.JsonFormatter().format(record), logs.TextFormatter().format(record)]


def test_default_chain_credentials_are_redacted_after_every_get(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT_KEYS:  # the library's chain, not its first source read directly
        monkeypatch.delenv(name, raising=False)
    # The SDK's module itself is not imported: it reads the environment once, when first imported.
    fake_sdk = ModuleType("alibabacloud_credentials.client")
    fake_sdk.Client = FakeChainClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "alibabacloud_credentials.client", fake_sdk)
    provider = InvocationCredentials(fallback=DefaultChainCredentials())  # as the runtime builds it
    for _ in range(3):  # each get() brings a refreshed token
        creds = asyncio.run(provider.get())
        secret = creds.access_key_secret.get_secret_value()
        assert creds.security_token is not None
        token = creds.security_token.get_secret_value()
        for line in log_lines(f"SignatureDoesNotMatch: key {creds.access_key_id} {secret} token {token}"):
            assert secret not in line and token not in line
            assert not grams(line) & (grams(secret) | grams(token)), line
            assert creds.access_key_id in line  # not a secret: it names the key


def test_any_credentials_object_registers_itself() -> None:
    """A future provider cannot forget: making a ``Credentials`` registers it."""
    creds = Credentials("LTAI-future-id", SecretStr("futureProviderSecret42"), SecretStr("futureToken0042"))
    assert "futureProviderSecret42" not in redact(f"x futureProviderSecret42 futureToken0042 {creds}")
    assert redact("futureToken0042") == MASK


def test_function_compute_context_credentials_are_registered_when_read() -> None:
    ctx = SimpleNamespace(
        credentials=SimpleNamespace(
            access_key_id="STS.ctx", access_key_secret="ctxSecret0099", security_token="ctxToken0099"
        )
    )
    assert from_fc_context(ctx) is not None
    assert redact("ctxSecret0099 ctxToken0099") == f"{MASK} {MASK}"


# --- the secret settings, read from the model --------------------------------------------------------


def test_the_secret_settings_are_read_from_the_model() -> None:
    assert set(secret_fields(Settings)) == {
        name for name, f in Settings.model_fields.items() if "SecretStr" in repr(f.annotation)
    }
    assert "KCGUARD_SLACK_WEBHOOK" in redaction.secret_env_vars()
    assert set(secret_env_var_names(Settings)) <= set(redaction.secret_env_vars())
    source = Path(redaction.__file__).read_text(encoding="utf-8")
    assert not re.search(r"KCGUARD_[A-Z]", source), "redaction.py must not list the settings' variables"


def test_every_secret_looking_setting_is_a_secret_str() -> None:
    secretish = re.compile(r"secret|token|webhook|password|passwd|credential|private|api_key")
    plain = [name for name in Settings.model_fields if secretish.search(name)]
    assert set(plain) <= set(secret_fields(Settings)), "declare secret settings as SecretStr"


def test_a_new_secret_field_of_a_subclass_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    class Extended(Settings):
        pagerduty_url: SecretStr | None = None
        opsgenie_keys: list[SecretStr] = Field(default_factory=list)

    assert "KCGUARD_PAGERDUTY_URL" in redaction.secret_env_vars()
    monkeypatch.setenv("KCGUARD_PAGERDUTY_URL", "https://events.pagerduty.example/v2/Qp7rT9vX2kLmN4sd")
    assert "Qp7rT9vX2kLmN4sd" not in redact("posting to https://events.pagerduty.example/v2/Qp7rT9vX2kLmN4sd")
    monkeypatch.delenv("KCGUARD_PAGERDUTY_URL")

    Extended(pagerduty_url="https://x.example/p/z8YwVuT6sR4q", opsgenie_keys=["genie-key-77aa"])
    assert redact("url https://x.example/p/z8YwVuT6sR4q keys genie-key-77aa") == f"url {MASK} keys {MASK}"


def test_a_webhook_with_its_token_in_the_path_given_explicitly_is_redacted() -> None:
    url = "https://hooks.example.net/incoming/9f8e7d6c5b4a39281706/notify"
    Settings(webhook_url=url)  # not in the environment: registered when built
    assert redact(f"POST {url} failed: 503") == f"POST {MASK} failed: 503"
    # the same token shown in another form: another host, re-encoded, the path alone
    assert "9f8e7d6c5b4a39281706" not in redact("https://proxy.internal/incoming/9f8e7d6c5b4a39281706/notify")
    assert "9f8e7d6c5b4a39281706" not in redact(
        "url=https%3A%2F%2Fhooks.example.net%2Fincoming%2F9f8e7d6c5b4a39281706"
    )
    assert "incoming" in redact("incoming/notify")  # ordinary words of the path are not secrets

    copied = Settings().model_copy(update={"slack_webhook": SecretStr("https://chat.example/h/aZ09xYw8vU7t")})
    assert copied.slack_webhook is not None
    assert "aZ09xYw8vU7t" not in redact("https://chat.example/h/aZ09xYw8vU7t")
    Settings().model_copy(update={"feishu_secret": "unvalidatedSecret0077"})  # a plain str: kept as given
    assert redact("unvalidatedSecret0077") == MASK


def test_a_secret_json_escaped_in_a_log_line_is_redacted() -> None:
    Settings(dingtalk_secret='SEC"quote\\slash-0042')
    for line in log_lines('signing with SEC"quote\\slash-0042'):
        assert "quote" not in line, line
