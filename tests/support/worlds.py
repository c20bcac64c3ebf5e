"""Fake-ACK worlds, kubeconfig states and settings for the tests, with explicit defaults."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from kubeconfig_guard.fake import World
from kubeconfig_guard.models import KubeconfigState
from kubeconfig_guard.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
EXAMPLE_WORLD = ROOT / "examples" / "world.json"
ACCOUNT = "5000000000000001"
CALLER = "300000000000000001"
NOW = "2026-11-25T09:00:00Z"
CERT_EXPIRES = "2028-01-01T00:00:00Z"


def iso(when: datetime) -> str:
    """``when`` as ACK writes times (``2026-11-25T09:00:00Z``)."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def kc(
    uid: str,
    name: str,
    *,
    account_type: str = "RamUser",
    account_state: str = "Deleted",
    cert_state: str = "Unexpired",
    cert_expire_time: str | None = CERT_EXPIRES,
    revokable: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """A kubeconfig record of a world file: by default a deleted RAM user's, revokable, never used.

    ``fields`` sets the world-only fields (``account_display_name``, ``last_access``).
    """
    record: dict[str, Any] = {
        "account_id": uid,
        "account_name": name,
        "account_display_name": name,
        "account_type": account_type,
        "account_state": account_state,
        "cert_expire_time": cert_expire_time,
        "cert_state": cert_state,
        "revokable": revokable,
        "last_access": None,
    }
    record.update(fields)
    return record


def kubeconfig_state(uid: str, name: str, **fields: Any) -> KubeconfigState:
    """The same kubeconfig as ACK's ListClusterKubeconfigStates reports it (typed): ``kc``'s
    defaults and arguments, without the world-only ``last_access``."""
    record = kc(uid, name, **fields)
    record.pop("last_access")
    return KubeconfigState(**record)


def cluster(cluster_id: str, *kubeconfigs: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A running managed cluster with audit logging, holding ``kubeconfigs`` (``kc`` records)."""
    record = {
        "cluster_id": cluster_id,
        "name": f"name-{cluster_id}",
        "cluster_type": "ManagedKubernetes",
        "state": "running",
        "audit_log": True,
        "kubeconfigs": list(kubeconfigs),
    }
    record.update(fields)
    return record


def world(regions: dict[str, list[dict[str, Any]]]) -> World:
    """A world of ``ACCOUNT`` at ``NOW``: region id -> ``cluster`` records."""
    return World.model_validate(
        {
            "account_id": ACCOUNT,
            "caller_uid": CALLER,
            "now": NOW,
            "regions": {r: {"clusters": cs} for r, cs in regions.items()},
        }
    )


def settings(**overrides: Any) -> Settings:
    """Enforcing settings for ``ACCOUNT`` in cn-hangzhou, with short timeouts and back-off."""
    base: dict[str, Any] = {
        "mode": "enforce",
        # The account the worlds belong to, as Function Compute's context would say.
        "account_id": ACCOUNT,
        "regions": ["cn-hangzhou"],
        "max_attempts": 3,
        "backoff_max_seconds": 0.05,
        "timeout_seconds": 2.0,
    }
    base.update(overrides)
    return Settings(**base)
