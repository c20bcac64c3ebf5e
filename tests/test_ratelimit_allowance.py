"""The rate limiter's initial allowance: slow start's first round of requests goes unpaced.

Driven like ``test_ratelimit.py``: an injected clock, and its simulator (an endless backlog,
32 requests in flight, an API answering after ``latency`` seconds through a token bucket and/or
a share of 429s).
"""

from __future__ import annotations

import pytest

from kubeconfig_guard.ratelimit import INITIAL_ALLOWANCE, AdaptiveRateLimiter
from test_ratelimit import Api, limiter_at, simulate


def test_the_first_round_goes_at_once_then_pacing_starts() -> None:
    """At t=0: the paced slot, then the allowance's requests, all without waiting; the next one
    waits for the starting rate's interval (50/s: 20 ms)."""
    limiter, _ = limiter_at(500.0)
    assert limiter.slow_start and limiter.allowance == INITIAL_ALLOWANCE == 12
    delays = [limiter.reserve() for _ in range(INITIAL_ALLOWANCE + 3)]
    assert delays[: INITIAL_ALLOWANCE + 1] == [0.0] * (INITIAL_ALLOWANCE + 1)
    assert delays[INITIAL_ALLOWANCE + 1 :] == pytest.approx([0.02, 0.04])
    assert limiter.unpaced == INITIAL_ALLOWANCE and limiter.allowance == 0


def test_what_is_left_serves_a_later_round() -> None:
    """The allowance is spent only when pacing would delay a request: three region listings at
    t=0 leave most of it for the clusters' listings once those answers are back."""
    limiter, now = limiter_at(500.0)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.allowance == INITIAL_ALLOWANCE - 2
    now[0] = 0.05
    for _ in range(3):
        limiter.on_success()
    assert limiter.rate == 110.0  # slow start grows on the answers as before
    assert [limiter.reserve() for _ in range(11)] == [0.0] * 11  # one paced, ten of the allowance
    assert limiter.allowance == 0 and limiter.reserve() > 0.0


def test_no_allowance_without_slow_start_and_at_most_a_tenth_of_a_second_of_the_ceiling() -> None:
    flat = AdaptiveRateLimiter(50.0, slow_start_rps=50.0, clock=lambda: 0.0)  # no slow start
    assert flat.allowance == 0
    assert [flat.reserve() for _ in range(3)] == pytest.approx([0.0, 0.02, 0.04])
    assert AdaptiveRateLimiter(60.0, clock=lambda: 0.0).allowance == 6  # 0.1 s of 60/s
    assert AdaptiveRateLimiter(500.0, initial_allowance=0, clock=lambda: 0.0).allowance == 0


def test_a_lone_throttled_answer_leaves_the_allowance_a_throttled_burst_ends_it() -> None:
    """A 429 among the region listings' answers (a share of 429s whatever the rate gives one in a
    third of the attempts) leaves the allowance to the clusters' listings; five of the burst's
    answers throttled (a bucket smaller than the round) end it, and pacing starts."""
    limiter, now = limiter_at(500.0)
    for _ in range(3):
        limiter.reserve()
    now[0] = 0.05
    limiter.on_throttled()
    limiter.on_success()
    limiter.on_success()
    assert limiter.allowance == INITIAL_ALLOWANCE - 2 and limiter.slow_start and limiter.decreases == 0
    assert [limiter.reserve() for _ in range(4)] == [0.0] * 4  # one paced, three of the allowance
    now[0] = 0.1
    for _ in range(4):
        limiter.on_throttled()
    assert limiter.burst_overrun and limiter.allowance == 0 and limiter.rate == 50.0
    assert limiter.slow_start and limiter.decreases == 0  # the burst's answers never end slow start
    assert limiter.reserve() == 0.0 and limiter.reserve() == pytest.approx(0.02)  # paced from here on


def test_a_wholly_accepted_round_speeds_slow_start_up() -> None:
    """No limit: the round's answers take the rate to 50 + 12 x 20 = 290/s one latency in, and
    the first 0.3 s send nearly twice what pacing from 50/s sends."""
    limiter, now = limiter_at(500.0)
    run = simulate(limiter, now, Api(), 0.0501)
    assert run.sent_between(0.0, 1e-9) == INITIAL_ALLOWANCE + 1
    assert limiter.rate >= 50.0 + 20.0 * INITIAL_ALLOWANCE and not limiter.burst_overrun
    fast, now = limiter_at(500.0)
    paced, now0 = limiter_at(500.0, initial_allowance=0)
    sent_fast = simulate(fast, now, Api(), 1.0).sent_between(0.0, 0.3)
    sent_paced = simulate(paced, now0, Api(), 1.0).sent_between(0.0, 0.3)
    assert sent_fast >= 1.6 * sent_paced, (sent_fast, sent_paced)


def test_a_burst_a_small_bucket_throttles_costs_its_own_throttled_answers_only() -> None:
    """A limit of 5/s with a bucket of 5: 8 of the first 13 requests are throttled. That says the
    bucket is smaller than the round, not what the rate is: slow start is not ended by them (a cut
    from 130/s on a 0.05 s accepted rate), it goes on from its starting rate, and finds the limit
    as it does without the allowance: the same rate afterwards, and the burst's throttled answers
    are (about) all it costs."""
    limiter, now = limiter_at(500.0)
    run = simulate(limiter, now, Api(limit_rps=5.0, burst=5.0), 0.0501)
    first = [outcome for t, outcome in run.sent if t == 0.0]
    assert len(first) == 13 and first.count("throttled") == 8
    assert limiter.burst_overrun and limiter.slow_start and limiter.decreases == 0
    assert limiter.rate == 50.0  # the round's 5 accepted answers did not grow it
    run = simulate(limiter, now, Api(limit_rps=5.0, burst=5.0), 10.0)  # the same API, on
    assert limiter.decreases >= 1 and limiter.restores == 0 and limiter.background == 0.0

    paced, now0 = limiter_at(500.0, initial_allowance=0)
    without = simulate(paced, now0, Api(limit_rps=5.0, burst=5.0), 10.0)
    full = simulate(*limiter_at(500.0), Api(limit_rps=5.0, burst=5.0), 10.0)
    assert full.answers["throttled"] <= without.answers["throttled"] + 8
    assert full.throttled_share(5, 10) < 0.05
    assert abs(full.sent_between(5, 10) - without.sent_between(5, 10)) <= 2
    assert full.sent_between(5, 10) / 5 <= 6.0


def test_the_benchmarks_bucket_still_converges_with_few_throttled_answers() -> None:
    """The rate-limited benchmark's API (40/s, a bucket of 5): the burst adds a few throttled
    answers to slow start's overshoot, inside the 5 % (the 0.3 s latency case is in
    test_ratelimit.py)."""
    full = simulate(*limiter_at(500.0), Api(limit_rps=40.0, burst=5.0), 25.0)
    paced = simulate(*limiter_at(500.0, initial_allowance=0), Api(limit_rps=40.0, burst=5.0), 25.0)
    assert full.answers["throttled"] <= paced.answers["throttled"] + INITIAL_ALLOWANCE
    assert full.answers["throttled"] < 0.05 * len(full.sent)
    assert 32 <= full.sent_between(10, 25) / 15 <= 42


def test_scattered_429s_in_the_round_do_not_send_slow_start_back() -> None:
    """Twice the chaos faults (20 % 429s whatever the rate, 30 % failures, 20 ms): the round's few
    throttled answers are not a bucket overrun, in none of 20 seeded runs."""
    for seed in range(1, 21):
        limiter, now = limiter_at(500.0)
        simulate(limiter, now, Api(throttle_share=0.20, failure_share=0.30, seed=seed), 0.5, latency=0.02)
        assert limiter.unpaced == INITIAL_ALLOWANCE and not limiter.burst_overrun, seed


def test_after_a_throttled_burst_the_first_cut_leaves_out_what_the_bucket_held() -> None:
    """The medium deletion's start against the rate-limited benchmark's API (40/s, a bucket of 5):
    three region listings, then the clusters' listings, 5 of the burst accepted and 6 throttled.
    The paced answers then come at 80/s, half of them throttled: slow start ends at a cut to
    0.9x the 40/s they were accepted at. Counted, the bucket's answers (8 in 0.05 s) made it 53/s,
    and 0.6 s more of throttling before the next cut (the benchmark's 2.5 % throttled went to 4 %)."""
    limiter, now = limiter_at(500.0)
    for _ in range(3):
        limiter.reserve()  # the region listings: one paced, two of the allowance
    now[0] = 0.05
    for _ in range(3):
        limiter.on_success()
    for _ in range(11):
        limiter.reserve()  # the clusters' listings: one paced, ten of the allowance
    assert limiter.allowance == 0 and limiter.unpaced == 12
    now[0] = 0.1
    for _ in range(5):
        limiter.on_success()  # what the bucket held
    for _ in range(6):
        now[0] += 0.001
        limiter.on_throttled()  # the rest of the burst
    assert limiter.burst_overrun and limiter.slow_start and limiter.rate == 50.0
    while limiter.decreases == 0:
        now[0] += 1 / 80
        limiter.on_success()
        now[0] += 1 / 80
        limiter.on_throttled()
    assert not limiter.slow_start and 34.0 <= limiter.rate <= 38.0
