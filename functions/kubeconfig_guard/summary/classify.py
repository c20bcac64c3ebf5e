"""Classify one kubeconfig state (pure)."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from ..models import AccountType, CertState, KubeconfigState
from ..state_rule import revocation_kind


class KubeconfigClass(str, Enum):
    """Most urgent first: a state gets the first class that applies."""

    ORPHANED = "orphaned"  # the state rule calls for revocation (state_rule), kubeconfig still revokable
    ROOT = "root"  # issued to the root account
    EXPIRED = "expired"
    EXPIRING = "expiring"  # Unexpired, expires within N days
    UNKNOWN = "unknown"  # certificate state unknown: CertState.UNKNOWN, an undocumented value, no expiry
    HEALTHY = "healthy"


CLASS_ORDER = tuple(KubeconfigClass)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def days_left(state: KubeconfigState, now: datetime) -> float | None:
    expires = parse_time(state.cert_expire_time)
    return None if expires is None else (expires - now).total_seconds() / 86400


def classify(state: KubeconfigState, now: datetime, expiring_days: int) -> KubeconfigClass:
    if revocation_kind(state.account_state) is not None and state.revokable:
        return KubeconfigClass.ORPHANED
    if state.account_type is AccountType.ROOT_ACCOUNT:
        return KubeconfigClass.ROOT
    if state.cert_state is CertState.EXPIRED:
        return KubeconfigClass.EXPIRED
    if state.cert_state is CertState.UNEXPIRED:
        left = days_left(state, now)
        if left is None:
            return KubeconfigClass.UNKNOWN
        if left <= 0:
            return KubeconfigClass.EXPIRED
        return KubeconfigClass.EXPIRING if left <= expiring_days else KubeconfigClass.HEALTHY
    return KubeconfigClass.UNKNOWN
