"""The result document of the event function (one JSON document per event).

Schema (``schema_version`` 1) is documented in README.md ("Result document").
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from .models import AccountState, AccountType, Cluster
from .principal import EventKind, Principal
from .settings import Mode

RESULT_SCHEMA_VERSION = 1


class ActionStatus(str, Enum):
    """What happened to one (cluster, uid). Declaration order is the order of ``counts``."""

    REVOKED = "revoked"
    WOULD_REVOKE = "would-revoke"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    FAILED = "failed"

    @classmethod
    def by_urgency(cls) -> tuple[ActionStatus, ...]:
        """The statuses in the order a person should look at them (see ``ACTION_URGENCY``)."""
        return ACTION_URGENCY

    @property
    def urgency(self) -> int:
        """0 for what needs a person first; the sort key of every list of actions."""
        return ACTION_URGENCY.index(self)

    @property
    def needs_attention(self) -> bool:
        """Failed or deferred: the head of the urgency order, what a person must act on."""
        return self in ACTION_URGENCY[:2]


# The one urgency order of action statuses, used by the report, the HTML page and the digest:
# failed and deferred first (a person must act), then what was done (revoked; would-revoke in
# dry-run: the two never occur in one run), then skipped.
ACTION_URGENCY: tuple[ActionStatus, ...] = (
    ActionStatus.FAILED,
    ActionStatus.DEFERRED,
    ActionStatus.REVOKED,
    ActionStatus.WOULD_REVOKE,
    ActionStatus.SKIPPED,
)


class Outcome(str, Enum):
    OK = "ok"
    IGNORED = "ignored"
    PARTIAL = "partial"
    LIMIT_EXCEEDED = "limit-exceeded"

    @property
    def urgency(self) -> int:
        """0 for what needs a person (or a retry) first (``OUTCOME_URGENCY``)."""
        return OUTCOME_URGENCY.index(self)


# The order of outcomes by urgency: work left to retry, then revocations held back by the
# blast-radius limit (a person decides), then done, then nothing to do. A batch's outcome is
# the most urgent of its items'.
OUTCOME_URGENCY: tuple[Outcome, ...] = (Outcome.PARTIAL, Outcome.LIMIT_EXCEEDED, Outcome.OK, Outcome.IGNORED)


class ClusterStatus(str, Enum):
    SKIPPED = "skipped"  # no working API server
    FAILED = "failed"  # listing failed after retries
    NOT_ATTEMPTED = "not-attempted"  # the invocation deadline came first


# The error code of work the invocation's deadline stopped (not attempted, or no answer in time).
DEADLINE_CODE = "DeadlineReached"
# The error code of a region a summary's options asked for but KCGUARD_REGIONS does not watch.
REGION_NOT_WATCHED = "RegionNotWatched"


class ClusterPrincipal(BaseModel):
    """Which (cluster, uid) an entry is about, as ACK's listing named it (actions, decisions)."""

    cloud_account_id: str | None = Field(
        None, description="Organization mode's daily summary: the account the cluster belongs to."
    )
    region: str
    cluster_id: str
    cluster_name: str = ""
    uid: str
    account_name: str
    account_type: AccountType = Field(description="The state's account type; '' when ACK gave none.")
    account_state: AccountState | None = None


class Action(ClusterPrincipal):
    """What was done (or not) about one (cluster, uid)."""

    model_config = ConfigDict(frozen=True)

    status: ActionStatus
    reason: str
    force: bool | None = None
    error_code: str | None = None
    request_id: str | None = None


class ClusterIssue(BaseModel):
    """A cluster that was not (fully) looked at, and why. A result never omits one silently."""

    model_config = ConfigDict(frozen=True)

    cloud_account_id: str | None = Field(
        None, description="Organization mode's daily summary: the account the cluster belongs to."
    )
    region: str
    cluster_id: str
    cluster_name: str = ""
    status: ClusterStatus
    reason: str
    error_code: str | None = None

    @classmethod
    def of(
        cls, region: str, cluster: Cluster | None, status: ClusterStatus, reason: str, code: str | None = None
    ) -> ClusterIssue:
        """An issue about one cluster, or about a whole region's listing (``cluster`` None)."""
        return cls(
            region=region,
            cluster_id=cluster.cluster_id if cluster else "*",
            cluster_name=cluster.name if cluster else "",
            status=status,
            reason=reason,
            error_code=code,
        )


class Notice(BaseModel):
    """What happened to one channel's notice about an invocation (``notices.py``): sent or not, and why."""

    model_config = ConfigDict(frozen=True)

    channel: str
    ok: bool
    status_code: int | None = None
    attempts: int = 0
    error: str | None = Field(
        None, description="Why it was not delivered (redacted: no webhook URL or secret)."
    )


class RevocationResult(BaseModel):
    schema_version: int = RESULT_SCHEMA_VERSION
    event_id: str | None = None
    event_name: str | None = None
    kind: EventKind | None = None
    outcome: Outcome
    reason: str = ""
    mode: Mode
    account_id: str | None = Field(
        None,
        description="The account whose clusters were acted on (organization mode: the event's member "
        "account; self mode: the guarded account). None when the event was ignored before any was known.",
    )
    principal: Principal | None = None
    actions: list[Action] = Field(default_factory=list)
    clusters: list[ClusterIssue] = Field(
        default_factory=list, description="Clusters skipped, failed or not attempted."
    )
    clusters_scanned: int = 0
    clusters_total: int = Field(0, description="Clusters of the watched regions this attempt knew of.")
    counts: dict[str, int] = Field(default_factory=dict)
    duration_ms: int = 0
    notices: list[Notice] = Field(
        default_factory=list, description="The notice sent about this invocation, per channel (notices.py)."
    )

    @property
    def needs_retry(self) -> bool:
        """Some work failed transiently or was not attempted: Function Compute should run it again."""
        return any(a.status is ActionStatus.FAILED for a in self.actions) or any(
            c.status in (ClusterStatus.FAILED, ClusterStatus.NOT_ATTEMPTED) for c in self.clusters
        )


class BatchResult(BaseModel):
    schema_version: int = RESULT_SCHEMA_VERSION
    outcome: Outcome
    results: list[RevocationResult]
    counts: dict[str, int] = Field(default_factory=dict)
    duration_ms: int = 0
    notices: list[Notice] = Field(
        default_factory=list, description="The one notice sent about the whole batch, per channel."
    )

    @classmethod
    def of(cls, results: list[RevocationResult], seconds: float) -> BatchResult:
        """One result for a batch: counts summed, the outcome the most urgent of the items'."""
        counts: dict[str, int] = {}
        for result in results:
            for status, n in result.counts.items():
                counts[status] = counts.get(status, 0) + n
        return cls(
            outcome=min((r.outcome for r in results), key=lambda o: o.urgency, default=Outcome.IGNORED),
            results=results,
            counts=counts,
            duration_ms=int(seconds * 1000),
        )


def count_actions(actions: list[Action]) -> dict[str, int]:
    counts = {status.value: 0 for status in ActionStatus}
    for action in actions:
        counts[action.status.value] += 1
    return counts
