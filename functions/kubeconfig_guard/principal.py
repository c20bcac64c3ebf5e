"""Who an event is about: a RAM user or role, by name, UPN and/or uid."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class PrincipalType(str, Enum):
    RAM_USER = "RamUser"
    RAM_ROLE = "RamRole"


class EventKind(str, Enum):
    DELETED = "deleted"
    LOCKED = "locked"


class Principal(BaseModel):
    """A RAM user or role. At least one of ``name``, ``upn`` and ``uid`` is set."""

    model_config = ConfigDict(frozen=True)

    type: PrincipalType
    name: str | None = Field(None, description="RAM user name or role name.")
    upn: str | None = Field(
        None, description="User principal name, e.g. alice@5000000000000001.onaliyun.com."
    )
    uid: str | None = Field(None, description="RAM user or role id.")

    def describe(self) -> str:
        ident = self.name or self.upn or self.uid or "?"
        return f"{self.type.value} {ident}" + (f" ({self.uid})" if self.uid and ident != self.uid else "")
