"""Rate limits (spec "速率限制"): 60 / 30 / 100 per minute per user, sliding, exact, 429 + Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conformance.reference import DEV_PRINCIPALS
from conformance.reference.ratelimit import FixedWindowLimiter, SlidingWindowLimiter

if TYPE_CHECKING:
    from conftest import Api, StartServer

ALICE, BOB = DEV_PRINCIPALS


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_the_limiter_admits_exactly_the_limit_per_sliding_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(lambda group: 3, 10.0, clock)
    assert [limiter.admit("a", "chat") for _ in range(3)] == [None, None, None]
    assert limiter.admit("a", "chat") == 10
    clock.advance(4)
    assert limiter.admit("a", "chat") == 6  # the oldest admission frees a slot in 6 s
    clock.advance(5.5)
    assert limiter.admit("a", "chat") == 1  # 0.5 s left, rounded up to whole seconds
    clock.advance(0.5)
    # Exactly one window after the burst all three slots are free again (refusals
    # took none of them).
    assert [limiter.admit("a", "chat") for _ in range(4)] == [None, None, None, 10]
    # Other principals and other groups have their own windows.
    assert limiter.admit("b", "chat") is None
    assert limiter.admit("a", "info") is None


def test_the_window_slides_rather_than_resetting() -> None:
    """A fixed minute bucket would admit 2 x limit around a bucket edge; a sliding window never does."""
    clock = FakeClock()
    limiter = SlidingWindowLimiter(lambda group: 4, 60.0, clock)
    admitted: list[float] = []
    for _ in range(240):  # one request every 0.5 s for two minutes
        if limiter.admit("a", "chat") is None:
            admitted.append(clock.now)
        clock.advance(0.5)
    for t in admitted:
        assert sum(1 for u in admitted if t - 60 < u <= t) <= 4
    assert len(admitted) == 8


def test_the_fixed_window_resets_at_multiples_of_the_window() -> None:
    """rate_algorithm="fixed": a count per [k * window, (k + 1) * window), up to 2 x limit at an edge."""
    clock = FakeClock()  # 1000.0: the start of window 100 of 10 s
    limiter = FixedWindowLimiter(lambda group: 3, 10.0, clock)
    clock.advance(9)
    assert [limiter.admit("a", "chat") for _ in range(4)] == [None, None, None, 1]
    clock.advance(1)  # 1010: a new window, a new count
    assert [limiter.admit("a", "chat") for _ in range(4)] == [None, None, None, 10]
    assert limiter.admit("b", "chat") is None and limiter.admit("a", "info") is None


def test_release_gives_the_slot_back() -> None:
    """rate_count_errors=False: an admitted request's slot is returned, once, and only
    while it still counts (a past fixed window or an expired log entry is gone anyway)."""
    for kind in (SlidingWindowLimiter, FixedWindowLimiter):
        clock = FakeClock()
        limiter = kind(lambda group: 2, 10.0, clock)
        first = limiter.decide("a", "chat")
        assert first.admitted and limiter.decide("a", "chat").admitted
        refused = limiter.decide("a", "chat")
        assert not refused.admitted and refused.retry_after == 10
        limiter.release(first)
        limiter.release(refused)  # a refusal has no slot to give back
        assert limiter.admit("a", "chat") is None
        assert limiter.admit("a", "chat") == 10
        clock.advance(10)
        stale = limiter.decide("a", "chat")
        clock.advance(10)
        limiter.release(stale)  # expired already: nothing changes
        assert [limiter.admit("a", "chat") for _ in range(3)] == [None, None, 10], kind.__name__


LIMITS = [
    pytest.param("chat", 60, id="chat-60"),
    pytest.param("management", 30, id="management-30"),
    pytest.param("info", 100, id="info-100"),
]


def group_request(group: str, api: Api, bot_id: int, conversation_id: str) -> Callable[[], httpx.Response]:
    """One cheap request of the group, with a body that is sometimes invalid (it still counts)."""
    client = api.client
    requests: dict[str, list[Callable[[], httpx.Response]]] = {
        "chat": [
            lambda: client.post("/v3/chat", json={"bot_id": str(bot_id), "user_id": "u"}),
            lambda: client.post("/v3/chat/cancel", json={"conversation_id": conversation_id}),
            lambda: client.post("/api/conversation/chat", json={"agent_id": bot_id, "query": "q"}),
            lambda: client.post("/v3/chat", content=b"{bad"),
        ],
        "management": [
            lambda: client.post("/api/draftbot/update_display_info", json={"bot_id": bot_id}),
            lambda: client.post("/api/draftbot/create", json={}),
        ],
        "info": [
            lambda: client.get(f"/v1/bots/{bot_id}"),
            lambda: client.get("/v1/bot/get_online_info", params={"bot_id": bot_id}),
            lambda: client.get("/v1/bots/x"),
        ],
    }
    options = requests[group]
    counter = iter(range(10**6))
    return lambda: options[next(counter) % len(options)]()


@pytest.mark.parametrize(("group", "limit"), LIMITS)
def test_an_exact_burst_at_the_documented_limit(
    start_server: StartServer, api_for: Callable[..., Api], group: str, limit: int
) -> None:
    """With a frozen clock: ``limit`` answers, then 429 until exactly one window has passed."""
    clock = FakeClock()
    server = start_server(clock=clock)
    alice, bob = api_for(server, ALICE), api_for(server, BOB)
    # Setting up costs requests too; start the burst one full window later.
    bot_id = alice.published_bot()
    conversation_id = alice.chat(bot_id)["conversation_id"]
    clock.advance(60)
    fire = group_request(group, alice, bot_id, conversation_id)
    statuses = [fire().status_code for _ in range(limit)]
    assert 429 not in statuses
    refused = fire()
    assert refused.status_code == 429
    assert refused.json() == {"code": 429, "msg": refused.json()["msg"], "data": None}
    assert refused.headers["retry-after"] == "60"
    clock.advance(59.5)
    assert fire().headers["retry-after"] == "1"
    # Another principal, and another group, are not limited by Alice's burst.
    assert group_request(group, bob, bot_id, conversation_id)().status_code != 429
    other = "info" if group != "info" else "chat"
    assert group_request(other, alice, bot_id, conversation_id)().status_code != 429
    clock.advance(0.5)  # exactly one window after the burst: all of it has expired
    assert [fire().status_code != 429 for _ in range(limit)] == [True] * limit
    assert fire().status_code == 429


def test_unauthenticated_requests_do_not_count(start_server: StartServer, api_for: Callable[..., Api]) -> None:
    server = start_server(clock=FakeClock(), info_limit=2)
    alice, anonymous = api_for(server, ALICE), api_for(server, headers={})
    for _ in range(5):
        assert anonymous.client.get("/v1/bots/1").status_code == 401
    assert [alice.client.get("/v1/bots/1").status_code for _ in range(3)] == [404, 404, 429]


def test_limits_and_window_are_configurable(start_server: StartServer, api_for: Callable[..., Api]) -> None:
    clock = FakeClock()
    server = start_server(clock=clock, management_limit=2, rate_window=5.0)
    alice = api_for(server)
    assert [alice.client.post("/api/draftbot/create", json={"name": "n"}).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    clock.advance(5)
    assert alice.client.post("/api/draftbot/create", json={"name": "n"}).status_code == 200


def test_limits_can_be_switched_off(start_server: StartServer, api_for: Callable[..., Api]) -> None:
    server = start_server(rate_limits=False, info_limit=1)
    alice = api_for(server)
    assert {alice.client.get("/v1/bots/1").status_code for _ in range(150)} == {404}


async def _burst(url: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    headers = {"Authorization": f"Bearer {ALICE.api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(*(client.get("/v1/bots/1") for _ in range(count)))
    return [r.status_code for r in responses]


@pytest.mark.slow
def test_200_concurrent_requests_on_the_real_clock_get_exactly_the_limit(
    start_server: StartServer, api_for: Any
) -> None:
    """Spec "Bot 信息 API 100 次/分钟/用户": of 200 simultaneous requests, exactly 100 pass."""
    server = start_server()
    statuses = asyncio.run(_burst(server.url, 200))
    assert len(statuses) == 200
    assert statuses.count(429) == 100
    assert set(statuses) == {404, 429}
