"""The one settings object: every knob is an environment variable ``KCGUARD_*``.

Defaults are the safe ones: the tool runs in ``dry-run`` until told otherwise.
The table in README.md is generated from this class (``kcguard settings``) and a
test keeps the two in step.

Secret settings are declared by their type, once: every field whose type is ``SecretStr``
(``SecretStr | None``...) is secret. The redactor reads the declaration from the model
(``secret_fields``, ``SECRET_ENV_VARS``: their ``KCGUARD_*`` variables, subclasses' included),
and every settings object registers its secret values with it when built (from the
environment or explicit arguments) or copied. A secret setting is never a
plain ``str``: a test fails on a field named like a secret that is not ``SecretStr``.

The variables are read by ``envsettings.BaseSettings`` (pydantic-settings' rules for what this
class declares, without importing pydantic-settings on the event function's cold start).
"""

from __future__ import annotations

import os
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, get_args

from pydantic import AliasChoices, BaseModel, Field, SecretBytes, SecretStr, field_validator, model_validator
from typing_extensions import Self

from .envsettings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from .accounts import AccountsSpec

DEFAULT_REGION = "cn-hangzhou"


class Mode(str, Enum):
    ENFORCE = "enforce"
    DRY_RUN = "dry-run"


class EventFormat(str, Enum):
    """How the event function's EventBridge trigger delivers events (its ``eventSchema``)."""

    CLOUDEVENTS = "cloudevents"
    RAWDATA = "rawdata"


class EventNotify(str, Enum):
    """When the event function sends a notice to the chat channels and the webhook (``notices.py``)."""

    PROBLEMS = "problems"
    ALL = "all"
    OFF = "off"


CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _is_secret_type(annotation: object) -> bool:
    """``SecretStr``/``SecretBytes``, or a type made of one (``SecretStr | None``, ``list[SecretStr]``)."""
    if isinstance(annotation, type) and issubclass(annotation, (SecretStr, SecretBytes)):
        return True
    return any(_is_secret_type(arg) for arg in get_args(annotation))


def secret_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The names of ``model``'s secret fields: every field whose type is ``SecretStr``."""
    return tuple(name for name, field in model.model_fields.items() if _is_secret_type(field.annotation))


def secret_env_var_names(model: type[BaseSettings]) -> tuple[str, ...]:
    """The environment variables ``model`` reads its secret fields from (``KCGUARD_SLACK_WEBHOOK``...)."""
    prefix = str(model.model_config.get("env_prefix") or "")
    upper = not model.model_config.get("case_sensitive", False)
    names: list[str] = []
    for name in secret_fields(model):
        field = model.model_fields[name]
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            found = [alias]
        elif isinstance(alias, AliasChoices):
            found = [choice for choice in alias.choices if isinstance(choice, str)]
        else:
            found = [prefix + name]
        names += [n.upper() if upper else n for n in found]
    return tuple(names)


def secret_setting_values(settings: BaseModel) -> list[str]:
    """The values of the secret fields of a settings object (unset ones left out)."""
    values: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, (SecretStr, SecretBytes)):
            collect(value.get_secret_value())
        elif isinstance(value, str):  # a secret field given a plain str by ``model_copy(update=...)``
            values.append(value)
        elif isinstance(value, bytes):
            values.append(value.decode(errors="replace"))
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    for name in secret_fields(type(settings)):
        collect(getattr(settings, name, None))
    return [value for value in values if value]


# The KCGUARD_* variables of the secret settings, of Settings and of every subclass (set below).
SECRET_ENV_VARS: tuple[str, ...] = ()


def _declare_secrets(model: type[BaseSettings]) -> None:
    global SECRET_ENV_VARS
    SECRET_ENV_VARS = tuple(dict.fromkeys(SECRET_ENV_VARS + secret_env_var_names(model)))


class Settings(BaseSettings):
    """kubeconfig-guard settings, read from ``KCGUARD_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="KCGUARD_",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,
        # A validation error names the setting and the problem, never the values it was given (they
        # include the webhooks and the ExternalId).
        hide_input_in_errors=True,
    )

    mode: Mode = Field(Mode.DRY_RUN, description="`enforce` revokes; `dry-run` only reports `would-revoke`.")
    account_id: str | None = Field(
        None,
        pattern=r"^[0-9]{1,32}$",
        description="The Alibaba Cloud account this function guards. Default: the Function Compute "
        "context's `account_id`. Events of other accounts are ignored; in `enforce` mode nothing is "
        "revoked while it is unknown.",
    )
    allow_manual_enforce: bool = Field(
        False,
        description='Let a manual invocation (`{"action": "revoke", ...}`) revoke in `enforce` mode. '
        "Default false: manual invocations are always dry-run.",
    )
    regions: CommaList = Field(
        default_factory=list,
        description="Comma list of regions whose clusters are watched. Empty: the function's own region.",
    )
    force_on_delete: bool = Field(
        True,
        description="Revoke with `Force=true` when the principal was deleted (ACK's `Force=false` check "
        "needs readable cluster audit logs and refuses when it cannot read them).",
    )
    force_on_lock: bool = Field(
        False,
        description="Revoke with `Force=true` when the user was locked. With false, ACK refuses while the "
        "kubeconfig was used in the last 7 days (reported `deferred`).",
    )
    protected_principals: CommaList = Field(
        default_factory=list,
        description="Comma list of uids or account names (glob patterns) that are never revoked "
        "(break-glass accounts). Display names never match.",
    )
    max_revocations: int = Field(
        50,
        ge=0,
        description="Blast-radius limit: when one invocation (every item of a batch together) would "
        "revoke more (cluster, uid) pairs, revoke none and report `limit-exceeded`.",
    )
    cs_endpoint: str | None = Field(
        None,
        description="ACK OpenAPI endpoint for every region (a private endpoint, or the fake). "
        "Default `cs.{region}.aliyuncs.com`. Plain `http://` only to loopback addresses.",
    )
    max_concurrency: int = Field(32, ge=1, le=256, description="Most API requests in flight at once.")
    max_rps: float = Field(
        500.0,
        gt=0,
        description="Client-side request-rate ceiling (requests/s). The client sends its first round "
        "(up to 12 requests) at once, starts low and grows fast until throttled, then settles just "
        "under the API's limit (AIMD).",
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one API request (read and write).")
    connect_timeout_seconds: float = Field(5.0, gt=0, description="Timeout to open a connection.")
    max_attempts: int = Field(6, ge=1, le=20, description="Attempts per API request on transient errors.")
    backoff_max_seconds: float = Field(8.0, gt=0, description="Ceiling of one retry back-off (full jitter).")
    listing_ttl_seconds: float = Field(
        20.0,
        ge=0,
        description="How long invocations on one warm instance share a cluster's listing to find "
        "candidates. A revocation is always decided on a listing taken after its event arrived.",
    )
    deadline_margin_seconds: float = Field(
        5.0, ge=0, description="Stop starting new work this long before the function's deadline."
    )
    remediate_deleted: bool = Field(
        True, description="Daily summary: revoke orphaned kubeconfigs of deleted accounts."
    )
    remediate_locked: bool = Field(
        True,
        description="Daily summary: revoke kubeconfigs of locked (InActive) accounts with the lock "
        "event's rules and `Force` (`KCGUARD_FORCE_ON_LOCK`), so a lock the event path deferred is retried.",
    )
    decision_after_days: int = Field(
        8,
        ge=1,
        description="Daily summary: a revocation deferred (ACK's `Force=false` refusal) for more than N "
        "days is listed first in the digest as needing a decision (`KCGUARD_FORCE_ON_LOCK=true`, the "
        "cluster's audit log, or a revocation by hand).",
    )
    expiring_days: int = Field(
        30, ge=0, description="Daily summary: a certificate expiring within N days is `expiring`."
    )
    report_list_limit: int = Field(
        200, ge=1, description="Daily summary: most entries kept in each list of the JSON/HTML report."
    )
    report_url: str | None = Field(None, description="Link to the full report, put in chat messages.")
    report_bucket: str | None = Field(
        None, description="OSS bucket for report.json/report.html (prefix by date). Empty: not stored."
    )
    report_prefix: str = Field("kubeconfig-guard/", description="Key prefix in the report bucket.")
    report_oss_region: str | None = Field(
        None, description="Region of the report bucket (default: first region)."
    )
    dingtalk_webhook: SecretStr | None = Field(None, description="DingTalk custom robot webhook URL.")
    dingtalk_secret: SecretStr | None = Field(None, description="DingTalk robot signing secret (optional).")
    feishu_webhook: SecretStr | None = Field(None, description="Feishu/Lark custom bot webhook URL.")
    feishu_secret: SecretStr | None = Field(None, description="Feishu/Lark bot signing secret (optional).")
    wecom_webhook: SecretStr | None = Field(None, description="WeCom group robot webhook URL.")
    slack_webhook: SecretStr | None = Field(None, description="Slack incoming webhook URL.")
    webhook_url: SecretStr | None = Field(
        None,
        description="Generic webhook: receives the JSON report (and the event notices' result "
        "documents) by POST.",
    )
    event_format: EventFormat = Field(
        EventFormat.CLOUDEVENTS,
        description="The delivery form the event function's trigger sends: `cloudevents` (the "
        "EventBridge envelope, what template.yml deploys) or `rawdata` (the ActionTrail record alone). "
        "ActionTrail events in the other form are ignored; manual invocations keep their own rules.",
    )
    event_notify: EventNotify = Field(
        EventNotify.PROBLEMS,
        description="When the event function sends a notice to the summary's webhooks "
        "(`KCGUARD_*_WEBHOOK`, `KCGUARD_WEBHOOK_URL`): "
        "`problems` (a revocation `failed` or `deferred`, an outcome `limit-exceeded`, and, through the "
        "failure destination of docs/deploy.md, a `partial` that Function Compute's retries could not "
        "finish), `all` (every revocation and would-revoke too: watch a dry-run deployment), or `off`. "
        "One message per invocation and channel.",
    )
    accounts: str = Field(
        "self",
        description="Which accounts this deployment guards. `self` (default): the account it runs in. "
        "`resource-directory`: organization mode over every member of the Resource Directory "
        "(Resource Manager `ListAccounts`; the central account too). Or an explicit comma list "
        "`ID[:ROLE][@REGION+REGION]`. Members are reached through STS `AssumeRole` into "
        "`KCGUARD_MEMBER_ROLE` with `KCGUARD_MEMBER_EXTERNAL_ID` (docs/organization.md).",
    )
    accounts_exclude: CommaList = Field(
        default_factory=list,
        description="Organization mode: comma list of account ids never guarded (never listed, "
        "never revoked in), whatever the Resource Directory or `KCGUARD_ACCOUNTS` says.",
    )
    member_role: str = Field(
        "kubeconfig-guard-member",
        pattern=r"^[A-Za-z0-9.\-]{1,64}$",
        description="Organization mode: the RAM role assumed in each member account (an explicit "
        "`ID:ROLE` entry overrides it for that account).",
    )
    member_external_id: SecretStr | None = Field(
        None,
        description="Organization mode: the `ExternalId` sent with every `AssumeRole` (the member "
        "role's trust policy requires it as `sts:ExternalId`). Required in organization mode.",
    )
    member_session_seconds: int = Field(
        3600,
        ge=900,
        le=43200,
        description="Organization mode: `DurationSeconds` of a member session (900 to the role's "
        "`MaxSessionDuration`, 3600 unless it was raised); refreshed before it expires.",
    )
    sts_endpoint: str | None = Field(
        None,
        description="STS endpoint (organization mode). Default `sts.aliyuncs.com`. Plain `http://` "
        "only to loopback addresses (the fake).",
    )
    resourcemanager_endpoint: str | None = Field(
        None,
        description="Resource Manager endpoint (organization mode). Default "
        "`resourcemanager.aliyuncs.com`. Plain `http://` only to loopback addresses (the fake).",
    )
    log_level: str = Field("INFO", description="Log level of the JSON log lines.")

    @field_validator("regions", "protected_principals", "accounts_exclude", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_commas(value)

    @model_validator(mode="after")
    def _accounts_readable(self) -> Self:
        """``KCGUARD_ACCOUNTS`` and its exclude list are readable; organization mode has an ExternalId."""
        spec = self.accounts_spec()
        if spec.organization and not (
            self.member_external_id and self.member_external_id.get_secret_value().strip()
        ):
            raise ValueError(
                "organization mode (KCGUARD_ACCOUNTS other than `self`) needs KCGUARD_MEMBER_EXTERNAL_ID: "
                "the ExternalId the member role's trust policy requires (docs/organization.md)"
            )
        return self

    def accounts_spec(self) -> AccountsSpec:
        """Which accounts this deployment guards (``accounts.parse_accounts``)."""
        from .accounts import parse_accounts

        return parse_accounts(self.accounts, self.accounts_exclude)

    def model_post_init(self, context: Any, /) -> None:
        """Every secret value is redacted from now on, wherever it came from."""
        super().model_post_init(context)
        self.register_secrets()

    def model_copy(self, *, update: Any = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        copy.register_secrets()  # ``update`` skips validation and ``model_post_init``
        return copy

    def register_secrets(self) -> None:
        """Register the values of the secret fields with the redactor."""
        from .redaction import register_secret  # redaction reads this module: imported here

        for value in secret_setting_values(self):
            register_secret(value)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _declare_secrets(cls)  # a subclass's new secret fields: their variables are redacted too

    @property
    def dry_run(self) -> bool:
        return self.mode is Mode.DRY_RUN

    def watched_regions(self) -> list[str]:
        """The configured regions, or the function's own region."""
        if self.regions:
            return list(dict.fromkeys(self.regions))
        return [os.environ.get("FC_REGION") or os.environ.get("ALIBABA_CLOUD_REGION_ID") or DEFAULT_REGION]


_declare_secrets(Settings)
