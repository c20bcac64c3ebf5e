"""The adaptive rate limiter: congestion lowers the rate, failures and rate-independent throttling do not.

The controller is driven by a deterministic simulation with an injected clock: a client
with an endless backlog sends at the limiter's pace (at most ``concurrency`` requests in
flight), an API answers after ``latency`` seconds, throttling with a token bucket and/or a
fixed share of 429s, and failing a share of requests with 5xx. One test runs the real
client against the fake ACK with the same faults.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from kubeconfig_guard.client import AckClient
from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.fake import FakeAck, FakeAckTransport, FaultSpec
from kubeconfig_guard.fake.faults import FaultInjector
from kubeconfig_guard.ratelimit import AdaptiveRateLimiter
from support.worlds import cluster, kc, settings, world


@dataclass
class Api:
    """What the simulated API does with a request sent at time ``t``."""

    limit_rps: float | None = None  # a token bucket (the API's undisclosed limit)
    burst: float = 5.0
    throttle_share: float = 0.0  # 429s whatever the rate (others exhausting the quota)
    failure_share: float = 0.0  # 5xx, resets, lost answers
    seed: int = 1
    tokens: float = field(init=False, default=0.0)
    updated: float = field(init=False, default=0.0)
    random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.random = random.Random(self.seed)

    def answer(self, t: float) -> str:
        if self.limit_rps is not None:
            self.tokens = min(self.burst, self.tokens + (t - self.updated) * self.limit_rps)
            self.updated = t
            if self.tokens < 1.0:
                return "throttled"
            self.tokens -= 1.0
        if self.random.random() < self.throttle_share:
            return "throttled"
        if self.random.random() < self.failure_share:
            return "failure"
        return "success"


@dataclass
class Run:
    sent: list[tuple[float, str]]  # (send time, outcome) of every request
    answers: dict[str, int]
    rates: list[tuple[float, float]]  # (time, limiter rate) at every send

    def sent_between(self, start: float, end: float) -> int:
        return sum(start <= t < end for t, _ in self.sent)

    def mean_rate(self, start: float, end: float) -> float:
        """The limiter's rate, averaged over the requests sent between start and end."""
        rates = [r for t, r in self.rates if start <= t < end]
        return sum(rates) / len(rates)

    def throttled_share(self, start: float, end: float) -> float:
        outcomes = [outcome for t, outcome in self.sent if start <= t < end]
        return outcomes.count("throttled") / max(1, len(outcomes))


def simulate(
    limiter: AdaptiveRateLimiter,
    now: list[float],
    api: Api,
    seconds: float,
    *,
    latency: float = 0.05,
    concurrency: int = 32,
) -> Run:
    """Drive ``limiter`` (whose clock reads ``now[0]``) with an endless backlog until ``seconds``."""
    pending: list[tuple[float, int, str]] = []  # (answer time, sequence, outcome)
    sequence = 0
    run = Run(sent=[], answers={"success": 0, "throttled": 0, "failure": 0}, rates=[])

    def deliver(until: float) -> None:
        while pending and pending[0][0] <= until:
            at, _, outcome = heapq.heappop(pending)
            now[0] = max(now[0], at)
            run.answers[outcome] += 1
            {"success": limiter.on_success, "throttled": limiter.on_throttled, "failure": limiter.on_failure}[
                outcome
            ]()

    while now[0] < seconds:
        if len(pending) >= concurrency:  # the concurrency cap: wait for an answer
            deliver(pending[0][0])
            continue
        generation = limiter.decreases
        slot = now[0] + limiter.reserve()
        deliver(slot)  # answers arriving while this request waits for its slot
        if limiter.decreases != generation:
            continue  # a decrease: the slot is booked again, as acquire() does
        now[0] = slot
        outcome = api.answer(slot)
        run.sent.append((slot, outcome))
        run.rates.append((slot, limiter.rate))
        sequence += 1
        heapq.heappush(pending, (slot + latency, sequence, outcome))
    deliver(float("inf"))
    return run


def limiter_at(max_rps: float = 500.0, **kw: Any) -> tuple[AdaptiveRateLimiter, list[float]]:
    now = [0.0]
    return AdaptiveRateLimiter(max_rps, clock=lambda: now[0], **kw), now


# --- congestion vs failure ---------------------------------------------------------------


def test_failures_never_lower_the_rate() -> None:
    limiter, now = limiter_at(200.0)
    for _ in range(300):
        now[0] += 0.01
        limiter.on_failure()  # 5xx, resets, timeouts
    assert limiter.rate == 50.0 and limiter.decreases == 0
    for _ in range(20):
        now[0] += 0.01
        limiter.on_success()
    assert limiter.rate == 200.0  # slow start went on through the failures


def test_a_cut_lands_under_the_accepted_rate_failures_included() -> None:
    """The accepted rate counts every answer the API served, failed ones included: with a
    third of the answers failing, the cut lands near what the API accepted (40/s), not
    near the successes alone (~27/s)."""
    limiter, now = limiter_at(100.0)
    for i in range(80):  # 40 answers a second for two seconds, one in three failed
        now[0] += 1 / 40
        (limiter.on_failure if i % 3 == 0 else limiter.on_success)()
    assert not limiter.slow_start
    limiter.on_throttled()
    assert limiter.decreases == 1
    assert 34 <= limiter.rate <= 38  # 0.9x the 40/s accepted


def test_sustained_failures_leave_the_rate_at_the_ceiling() -> None:
    limiter, now = limiter_at(200.0)
    run = simulate(limiter, now, Api(failure_share=0.35), 10.0)
    assert run.answers["failure"] > 0.3 * len(run.sent)
    assert limiter.decreases == 0 and limiter.rate == 200.0
    assert run.sent_between(5, 10) >= 0.95 * 5 * 200


def test_a_congestion_cut_stands() -> None:
    """A token bucket stops throttling once the client slows down: every cut stands and no
    background share is learned, with or without failures besides."""
    for failures in (0.0, 0.25):
        limiter, now = limiter_at(500.0)
        simulate(limiter, now, Api(limit_rps=40.0, failure_share=failures), 30.0)
        assert limiter.decreases >= 2
        assert limiter.background == 0.0 and limiter.restores == 0
        assert 28 <= limiter.rate <= 45


# --- throttling that does not fall when the rate falls ---------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_rate_independent_429s_settle_far_above_the_floor(seed: int) -> None:
    """10 % of the answers are 429 whatever the rate (others using the quota): the limiter
    learns that share as background and keeps its rate, instead of cutting at every
    throttled answer down to min_rps."""
    limiter, now = limiter_at(200.0)
    run = simulate(limiter, now, Api(throttle_share=0.10, seed=seed), 30.0)
    assert limiter.restores >= 1
    assert 0.05 <= limiter.background <= 0.2
    assert run.mean_rate(20, 30) >= 0.9 * 200.0
    assert run.sent_between(20, 30) >= 0.8 * 10 * 200  # throughput, not just the rate


@pytest.mark.parametrize("share", [0.03, 0.3])
def test_small_and_large_rate_independent_shares_settle_too(share: float) -> None:
    limiter, now = limiter_at(200.0)
    run = simulate(limiter, now, Api(throttle_share=share, seed=9), 30.0)
    assert share / 2 <= limiter.background <= share * 1.5
    assert run.sent_between(20, 30) >= 0.8 * 10 * 200


def test_rate_independent_429s_and_failures_together() -> None:
    """The issue's bad day: 10 % throttled whatever the rate and 25 % failed (5xx, lost)."""
    limiter, now = limiter_at(500.0)
    run = simulate(limiter, now, Api(throttle_share=0.10, failure_share=0.25, seed=7), 30.0, latency=0.02)
    assert run.answers["failure"] > 0.2 * len(run.sent)
    assert limiter.restores >= 1
    assert run.mean_rate(20, 30) >= 0.9 * 500.0
    assert run.sent_between(20, 30) >= 0.8 * 10 * 500


def test_a_limit_on_top_of_background_throttling_is_still_found() -> None:
    """Background 429s do not blind the limiter to a real limit: it settles near 40/s,
    neither far above it nor dragged to the floor."""
    limiter, now = limiter_at(500.0)
    run = simulate(limiter, now, Api(limit_rps=40.0, throttle_share=0.10, seed=3), 60.0)
    assert limiter.background > 0.0
    assert 25 <= run.sent_between(30, 60) / 30 <= 50
    assert run.throttled_share(30, 60) < 0.25


def test_a_background_that_goes_away_is_forgotten() -> None:
    """10 % background for 20 s, then only a token bucket at 40/s: the background is
    dropped and the limiter is back to plain congestion control."""
    limiter, now = limiter_at(500.0)
    simulate(limiter, now, Api(throttle_share=0.10, seed=4), 20.0)
    assert limiter.background > 0.0
    run = simulate(limiter, now, Api(limit_rps=40.0, seed=4), 60.0)
    assert limiter.background < 0.02
    assert run.throttled_share(40, 60) < 0.05
    assert 30 <= run.sent_between(40, 60) / 20 <= 42


# --- a real token bucket: the benchmark's targets, in simulated time ---------------------


@pytest.mark.parametrize(("latency", "seed"), [(0.05, 1), (0.05, 2), (0.3, 3)])
def test_token_bucket_at_an_undisclosed_40_rps_converges(latency: float, seed: int) -> None:
    limiter, now = limiter_at(500.0)
    run = simulate(limiter, now, Api(limit_rps=40.0, burst=5.0, seed=seed), 25.0, latency=latency)
    sent, throttled = len(run.sent), run.answers["throttled"]
    assert throttled < 0.05 * sent
    assert 25.0 * 40.0 / (sent - throttled) <= 1.25  # the calls served, within 1.25x of calls / rate
    assert limiter.restores == 0 and limiter.background == 0.0
    assert 32 <= run.sent_between(10, 25) / 15 <= 42


def test_slow_start_overshoot_is_cut_again_until_throttling_stops() -> None:
    """Slow start overshoots a 10/s limit fourfold; the first cut is not deep enough and is
    followed at once by another, never taken for background throttling."""
    limiter, now = limiter_at(500.0)
    run = simulate(limiter, now, Api(limit_rps=10.0, burst=2.0), 10.0)
    assert limiter.decreases >= 2 and limiter.restores == 0
    assert run.throttled_share(2, 10) < 0.05
    assert run.sent_between(2, 10) / 8 <= 11


# --- the real client against the fake ----------------------------------------------------


def test_the_fake_throttles_a_share_of_requests_whatever_the_rate() -> None:
    """FaultSpec.throttle_rate: a seeded share of the requests throttled (429
    Throttling.User on the wire), with no token bucket behind it: the share does not depend
    on the request rate."""
    injector = FaultInjector(seed=5)
    injector.set(None, FaultSpec(throttle_rate=0.10))
    decisions = [injector.decide("ListClusterKubeconfigStates") for _ in range(4000)]
    share = sum(d.throttled for d in decisions) / len(decisions)
    assert 0.08 <= share <= 0.12 and injector.counts["throttled"] == sum(d.throttled for d in decisions)
    assert all(d.error_status is None for d in decisions if d.throttled)


def test_client_keeps_its_rate_under_5xx_and_rate_independent_throttling() -> None:
    """The real client, the fake over the in-process transport: 15 % 503/500 and 10 %
    Throttling.User whatever the rate. After 400 listings (~800 calls with the retries)
    the limiter is back at the rate it reaches without faults."""
    backend = FakeAck(world({"cn-hangzhou": [cluster(f"c{i}", kc(f"2{i:05d}", f"u{i}")) for i in range(40)]}))

    async def calls(faults: FaultSpec | None) -> AckClient:
        backend.faults.clear()
        if faults is not None:
            backend.faults.reseed(11)
            backend.faults.set(None, faults)
        client = AckClient(
            settings(cs_endpoint="http://127.0.0.1:1", max_rps=400.0, max_attempts=8, max_concurrency=8),
            StaticCredentials(from_environment_or_demo()),
            transport=FakeAckTransport(backend),
        )
        async with client:
            for _ in range(10):
                results = await asyncio.gather(
                    *(client.list_kubeconfig_states("cn-hangzhou", f"c{i}") for i in range(40)),
                    return_exceptions=True,
                )
                failed = [r for r in results if isinstance(r, BaseException)]
                assert not failed, failed[:1]
        return client

    clean = asyncio.run(calls(None)).rate_limiter
    faulty = asyncio.run(calls(FaultSpec(error_rate_5xx=0.15, throttle_rate=0.10)))
    assert faulty.stats.throttled > 30 and faulty.stats.server_errors > 30
    limiter = faulty.rate_limiter
    assert limiter.restores >= 1 and limiter.background > 0.0
    assert clean.rate == 400.0
    assert limiter.rate >= 0.5 * clean.rate


# --- issue 19: rate-independent 429s learned at the ceiling, short attempts alike -------------


def served_between(run: Run, start: float, end: float) -> int:
    return sum(start <= t < end and outcome != "throttled" for t, outcome in run.sent)


@pytest.mark.parametrize(("share", "failures"), [(0.10, 0.15), (0.20, 0.30)])
def test_short_attempts_under_rate_independent_429s_are_alike(share: float, failures: float) -> None:
    """The chaos runs' 10 s attempts (5 s of work) under rate-independent 429s scanned anywhere
    from 14 to 216 of 300 clusters: slow start ended at two throttled answers in a row and the
    share was then learned at a fraction of the ceiling, cut after cut. Over 10 seeded 5 s runs
    (20 ms per request, 32 in flight, the default ceiling) the slowest serves at least half the
    median's requests (three quarters here), and the median most of what the ceiling allows."""
    served = []
    for seed in range(1, 11):
        limiter, now = limiter_at(500.0)
        run = simulate(
            limiter, now, Api(throttle_share=share, failure_share=failures, seed=seed), 5.0, latency=0.02
        )
        served.append(served_between(run, 0, 5))
    median = sorted(served)[len(served) // 2]
    assert min(served) >= 0.75 * median, served  # the chaos target: half
    assert median >= 0.6 * 5 * 500 * (1 - share), served


def test_twice_the_chaos_faults_keep_the_rate_at_the_ceiling() -> None:
    """Twice the last chaos mode's faults (30 % failures, 20 % rate-independent 429s, 20 ms): after
    its first second the limiter sends at the ceiling, the 20 % learned as background, in every
    seeded run (the steady state; the first seconds are the test above's)."""
    for seed in range(1, 6):
        limiter, now = limiter_at(500.0)
        run = simulate(
            limiter, now, Api(throttle_share=0.20, failure_share=0.30, seed=seed), 30.0, latency=0.02
        )
        assert 0.1 <= limiter.background <= 0.35, seed
        assert run.sent_between(1, 30) >= 0.9 * 29 * 500, (seed, run.sent_between(1, 30))
        assert run.mean_rate(1, 30) >= 0.9 * 500, seed


def test_scattered_throttled_answers_do_not_end_slow_start() -> None:
    """Two throttled answers in a row (a 20 % background gives them every ~25 answers) leave slow
    start growing; most of the last 20 answers throttled (a limit overrun) end it."""
    limiter, now = limiter_at(500.0)
    for outcome in ["s"] * 5 + ["t", "t"] + ["s"] * 3:
        now[0] += 0.005
        (limiter.on_throttled if outcome == "t" else limiter.on_success)()
    assert limiter.slow_start and limiter.decreases == 0 and limiter.rate > 50.0
    for _ in range(10):
        now[0] += 0.005
        limiter.on_throttled()
    assert not limiter.slow_start and limiter.decreases == 1


def test_a_cut_on_a_lesser_sign_at_most_halves_the_rate_sent() -> None:
    """A throttled answer among the first few does not cut (cut then, the share before is known on
    too few answers, and a second cut must confirm the first, both at a fraction of the rate: the
    chaos runs' slow 10 s attempts); and once the window is full, one throttled answer among many
    cuts to no less than half the rate the requests were really sent at (not to 0.9x an accepted
    rate measured over a ramp's first tenth of a second: 20 answers "per 0.25 s", 80/s, which took
    a rate of 200 to 72)."""
    limiter, now = limiter_at(200.0)

    def answers(count: int) -> None:
        for _ in range(count):  # requests at 200/s, every answer accepted
            now[0] += 1 / 200
            limiter.reserve()
            limiter.on_success()

    answers(20)
    assert limiter.rate == 200.0 and not limiter.slow_start
    limiter.on_throttled()
    assert limiter.decreases == 0 and limiter.rate == 200.0
    answers(40)
    limiter.on_throttled()
    assert limiter.decreases == 1
    assert 100.0 <= limiter.rate <= 160.0


def test_a_share_that_falls_but_not_to_nothing_is_cut_again_before_it_is_believed() -> None:
    """The chaos runs' slow attempts after the first fixes: the first window held 24 % throttled
    answers (the cheapest answers come back first: errors before pages) where the API throttled
    8.5 % whatever the rate; the probe after the cut saw 7.5 %: a significant fall, so the cut
    stood at half the rate for the rest of the attempt. A share that falls but not to nothing,
    with no background known, is compared at a second, lower rate: the same share again is the
    background, and the rate goes back."""
    limiter, now = limiter_at(500.0)

    def answers(count: int, every: int, rate: float) -> None:
        """``count`` answers at ``rate`` per second, one in ``every`` throttled."""
        for i in range(count):
            now[0] += 1 / rate
            (limiter.on_throttled if i % every == every - 1 else limiter.on_success)()

    answers(49, 3, 250.0)  # a first window a third throttled
    assert limiter.decreases == 0
    now[0] += 0.004
    limiter.on_throttled()  # the first cut
    assert limiter.decreases == 1
    cut = limiter.rate
    answers(400, 12, 150.0)  # 8 % throttled, before and after a second cut
    assert limiter.decreases == 2 and limiter.restores == 1, (limiter.decreases, limiter.restores)
    # Back where it was before the first cut (not at the rate of the second cut's own series).
    assert limiter.rate == 500.0 > cut and 0.04 <= limiter.background <= 0.14, limiter.rate
