"""Organization mode end to end: the real handlers and client against the fake organization, both wires.

One account's event never touches another account's clusters; a member is reached only through its
role (ExternalId, session policy); an account that cannot be reached is reported with its code,
never a silent zero; one summary covers every account.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeconfig_guard.accounts import session_policy
from kubeconfig_guard.api import ASSUME_ROLE, LIST_ACCOUNTS
from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.fake import FakeCloud, FaultSpec
from kubeconfig_guard.fake.testing import (
    CENTRAL_ID,
    EXTERNAL_ID,
    LEAVER,
    OUTSIDER_ID,
    PROD_ID,
    SANDBOX_ID,
    STAGING_ID,
    STAGING_LEAVER,
    small_organization,
)
from kubeconfig_guard.handlers import handle_event, handle_summary
from kubeconfig_guard.results import BatchResult, Outcome, RevocationResult
from kubeconfig_guard.summary.markdown import render_markdown
from support.harness import Harness, Harnesses

REGIONS = ["cn-hangzhou", "ap-southeast-1", "cn-shanghai"]


def org_settings(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "accounts": "resource-directory",
        "member_external_id": EXTERNAL_ID,
        "regions": REGIONS,
    }
    base.update(overrides)
    return base


def routed_deletion(owner: str, user: str = "leaver", *, receiver: str = CENTRAL_ID, **data: Any) -> bytes:
    """A RAM DeleteUser of ``owner``'s user, routed from its default bus to the central bus."""
    record: dict[str, Any] = {
        "eventId": f"del-{owner}-{user}",
        "eventName": "DeleteUser",
        "eventType": "ApiCall",
        "serviceName": "Ram",
        "eventSource": "ram.aliyuncs.com",
        "recipientAccountId": owner,
        "userIdentity": {"accountId": owner, "type": "ram-user", "principalId": "200000000000000711"},
        "requestParameters": {"UserName": user},
    }
    record.update(data)
    doc = {
        "specversion": "1.0",
        "id": f"ev-{owner}-{user}",
        "source": "acs.ram",
        "type": "ram:ActionTrail:ApiCall",
        "aliyunaccountid": receiver,
        "aliyunoriginalaccountid": owner,
        "aliyuneventbusname": "kubeconfig-guard-members",
        "data": record,
    }
    return json.dumps(doc).encode()


def revoked_in(cloud: FakeCloud) -> dict[str, set[tuple[str, str]]]:
    return {
        account: {(r.cluster_id, r.uid) for r in backend.revocations}
        for account, backend in cloud.accounts.items()
        if backend.revocations
    }


def ack_calls(cloud: FakeCloud) -> dict[str, int]:
    """ACK requests per account (STS and Resource Manager left out)."""
    return {
        account: sum(n for op, n in calls.items() if op not in (ASSUME_ROLE.name, LIST_ACCOUNTS.name))
        for account, calls in cloud.calls_by_account().items()
        if sum(n for op, n in calls.items() if op not in (ASSUME_ROLE.name, LIST_ACCOUNTS.name))
    }


@pytest.fixture
def org(make_harness: Harnesses) -> Harness:
    return make_harness(small_organization())


def cloud_of(h: Harness) -> FakeCloud:
    assert isinstance(h.backend, FakeCloud)
    return h.backend


def run(h: Harness, event: bytes, **overrides: Any) -> RevocationResult | BatchResult:
    return handle_event(event, runtime=h.runtime(**org_settings(**overrides)))


# --- the event path ------------------------------------------------------------------------------


def test_a_routed_deletion_revokes_in_its_member_only(org: Harness) -> None:
    cloud = cloud_of(org)
    result = run(org, routed_deletion(PROD_ID))
    assert isinstance(result, RevocationResult)
    assert result.outcome is Outcome.OK, result.reason
    assert result.account_id == PROD_ID
    assert revoked_in(cloud) == {PROD_ID: {("c-prod-a", LEAVER), ("c-prod-b", LEAVER)}}
    # staging's user of the same name, and the central account, were never listed
    assert set(ack_calls(cloud)) == {PROD_ID}
    assert cloud.account(STAGING_ID).kubeconfigs("c-staging")[0].account_id == STAGING_LEAVER


def test_the_member_session_carries_the_external_id_the_policy_and_the_invocation(org: Harness) -> None:
    cloud = cloud_of(org)

    class Context:
        request_id = "req-1234"
        account_id = CENTRAL_ID

    runtime = org.runtime(**org_settings())
    handle_event(routed_deletion(PROD_ID), Context(), runtime=runtime)
    (session,) = cloud.sessions()
    assert session.account_id == PROD_ID
    assert session.role_name == "kubeconfig-guard-member"
    assert session.role_session_name.startswith("kcguard.") and session.role_session_name.endswith("req-1234")
    assert session.policy is not None
    # The session may do what the session policy says and nothing more.
    allowed = set(json.loads(session_policy())["Statement"][0]["Action"])
    assert all(session.policy.allows(a) for a in allowed)
    assert not session.policy.allows("ram:DeleteUser")
    # A second event reuses the session: one AssumeRole per member per session lifetime.
    handle_event(routed_deletion(PROD_ID, "pat"), Context(), runtime=runtime)
    assert len(cloud.sessions()) == 1


def test_an_expired_session_is_assumed_again(org: Harness) -> None:
    cloud = cloud_of(org)
    runtime = org.runtime(**org_settings(mode="dry-run"))
    first = handle_event(routed_deletion(PROD_ID), runtime=runtime)
    cloud.advance(3700)  # the session's hour is over on the fake's clock, not on ours
    second = handle_event(routed_deletion(PROD_ID), runtime=runtime)
    assert isinstance(first, RevocationResult) and isinstance(second, RevocationResult)
    assert first.counts["would-revoke"] == second.counts["would-revoke"] == 2
    assert len(cloud.sessions()) == 2


@pytest.mark.parametrize(
    ("event", "overrides", "reason"),
    [
        (routed_deletion(OUTSIDER_ID), {}, "not a member of the Resource Directory"),
        (
            routed_deletion(STAGING_ID),
            {"accounts_exclude": [STAGING_ID]},
            "excluded by KCGUARD_ACCOUNTS_EXCLUDE",
        ),
        (routed_deletion(STAGING_ID), {"accounts": f"{PROD_ID},{CENTRAL_ID}"}, "not one of the accounts"),
        (routed_deletion(PROD_ID, recipientAccountId=STAGING_ID), {}, "disagree"),
        (routed_deletion(PROD_ID, receiver=STAGING_ID), {}, "disagree"),
    ],
)
def test_an_event_of_an_account_not_guarded_is_ignored_and_touches_nothing(
    org: Harness, event: bytes, overrides: dict[str, Any], reason: str
) -> None:
    cloud = cloud_of(org)
    result = run(org, event, **overrides)
    assert isinstance(result, RevocationResult)
    assert result.outcome is Outcome.IGNORED and reason in result.reason
    assert not ack_calls(cloud) and not cloud.sessions() and not revoked_in(cloud)


def test_a_member_that_left_the_directory_is_ignored(org: Harness) -> None:
    cloud = cloud_of(org)
    cloud.set_member(STAGING_ID, listed=False)
    result = run(org, routed_deletion(STAGING_ID))
    assert result.outcome is Outcome.IGNORED and "not a member" in result.reason
    assert not revoked_in(cloud)


def test_a_denied_member_is_partial_with_the_code_and_retried(org: Harness) -> None:
    cloud = cloud_of(org)
    with pytest.raises(RetryableInvocationError) as raised:
        run(org, routed_deletion(SANDBOX_ID))
    result = raised.value.result
    assert isinstance(result, RevocationResult)
    assert result.outcome is Outcome.PARTIAL and result.account_id == SANDBOX_ID
    assert "denied" in result.reason and "NoPermission" in result.reason
    (issue,) = result.clusters
    assert issue.error_code == "NoPermission"
    assert not revoked_in(cloud) and not ack_calls(cloud)


def test_a_wrong_external_id_is_denied(org: Harness) -> None:
    with pytest.raises(RetryableInvocationError) as raised:
        run(org, routed_deletion(PROD_ID), member_external_id="not-the-one")
    assert "NoPermission" in raised.value.result.reason
    assert "not-the-one" not in raised.value.result.model_dump_json()
    assert not revoked_in(cloud_of(org))


def test_the_blast_radius_limit_counts_every_account_of_a_batch(org: Harness) -> None:
    cloud = cloud_of(org)
    batch = b"[" + routed_deletion(PROD_ID) + b"," + routed_deletion(STAGING_ID) + b"]"
    result = run(org, batch, max_revocations=2)  # prod 2 + staging 1 = 3 pairs
    assert isinstance(result, BatchResult)
    assert result.outcome is Outcome.LIMIT_EXCEEDED
    assert not revoked_in(cloud)
    result = run(org, batch, max_revocations=3)
    assert result.outcome is Outcome.OK
    assert revoked_in(cloud) == {
        PROD_ID: {("c-prod-a", LEAVER), ("c-prod-b", LEAVER)},
        STAGING_ID: {("c-staging", STAGING_LEAVER)},
    }


def test_a_manual_invocation_names_its_account(org: Harness) -> None:
    cloud = cloud_of(org)
    manual = {
        "action": "revoke",
        "accountId": STAGING_ID,
        "principal": {"type": "RamUser", "name": "leaver"},
    }
    result = run(org, json.dumps(manual).encode())
    assert isinstance(result, RevocationResult)
    assert result.mode.value == "dry-run" and result.account_id == STAGING_ID
    assert result.counts["would-revoke"] == 1 and not revoked_in(cloud)
    manual["accountId"] = OUTSIDER_ID
    assert run(org, json.dumps(manual).encode()).outcome is Outcome.IGNORED


def test_one_throttled_member_does_not_slow_another(org: Harness) -> None:
    cloud = cloud_of(org)
    cloud.account(STAGING_ID).faults.set(None, FaultSpec(rate_limit_rps=1, rate_limit_scope="all"))
    runtime = org.runtime(**org_settings(mode="dry-run"))
    with pytest.raises(RetryableInvocationError):  # staging's quota: one request a second
        handle_event(routed_deletion(STAGING_ID), runtime=runtime)
    organization = runtime.organization
    assert organization is not None
    prod_result = handle_event(routed_deletion(PROD_ID), runtime=runtime)
    assert prod_result.outcome is Outcome.OK
    staging, prod = organization.scopes[STAGING_ID], organization.scopes[PROD_ID]
    assert staging.engine.client.rate_limiter is not prod.engine.client.rate_limiter
    assert staging.engine.client.stats.throttled > 0
    assert prod.engine.client.stats.throttled == 0


# --- the daily summary ---------------------------------------------------------------------------


def test_one_summary_for_the_organization(org: Harness) -> None:
    cloud = cloud_of(org)
    outcome = handle_summary({}, runtime=org.runtime(**org_settings()))
    report = outcome.report
    assert report is not None
    statuses = [(a.account_id, a.status.value) for a in report.accounts]
    assert statuses[0] == (SANDBOX_ID, "denied")  # what to fix today comes first
    assert dict(statuses) == {SANDBOX_ID: "denied", CENTRAL_ID: "ok", PROD_ID: "ok", STAGING_ID: "ok"}
    sections = {a.account_id: a for a in report.accounts}
    assert sections[SANDBOX_ID].error_code == "NoPermission"
    assert sections[PROD_ID].display_name == "prod" and sections[CENTRAL_ID].central
    assert report.accounts_mode == "resource-directory"
    assert set(report.by_account) == {CENTRAL_ID, PROD_ID, STAGING_ID}
    assert sum(c["orphaned"] for c in report.by_account.values()) == report.totals["orphaned"]
    assert {e.cloud_account_id for e in report.orphaned.items} >= {PROD_ID, STAGING_ID}
    # Each member reconciled with its own credentials, in its own clusters only.
    revoked = revoked_in(cloud)
    assert ("c-staging", STAGING_LEAVER) in revoked[STAGING_ID]
    assert ("c-prod-a", LEAVER) in revoked[PROD_ID]
    assert all(a.cloud_account_id for a in report.reconciliation.actions)  # type: ignore[union-attr]
    assert outcome.outcome is Outcome.PARTIAL and f"account {SANDBOX_ID} denied" in outcome.reason
    digest = render_markdown(report)
    assert digest.index("Accounts to fix today") < digest.index("Reconciliation")
    assert f"({SANDBOX_ID})" in digest and "account 1300000000000002" in digest
    assert f"account {SANDBOX_ID}" in outcome.html or SANDBOX_ID in outcome.html


def test_a_member_list_that_cannot_be_read_is_reported_and_the_central_account_still_scanned(
    org: Harness,
) -> None:
    cloud = cloud_of(org)
    cloud.resource_manager.faults.set(
        LIST_ACCOUNTS.name,
        FaultSpec(answer_status=403, answer_body='{"Code":"Forbidden.RAM","Message":"no"}'),
    )
    outcome = handle_summary({}, runtime=org.runtime(**org_settings()))
    report = outcome.report
    assert report is not None and report.directory_error is not None
    assert "Forbidden.RAM" in report.directory_error
    assert [a.account_id for a in report.accounts] == [CENTRAL_ID]
    assert report.clusters_scanned > 0 and outcome.outcome is Outcome.PARTIAL
    assert set(ack_calls(cloud)) == {CENTRAL_ID}


@pytest.mark.parametrize(
    "body",
    [
        '{"Accounts":{"Account":[{"AccountId":"not-an-id"}]},"TotalCount":1,"PageNumber":1,"PageSize":100}',
        '{"Accounts":{"Account":[]},"TotalCount":5,"PageNumber":1,"PageSize":100}',
        '{"Accounts":{"Account":[]},"TotalCount":1,"PageNumber":7,"PageSize":100}',
    ],
)
def test_a_hostile_member_list_guards_no_one_it_names(org: Harness, body: str) -> None:
    cloud = cloud_of(org)
    cloud.resource_manager.faults.set(LIST_ACCOUNTS.name, FaultSpec(answer_status=200, answer_body=body))
    outcome = handle_summary({"dryRun": True}, runtime=org.runtime(**org_settings()))
    assert outcome.report is not None and outcome.report.directory_error
    assert [a.account_id for a in outcome.report.accounts] == [CENTRAL_ID]
    assert not cloud.sessions()


# --- trust boundaries ----------------------------------------------------------------------------


def test_member_credentials_never_reach_a_result_or_a_log(
    org: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    cloud = cloud_of(org)
    caplog.set_level("DEBUG")
    runtime = org.runtime(**org_settings())
    result = handle_event(routed_deletion(PROD_ID), runtime=runtime)
    summary = handle_summary({"dryRun": True}, runtime=runtime)
    (session, *_) = cloud.sessions()
    shown = "\n".join(
        [
            result.model_dump_json(),
            summary.model_dump_json(),
            summary.report_json,
            summary.markdown,
            summary.html,
        ]
        + [r.getMessage() + str(r.__dict__) for r in caplog.records]
    )
    for secret in (session.access_key_secret, session.security_token, EXTERNAL_ID):
        assert secret not in shown


def test_a_display_name_from_the_directory_is_text_in_every_output(org: Harness) -> None:
    from kubeconfig_guard.inert import MARKDOWN, SLACK

    cloud = cloud_of(org)
    hostile = "<!channel> [prod](https://evil.example) <script>x</script>"
    cloud.set_member(SANDBOX_ID, display_name=hostile)
    summary = handle_summary({"dryRun": True}, runtime=org.runtime(**org_settings()))
    assert summary.report is not None
    assert any(a.display_name == hostile for a in summary.report.accounts)
    markdown = render_markdown(summary.report, dialect=MARKDOWN)
    assert "\\<!channel>" in markdown and "](https://evil.example)" not in markdown  # escaped: text
    slack = render_markdown(summary.report, dialect=SLACK)
    assert "<!channel>" not in slack and "<https://evil.example" not in slack
    assert "<script>" not in summary.html and "<!channel>" not in summary.html
