"""A client-side request-rate limiter that tells congestion from failure.

Requests are spaced at ``1/rate``. The rate starts low and grows fast (slow start)
until a limit is overrun or the ceiling is reached, then grows additively (at least 5 % a
second), so the client settles just under an undisclosed limit instead of hammering it.

Slow start ends at a limit overrun: at least half of the last 20 answers throttled.
Scattered throttled answers, even two in a row, are no sign: a share of rate-independent
429s gives them at any rate, and ending slow start on them would leave the client learning
that share at a fraction of its ceiling, where each probe takes seconds (issue 19: a 10 s
attempt then scanned anywhere from 14 to 216 of 300 clusters).

**The initial allowance.** Slow start begins with one round of requests sent without
pacing, as a TCP sender's initial window: up to ``INITIAL_ALLOWANCE`` (12; no more than a
tenth of a second of the ceiling, none without slow start) requests go at once, beside the
paced ones, whenever pacing would delay them. Pacing at the starting rate (50/s, 20 ms apart)
otherwise spread the first round over the first answers' wait: a small event's ~13 requests
(one region listing, its 10 clusters' listings, the Cleans) spent ~110 ms of its ~290 ms
waiting for slots, and a medium deletion's first ~0.3 s went at 10-13 requests per 100 ms.
12 covers the small event's round; a larger one buys little more (the medium deletion's
second round, 21 listings, is paced at the rate its first answers reached) and costs more
when a bucket throttles it. A burst the API throttled (below), or any cut, leaves the rest
unspent; a lone throttled answer does not (three region listings then lost it in 3 of 10
chaos attempts, 10 % of 429s whatever the rate).

The burst's answers (every answer up to the last unpaced request's, in the order they come
back) say what the API's *bucket* holds, not its rate, so they never end slow start. Accepted,
they grow the rate as any answer does (+20/s each): a round of 12 accepted within one latency
takes the rate to 290/s, about the 12 per 50 ms they were accepted at. When ``BURST_OVERRUN``
(5) of them are throttled (a bucket smaller than the round), the rate goes back to the starting
rate, the burst's later successes do not grow it, the accepted rate is measured from then on
(what the bucket held is no rate: counted, it set the first cut too high, 61/s under a 40/s
limit), and slow start finds the limit on the paced requests' answers, as it does without an
allowance. The burst then costs its own throttled answers (a bucket of 5: 8 of 13, and their
retries) and what the emptied bucket throttles of the paced requests sent before its answers
are back. Scattered 429s (a share whatever the rate) seldom throttle 5 of a round; when they
do, the cost is slow start from the starting rate, as without the allowance.

The client reports every answer: a success, a throttled answer (HTTP 429 /
``Throttling.*``) or a failure (5xx, reset, timeout, any other error). **Only throttled
answers lower the rate.** Failures are retried with back-off by the client and never
move it; they count as accepted: the *accepted rate* is every answer that was not
throttled, per second, over the last ``window`` (since the last change of regime).

**A cut is an experiment.** A throttled answer cuts the rate by at least 20 %, to 0.9x
the accepted rate (once per ``cooldown``: answers already in flight say nothing new), but
on a lesser sign than most answers throttled to no less than half the rate requests are
really sent at (the request slots of the last quarter second: the limiter's rate may be
above it when the concurrency cap or the CPU bounds the client, and the accepted rate lags
a ramp); a limit overrun may be cut down to the accepted rate however far below.
The cut starts a *probe* that asks: did lowering the rate lower the throttled share?
While it runs (``probe_seconds``, at least 20 answers) throttled answers do not cut
again (they are its data) and the rate grows back only to 0.95x the accepted rate.

- *Congestion* (the API's token bucket, or a quota other tools share at a steady pace)
  throttles the accepted rate, so a cut under it ends the throttling: the probe sees
  (next to) none, the cut stands, and AIMD settles just under the limit.
- Throttling that *does not depend on the rate* (other tools exhausting the account's
  quota at random moments, a fixed share of 429s) goes on after the cut. When the probes
  of a series of cuts see at least 3 throttled answers and a share not significantly
  lower than before the cut (a two-proportion z-test), that share is the API's
  *background*: the rate goes back to where it was before the series (cuts and probes
  less than ``series_seconds`` apart; slow start too) and the share is remembered.
  From then on a throttled answer cuts only when the recent share exceeds the
  background by two standard errors plus 1 %, so the client keeps the share the API
  grants instead of sinking to ``min_rps``; congestion on top of the background is
  still found (the share rises above it) and cut.

Until ``FIRST_CUT_ANSWERS`` answers have come back (the first of all), a throttled answer
cuts only when most answers are throttled: a cut then would be compared with a share known
on a few answers, so it would need a second cut to confirm it, both at a fraction of the
rate, which is most of a short attempt; with the window full, one cut and one probe decide.

The share before a cut out of slow start mixes many rates, so throttling that goes on
after it is compared at a second, lower rate before it may be called background (or,
with a background already known, compared with it). A probe whose share is clearly
higher than before, or more than half of at least 20 throttled, cuts again at once (the
cut was not deep enough): more than half of the answers throttled is congestion whatever
the probes say. That probe ended for being high, so the next one is compared with it
pooled with what it was compared with (alone it would make any share after it seem to
fall). Every comparison with the background counts the background's own error (the
answers it was measured on), and a background verdict adds the window before the cut to
the answers measured (it saw the same share). A probe whose share fell but not to
nothing, with no background known, is not believed yet: congestion on top of a background
looks like that, and so does a window before the cut that was high by chance (the first
answers to come back are the cheapest to make: errors before pages). A second cut compares
the share at a lower rate with that probe's: the same share again is the background, and
the rate goes back to where it was before the first cut. A probe that sees significantly less than
the background lowers it (a background that went away stops being tolerated).
``decreases``, ``restores`` and ``background`` say what happened.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

SHARE_SAMPLES = 50  # the throttled share is measured over at least this many answers
MIN_THROTTLED = 3  # throttled answers after cuts that say throttling went on
PROBE_MIN_ANSWERS = 20  # answers a probe needs before it may end
PROBE_MAX_ANSWERS = 200  # a probe ends after this many answers, whatever its duration
MAX_CUT = 0.8  # a cut lowers the rate by at least 20 %
CUT_TO_ACCEPTED = 0.9  # ... to this share of the accepted rate
PROBE_CEILING = 0.95  # during a probe the rate grows back to this share of the accepted rate
MAX_BACKGROUND = 0.5  # a larger share is congestion, whatever the probes say
BACKGROUND_ANSWERS = 500  # the background is a mean over at most this many answers (it may move)
FIRST_CUT_ANSWERS = 50  # the first cut on a lesser sign than a limit overrun waits for this many
SLOW_START_SAMPLE = 20  # slow start ends when, of the last this many answers, ...
SLOW_START_THROTTLED = 10  # ... at least this many were throttled (a limit overrun)
OVERRUN_THROTTLED = 10  # a probe more than half throttled on at least this many: a limit overrun
MIN_CUT = 0.5  # a cut on a lesser sign than most answers throttled at most halves the rate sent
RECENT_SECONDS = 0.25  # ... measured over the answers of this last fraction of a second
INITIAL_ALLOWANCE = 12  # slow start's first round: requests sent at once, without pacing
ALLOWANCE_SECONDS = 0.1  # ... at most this many seconds' worth of the ceiling
BURST_OVERRUN = 5  # at least this many of the burst's answers throttled: a bucket smaller than the burst

Verdict = Literal["overrun", "again", "partial", "background", "helped"]


def _z(share_a: float, n_a: int, share_b: float, n_b: int) -> float:
    """How many standard errors share a is above share b (a two-proportion z-test)."""
    if not n_a or not n_b:
        return 0.0
    pooled = (share_a * n_a + share_b * n_b) / (n_a + n_b)
    error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    if error == 0.0:
        return 0.0 if share_a == share_b else math.copysign(math.inf, share_a - share_b)
    return (share_a - share_b) / error


@dataclass
class _Probe:
    """The experiment following a cut: the answers that arrived after it."""

    start: float  # answers from here on were sent at the lowered rate
    end: float  # it ends here with enough answers (PROBE_MIN_ANSWERS) ...
    deadline: float  # ... and here in any case
    share_before: float  # the throttled share before the cut
    answers_before: int  # ... measured on this many answers
    ceiling: float  # the rate may grow back to this during the probe
    confirm: bool  # the share before is not to be trusted: throttling that goes on cuts again
    window_before: bool = True  # the share before is the window's at the cut (not an earlier probe's)
    deep: bool = False  # the cut was a limit overrun's
    answers: int = 0
    throttled: int = 0

    @property
    def share(self) -> float:
        return self.throttled / self.answers if self.answers else 0.0

    def verdict(
        self, now: float, pooled: tuple[int, int], background: float, background_answers: int
    ) -> Verdict | None:
        """``pooled``: (answers, throttled) of the series' earlier probes that saw next to no
        throttling; ``background``: the share already known not to depend on the rate, measured
        on ``background_answers`` (its own error counts in every comparison with it)."""
        n, t = self.answers, self.throttled
        if t >= OVERRUN_THROTTLED and n >= PROBE_MIN_ANSWERS and self.share > MAX_BACKGROUND:
            return "overrun"  # mostly throttled: a limit still overrun, the cut was not deep enough
        if n >= PROBE_MIN_ANSWERS and _z(self.share, n, self.share_before, self.answers_before) > 3.0:
            return "again"  # clearly more than before: not deep enough
        done = n >= PROBE_MAX_ANSWERS or (now >= self.end and n >= PROBE_MIN_ANSWERS) or now >= self.deadline
        if self.confirm:
            # The share before mixed many rates: throttling that goes on is compared at a
            # second, lower rate with the share seen at this one.
            if t >= MIN_THROTTLED and n >= PROBE_MIN_ANSWERS:
                if background > 0.0 and _z(self.share, n, background, background_answers) <= 2.0:
                    # Down to the known background: the cut helped if the share before was
                    # far above it (congestion); else it was the background's own noise.
                    far = _z(self.share_before, self.answers_before, background, background_answers) > 4.0
                    return "helped" if far else "background"
                return "again"
            return "helped" if done else None
        answers, throttled = n + pooled[0], t + pooled[1]
        fell = _z(self.share_before, self.answers_before, throttled / answers, answers) > 2.0
        if throttled >= MIN_THROTTLED and not fell and (n >= 2 * PROBE_MIN_ANSWERS or done):
            return "background"
        if (
            t >= MIN_THROTTLED
            and (n >= 2 * PROBE_MIN_ANSWERS or done)
            and not self.deep
            and background == 0.0
            and self.window_before
        ):
            # Fell, but not to nothing, with no background known: congestion on top of a
            # background, or a window before the cut that was high by chance (the first answers
            # to come back are the cheapest, errors more than pages). A second cut tells: this
            # share again at a lower rate is the background.
            return "partial"
        return "helped" if done else None


class AdaptiveRateLimiter:
    def __init__(
        self,
        max_rps: float,
        *,
        min_rps: float = 1.0,
        increase_per_second: float = 1.0,
        window_seconds: float = 2.0,
        cooldown_seconds: float = 0.3,
        probe_seconds: float = 3.0,
        series_seconds: float = 10.0,
        slow_start_rps: float = 50.0,
        initial_allowance: int = INITIAL_ALLOWANCE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rps = max_rps
        self.min_rps = min(min_rps, max_rps)
        # Slow start: begin low and grow fast (about doubling every 0.1 s of successes) until
        # the first throttled answer or the ceiling, so an undisclosed limit is not overrun
        # by a whole second of requests before the first feedback arrives.
        self.rate = min(max_rps, slow_start_rps)
        self.slow_start = self.rate < max_rps
        # The initial allowance: slow start's first round of requests is not paced (see above).
        self.allowance = min(initial_allowance, int(max_rps * ALLOWANCE_SECONDS)) if self.slow_start else 0
        self.unpaced = 0  # requests the allowance let through
        self.burst_overrun = False  # BURST_OVERRUN of the burst's answers were throttled
        self._start_rps = self.rate
        self._booked = 0  # request slots booked in all
        self._burst_answers = 0  # the first this many answers are the burst's (up to its last request)
        self._burst_throttled = 0  # ... of which this many were throttled
        self._increase = increase_per_second
        self._window = window_seconds
        self._cooldown = cooldown_seconds
        self._probe_seconds = probe_seconds
        self._series_seconds = series_seconds
        self._clock = clock
        self._next_slot = 0.0
        self._answers: deque[tuple[float, bool]] = deque()  # (time, throttled): the window
        self._sent: deque[float] = deque()  # the slots of the last RECENT_SECONDS
        self._first_slot = math.inf
        self._first_answer = math.inf
        self._seen = 0  # answers recorded in all
        self._probe: _Probe | None = None
        self._last_decrease = -1e9
        self._last_change = -1e9  # the last cut or restore: the accepted rate is measured since
        # A series: cuts and probe verdicts less than `series_seconds` apart. A background
        # verdict restores the state from before its first cut.
        self._series_last = -1e9
        self._before_series = (self.rate, self.slow_start)
        self._pooled = (0, 0)  # (answers, throttled) of the series' probes whose cut helped
        self.background = 0.0  # the throttled share found not to depend on the rate
        self._background_answers = 0  # ... measured on this many answers
        self.decreases = 0
        self.restores = 0  # series of cuts undone: throttling that did not fall with the rate

    # --- pacing ---------------------------------------------------------------------

    def reserve(self) -> float:
        """Book the next request slot; the seconds to wait for it (0: now)."""
        now = self._clock()
        slot = max(now, self._next_slot)
        self._booked += 1
        if slot > now and self.allowance > 0:
            # The initial allowance: a request of the first round goes now, beside the paced ones.
            self.allowance -= 1
            self.unpaced += 1
            self._burst_answers = self._booked
            slot = now
        else:
            self._next_slot = slot + 1.0 / self.rate
        sent = self._sent
        sent.append(slot)
        while sent[0] <= now - RECENT_SECONDS:
            sent.popleft()
        self._first_slot = min(self._first_slot, slot)
        return slot - now

    async def acquire(self) -> None:
        """Wait for this request's slot; a slot booked before a decrease is booked again."""
        while True:
            generation = self.decreases
            delay = self.reserve()
            if delay <= 0:
                return
            await asyncio.sleep(delay)
            if self.decreases == generation:
                return

    # --- feedback -------------------------------------------------------------------

    def on_success(self) -> None:
        """A successful answer: the rate may grow."""
        if self._record(self._clock(), throttled=False):
            return
        if self.slow_start:
            if self.burst_overrun and self._seen <= self._burst_answers:
                return  # an answer of a burst its bucket cut short: no sign of the rate
            self.rate = min(self.max_rps, self.rate + 20.0)
            self.slow_start = self.rate < self.max_rps
            return
        # Additive increase: about `increase_per_second` requests/s (at least 5 %) more per second.
        step = max(self._increase, 0.05 * self.rate)
        ceiling = self.max_rps if self._probe is None else self._probe.ceiling
        if self.rate < ceiling:
            self.rate = min(ceiling, self.rate + step / max(self.rate, 1.0))

    def on_failure(self) -> None:
        """An answer that failed for another reason than throttling (5xx, reset, timeout, any
        other error): the API was sent it, so it counts as accepted; it never lowers the rate."""
        self._record(self._clock(), throttled=False)

    def on_throttled(self) -> None:
        """A throttled answer: the rate is cut when this is congestion the client causes."""
        now = self._clock()
        if self._record(now, throttled=True) or self._probe is not None:
            return  # a verdict was just acted on, or a probe is collecting its data
        if now - self._last_decrease < self._cooldown:
            return  # one decrease per burst of throttled answers already in flight
        if self.slow_start and self._seen <= self._burst_answers:
            # An answer of the initial allowance's burst: what the API's bucket holds, no sign of
            # the rate. BURST_OVERRUN of them throttled (a bucket smaller than the burst): slow
            # start goes on from its starting rate.
            if self._burst_throttled >= BURST_OVERRUN:
                self.burst_overrun = True
                self.allowance = 0
                self.rate = min(self.rate, self._start_rps)
                self._last_change = now  # the accepted rate leaves out what the bucket held
            return
        if self.slow_start:
            # Slow start ends at a limit overrun: most recent answers throttled (after the burst's).
            # A share of rate-independent 429s (a fraction of the answers, scattered) is no sign of
            # a limit and is learned at a rate near the ceiling, where a probe takes a fraction of
            # a second.
            sample = min(SLOW_START_SAMPLE, self._seen - self._burst_answers)
            recent = itertools.islice(reversed(self._answers), sample)
            if sum(throttled for _, throttled in recent) < SLOW_START_THROTTLED:
                return
            self._decrease(now, deep=True)
            return
        if self.background > 0.0:
            n, share = self._share()
            b = self.background
            margin = 2.0 * math.sqrt(b * (1.0 - b) * (1.0 / n + 1.0 / self._background_answers)) + 0.01
            if share <= b + margin:
                return  # no more throttling than the background the API always shows
        n, share = self._share()
        if self.decreases == 0 and self._seen < FIRST_CUT_ANSWERS and share <= MAX_BACKGROUND:
            # The first answers of all: too few to compare a cut with (and the first to come back
            # are the cheapest to answer, errors more than pages). Cutting now would need a
            # second cut to confirm it, both at a fraction of the rate; the window fills first.
            return
        self._decrease(now, deep=share > MAX_BACKGROUND)

    # --- internals ------------------------------------------------------------------

    def _record(self, now: float, *, throttled: bool) -> bool:
        """Record one answer and act on the probe's verdict; True if the rate was set."""
        answers = self._answers
        if not answers:
            self._first_answer = min(self._first_answer, now)
        answers.append((now, throttled))
        self._seen += 1
        if throttled and self._seen <= self._burst_answers:
            self._burst_throttled += 1
        while len(answers) > SHARE_SAMPLES and answers[0][0] < now - self._window:
            answers.popleft()
        probe = self._probe
        if probe is None or now < probe.start:
            return False
        probe.answers += 1
        probe.throttled += throttled
        verdict = probe.verdict(now, self._pooled, self.background, self._background_answers)
        if verdict is None:
            return False
        self._probe = None
        self._series_last = now
        if verdict == "partial":
            # Compared with this probe alone (it ran its course: its share is not picked high).
            self._decrease(now, before=(probe.share, probe.answers), again=True)
            assert self._probe is not None
            self._probe.window_before = False
            return True
        if verdict in ("again", "overrun"):
            # The next probe compares with this one pooled with what it was compared with: this
            # one ended for being high, alone it would make anything after it seem to fall.
            n = probe.answers + probe.answers_before
            t = probe.throttled + round(probe.share_before * probe.answers_before)
            self._decrease(now, before=(t / n, n), again=True, deep=verdict == "overrun")
            return True
        if verdict == "helped":
            if probe.throttled >= MIN_THROTTLED:
                # The share fell significantly, to some throttling: a series of cuts ends here,
                # unless it fell from an earlier probe's share (which ended for being high, so
                # anything after it seems to fall): a background may still undo the series.
                if probe.window_before:
                    self._series_last = -1e9
            else:  # none or next to none: maybe a background too small to see yet
                n, t = self._pooled
                self._pooled = (n + probe.answers, t + probe.throttled)
            if _z(self.background, self._background_answers, probe.share, probe.answers) > 2.0:
                # Significantly less than the background: it went down (or away).
                self.background, self._background_answers = probe.share, probe.answers
            return False
        # Background: a weighted mean with what was known, and the rate from before the series.
        # The window before the cut saw the same share (it did not fall): it counts too (without
        # the throttled answer that set the cut off), unless it is an earlier probe's (which
        # ended for being high) or mixed slow start's rates.
        n, t = self._pooled
        n, t = n + probe.answers, t + probe.throttled
        if probe.window_before and not probe.confirm:
            n += probe.answers_before
            t += round(probe.share_before * probe.answers_before)
        known = self._background_answers if self.background else 0
        share = (self.background * known + t) / (known + n)
        self.background = min(share, MAX_BACKGROUND)
        self._background_answers = min(known + n, BACKGROUND_ANSWERS)
        self.restores += 1
        self._pooled = (0, 0)
        self._last_change = now
        self._series_last = -1e9  # the next cut starts a new series
        rate, slow_start = self._before_series
        if rate > self.rate:
            self.rate = rate
            self.slow_start = slow_start and rate < self.max_rps
        return True

    def _share(self) -> tuple[int, float]:
        """(answers, throttled share) over the window (at least the last few answers)."""
        n = len(self._answers)
        return n, (sum(t for _, t in self._answers) / n if n else 0.0)

    def _accepted_rate(self, now: float) -> float:
        """Answers that were not throttled per second over the window, since the last cut or
        restore (0: too few to tell). Over the time since then, not a fixed floor: right after a
        restore, or at the first answers, a floor would understate it many times."""
        since = max(now - self._window, self._last_change, self._first_answer)
        recent = sum(1 for t, throttled in self._answers if t >= since and not throttled)
        if recent < 4:
            return 0.0
        return recent / max(now - since, 0.05)

    def _sent_rate(self, now: float) -> float:
        """Requests per second sent over the last ``RECENT_SECONDS`` (the slots booked up to now):
        what the client really sends, which the limiter's rate only bounds (the concurrency cap
        or the CPU may hold it lower). Without slots booked, the answers' rate."""
        if self._sent:
            start, times = self._first_slot, list(self._sent)
        else:
            start, times = self._first_answer, [t for t, _ in self._answers]
        span = min(RECENT_SECONDS, now - start)
        if span <= 0.0:
            return self.rate
        return sum(1 for t in times if now - span <= t <= now) / span

    def _decrease(
        self, now: float, *, before: tuple[float, int] | None = None, again: bool = False, deep: bool = False
    ) -> None:
        """Cut the rate and start a probe; ``before``: the (share, answers) to compare with;
        ``deep``: most answers are throttled (a limit overrun), so the cut may go down to the
        accepted rate however far below; on a lesser sign it at most halves the rate (the
        accepted rate lags a ramp, and the throttling may not depend on the rate at all)."""
        if now - self._series_last > self._series_seconds and not again:
            self._before_series = (self.rate, self.slow_start)  # a new series
            self._pooled = (0, 0)
        self._series_last = now
        n, share = self._share()
        # A share measured across slow start, or on few answers, is confirmed by a second cut.
        confirm = before is None and (self.slow_start or n < SHARE_SAMPLES)
        share_before, answers_before = (share, n) if before is None else before
        if before is None and n > 1 and self._answers[-1][1]:
            # Without the throttled answer that set the cut off (picked for being throttled).
            share_before, answers_before = (share * n - 1) / (n - 1), n - 1
        accepted = self._accepted_rate(now)
        rate_before = self.rate
        target = CUT_TO_ACCEPTED * accepted if accepted else self.rate / 2
        rate = min(self.rate * MAX_CUT, target)
        if not deep:
            # The rate requests are sent at now (the limiter's rate may be above it: the
            # concurrency cap or the CPU bound the client), from the slots just booked.
            rate = max(rate, MIN_CUT * min(self.rate, self._sent_rate(now)))
        self.rate = max(self.min_rps, rate)
        self.slow_start = False
        self.allowance = 0
        self._last_decrease = self._last_change = now
        self.decreases += 1
        # Restart the schedule at the new rate: the API's bucket needs a moment to refill.
        self._next_slot = now + 1.0 / self.rate
        self._probe = _Probe(
            start=now + self._cooldown,
            end=now + self._cooldown + self._probe_seconds,
            deadline=now + self._cooldown + 3 * self._probe_seconds,
            share_before=share_before,
            answers_before=answers_before,
            ceiling=max(self.rate, min(rate_before, PROBE_CEILING * accepted)),
            confirm=confirm,
            window_before=before is None,
            deep=deep,
        )
