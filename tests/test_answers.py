"""Answers that are not what the API docs say they are (review findings 6, 7 and 9).

6. An error served with HTTP 200, or an empty body, is never success: not an empty listing, not a
   revocation. 7. The error mapping fails closed: the common client errors are ``failed`` with
   their code, only an unclassified 4xx of a ``Force=false`` call is ``deferred``, and only
   ``ErrorClusterNotFound`` says the cluster is gone. 9. One odd field (a ``requestId`` that is
   an object) never erases the other results.

Every end-to-end test runs the real handler and client against the fake ACK, in-process and over
its real HTTP server (``make_harness``), and checks what the fake actually revoked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from kubeconfig_guard.engine import MAX_ROUNDS
from kubeconfig_guard.errors import (
    ERROR_FAMILIES,
    AckApiError,
    ErrorCategory,
    RetryableInvocationError,
    classify,
    error_family,
)
from kubeconfig_guard.fake import FakeAck, FakeAckError, FaultSpec
from kubeconfig_guard.handlers import handle_event, handle_summary
from kubeconfig_guard.redaction import register_secret
from kubeconfig_guard.results import ActionStatus, ClusterStatus, Outcome, RevocationResult
from support.events import delete_user, lock_user
from support.worlds import ACCOUNT, cluster, kc, world

DESCRIBE = "DescribeClustersV1"
LIST = "ListClusterKubeconfigStates"
CLEAN = "CleanClusterUserPermissions"
ALICE = "200000000000000101"
CONTEXT = SimpleNamespace(account_id=ACCOUNT, function=SimpleNamespace(timeout=300))
MAX_ATTEMPTS = 3  # support.worlds.settings
HTML_404 = "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"


def alice_world(state: str = "Deleted", clusters: int = 3) -> Any:
    """alice (revokable, in ``state``) and the root account on ``clusters`` clusters."""
    root = kc(ACCOUNT, "root", account_type="RootAccount", account_state="Active", revokable=False)
    return world(
        {
            "cn-hangzhou": [
                cluster(f"c{i}", kc(ALICE, "alice", account_state=state), root) for i in range(clusters)
            ]
        }
    )


def run(h: Any, event: bytes, **settings: Any) -> tuple[RevocationResult, bool]:
    """The event's result, and whether the handler asked Function Compute to retry it."""
    settings.setdefault("account_id", None)  # the context says which account is guarded
    try:
        result = handle_event(event, CONTEXT, runtime=h.runtime(**settings))
    except RetryableInvocationError as exc:
        assert isinstance(exc.result, RevocationResult)
        return exc.result, True
    assert isinstance(result, RevocationResult)
    return result, False


def revoked(h: Any) -> set[tuple[str, str]]:
    return {(r.cluster_id, r.uid) for r in h.backend.revocations}


def statuses(result: RevocationResult) -> set[tuple[str, str | None]]:
    return {(a.status.value, a.error_code) for a in result.actions}


def refuse_cleans(status: int, code: str) -> Any:
    def hook(backend: FakeAck, op: str, params: dict[str, str]) -> None:
        if op == CLEAN:
            raise FakeAckError(status, code, f"refused with {code}")

    return hook


# --- 6. an error served as success -------------------------------------------------------------

ERROR_BODY = json.dumps(
    {"code": "Forbidden.RAM", "message": "User not authorized to operate", "requestId": "R-200"}
)
NOT_A_LISTING = [
    (ERROR_BODY, "Forbidden.RAM"),
    ('{"Code": "InternalError", "Message": "PascalCase error", "RequestId": "R-2"}', "InternalError"),
    ("", "InvalidResponse.Empty"),
    ("{}", "InvalidResponse.Shape"),
    ("[]", "InvalidResponse.Shape"),
    ("not json", "InvalidResponse.NotJson"),
    ('{"code": 0}', "InvalidResponse.Shape"),  # an error code that is not text
]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        *NOT_A_LISTING,
        ('{"clusters": null, "page_info": {}}', "InvalidResponse.Shape"),
        ('{"clusters": [], "page_info": []}', "InvalidResponse.Shape"),
        ('{"clusters": []}', "InvalidResponse.Shape"),
    ],
)
def test_cluster_listing_answered_200_without_a_listing_fails_the_region(
    make_harness: Any, body: str, code: str
) -> None:
    h = make_harness(alice_world())
    h.backend.faults.set(DESCRIBE, FaultSpec(answer_status=200, answer_body=body))
    result, retry = run(h, delete_user())
    assert retry and result.needs_retry and result.outcome is Outcome.PARTIAL, result
    assert [(c.cluster_id, c.status, c.error_code) for c in result.clusters] == [
        ("*", ClusterStatus.FAILED, code)
    ]
    assert "no kubeconfig found" not in result.reason and not result.actions and not revoked(h)
    # A shape error (or a server error) is retried by the client, in every round the deadline
    # allows (engine.MAX_ROUNDS); an authorization error is not.
    assert h.backend.calls[DESCRIBE] == (1 if code == "Forbidden.RAM" else MAX_ATTEMPTS * MAX_ROUNDS)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        *NOT_A_LISTING,
        ('{"states": [], "page": null}', "InvalidResponse.Shape"),
        (
            '{"states": {}, "page": {"page_number": 1, "page_size": 50, "total_count": 0}}',
            "InvalidResponse.Shape",
        ),
        ('{"page": {"page_number": 1, "page_size": 50, "total_count": 0}}', "InvalidResponse.Shape"),
    ],
)
def test_states_listing_answered_200_without_a_listing_fails_the_cluster(
    make_harness: Any, body: str, code: str
) -> None:
    h = make_harness(alice_world(clusters=2))
    h.backend.faults.set(LIST, FaultSpec(answer_status=200, answer_body=body))
    result, retry = run(h, delete_user())
    assert retry and result.needs_retry and result.outcome is Outcome.PARTIAL, result
    assert sorted((c.cluster_id, c.status, c.error_code) for c in result.clusters) == [
        ("c0", ClusterStatus.FAILED, code),
        ("c1", ClusterStatus.FAILED, code),
    ]
    assert all(code in c.reason and "no longer exists" not in c.reason for c in result.clusters)
    assert not result.actions and not revoked(h) and h.backend.calls[CLEAN] == 0


@pytest.mark.parametrize("applied", [False, True], ids=["refused", "applied"])
@pytest.mark.parametrize("force", [True, False], ids=["force", "no-force"])
def test_clean_answered_200_with_an_error_code_is_never_revoked(
    make_harness: Any, applied: bool, force: bool
) -> None:
    h = make_harness(alice_world(state="Deleted" if force else "InActive"))
    h.backend.faults.set(
        CLEAN, FaultSpec(answer_status=200, answer_body=ERROR_BODY, answer_after_apply=applied)
    )
    result, retry = run(h, delete_user() if force else lock_user("alice"))
    assert retry and result.needs_retry and result.outcome is Outcome.PARTIAL
    assert statuses(result) == {("failed", "Forbidden.RAM")}
    assert all(a.force is force and a.request_id == "R-200" for a in result.actions)
    assert all("not authorized" in a.reason for a in result.actions)
    # ACK said no: even when the fake did revoke behind the answer, nothing is reported revoked.
    assert len(revoked(h)) == (3 if applied else 0)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "InvalidResponse.Empty"),
        ("   ", "InvalidResponse.Empty"),
        ("[]", "InvalidResponse.Shape"),
        ("null", "InvalidResponse.Shape"),
        ('"ok"', "InvalidResponse.Shape"),
        ("<html>ok</html>", "InvalidResponse.NotJson"),
    ],
)
def test_clean_answer_that_is_not_the_documented_object_is_not_a_revocation(
    make_harness: Any, body: str, code: str
) -> None:
    h = make_harness(alice_world())
    h.backend.faults.set(CLEAN, FaultSpec(answer_status=200, answer_body=body))
    result, retry = run(h, delete_user())
    assert retry and statuses(result) == {("failed", code)}
    assert all("retried by Function Compute" in a.reason for a in result.actions)
    assert not revoked(h)
    # Transient: the client's attempts, in every round (each after a fresh listing still shows it).
    assert h.backend.calls[CLEAN] == 3 * MAX_ATTEMPTS * MAX_ROUNDS
    # Function Compute's retry, once ACK answers as documented: revoked.
    h.backend.faults.clear()
    again, retry = run(h, delete_user())
    assert not retry and statuses(again) == {("revoked", None)} and len(revoked(h)) == 3


@pytest.mark.parametrize("body", ["", "[]", "not json"])
def test_clean_that_landed_behind_an_odd_answer_is_confirmed_by_a_fresh_listing(
    make_harness: Any, body: str
) -> None:
    h = make_harness(alice_world())
    h.backend.faults.set(CLEAN, FaultSpec(answer_status=200, answer_body=body, answer_after_apply=True))
    listings = h.backend.calls[LIST]
    result, retry = run(h, delete_user())
    assert not retry and {a.status for a in result.actions} == {ActionStatus.REVOKED}
    assert all(a.error_code and a.error_code.startswith("InvalidResponse.") for a in result.actions)
    assert all("a fresh listing confirms it" in a.reason for a in result.actions)
    assert len(revoked(h)) == 3 and h.backend.calls[LIST] > listings + 3  # listed, then confirmed


def test_clean_with_extra_keys_in_its_object_is_revoked(make_harness: Any) -> None:
    h = make_harness(alice_world())
    body = '{"request_id": "687C5BAA", "task_id": "clean-1", "code": null}'
    h.backend.faults.set(CLEAN, FaultSpec(answer_status=200, answer_body=body, answer_after_apply=True))
    result, retry = run(h, delete_user())
    assert not retry and statuses(result) == {("revoked", None)} and len(revoked(h)) == 3


# --- 7. the error mapping fails closed ---------------------------------------------------------

COMMON_CLIENT_ERRORS = [
    (400, "MissingSecurityToken"),
    (400, "InvalidSecurityToken.Expired"),
    (400, "InvalidTimeStamp.Expired"),
    (400, "InvalidTimeStamp.Format"),
    (400, "IllegalTimestamp"),
    (400, "SignatureNonceUsed"),
    (400, "SignatureDoesNotMatch"),
    (400, "IncompleteSignature"),
    (400, "InvalidSignatureMethod"),
    (400, "InvalidVersion"),
    (400, "NoSuchVersion"),
    (404, "InvalidAction.NotFound"),
    (403, "InvalidAction"),
    (404, "InvalidApi.NotFound"),
    (404, "InvalidProduct.NotFound"),
    (404, "InvalidProtocol.NeedSsl"),
    (400, "UnsupportedHTTPMethod"),
    (403, "UnsupportedHTTPMethod"),
    (400, "UnsupportedOperation"),
    (400, "UnsupportedParameter"),
    (400, "MissingParameter"),
    (400, "MissingClusterId"),
    (400, "InvalidParameter"),
    (400, "InvalidParameter.Format"),
    (400, "InvalidUid"),
    (400, "InvalidOwnerId"),
    (404, "EntityNotExist.Role"),
    (404, "EntityNotExist.User"),
    (404, "InvalidAccessKeyId.NotFound"),
    (400, "InvalidAccessKeyId.Inactive"),
    (403, "Forbidden.RAM"),
    (403, "Forbidden.RiskControl"),
    (403, "Forbedden.NotSupportRAM"),
    (403, "ActionUnauthorized"),
    (400, "NoPermission"),
    (403, "StatusForbidden"),
    (400, "InsufficientBalance"),
    (400, "Throttling.User"),  # throttling: failed (and retried), never deferred
]


@pytest.mark.parametrize(("status", "code"), COMMON_CLIENT_ERRORS)
def test_common_client_errors_of_a_force_false_clean_fail_with_their_code(
    make_harness: Any, status: int, code: str
) -> None:
    h = make_harness(alice_world(state="InActive", clusters=1))
    h.backend.hooks.append(refuse_cleans(status, code))
    result, retry = run(h, lock_user("alice"))
    assert retry and result.outcome is Outcome.PARTIAL
    assert statuses(result) == {("failed", code)}
    (action,) = result.actions
    assert action.force is False and action.reason.startswith(f"{code}: ") and "deferred" not in action.reason
    assert "no longer exists" not in action.reason and not revoked(h)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "ErrorKubeconfigInUse"),
        (400, "ErrorAuditLogUnavailable"),
        (409, "ErrorSomethingNew"),
        (404, "ErrorUserGone"),
    ],
)
def test_an_unclassified_refusal_of_a_force_false_clean_is_deferred_with_the_raw_code(
    make_harness: Any, status: int, code: str
) -> None:
    h = make_harness(alice_world(state="InActive", clusters=1))
    h.backend.hooks.append(refuse_cleans(status, code))
    result, retry = run(h, lock_user("alice"))
    assert not retry and result.outcome is Outcome.OK
    (action,) = result.actions
    assert (action.status, action.error_code, action.force) == (ActionStatus.DEFERRED, code, False)
    assert f"({code})" in action.reason and "Force=false" in action.reason and not revoked(h)


def test_an_unclassified_refusal_of_a_force_true_clean_fails(make_harness: Any) -> None:
    h = make_harness(alice_world(clusters=1))
    h.backend.hooks.append(refuse_cleans(400, "ErrorSomethingNew"))
    result, retry = run(h, delete_user())
    assert retry and statuses(result) == {("failed", "ErrorSomethingNew")} and not revoked(h)


def test_the_fakes_own_force_false_refusals_stay_deferred(make_harness: Any) -> None:
    """The fake's recent-access refusal (400 ErrorKubeconfigInUse) is an unclassified code: deferred."""
    w = world(
        {
            "cn-hangzhou": [
                cluster(
                    "c0", kc(ALICE, "alice", account_state="InActive", last_access="2026-11-24T09:00:00Z")
                ),
                cluster("c1", kc(ALICE, "alice", account_state="InActive"), audit_log=False),
            ]
        }
    )
    h = make_harness(w)
    result, retry = run(h, lock_user("alice"))
    assert not retry and {(a.cluster_id, a.status.value, a.error_code) for a in result.actions} == {
        ("c0", "deferred", "ErrorKubeconfigInUse"),
        ("c1", "deferred", "ErrorAuditLogUnavailable"),
    }


@pytest.mark.parametrize("kind", ["InvalidApi.NotFound", "InvalidAccessKeyId.NotFound", "html"])
def test_a_404_that_is_not_acks_cluster_not_found_fails_the_clean(make_harness: Any, kind: str) -> None:
    h = make_harness(alice_world(clusters=2))
    if kind == "html":
        h.backend.faults.set(
            CLEAN, FaultSpec(answer_status=404, answer_body=HTML_404, answer_content_type="text/html")
        )
    else:
        h.backend.hooks.append(refuse_cleans(404, kind))
    code = "HTTP404" if kind == "html" else kind
    result, retry = run(h, delete_user())
    assert retry and statuses(result) == {("failed", code)}
    assert all("no longer exists" not in a.reason for a in result.actions) and not revoked(h)


@pytest.mark.parametrize("kind", ["InvalidApi.NotFound", "html"])
def test_a_404_that_is_not_acks_cluster_not_found_fails_the_listing(make_harness: Any, kind: str) -> None:
    h = make_harness(alice_world(clusters=2))
    if kind == "html":
        h.backend.faults.set(
            LIST, FaultSpec(answer_status=404, answer_body=HTML_404, answer_content_type="text/html")
        )
    else:
        h.backend.faults.set(
            LIST,
            FaultSpec(
                answer_status=404,
                answer_body='{"code": "InvalidApi.NotFound", "message": "Specified api is not found"}',
            ),
        )
    result, retry = run(h, delete_user())
    code = "HTTP404" if kind == "html" else kind
    assert retry and {(c.status, c.error_code) for c in result.clusters} == {(ClusterStatus.FAILED, code)}
    assert all("no longer exists" not in c.reason for c in result.clusters) and not result.actions


def test_only_error_cluster_not_found_says_the_cluster_is_gone(make_harness: Any) -> None:
    h = make_harness(alice_world(clusters=3))

    def delete_before(backend: FakeAck, op: str, params: dict[str, str]) -> None:
        if (op, params.get("ClusterId")) in ((CLEAN, "c0"), (LIST, "c1")):
            backend.delete_cluster(params["ClusterId"])

    h.backend.hooks.append(delete_before)
    result, retry = run(h, delete_user())
    assert not retry and result.outcome is Outcome.OK
    assert {(a.cluster_id, a.status.value, a.error_code) for a in result.actions} == {
        ("c0", "skipped", "ErrorClusterNotFound"),
        ("c2", "revoked", None),
    }
    assert "no longer exists" in next(a.reason for a in result.actions if a.cluster_id == "c0")
    assert [(c.cluster_id, c.status, c.error_code, c.reason) for c in result.clusters] == [
        ("c1", ClusterStatus.SKIPPED, "ErrorClusterNotFound", "the cluster no longer exists")
    ]


# --- 9. one odd answer never erases the others -------------------------------------------------

ODD_ERRORS = [
    {"code": "Forbidden.RAM", "message": "denied", "requestId": {"a": 1}},
    {"code": "Forbidden.RAM", "message": {"text": ["not", "text"]}, "requestId": [1, 2]},
    {"code": {"nested": True}, "message": 42, "requestId": None, "Code": ["x"]},
    {"code": "Forbidden.RAM\n\u202eevil", "message": "x" * 5000, "requestId": "y" * 5000},
]


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def executor_records() -> Iterator[list[logging.LogRecord]]:
    """The executor's log records (its loggers do not propagate to the root: caplog misses them)."""
    recorder = Recorder()
    logger = logging.getLogger("kubeconfig_guard.executor")
    logger.addHandler(recorder)
    try:
        yield recorder.records
    finally:
        logger.removeHandler(recorder)


def logged(records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    return sorted(
        (r.getMessage(), r.fields["cluster_id"])  # type: ignore[attr-defined]
        for r in records
        if r.getMessage().startswith("kubeconfig ")
    )


@pytest.mark.parametrize("body", ODD_ERRORS, ids=range(len(ODD_ERRORS)))
def test_an_error_with_odd_fields_fails_one_action_and_keeps_the_others(
    make_harness: Any, executor_records: list[logging.LogRecord], body: dict[str, Any]
) -> None:
    h = make_harness(alice_world(clusters=3))
    h.backend.faults.set(CLEAN, FaultSpec(answer_status=403, answer_body=json.dumps(body), answer_limit=1))
    result, retry = run(h, delete_user())
    assert retry and result.outcome is Outcome.PARTIAL and "internal error" not in result.reason
    assert sorted(a.status.value for a in result.actions) == ["failed", "revoked", "revoked"]
    (failed,) = [a for a in result.actions if a.status is ActionStatus.FAILED]
    for text in (failed.error_code, failed.request_id, failed.reason):
        assert isinstance(text, str) and "\n" not in text and "\u202e" not in text
    assert len(failed.error_code or "") <= 100 and len(failed.request_id or "") <= 128
    assert len(revoked(h)) == 2 and {
        (a.cluster_id, a.uid) for a in result.actions if a.status.value == "revoked"
    } == revoked(h)
    assert logged(executor_records) == sorted(
        [("kubeconfig failed", failed.cluster_id)] + [("kubeconfig revoked", c) for c, _ in revoked(h)]
    )


def test_an_error_with_an_object_request_id_keeps_the_daily_summary_report(make_harness: Any) -> None:
    h = make_harness(alice_world(clusters=3))
    body = json.dumps({"code": "Forbidden.RAM", "message": "denied", "requestId": {"a": 1}})
    h.backend.faults.set(CLEAN, FaultSpec(answer_status=403, answer_body=body, answer_limit=1))
    rt = h.runtime(account_id=None)
    outcome = handle_summary(None, CONTEXT, runtime=rt)
    assert outcome.report is not None and outcome.report.reconciliation is not None
    actions = outcome.report.reconciliation.actions
    assert sorted(a.status.value for a in actions) == ["failed", "revoked", "revoked"]
    (failed,) = [a for a in actions if a.status is ActionStatus.FAILED]
    assert failed.error_code == "Forbidden.RAM" and isinstance(failed.request_id, str)
    assert len(revoked(h)) == 2 and outcome.report_json and outcome.markdown


# --- the classification and the error's fields (no wire) ---------------------------------------


@pytest.mark.parametrize(("status", "code"), COMMON_CLIENT_ERRORS)
def test_every_common_client_error_is_classified(status: int, code: str) -> None:
    error = AckApiError(status=status, code=code, message="m")
    assert error.category in (ErrorCategory.AUTH, ErrorCategory.REQUEST, ErrorCategory.THROTTLED), code
    assert not error.deferrable(force=False) and not error.not_found


def test_the_families_are_sourced_and_cluster_gone_is_one_code() -> None:
    assert all(family.source for family in ERROR_FAMILIES)
    gone = [f for f in ERROR_FAMILIES if f.category is ErrorCategory.CLUSTER_GONE]
    assert [(f.codes, f.prefixes) for f in gone] == [(("ErrorClusterNotFound",), ())]
    for status in (404, 400, 200):
        assert AckApiError(status=status, code="ErrorClusterNotFound", message="").not_found
    for code in ("HTTP404", "InvalidApi.NotFound", "InvalidAccessKeyId.NotFound", "ErrorNodePoolNotFound"):
        assert not AckApiError(status=404, code=code, message="").not_found
    # The longest match wins, whatever the case; kubeconfig-guard's own codes are not parameter errors.
    assert error_family("invalidresponse.shape").category is ErrorCategory.INVALID_RESPONSE
    assert error_family("InvalidSignatureMethod").name == "authentication"
    assert error_family("InvalidFoo").name == "parameter"
    assert classify("ErrorSomethingNew", 403) is ErrorCategory.AUTH
    assert classify("ErrorSomethingNew", 429) is ErrorCategory.THROTTLED
    assert classify("ErrorSomethingNew", 400) is ErrorCategory.UNCLASSIFIED


def test_transient_and_may_have_landed() -> None:
    def err(status: int, code: str) -> AckApiError:
        return AckApiError(status=status, code=code, message="")

    assert err(200, "InvalidResponse.Empty").transient and err(200, "InvalidResponse.Empty").may_have_landed
    assert err(0, "Transport.Timeout").may_have_landed and err(503, "ServiceUnavailable").may_have_landed
    assert err(200, "InternalError").transient and not err(200, "InternalError").may_have_landed
    assert err(200, "ErrorSomethingNew").transient and not err(200, "ErrorSomethingNew").may_have_landed
    assert not err(200, "Forbidden.RAM").transient and not err(400, "ErrorSomethingNew").transient


def test_error_fields_are_always_short_redacted_text() -> None:
    secret = "s3cr3t-value-0123456789"
    register_secret(secret)
    message = "x" * 490 + secret + "y" * 100  # the secret straddles the 500-character cut
    error = AckApiError(
        status=403,
        code={"a": 1},  # type: ignore[arg-type]
        message=message,
        request_id=["r"],  # type: ignore[arg-type]
        operation=7,  # type: ignore[arg-type]
    )
    assert (error.code, error.request_id, error.operation) == ("<dict>", "<list>", "<int>")
    assert len(error.message) <= 500 and secret[:6] not in error.message
    assert AckApiError(status=400, code=f"Bad{secret}", message="", request_id=secret).request_id == "***"
    assert secret not in str(AckApiError(status=400, code=f"Bad{secret}", message=secret))
    blank = AckApiError(status=400, code="  ", message=None, request_id="")  # type: ignore[arg-type]
    assert (blank.code, blank.message, blank.request_id) == ("Unknown", "", None)
