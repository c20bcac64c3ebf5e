"""Pydantic models of the ACK OpenAPI operations kubeconfig-guard calls.

Enum fields are *open*: a value the API docs don't list parses into a pseudo-member
named ``UNDOCUMENTED`` that keeps the raw value (``is_known`` is False), so a new ACK value
never crashes a listing; decisions never treat it as a match. Not to be confused with
``CertState.UNKNOWN``, the documented API value ``"Unknown"``, or with the report's
``KubeconfigClass.UNKNOWN`` (summary/classify.py), which holds both.

The client validates answers with ``model_validate_json`` straight from the response
bytes. Only the fields declared here are read; anything else in an answer is skipped
(``extra="ignore"``), so a listing of tens of thousands of states builds no more than
the code uses (the display name, free text that decides nothing, is not kept).

A listing answer must have the documented shape: a JSON object with its items array
(``clusters`` / ``states``) and its page object (``page_info`` / ``page``), of those types;
neither has a default, so an empty object or an error document served with HTTP 200 is not
taken for an empty listing. An error code in an answer (``code`` / ``Code``) is read, so that
the client can raise it whatever the HTTP status.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass


class OpenEnum(str, Enum):
    """A string enum that accepts undocumented values as ``UNDOCUMENTED`` pseudo-members."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNDOCUMENTED"
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        return self._name_ != "UNDOCUMENTED"


class AccountType(OpenEnum):
    ROOT_ACCOUNT = "RootAccount"
    RAM_USER = "RamUser"
    RAM_ROLE = "RamRole"


class AccountState(OpenEnum):
    ACTIVE = "Active"
    INACTIVE = "InActive"
    DELETED = "Deleted"


class CertState(OpenEnum):
    UNEXPIRED = "Unexpired"
    EXPIRED = "Expired"
    UNKNOWN = "Unknown"  # documented: ACK cannot tell the certificate's state


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ApiAnswer(_ApiModel):
    """A whole answer: the error code it may carry (``code`` or ``Code``), raw (any JSON value)."""

    error_code: Any = Field(None, alias="code")
    error_code_pascal: Any = Field(None, alias="Code")

    @property
    def carried_code(self) -> Any:
        """The error code the answer carries: the first of ``code``/``Code`` that is not null or ""."""
        for value in (self.error_code, self.error_code_pascal):
            if value is not None and value != "":
                return value
        return None


# --- DescribeClustersV1 (GET /api/v1/clusters) -------------------------------------------


class Cluster(_ApiModel):
    cluster_id: str
    name: str = ""
    region_id: str = ""
    cluster_type: str = ""
    cluster_spec: str | None = None
    profile: str | None = None
    state: str = ""
    size: int | None = None
    current_version: str | None = None
    init_version: str | None = None
    created: str | None = None
    updated: str | None = None
    vpc_id: str | None = None
    vswitch_ids: list[str] | None = None
    security_group_id: str | None = None
    resource_group_id: str | None = None
    zone_id: str | None = None
    container_cidr: str | None = None
    service_cidr: str | None = None
    proxy_mode: str | None = None
    timezone: str | None = None
    deletion_protection: bool | None = None
    cluster_domain: str | None = None
    tags: list[dict[str, Any]] | None = None


class PageInfo(_ApiModel):
    page_number: int = 1
    page_size: int = 10
    total_count: int = 0


class DescribeClustersV1Response(ApiAnswer):
    clusters: list[Cluster]  # required: the documented shape
    page_info: PageInfo


# --- ListClusterKubeconfigStates (GET /clusters/{ClusterId}/kubeconfig/states) -------------


@dataclass(slots=True, frozen=True, config=ConfigDict(extra="ignore"))
class KubeconfigState:
    """One kubeconfig as ListClusterKubeconfigStates reports it: a slotted record, not a model.

    A warm instance keeps every listing of the fleet for the freshness window (inventory.py), so
    this is the object there is most of: slots (no ``__dict__``, no fields-set bookkeeping) keep it
    at about 170 bytes a kubeconfig with its strings (about 270 when no two share a uid or name),
    instead of 1.2-1.3 KB as a ``BaseModel`` (BENCHMARKS.md, "Issue 19"). pydantic-core still
    validates it straight from the answer's bytes, and its string cache shares the uid and name
    strings repeated across clusters. Constructing one (``KubeconfigState(**record)``) validates
    it the same way, unknown keys ignored.
    """

    account_id: str = ""
    account_name: str = ""
    account_type: AccountType | None = None
    account_state: AccountState | None = None
    cert_expire_time: str | None = None
    cert_state: CertState | None = None
    revokable: bool = False


class StatesPage(_ApiModel):
    page_number: int = 1
    page_size: int = 10
    total_count: int = 0


class ListClusterKubeconfigStatesResponse(ApiAnswer):
    states: list[KubeconfigState]  # required: the documented shape
    page: StatesPage


# Cluster states in which the cluster has no working API server: never listed or cleaned.
CLUSTER_STATES_WITHOUT_API_SERVER = frozenset(
    {
        "initial",
        "failed",
        "deleting",
        "deleted",
        "delete_failed",
        "unavailable",
        "stopped",
        "inactive",
        "waiting",
        "disconnected",
        "pending",
    }
)


def cluster_unreachable_reason(cluster: Cluster) -> str | None:
    """Why this cluster is skipped, or None when its API server should work."""
    if cluster.state.lower() in CLUSTER_STATES_WITHOUT_API_SERVER:
        return f"cluster state is {cluster.state!r}: no working API server"
    return None
