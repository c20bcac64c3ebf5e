"""The daily summary over the blast-radius limit, at an organization's scale (issue 17, item 8).

Over the limit no orphan is revoked and every one is still counted and reported; the orphans the limit
skips are logged as one line per account (a large organization's summary may skip 100,000 of them),
while the safety rules' own decisions keep a line each. Every action the report lists names its account.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from kubeconfig_guard.fake import FakeCloud
from kubeconfig_guard.fake.testing import EXTERNAL_ID, small_organization
from kubeconfig_guard.handlers import handle_summary
from kubeconfig_guard.results import Outcome
from support.harness import Harness, Harnesses

REGIONS = ["cn-hangzhou", "ap-southeast-1", "cn-shanghai"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def executor_log() -> Iterator[_Records]:
    """The executor's log records (the package's loggers do not propagate to the root's)."""
    logger = logging.getLogger("kubeconfig_guard.executor")
    handler = _Records()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    found = getattr(record, "fields", {})
    assert isinstance(found, dict)
    return found


def test_orphans_over_the_limit_are_counted_in_one_line_per_account(
    make_harness: Harnesses, executor_log: _Records
) -> None:
    org: Harness = make_harness(small_organization())
    assert isinstance(org.backend, FakeCloud)
    runtime = org.runtime(
        accounts="resource-directory", member_external_id=EXTERNAL_ID, regions=REGIONS, max_revocations=1
    )
    outcome = handle_summary({}, runtime=runtime)
    report = outcome.report
    assert report is not None and report.reconciliation is not None
    rec = report.reconciliation
    assert rec.outcome is Outcome.LIMIT_EXCEEDED
    assert not any(backend.revocations for backend in org.backend.accounts.values())

    limited = [a for a in rec.actions if a.reason.startswith("blast-radius limit")]
    assert len(limited) >= 2  # the fixture's leavers in prod and staging, at least
    assert all(a.cloud_account_id for a in rec.actions)
    assert rec.actions_total == sum(rec.counts.values()) == len(rec.actions)  # nothing capped here

    counted = [r for r in executor_log.records if r.getMessage() == "kubeconfigs skipped"]
    each = [r for r in executor_log.records if r.getMessage() == "kubeconfig skipped"]
    assert counted, [r.getMessage() for r in executor_log.records]
    by_account = {fields(r)["cloud_account_id"]: fields(r) for r in counted}
    assert len(by_account) == len(counted)  # one line per account
    assert sum(f["count"] for f in by_account.values()) == len(limited)
    assert {a.cloud_account_id for a in limited} == set(by_account)
    assert all(
        f["reason"].startswith("blast-radius limit") and f["status"] == "skipped" for f in by_account.values()
    )
    # No line per orphan the limit skipped; the rules' own skips keep theirs.
    assert not [r for r in each if str(fields(r).get("reason", "")).startswith("blast-radius limit")]
    ruled = [a for a in rec.actions if a.status.value == "skipped" and a not in limited]
    assert len(each) == len(ruled)
