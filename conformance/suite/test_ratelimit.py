"""The rate-limit phase: spec "速率限制" and best practice 3 ("请求过于频繁,等待后重试").

Runs after every other test of the run (marker ``ratelimit``; the plugin sorts it last
in each process and ``conformance.run.barrier.PhaseBarrier`` holds it until every xdist
worker's other tests have finished), with the first principal and one ``user_id``.

For each rate-limit group of the profile (chat, management, info; READING "Rate-limit
groups") the three bursts run together: up to 2N + 1 requests (N the documented
limit) that would succeed if admitted, concurrently enough to be sent within 45 s
(three quarters of a shorter ``--rate-window``),
streams closed after their first event. A 429 in the envelope PASSes the group's
requirement; none among all 2N + 1 sent within that time FAILs it; not all sent in time is
inconclusive -- the test ERRORs with the measured send time (a slow server is not a
missing limiter). The first N succeeding is never asserted (READING "per user": earlier
requests of the run may count). Then one wait for all three groups -- each refusal's
``Retry-After`` honoured up to the profile's cap, else one window after the burst --
and one request per group must succeed again (BP-001).

``--ratelimit-exact`` first waits until the principal was idle one window, then adds
RATE-005 (at least N admitted, SHOULD), the bound on the 429 (at most
N * (floor(d / window) + 2) admitted, d the burst's seconds: a fixed window's, the
loosest legal limiter) and a retry per group as soon as its own wait is over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance.oracle.catalogue import load_catalogue
from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.run.barrier import BarrierResult, counts_for_barrier, install_barrier
from conformance.run.pacing import pacer_for, unpaced
from conformance.settings import Settings
from conformance.suite.helpers import Bot, chat_body
from conformance.suite.ratelimit_phase import (
    Attempt,
    Burst,
    Probe,
    burst_verdict,
    exact_findings,
    idle_since,
    in_parallel,
    retry_again_at,
    retry_ready_at,
    run_burst,
    send_probe,
    wait_until,
)
from conformance.transport.client import ApiClient

pytestmark = pytest.mark.ratelimit

#: The requirement each profile group's burst judges (catalogue RATE-001..003).
GROUP_REQUIREMENTS = {"chat": "RATE-001", "management": "RATE-002", "info": "RATE-003"}
ENVELOPE = "RATE-004"
RECOVERY = "BP-001"
EXACT_ADMITS = "RATE-005"
DEFAULT_REQUIREMENTS = (*GROUP_REQUIREMENTS.values(), ENVELOPE, RECOVERY)

#: The burst is sent within 45 s, well inside the documented 60 s window; against a
#: target with a shorter window (--rate-window), within this share of it. Only 2N + 1
#: requests sent within less than one window must meet a refusal from every legal
#: limiter: a fixed window admits N on each side of an edge, 2N in all, and requests
#: spread over more than one window may all be admitted (READING "Rate-limit groups").
BURST_SECONDS = 45.0
BURST_SHARE_OF_WINDOW = 0.75


def burst_seconds(window: float) -> float:
    """How long a burst may take to leave, for a target whose rate window is ``window``."""
    return min(BURST_SECONDS, BURST_SHARE_OF_WINDOW * window)
#: Concurrent requests per group to begin with: enough for 2N + 1 = 121 chats whose
#: first event takes 5 s to leave within 45 s (the burst stops at the first 429 anyway).
WORKERS = 16
#: ... and at most, when first events come later than that (pacer.run_burst adds threads
#: while a burst falls behind its pace): three groups at once stay within the client's
#: pool of 200 connections.
MAX_WORKERS = 64


class PhaseInconclusive(Exception):
    """A burst could not be sent in time: no verdict (an ERROR, not a FAIL: a slow server
    is not a missing limiter)."""


def _exact(config: pytest.Config) -> bool:
    from conformance.keys import SETTINGS_KEY

    return bool(getattr(config.stash[SETTINGS_KEY], "ratelimit_exact", False))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Counting starts at collection, before any test runs (idempotent; the plugin
    # may already have registered the barrier).
    install_barrier(metafunc.config)
    if "mode" not in metafunc.fixturenames:
        return
    if _exact(metafunc.config):
        # RATE-005 is declared only where it is judged, and only once the catalogue has it.
        extra = (EXACT_ADMITS,) if EXACT_ADMITS in load_catalogue() else ()
        param = pytest.param("exact", id="exact", marks=pytest.mark.requirement(*DEFAULT_REQUIREMENTS, *extra))
    else:
        param = pytest.param("default", id="default", marks=pytest.mark.requirement(*DEFAULT_REQUIREMENTS))
    metafunc.parametrize("mode", [param])


# --------------------------------------------------------------------------- probes


def probes(profile: Profile, bot: Bot, user_id: str) -> dict[str, Probe]:
    """One request per group that succeeds when admitted: a streamed chat with the
    published bot (a new conversation each), an update of that bot to the display
    values it has (a draft change nobody sees; only bot_id with --bot-id), and a read of
    its online info. Ids in the type each table gives (READING "Id types")."""
    update_body: dict[str, Any] = {"bot_id": bot.json_id}
    if bot.name:
        update_body.update(name=bot.name, description=bot.description, icon_url=bot.icon_url)
    by_endpoint = {
        "chat": Probe("chat", "POST", profile.endpoint("chat").path, json=chat_body(bot, user_id, "你好", stream=True), stream=True),
        "update": Probe("management", "POST", profile.endpoint("update").path, json=update_body),
        "online_info": Probe("info", "GET", profile.endpoint("online_info").path, params={"bot_id": bot.id}),
    }
    chosen = {}
    for group in profile.ratelimits.groups:
        probe = next((by_endpoint[e] for e in group.endpoints if e in by_endpoint), None)
        assert probe is not None and probe.group == group.name, f"no probe for rate-limit group {group.name!r}"
        chosen[group.name] = probe
    return chosen


def _bursts(client: ApiClient, profile: Profile, chosen: dict[str, Probe]) -> dict[str, Burst]:
    """The three bursts at once (each group's limit is its own)."""
    results: dict[str, Burst] = {}

    def burst_of(group: str) -> Callable[[], None]:
        limit = profile.ratelimits[group].limit
        probe = chosen[group]

        def run() -> None:
            results[group] = run_burst(
                lambda i: send_probe(client, probe, i, profile),
                group=group,
                limit=limit,
                planned=2 * limit + 1,
                budget_seconds=burst_seconds(profile.ratelimits.window_seconds),
                workers=WORKERS,
                max_workers=MAX_WORKERS,
            )

        return run

    in_parallel(*(burst_of(group) for group in chosen), name="bursts")
    return results


def _refusal_text(attempt: Attempt) -> str:
    ra = f", Retry-After {attempt.retry_after!r}" if attempt.retry_after is not None else ""
    return f"request {attempt.index + 1}: HTTP {attempt.status}, code {attempt.code!r}{ra}: {attempt.detail}"


# --------------------------------------------------------------------------- judging


def judge_burst(check: Checks, profile: Profile, burst: Burst) -> bool:
    """RATE-00x and RATE-004 for one group; False when the burst was inconclusive."""
    requirement = GROUP_REQUIREMENTS[burst.group]
    verdict = burst_verdict(burst)
    if verdict == "inconclusive":
        return False
    refusal = profile.ratelimits.refusal_code
    check(
        requirement,
        verdict == "pass",
        expected=f"a {refusal} among {burst.planned} requests sent within {burst.budget_seconds:g} s",
        actual=burst.describe(),
        soft=True,
    )
    refusals = burst.refusals
    if refusals:
        bad = [a for a in refusals if not a.envelope_ok]
        check(
            ENVELOPE,
            not bad,
            expected=f"every refusal the error envelope with code {refusal} (or an error event carrying it)",
            actual=_refusal_text(bad[0]) if bad else f"{len(refusals)} refusals, e.g. {_refusal_text(refusals[0])}",
            detail=burst.group,
            soft=True,
        )
    return True


def judge_exact(check: Checks, profile: Profile, burst: Burst, declared: frozenset[str]) -> None:
    found = exact_findings(burst, profile.ratelimits.window_seconds)
    check(
        GROUP_REQUIREMENTS[burst.group],
        found.refused_within_bound,
        expected=f"a 429 within {found.bound} requests (N * (floor(d / window) + 2) + 1, a fixed window's bound)",
        actual=burst.describe(),
        detail="--ratelimit-exact",
        soft=True,
    )
    if EXACT_ADMITS in declared and not found.admitted_at_least_limit and found.admitted + found.unanswered >= burst.limit:
        # Requests that got no readable answer may have been admitted: fewer than N known
        # admissions prove nothing then.
        check.skip(EXACT_ADMITS, f"{found.unanswered} requests got no readable answer: {burst.describe()}")
    elif EXACT_ADMITS in declared:
        check(
            EXACT_ADMITS,
            found.admitted_at_least_limit,
            expected=f"at least {burst.limit} admitted after an idle window",
            actual=burst.describe(),
            detail=burst.group,
        )


def judge_recovery(
    check: Checks,
    client: ApiClient,
    profile: Profile,
    chosen: dict[str, Probe],
    ready: dict[str, float],
    bursts: dict[str, Burst],
    *,
    together: bool,
) -> None:
    """BP-001: after the wait, one request per refused group succeeds. ``together``:
    one wait for all groups (the default run); else each group as soon as it may.

    A retry refused once more is waited out once more (its own Retry-After, else a
    window) before the verdict: a burst's requests still in flight when the first 429
    came may land after the promised instant and spend the slots it freed -- the
    suite's own requests, not the server's fault. A limiter that never lets the
    principal back in refuses both."""
    limits = profile.ratelimits
    cap = limits.retry_after_max_seconds
    order = sorted(ready, key=ready.__getitem__)
    if together:
        wait_until(max(ready.values()))
    for group in order:
        if not together:
            wait_until(ready[group])
        answer = send_probe(client, chosen[group], 0, profile)
        first = answer
        if answer.outcome == "refused":
            wait_until(retry_again_at(answer, cap=cap, window=limits.window_seconds))
            answer = send_probe(client, chosen[group], 1, profile)
        sent_after = answer.started - bursts[group].refusals[-1].answered
        refused_first = f" (the first retry, {first.started - bursts[group].refusals[-1].answered:.0f} s after it, was refused too)"
        check(
            RECOVERY,
            answer.outcome == "admitted",
            expected=f"admitted {sent_after:.0f} s after the last 429 (Retry-After honoured up to {cap:g} s, else one window)"
            + (refused_first if first is not answer else ""),
            actual=_refusal_text(answer),
            detail=group,
            soft=True,
        )


# --------------------------------------------------------------------------- the test


def test_rate_limits(
    mode: str,
    request: pytest.FixtureRequest,
    api: ApiClient,
    check: Checks,
    profile: Profile,
    published_bot: Bot,
    user_id: str,
    conformance_settings: Settings,
) -> None:
    barrier = install_barrier(request.config)
    expected = sum(1 for item in request.session.items if counts_for_barrier(item))
    idle = max(300.0, 3 * conformance_settings.stream_timeout)
    released: BarrierResult = barrier.wait(expected, idle_timeout=idle)
    barrier.mark_started(released)
    log = [f"barrier {released.describe()}"]

    client = unpaced(api)
    limits = profile.ratelimits
    if mode == "exact":
        last = idle_since(pacer_for(request.config), api.principal.label, [g.name for g in limits.groups])
        wait_until((last if last is not None else time.time()) + limits.window_seconds + 1)
    chosen = probes(profile, published_bot, user_id)
    bursts = _bursts(client, profile, chosen)
    log += [burst.describe() for burst in bursts.values()]

    inconclusive = [b for b in bursts.values() if not judge_burst(check, profile, b)]
    if mode == "exact":
        declared = frozenset(m for mark in request.node.iter_markers("requirement") for m in mark.args)
        for burst in bursts.values():
            if burst not in inconclusive:
                judge_exact(check, profile, burst, declared)

    ready = {
        group: when
        for group, burst in bursts.items()
        if (when := retry_ready_at(burst, cap=limits.retry_after_max_seconds, window=limits.window_seconds)) is not None
    }
    for group in sorted(set(bursts) - set(ready)):
        check.skip(RECOVERY, f"no 429 in the {group} burst to recover from")
    if ready:
        log.append(f"waiting up to {max(ready.values()) - time.time():.0f} s for the retries (BP-001)")
        judge_recovery(check, client, profile, chosen, ready, bursts, together=mode != "exact")
    request.node.add_report_section("call", "rate-limit phase", "\n".join(log))

    if inconclusive:
        raise PhaseInconclusive(
            "rate-limit phase inconclusive: "
            + "; ".join(
                f"{b.describe()} -- not all {b.planned} requests could be sent within {b.budget_seconds:g} s"
                for b in inconclusive
            )
        )

