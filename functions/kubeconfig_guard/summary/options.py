"""Options of one summary run, from the timer event's payload or a manual invocation."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SummaryOptions(BaseModel):
    """``{"regions": [...], "dryRun": bool, "remediate": bool, "expiringDays": int}``, all optional."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    regions: list[str] | None = Field(
        None, description="Scan only these of KCGUARD_REGIONS this run (never more: others are refused)."
    )
    dry_run: bool | None = Field(None, alias="dryRun", description="Force dry-run for this run.")
    remediate: bool | None = Field(None, description="false: report only, revoke nothing.")
    expiring_days: int | None = Field(None, alias="expiringDays", ge=0, le=3650)

    @field_validator("regions", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [r.strip() for r in value.split(",") if r.strip()]
        return value


class OptionsError(ValueError):
    """The timer payload or manual options are not valid; the message says which field."""


def parse_summary_event(event: Any) -> SummaryOptions:
    """Accept the FC timer event (options in its ``payload`` string), a manual options object, or nothing."""
    data: Any = event
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode("utf-8", errors="replace")
    if isinstance(data, str):
        if not data.strip():
            return SummaryOptions()
        try:
            data = json.loads(data)
        except ValueError:
            raise OptionsError("the summary event is not valid JSON") from None
    if data is None:
        return SummaryOptions()
    if not isinstance(data, dict):
        raise OptionsError(f"the summary event must be a JSON object, got {type(data).__name__}")
    if "triggerTime" in data or "triggerName" in data:
        payload = data.get("payload")
        if payload in (None, ""):
            return SummaryOptions()
        if isinstance(payload, str):
            try:
                data = json.loads(payload)
            except ValueError:
                raise OptionsError("the timer payload is not valid JSON") from None
        else:
            data = payload
        if not isinstance(data, dict):
            raise OptionsError("the timer payload must be a JSON object")
    try:
        return SummaryOptions.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        raise OptionsError(f"invalid summary option {where}: {first['msg']}") from None
