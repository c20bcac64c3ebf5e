"""The state rule, in one place: which ACK account states call for a revocation, and as what.

ACK's ``ListClusterKubeconfigStates`` reports each kubeconfig's ``account_state``: ``Active``,
``InActive`` (the RAM user is locked) or ``Deleted`` (the user or role is deleted). Both
paths read this module and nothing else for it:

* the event path (``plan.state_disagreement``): an event is acted on only where ACK's state
  agrees with it; a deletion needs ``Deleted``, a lock ``InActive`` or ``Deleted`` (a user
  locked, then deleted);
* the daily summary (``summary.classify``: orphaned; ``summary.scan``/``reconcile``: which
  event an orphan stands for, so it is revoked with that event's rules and ``Force``).

Anything else (``Active``, no state, an undocumented value) never calls for a revocation.
"""

from __future__ import annotations

from .models import AccountState
from .principal import EventKind

# ACK's account state -> the event it stands for. The only states that call for a revocation.
REVOKING_STATES: dict[AccountState, EventKind] = {
    AccountState.DELETED: EventKind.DELETED,
    AccountState.INACTIVE: EventKind.LOCKED,
}


def revocation_kind(state: AccountState | None) -> EventKind | None:
    """The event ACK's account state stands for (Deleted: deleted, InActive: locked), else None."""
    if state is None or not state.is_known:
        return None
    return REVOKING_STATES.get(state)


def agrees(kind: EventKind, state: AccountState | None) -> bool:
    """Does ACK's account state agree with an event of this kind? A deletion needs Deleted; a
    lock needs InActive or Deleted (a deleted user is locked out too)."""
    called = revocation_kind(state)
    return called is not None and (called is kind or called is EventKind.DELETED)


def agreeing_states(kind: EventKind) -> frozenset[AccountState]:
    """The account states that agree with an event of this kind (for reasons and docs)."""
    return frozenset(s for s in REVOKING_STATES if agrees(kind, s))
