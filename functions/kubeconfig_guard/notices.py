"""Event notices: what the event function revoked and, above all, what it could not, told within a minute.

The event function sends one notice per invocation (a batch is one message) to the channels the
daily summary speaks (``channels/``: DingTalk, Feishu/Lark, WeCom, Slack, the generic webhook),
configured by the same ``KCGUARD_*_WEBHOOK`` settings. ``KCGUARD_EVENT_NOTIFY`` says when:

============ ==================================================================================
``problems`` (default) an action ``failed`` or ``deferred``, an outcome ``limit-exceeded``, and a
             ``partial`` that Function Compute's retries could not finish (the final failure,
             below)
``all``      those, and every revocation and would-revoke: watch a dry-run deployment
``off``      nothing
============ ==================================================================================

**Retries.** An attempt that leaves work for Function Compute's retry (``needs_retry``: the
handler raises ``RetryableInvocationError``) sends no notice under ``problems``: the attempt that
finishes says what is left (a deferral, say), and if none finishes, Function Compute hands the
last attempt to the asynchronous-invocation failure destination, ``kubeconfig-guard-notify``
(``handlers.failure_handler``, template.yml, docs/deploy.md), which tells people once
(``failures.py``). Under ``all``, an attempt that is retried tells only what it revoked
(a later attempt no longer sees those kubeconfigs, so nothing is told twice).

**Never in the way of a revocation.** Notices are sent after the Cleans, within what is left of
the invocation's deadline (``notice_budget``), with few, short retries; a failed delivery is
logged and reported in the result's ``notices`` and never makes the handler raise. This module
is imported only once an invocation has something that may be told, and the channels (httpx,
tenacity) only once a notice is sent, so the event function's cold start does not grow.

**Untrusted text.** Names, ids, reasons and codes come from the ACK API or an event: each is
rendered through the channel's dialect (``inert``), so a cluster named
``<!channel> [prod](https://evil.example)`` is shown, never a mention or a link. Titles are our
own words and counts only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import logs
from .inert import Dialect
from .redaction import redact
from .results import (
    ACTION_URGENCY,
    Action,
    ActionStatus,
    BatchResult,
    ClusterIssue,
    ClusterStatus,
    Notice,
    Outcome,
    RevocationResult,
)
from .settings import EventNotify, Mode, Settings, secret_setting_values

if TYPE_CHECKING:
    from .failures import FinalFailure

log = logging.getLogger("kubeconfig_guard.notices")

Runner = Callable[[Coroutine[Any, Any, Any], "float | None"], Any]

# A notice never holds up the invocation: at most this long (less when the deadline is nearer),
# three attempts per channel, back-offs of at most two seconds.
NOTICE_SECONDS = 20.0
NOTICE_ATTEMPTS = 3
NOTICE_RETRY_WAIT_MAX = 2.0
# A notice may use the invocation's remaining time plus this grace (within the deadline margin).
NOTICE_GRACE_SECONDS = 2.0
NOTICE_SCHEMA_VERSION = 1

STATUS_WORDS = {
    ActionStatus.REVOKED: "revoked",
    ActionStatus.WOULD_REVOKE: "would revoke",
    ActionStatus.SKIPPED: "skipped",
    ActionStatus.DEFERRED: "deferred",
    ActionStatus.FAILED: "failed",
}


# --- who is told, and when (pure) ------------------------------------------------------------------


def has_problem(result: RevocationResult) -> bool:
    """A person must act: an action failed or deferred, or the blast-radius limit held everything back."""
    return result.outcome is Outcome.LIMIT_EXCEEDED or any(a.status.needs_attention for a in result.actions)


def wants_notice(result: RevocationResult, policy: EventNotify, *, retrying: bool) -> bool:
    """Whether ``result`` is told under ``policy``; ``retrying``: Function Compute runs the event again."""
    if policy is EventNotify.OFF or result.outcome is Outcome.IGNORED:
        return False
    if retrying:  # the attempt that finishes, or the failure destination, tells what is left
        return policy is EventNotify.ALL and any(a.status is ActionStatus.REVOKED for a in result.actions)
    if has_problem(result):
        return True
    return policy is EventNotify.ALL and any(
        a.status in (ActionStatus.REVOKED, ActionStatus.WOULD_REVOKE) for a in result.actions
    )


# --- what is said -------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class EventNotice:
    """One invocation's notice (a ``channels.base.Message``): every result it is about, most urgent first.

    ``retrying``: Function Compute runs the event again, only what was revoked is told.
    ``failure``: the retries gave up (the failure destination's record).
    """

    results: tuple[RevocationResult, ...]
    account_id: str | None = None  # the guarded account, when a result names none
    retrying: bool = False
    failure: FinalFailure | None = None
    _ordered: tuple[RevocationResult, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ordered = sorted(self.results, key=lambda r: (not has_problem(r), r.outcome.urgency))
        object.__setattr__(self, "_ordered", tuple(ordered))

    @property
    def kind(self) -> str:
        return "event notice"

    @property
    def needs_attention(self) -> bool:
        return self.failure is not None or any(has_problem(r) for r in self.results)

    def _actions(self, result: RevocationResult) -> list[Action]:
        actions = [a for a in result.actions if not self.retrying or a.status is ActionStatus.REVOKED]
        return sorted(actions, key=lambda a: a.status.urgency)

    def _counts(self) -> dict[ActionStatus, int]:
        counts = dict.fromkeys(ActionStatus, 0)
        for result in self.results:
            for action in self._actions(result):
                counts[action.status] += 1
        return counts

    def title(self) -> str:
        """Our words and counts only: no name from the API or the event."""
        counts = self._counts()
        parts = [
            f"{counts[status]} {STATUS_WORDS[status]}"
            for status in ACTION_URGENCY
            if counts[status] and status is not ActionStatus.SKIPPED
        ]
        if counts[ActionStatus.WOULD_REVOKE]:  # "would revoke 2", not "2 would revoke"
            parts = [
                f"would revoke {counts[ActionStatus.WOULD_REVOKE]}" if p.endswith(" would revoke") else p
                for p in parts
            ]
        if any(r.outcome is Outcome.LIMIT_EXCEEDED for r in self.results):
            parts.insert(0, "blast-radius limit exceeded, nothing revoked")
        if self.failure is not None:
            attempts = f" after {_plural(self.failure.attempts, 'attempt')}" if self.failure.attempts else ""
            parts.insert(0, f"Function Compute gave up on an event{attempts}")
        dry = any(r.mode is Mode.DRY_RUN for r in self.results)
        head = "kubeconfig-guard" + (" (dry-run)" if dry else "")
        return f"{head}: {', '.join(parts) if parts else 'event notice'}"

    def longest_list(self) -> int:
        return max(
            [len(self._ordered), *(len(self._actions(r)) + len(r.clusters) for r in self._ordered)], default=0
        )

    def render(self, dialect: Dialect, max_items: int) -> str:
        d = dialect
        lines = [d.heading(self.title(), 2), ""]  # our words and counts only
        if self.failure is not None:
            lines += [*self._failure_lines(d), ""]
        shown = self._ordered[: max(1, max_items)]
        for result in shown:
            lines += self._result_lines(result, d, max_items)
            lines.append("")
        if len(self._ordered) > len(shown):
            lines.append(
                d.bullet(
                    f"... and {len(self._ordered) - len(shown)} more events (the result document has them)"
                )
            )
        return "\n".join(lines).rstrip() + "\n"

    def _failure_lines(self, d: Dialect) -> list[str]:
        f = self.failure
        assert f is not None
        attempts = f" after {_plural(f.attempts, 'attempt')}" if f.attempts else ""
        lines = [
            f"{d.bold('Function Compute gave up' + attempts)}: retrying could not finish this event. "
            "The daily summary retries what is left; nothing below is retried before then."
        ]
        facts = []
        if f.condition:
            facts.append(f"condition {d.code(f.condition)}")
        if f.error_type:
            facts.append(f"last error {d.code(f.error_type)}")
        if f.request_id:
            facts.append(f"request {d.code(f.request_id)}")
        if facts:
            lines.append(" · ".join(facts))
        if not f.result_read:
            lines.append(
                "The last attempt's result could not be read"
                + (f" ({d.text(f.error)})" if f.error else "")
                + ": below is what the event asked for; the function's logs have the rest."
            )
        return lines

    def _result_lines(self, r: RevocationResult, d: Dialect, max_items: int) -> list[str]:
        p = r.principal
        who = (
            f"{d.bold(d.text(p.type.value))} {d.code(p.name or p.upn or p.uid or '?')}"
            + (f" (uid {d.code(p.uid)})" if p.uid and (p.name or p.upn) else "")
            if p is not None
            else d.bold("unknown principal")
        )
        account = r.account_id or self.account_id
        facts = [
            f"account {d.code(account) if account else 'unknown'}",
            d.text(r.event_name or "manual invocation") + (f" ({d.text(r.kind.value)})" if r.kind else ""),
            f"mode {d.code(r.mode.value)}",
            f"outcome {d.code(r.outcome.value)}",
        ]
        lines = [f"{who} · {' · '.join(facts)}"]
        if r.reason:
            lines.append(d.quote(d.text(r.reason)))
        if r.mode is Mode.DRY_RUN and any(a.status is ActionStatus.WOULD_REVOKE for a in r.actions):
            lines.append("Dry run: nothing was revoked; with `KCGUARD_MODE=enforce` these would be revoked.")
        if self.retrying:
            left = sum(1 for a in r.actions if a.status is not ActionStatus.REVOKED) + len(r.clusters)
            lines.append(
                f"Function Compute runs this event again for the rest ({_plural(left, 'item')} left): "
                "what is left is told when it finishes, or when the retries give up."
            )
        items = [self._action_line(a, d) for a in self._actions(r)]
        if not self.retrying:
            items += [self._cluster_line(c, d) for c in r.clusters]
        lines += [d.bullet(item) for item in items[:max_items]]
        if len(items) > max_items:
            event = f" of event {d.code(r.event_id)}" if r.event_id else ""
            lines.append(
                d.bullet(f"... and {len(items) - max_items} more (the result document{event} has them)")
            )
        return lines

    @staticmethod
    def _where(d: Dialect, name: str, cluster_id: str, region: str) -> str:
        named = f"{d.text(name)} " if name and name != cluster_id else ""
        return f"{named}({d.code(cluster_id)}, {d.text(region)})"

    def _action_line(self, a: Action, d: Dialect) -> str:
        code = f" [{d.code(a.error_code)}]" if a.error_code and a.status is not ActionStatus.REVOKED else ""
        return (
            f"{d.bold(STATUS_WORDS[a.status])} {d.code(a.account_name or a.uid)} (uid {d.code(a.uid)}) on "
            f"{self._where(d, a.cluster_name, a.cluster_id, a.region)}: {d.text(a.reason)}{code}"
        )

    def _cluster_line(self, c: ClusterIssue, d: Dialect) -> str:
        code = f" [{d.code(c.error_code)}]" if c.error_code else ""
        status = {ClusterStatus.NOT_ATTEMPTED: "not attempted"}.get(c.status, c.status.value)
        return f"{d.bold('cluster ' + status)} {self._where(d, c.cluster_name, c.cluster_id, c.region)}: {d.text(c.reason)}{code}"

    def document(self) -> Any:
        """The generic webhook's JSON: the result documents this notice is about, names exact."""
        return {
            "schema_version": NOTICE_SCHEMA_VERSION,
            "kind": "event-notice",
            "title": self.title(),
            "account_id": self.account_id,
            "retrying": self.retrying,
            "final_failure": self.failure.model_dump(mode="json") if self.failure else None,
            "results": [r.model_dump(mode="json", exclude={"notices"}) for r in self._ordered],
        }


# --- sending ------------------------------------------------------------------------------------


def notice_budget(remaining: float | None) -> float:
    """Seconds a notice may take: what is left of the deadline plus the grace, at most ``NOTICE_SECONDS``."""
    if remaining is None:
        return NOTICE_SECONDS
    return max(0.0, min(NOTICE_SECONDS, remaining + NOTICE_GRACE_SECONDS))


def deliver(
    message: EventNotice,
    settings: Settings,
    budget: float,
    run: Runner | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> list[Notice]:
    """Send ``message`` to every configured channel within ``budget`` seconds; never raises.

    ``run`` runs the delivery on the caller's event loop (``Runtime.run``); None: a loop of its own.
    """
    if not secret_setting_values(settings):
        return []  # every webhook URL is a secret setting: with none set, no channel is on
    try:
        from .channels import deliver_all, enabled_channels  # httpx, tenacity: only when there is a notice

        enabled = [c.name for c in enabled_channels(settings)]
    except Exception as exc:  # pragma: no cover - an import error in a broken package
        logs.log_fields(log, "event notice not sent", logging.ERROR, error=redact(type(exc).__name__))
        return []
    if not enabled:
        return []

    def unsent(error: str) -> list[Notice]:
        return [Notice(channel=name, ok=False, error=error) for name in enabled]

    try:
        coro = deliver_all(
            message,
            settings,
            clock=clock,
            max_attempts=NOTICE_ATTEMPTS,
            retry_wait_max=NOTICE_RETRY_WAIT_MAX,
        )
        deliveries = run(coro, budget) if run is not None else asyncio.run(asyncio.wait_for(coro, budget))
    except (TimeoutError, asyncio.TimeoutError):
        notices = unsent("not delivered before the invocation's deadline")
        logs.log_fields(
            log, "event notice delivery failed", logging.WARNING, channels=enabled, timeout=budget
        )
        return notices
    except Exception as exc:  # a notice never fails the invocation
        logs.log_fields(log, "event notice delivery failed", logging.ERROR, error=redact(type(exc).__name__))
        return unsent(f"internal error {type(exc).__name__}")
    return [
        Notice(channel=d.channel, ok=d.ok, status_code=d.status_code, attempts=d.attempts, error=d.error)
        for d in deliveries
    ]


def notify_event(
    results: Sequence[RevocationResult],
    settings: Settings,
    *,
    account_id: str | None,
    retrying: bool,
    budget: float,
    run: Runner | None = None,
) -> list[Notice]:
    """The event function's notice about one invocation's ``results``, if any is wanted; never raises."""
    try:
        told = tuple(r for r in results if wants_notice(r, settings.event_notify, retrying=retrying))
        if not told:
            return []
        return deliver(EventNotice(told, account_id=account_id, retrying=retrying), settings, budget, run)
    except Exception as exc:  # a notice never fails the invocation
        logs.log_fields(log, "event notice not sent", logging.ERROR, error=redact(type(exc).__name__))
        return []


# --- the result a retried invocation carries ------------------------------------------------------


def result_for_message(final: RevocationResult | BatchResult, limit: int) -> str:
    """The result's JSON for ``RetryableInvocationError``'s message, kept under ``limit`` bytes.

    Too large (a batch, a huge fleet): skipped actions go first, then every list is cut to what
    fits (the counts stay whole). The failure destination reads it back (``read_failure``).
    """
    text = final.model_dump_json()
    if len(text.encode()) <= limit:
        return text

    def trimmed(r: RevocationResult, n: int) -> RevocationResult:
        actions = sorted(
            (a for a in r.actions if a.status is not ActionStatus.SKIPPED), key=lambda a: a.status.urgency
        )
        return r.model_copy(
            update={"actions": actions[:n], "clusters": r.clusters[:n], "notices": r.notices[:n]}
        )

    for n in (200, 50, 10, 3, 0):
        if isinstance(final, BatchResult):
            cut: RevocationResult | BatchResult = final.model_copy(
                update={
                    "results": [
                        trimmed(r, n) for r in sorted(final.results, key=lambda r: r.outcome.urgency)
                    ][: max(n, 1)]
                }
            )
        else:
            cut = trimmed(final, n)
        text = cut.model_dump_json()
        if len(text.encode()) <= limit:
            return text
    return json.dumps({"outcome": final.outcome.value, "counts": final.counts})
