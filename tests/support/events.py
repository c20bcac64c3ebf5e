"""EventBridge events for the tests, built from the samples in ``events/``."""

from __future__ import annotations

import json
from typing import Any

from support.worlds import ACCOUNT, EVENTS


def sample(name: str, **changes: Any) -> dict[str, Any]:
    """The sample ``events/<name>`` with ``changes`` applied.

    A change is a dotted path (``"data.userIdentity.accountId"``) and its new value; ``None``
    removes the key.
    """
    doc: dict[str, Any] = json.loads((EVENTS / name).read_text())
    for path, value in changes.items():
        target = doc
        *parents, leaf = path.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return doc


def encode(doc: Any) -> bytes:
    """An event document as Function Compute hands it to the handler."""
    return json.dumps(doc).encode()


def delete_user(
    name: str = "alice", *, event_id: str | None = None, published: str | None = None, **params: Any
) -> bytes:
    """The DeleteUser event for ``name`` (account from the envelope); ``params`` are extra request parameters.

    ``published``: the envelope's ``aliyunpublishtime`` (default: the sample's, long past); "" removes it.
    """
    changes: dict[str, Any] = {"data.requestParameters": {"UserName": name, **params}}
    if event_id is not None:
        changes["data.eventId"] = event_id
    if published is not None:
        changes["aliyunpublishtime"] = published or None
    return encode(sample("ram-delete-user.json", **changes))


def lock_user(name: str) -> bytes:
    """The LockUser event (``UserPrincipalName``) for ``name`` of ``ACCOUNT``."""
    return encode(
        sample(
            "ims-lock-user.json",
            **{"data.requestParameters.UserPrincipalName": f"{name}@{ACCOUNT}.onaliyun.com"},
        )
    )
