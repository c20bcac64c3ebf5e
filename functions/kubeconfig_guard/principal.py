"""Who an event is about: a RAM user or role, by name, UPN and/or uid."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from .models import AccountType

# The account types an event or a manual revocation can name: a principal is never the root
# account, and never an undocumented type.
RAM_ACCOUNT_TYPES = (AccountType.RAM_USER, AccountType.RAM_ROLE)


def _ram_only(value: object) -> object:
    if isinstance(value, str) and value in RAM_ACCOUNT_TYPES:
        return value
    raise PydanticCustomError(
        "enum", "Input should be 'RamUser' or 'RamRole'", {"expected": "'RamUser' or 'RamRole'"}
    )


# ``AccountType`` restricted to RamUser and RamRole (the same enum the ACK listing uses).
RamAccountType = Annotated[AccountType, BeforeValidator(_ram_only)]


class EventKind(str, Enum):
    DELETED = "deleted"
    LOCKED = "locked"


class Principal(BaseModel):
    """A RAM user or role. At least one of ``name``, ``upn`` and ``uid`` is set."""

    model_config = ConfigDict(frozen=True)

    type: RamAccountType
    name: str | None = Field(None, description="RAM user name or role name.")
    upn: str | None = Field(
        None, description="User principal name, e.g. alice@5000000000000001.onaliyun.com."
    )
    uid: str | None = Field(None, description="RAM user or role id.")

    def describe(self) -> str:
        ident = self.name or self.upn or self.uid or "?"
        return f"{self.type.value} {ident}" + (f" ({self.uid})" if self.uid and ident != self.uid else "")
