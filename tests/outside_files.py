"""Files a test needs from outside the repository (CI's ``../shared``).

A user's fresh clone has no ``../shared`` next to it, so a test that needs one of its
files is *skipped* there, with the path and the reason in pytest's summary. CI sets
``KCGUARD_REQUIRE_SHARED=1`` (``.ci/run``): there the same absence *fails* the test, so
CI can never pass by silently skipping what it is meant to check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REQUIRE_ENV = "KCGUARD_REQUIRE_SHARED"


def required_here() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def shared_file(relative: str, why: str) -> Path:
    """``../shared/<relative>``, or skip (fail under ``KCGUARD_REQUIRE_SHARED=1``) saying why."""
    path = SHARED / relative
    if path.is_file():
        return path
    message = (
        f"{path} is not here: {why}. Only CI's layout has ../shared next to the repository; "
        f"with {REQUIRE_ENV}=1 (as .ci/run sets) this is a failure, not a skip"
    )
    if required_here():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
