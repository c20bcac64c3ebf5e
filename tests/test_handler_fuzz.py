"""Fuzzing the whole event handler: malformed input never raises and never revokes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeconfig_guard.errors import RetryableInvocationError
from kubeconfig_guard.events import RevocationRequest, parse_event
from kubeconfig_guard.fake import load_world
from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.results import BatchResult, RevocationResult
from support.events import sample
from support.harness import Harness, one_harness
from support.worlds import EXAMPLE_WORLD

SAMPLE = sample("ram-delete-user.json")
WORLD = load_world(EXAMPLE_WORLD)
WORLD_STATES = [k for r in WORLD.regions.values() for c in r.clusters for k in c.kubeconfigs]


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with one_harness() as h:  # examples/world.json, in-process
        h.runtime(regions=["cn-hangzhou", "ap-southeast-1"], mode="enforce")
        yield h


def mutate(draw: Any) -> bytes:
    event = json.loads(json.dumps(SAMPLE))
    path = draw(st.sampled_from([("data",), ("data", "requestParameters"), ("data", "userIdentity"), ()]))
    target = event
    for key in path:
        target = target[key]
    key = draw(st.sampled_from(["UserName", "eventName", "serviceName", "errorCode", "data", "type", "x"]))
    value = draw(
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=20),
            st.text(min_size=300, max_size=400),
            st.lists(st.integers(), max_size=3),
            st.just({"nested": {"deeper": [1, {"x": None}]}}),
            st.just("alice\u0000"),
        )
    )
    target[key] = value
    raw = json.dumps(event).encode()
    return raw[: draw(st.integers(min_value=0, max_value=len(raw)))] if draw(st.booleans()) else raw


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_handler_never_raises_or_revokes_on_malformed_input(harness: Harness, data: st.DataObject) -> None:
    raw = data.draw(st.one_of(st.binary(max_size=300), st.just(b"{}"), st.just(b"[{}, 1, null]")))
    if data.draw(st.booleans()):
        raw = mutate(data.draw)
    runtime = harness._runtimes[0]
    harness.backend.from_world(WORLD)  # alice (Deleted, revokable) is there to be wrongly revoked
    before = len(harness.backend.clean_calls)
    acted_on = [p for p in parse_event(raw) if isinstance(p, RevocationRequest)]
    try:
        result = handle_event(raw, None, runtime=runtime)
    except RetryableInvocationError:
        return
    assert isinstance(result, (RevocationResult, BatchResult))
    results = result.results if isinstance(result, BatchResult) else [result]
    for r in results:
        if r.outcome.value == "ignored":
            assert r.reason and not r.actions
    cleaned = harness.backend.clean_calls[before:]
    if not acted_on:
        assert not cleaned  # an event that does not parse into a request never reaches a Clean call
    else:
        # A mutation can still be a valid deletion; then only that principal's kubeconfigs go.
        names = {p.principal.name for p in acted_on} | {p.principal.uid for p in acted_on}
        for call in cleaned:
            states = [k for k in WORLD_STATES if k.account_id == call.uid]
            assert states and any(k.account_name in names or k.account_id in names for k in states)
