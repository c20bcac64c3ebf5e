"""Account-isolation worlds and a handler runner shared by the trust-boundary and safety tests.

alice, bob and carol on two clusters of ``ACCOUNT`` (by default: alice Deleted, bob Active, carol
InActive, plus the root account), the guarded account given by the Function Compute context.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.results import BatchResult, RevocationResult
from support.worlds import ACCOUNT, cluster, kc, world

OTHER = "5999999999999999"
ALICE, BOB, CAROL = "200000000000000101", "200000000000000102", "200000000000000103"
CONTEXT = SimpleNamespace(account_id=ACCOUNT, function=SimpleNamespace(timeout=300))


def run(h: Any, event: Any, context: Any = CONTEXT, **settings: Any) -> Any:
    """The event function's result for ``event`` (a document or bytes): a ``RevocationResult``, or a
    ``BatchResult`` for a list."""
    settings.setdefault("account_id", None)  # the context says which account is guarded
    raw = event if isinstance(event, bytes) else json.dumps(event).encode()
    result = handle_event(raw, context, runtime=h.runtime(**settings))
    batch = isinstance(event, list) and len(event) > 1  # a list of one gives that item's result
    assert isinstance(result, BatchResult if batch else RevocationResult)
    return result


def revoked(h: Any) -> set[tuple[str, str]]:
    return {(r.cluster_id, r.uid) for r in h.backend.revocations}


def people(alice: str = "Deleted", bob: str = "Active", carol: str = "InActive") -> Any:
    """Two clusters; alice, bob and carol on both, with the given ACK account states."""
    states = [
        kc(ALICE, "alice", account_state=alice),
        kc(BOB, "bob", account_state=bob),
        kc(CAROL, "carol", account_state=carol),
        kc(ACCOUNT, "root", account_type="RootAccount", account_state="Active", revokable=False),
    ]
    return world({"cn-hangzhou": [cluster("c1", *states), cluster("c2", *states)]})
