"""Settings from the environment without pydantic-settings (envsettings.py, issue 19).

``Settings`` reads its ``KCGUARD_*`` variables through ``envsettings.BaseSettings``, which keeps
pydantic-settings' rules for what settings.py declares. Checked on ``Settings`` itself and,
field type by field type, against pydantic-settings as the reference.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import pytest
from pydantic import Field, SecretStr, ValidationError, field_validator

from kubeconfig_guard import envsettings, redaction
from kubeconfig_guard.settings import EventFormat, Mode, Settings


def test_settings_read_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCGUARD_MODE", "enforce")
    monkeypatch.setenv("KCGUARD_REGIONS", " cn-hangzhou, cn-shanghai ,,")
    monkeypatch.setenv("KCGUARD_MAX_REVOCATIONS", "7")
    monkeypatch.setenv("KCGUARD_MAX_RPS", "12.5")
    monkeypatch.setenv("kcguard_force_on_lock", "true")  # names are not case-sensitive
    monkeypatch.setenv("KCGUARD_EVENT_FORMAT", "rawdata")
    monkeypatch.setenv("KCGUARD_ACCOUNT_ID", "")  # empty: unset (env_ignore_empty)
    monkeypatch.setenv("KCGUARD_NOT_A_SETTING", "x")  # ignored
    settings = Settings()
    assert settings.mode is Mode.ENFORCE and not settings.dry_run
    assert settings.regions == ["cn-hangzhou", "cn-shanghai"]
    assert settings.max_revocations == 7 and settings.max_rps == 12.5
    assert settings.force_on_lock is True and settings.event_format is EventFormat.RAWDATA
    assert settings.account_id is None


def test_arguments_win_over_the_environment_and_defaults_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCGUARD_MAX_CONCURRENCY", "8")
    monkeypatch.setenv("KCGUARD_REGIONS", "cn-beijing")
    settings = Settings(max_concurrency=4)
    assert settings.max_concurrency == 4 and settings.regions == ["cn-beijing"]
    assert settings.mode is Mode.DRY_RUN and settings.max_revocations == 50


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCGUARD_MAX_CONCURRENCY", "0")  # ge=1
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("KCGUARD_MAX_CONCURRENCY", "4")
    monkeypatch.setenv("KCGUARD_MODE", "revoke-everything")
    with pytest.raises(ValidationError):
        Settings()


def test_a_secret_from_the_environment_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = "https://hooks.example.com/services/T000/B000/envsettings-secret-token"
    monkeypatch.setenv("KCGUARD_SLACK_WEBHOOK", hook)
    settings = Settings()
    assert isinstance(settings.slack_webhook, SecretStr) and settings.slack_webhook.get_secret_value() == hook
    assert hook not in redaction.redact(f"posting to {hook}")


class Color(str, Enum):
    RED = "red"
    BLUE = "blue"


# One field of each kind settings.py declares (and the complex ones it may declare): the same class
# over envsettings and over pydantic-settings must read the same environment the same way.
FIELDS: dict[str, Any] = {
    "name": (str, "x"),
    "maybe": (str | None, None),
    "flag": (bool, False),
    "count": (int, 1),
    "ratio": (float, 0.5),
    "color": (Color, Color.RED),
    "secret": (SecretStr | None, None),
    "mapping": (dict[str, int], Field(default_factory=dict)),
    "numbers": (list[int] | None, None),
}
ENVIRONMENTS = [
    {},
    {"T_NAME": "y", "T_MAYBE": "z", "T_FLAG": "1", "T_COUNT": "3", "T_RATIO": "2", "T_COLOR": "blue"},
    {"t_flag": "false", "T_SECRET": "s3cret-value", "T_MAPPING": '{"a": 1}', "T_NUMBERS": "[1, 2]"},
    {"T_NAME": "", "T_FLAG": "", "T_NUMBERS": ""},  # empty values are unset
]


def _pair() -> tuple[type[Any], type[Any]]:
    """The same fields and config over envsettings and over pydantic-settings (the reference)."""
    pydantic_settings = pytest.importorskip("pydantic_settings")
    config = {"env_prefix": "T_", "extra": "ignore", "frozen": True, "env_ignore_empty": True}

    def model(name: str, base: type[Any]) -> type[Any]:
        namespace: dict[str, Any] = {"__annotations__": {k: t for k, (t, _) in FIELDS.items()}}
        namespace.update({k: default for k, (_, default) in FIELDS.items()}, model_config=dict(config))
        return type(name, (base,), namespace)

    return model("Ours", envsettings.BaseSettings), model("Reference", pydantic_settings.BaseSettings)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_same_values_as_pydantic_settings(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    ours, reference = _pair()
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    mine, theirs = ours(), reference()
    assert mine.model_dump() == theirs.model_dump()
    assert ours(count=9).model_dump() == reference(count=9).model_dump()


def test_no_decode_gives_the_text_to_the_field_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    class Listed(envsettings.BaseSettings):
        model_config = envsettings.SettingsConfigDict(env_prefix="T_", extra="ignore")
        items: Annotated[list[str], envsettings.NoDecode] = Field(default_factory=list)
        decoded: list[str] = Field(default_factory=list)

        @field_validator("items", mode="before")
        @classmethod
        def _split(cls, value: object) -> object:
            return value.split(";") if isinstance(value, str) else value

    monkeypatch.setenv("T_ITEMS", "a;b")
    monkeypatch.setenv("T_DECODED", '["c", "d"]')
    assert Listed().items == ["a", "b"] and Listed().decoded == ["c", "d"]
    monkeypatch.setenv("T_DECODED", "not json")
    with pytest.raises(ValueError, match="decoded"):
        Listed()
