"""The rate-limit phase's machinery: a :class:`Probe` per group, :func:`send_probe`
(streams closed after their first event), :func:`run_burst`, and the pure verdict rules
(:func:`burst_verdict`, :func:`exact_findings`, :func:`retry_ready_at`) that
``test_ratelimit.py`` judges with."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from conformance.oracle.envelope_judge import error_event_code
from conformance.oracle.profile import Profile
from conformance.run.pacing import WINDOW_MARGIN, Pacer, parse_retry_after
from conformance.transport.client import NO_BODY, ApiClient, TransportError, parse_json


@dataclass(frozen=True)
class Probe:
    """One request of a rate-limit group that succeeds when admitted (READING
    "Rate-limit groups": whether 4xx answers count is not said, so a burst must be
    made of requests that would succeed)."""

    group: str
    method: str
    path: str
    json: Any = NO_BODY
    params: Mapping[str, str] | None = None
    stream: bool = False


#: What one request of a burst met: admitted, refused with the documented refusal, or
#: anything else (another status, no answer).
AttemptOutcome = Literal["admitted", "refused", "other"]


@dataclass(frozen=True)
class Attempt:
    """One request of a burst: when it left and was answered (epoch s), and what came."""

    index: int
    started: float
    answered: float
    outcome: AttemptOutcome
    status: int | None = None
    code: Any = None
    retry_after: str | None = None
    #: For a refusal: whether it is the envelope with the refusal code (RATE-004).
    envelope_ok: bool | None = None
    detail: str = ""


def _short(body: bytes | str, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= limit else text[:limit] + "..."


def _judge_body(status: int, body: bytes, refusal: int) -> tuple[AttemptOutcome, Any, bool | None]:
    try:
        data = parse_json(body)
    except ValueError:
        data = None
    code = data.get("code") if isinstance(data, dict) else None
    if status == refusal or (code == refusal and not isinstance(code, bool)):
        shaped = isinstance(data, dict) and code == refusal and isinstance(data.get("msg"), str)
        return "refused", code, bool(shaped and not isinstance(code, bool))
    if status < 400 and code == 0 and not isinstance(code, bool):
        return "admitted", code, None
    return "other", code, None


def send_probe(client: ApiClient, probe: Probe, index: int, profile: Profile) -> Attempt:
    """Send one probe and classify the answer. A stream is closed after its first event
    (a refusal may come as an error event first, READING "Errors on a streaming request");
    an answer that is not an event stream is read whole as an envelope."""
    from conformance.oracle.sse import SSEChecker

    refusal = profile.ratelimits.refusal_code
    started = time.time()
    try:
        if not probe.stream:
            answer = client.request(probe.method, probe.path, json=probe.json, params=probe.params)
            outcome, code, shaped = _judge_body(answer.status, answer.body, refusal)
            return Attempt(
                index, started, time.time(), outcome, answer.status, code,
                answer.headers.get("retry-after"), shaped, _short(answer.body),
            )
        media_type = str(profile.stream["media_type"])
        error_events = set(profile.stream["error_events"])
        with client.stream(probe.method, probe.path, json=probe.json, params=probe.params) as stream:
            retry_after = stream.headers.get("retry-after")
            if stream.media_type != media_type:
                body = stream.read_all()
                outcome, code, shaped = _judge_body(stream.status, body, refusal)
                return Attempt(index, started, time.time(), outcome, stream.status, code, retry_after, shaped, _short(body))
            checker = SSEChecker(stream.headers.get("content-type"), media_type)
            for chunk, t in stream.chunks():
                events = checker.feed(chunk, t)
                if events:
                    first = events[0]
                    if first.type in error_events:
                        code = error_event_code(first.data)
                        if code == refusal:
                            return Attempt(index, started, time.time(), "refused", stream.status, code, retry_after, True, _short(first.data))
                        return Attempt(index, started, time.time(), "other", stream.status, code, retry_after, None, _short(first.data))
                    outcome = "admitted" if stream.status < 400 else "other"
                    return Attempt(index, started, time.time(), outcome, stream.status, None, retry_after, None, first.type)
            outcome = "refused" if stream.status == refusal else "other"
            return Attempt(index, started, time.time(), outcome, stream.status, None, retry_after, False if outcome == "refused" else None, "event stream ended before its first event")
    except TransportError as exc:
        return Attempt(index, started, time.time(), "other", None, None, None, None, exc.reason)


@dataclass
class Burst:
    """Up to ``planned`` requests of one group, sent concurrently within ``budget_seconds``."""

    group: str
    limit: int
    planned: int
    budget_seconds: float
    started: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.attempts)

    @property
    def refusals(self) -> list[Attempt]:
        return sorted((a for a in self.attempts if a.outcome == "refused"), key=lambda a: a.answered)

    @property
    def admitted(self) -> int:
        return sum(1 for a in self.attempts if a.outcome == "admitted")

    @property
    def send_seconds(self) -> float:
        """From the first request's start to the last one's start."""
        return max((a.started for a in self.attempts), default=self.started) - self.started

    @property
    def span_seconds(self) -> float:
        """From the first request's start to the last answer."""
        return max((a.answered for a in self.attempts), default=self.started) - self.started

    def describe(self) -> str:
        counts = {o: sum(1 for a in self.attempts if a.outcome == o) for o in ("admitted", "refused", "other")}
        return (
            f"{self.group}: {self.sent} of {self.planned} requests sent in {self.send_seconds:.1f} s "
            f"(answered within {self.span_seconds:.1f} s): {counts['admitted']} admitted, "
            f"{counts['refused']} refused, {counts['other']} other"
        )


def run_burst(
    send: Callable[[int], Attempt],
    *,
    group: str,
    limit: int,
    planned: int,
    budget_seconds: float,
    workers: int,
    max_workers: int | None = None,
    stop_at_refusal: bool = True,
) -> Burst:
    """Send up to ``planned`` requests with ``workers`` threads, and more (up to
    ``max_workers``) while the burst falls behind the pace that sends them all within
    80 % of ``budget_seconds`` -- a server whose first event comes late holds every
    thread, and a burst spread over more than the budget proves nothing. No request
    starts after ``budget_seconds``; with ``stop_at_refusal`` none starts after the
    first refusal arrived (the verdict needs one, and every request may cost money)."""
    burst = Burst(group, limit, planned, budget_seconds, started=time.time())
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(planned))
    taken = [0]
    crashed: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if stop.is_set() or time.time() - burst.started > budget_seconds:
                    return
                index = next(counter, None)
                if index is not None:
                    taken[0] += 1
            if index is None:
                return
            try:
                attempt = send(index)
            except BaseException as exc:  # a suite bug: surface it in the test, not a thread
                crashed.append(exc)
                stop.set()
                return
            with lock:
                burst.attempts.append(attempt)
                if attempt.outcome == "refused" and stop_at_refusal:
                    stop.set()

    threads: list[threading.Thread] = []

    def spawn() -> None:
        thread = threading.Thread(target=work, name=f"burst-{group}-{len(threads)}", daemon=True)
        threads.append(thread)
        thread.start()

    for _ in range(max(1, workers)):
        spawn()
    ceiling = max(workers, max_workers or workers)
    while any(t.is_alive() for t in threads):
        time.sleep(BURST_TICK)
        elapsed = time.time() - burst.started
        with lock:
            started, done = taken[0], len(burst.attempts)
        if stop.is_set() or started >= planned or elapsed > budget_seconds:
            continue
        due = planned * min(1.0, elapsed / (BURST_PACE_SHARE * budget_seconds))
        idle = len([t for t in threads if t.is_alive()]) - (started - done)
        for _ in range(min(ceiling - len(threads), math.ceil(due - started) - max(0, idle))):
            spawn()
    for thread in threads:
        thread.join()
    if crashed:
        raise crashed[0]
    burst.attempts.sort(key=lambda a: a.started)
    return burst


#: How often a burst checks its pace, and the share of its budget it aims to be sent in.
BURST_TICK = 0.05
BURST_PACE_SHARE = 0.8


def in_parallel(*targets: Callable[[], None], count: int = 1, name: str = "phase") -> None:
    """Run every target ``count`` times, each in its own thread, and wait for all;
    the first exception of any thread is raised here."""
    crashed: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            crashed.append(exc)

    threads = [
        threading.Thread(target=guarded, args=(target,), name=f"{name}-{i}-{n}", daemon=True)
        for i, target in enumerate(targets)
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if crashed:
        raise crashed[0]


BurstVerdict = Literal["pass", "fail", "inconclusive"]


def burst_verdict(burst: Burst) -> BurstVerdict:
    """PASS when a refusal appeared; FAIL when none appeared among all the
    planned requests sent within the budget; inconclusive when they could not all be
    sent in time (a slow server is not a missing limiter). Never asserts that the
    first N succeed."""
    if burst.refusals:
        return "pass"
    if burst.sent >= burst.planned and burst.send_seconds <= burst.budget_seconds:
        return "fail"
    return "inconclusive"


@dataclass(frozen=True)
class ExactFindings:
    """--ratelimit-exact, after >= one idle window: at least N admitted (SHOULD), and a
    refusal within N * (floor(d / window) + 2) + 1 requests, d the burst's seconds."""

    admitted_at_least_limit: bool
    refused_within_bound: bool
    bound: int
    admitted: int
    #: requests with no readable answer (a deadline, a reset): each may have been admitted
    unanswered: int = 0


def exact_findings(burst: Burst, window: float) -> ExactFindings:
    # Order-free on purpose: concurrent requests reach the server in any order, so
    # "the first N" is read as "N were admitted" and "a 429 by request M" as "at most
    # M - 1 were admitted", both exact for a limiter that admits in arrival order.
    # The bound is a fixed-window limiter's, the loosest legal one (READING "Rate-limit
    # groups" leaves the algorithm open): a burst of d seconds touches at most
    # floor(d / window) + 2 of its windows, N each -- 2N for a burst across an edge. A
    # sliding window admits fewer (N + ceil(N * d / window)); telling the two apart
    # would need the server's clock.
    d = burst.span_seconds
    bound = burst.limit * (math.floor(d / window) + 2)
    return ExactFindings(
        admitted_at_least_limit=burst.admitted >= burst.limit,
        refused_within_bound=bool(burst.refusals) and burst.admitted <= bound,
        bound=bound + 1,
        admitted=burst.admitted,
        unanswered=sum(1 for a in burst.attempts if a.outcome == "other"),
    )


def retry_ready_at(burst: Burst, *, cap: float, window: float, margin: float = WINDOW_MARGIN) -> float | None:
    """When a request of this group must succeed again (epoch s), None without a
    refusal: every refusal's ``Retry-After`` honoured up to ``cap`` (the latest wins),
    or, when no refusal carried a readable one, one window after the burst's last
    request left (best practice 3; READING "Retry-After"); ``margin`` later either way
    (delay-seconds are whole: a server may round the true delay down)."""
    refusals = burst.refusals
    if not refusals:
        return None
    promised = [
        a.answered + min(delay, cap)
        for a in refusals
        if (delay := parse_retry_after(a.retry_after, a.answered)) is not None
    ]
    if promised:
        return max(promised) + margin
    return max(a.started for a in burst.attempts) + window + margin


def retry_again_at(refused: Attempt, *, cap: float, window: float, margin: float = WINDOW_MARGIN) -> float:
    """When to retry once more after a retry was refused: its ``Retry-After`` honoured
    up to ``cap``, else one window, ``margin`` later."""
    delay = parse_retry_after(refused.retry_after, refused.answered)
    return refused.answered + (window if delay is None else min(delay, cap)) + margin


def wait_until(when: float, *, sleep: Callable[[float], None] = time.sleep) -> float:
    """Sleep until epoch second ``when``; returns the seconds slept."""
    delay = max(0.0, when - time.time())
    if delay:
        sleep(delay)
    return delay


def idle_since(pacer: Pacer | None, principal: str, groups: Sequence[str]) -> float | None:
    """The epoch second of the principal's last paced send in any of ``groups``."""
    if pacer is None:
        return None
    sends = [t for g in groups if (t := pacer.last_send(principal, g)) is not None]
    return max(sends) if sends else None
