"""Rate limiting per principal and group (spec "速率限制").

The spec gives requests per minute per user for three groups: Chat API 60, Bot 管理
API 30, Bot 信息 API 100. The default limiter is a sliding log (one timestamp per
admitted request), which is exact: at any instant at most ``limit`` requests were
admitted in the last ``window`` seconds, which a fixed-bucket counter cannot promise at
a bucket edge. By default every authenticated request of a group counts, whatever its
answer (READING "Rate-limit groups": clients must pace as if every request counts).

The other legal limiters the suite must accept (READING rows "\"per user\" in
the rate-limit table", "Rate-limit groups" and "`Retry-After`") are knobs of
``ServerConfig`` (config.py): ``rate_algorithm`` (a fixed window aligned to multiples
of the window), ``rate_key`` (the chat group keyed by the body's ``user_id``),
``retry_after`` (seconds, an HTTP date or no header), ``rate_count_errors`` (whether a
4xx answer keeps its slot) and ``cancel_limited``.
"""

from __future__ import annotations

import email.utils
import json
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from .config import RateGroup, ServerConfig
from .responses import dumps

#: A limit no test reaches: the never-429 faults (faults/api.py) give their group this.
UNLIMITED = 2**62


@dataclass(frozen=True)
class Decision:
    """What a limiter said about one request.

    Admitted: ``wait`` is 0 and ``stamp`` is what :meth:`Limiter.release` takes back.
    Refused: ``wait`` is the exact seconds until the key may send again (> 0).
    """

    key: str
    group: RateGroup
    admitted: bool
    wait: float = 0.0
    stamp: float = 0.0

    @property
    def retry_after(self) -> int | None:
        """None when admitted, else the wait in whole seconds, rounded up, at least 1."""
        return None if self.admitted else max(1, math.ceil(self.wait))


class Limiter(ABC):
    """``decide`` is atomic (one lock), so a concurrent burst gets exactly ``limit`` admissions.

    ``key`` is whom the limit is counted for: the principal, or (``rate_key="user_id"``)
    the principal and the chat's ``user_id`` (:func:`rate_key`). ``sticky`` is the
    no-recovery fault (faults/api.py ``rate_no_recovery``): a key refused once in a group
    stays refused however long it waits.
    """

    def __init__(
        self,
        limit_for: Callable[[RateGroup], int],
        window: float,
        clock: Callable[[], float],
        *,
        sticky: bool = False,
    ) -> None:
        self._limit_for = limit_for
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._sticky = sticky
        self._stuck: set[tuple[str, RateGroup]] = set()

    def decide(self, key: str, group: RateGroup) -> Decision:
        """Record and admit one request, or refuse it (a refusal takes no slot)."""
        with self._lock:
            now = self._clock()
            if (key, group) in self._stuck:  # fault: no recovery after a 429
                return Decision(key, group, admitted=False, wait=self._window)
            wait, stamp = self._take((key, group), self._limit_for(group), now)
            if wait is None:
                return Decision(key, group, admitted=True, stamp=stamp)
            if self._sticky:
                self._stuck.add((key, group))
            return Decision(key, group, admitted=False, wait=wait)

    def admit(self, key: str, group: RateGroup) -> int | None:
        """:meth:`decide`, answered as None (admitted) or the Retry-After seconds."""
        return self.decide(key, group).retry_after

    def release(self, decision: Decision) -> None:
        """Give an admitted request's slot back (``rate_count_errors=False``)."""
        if decision.admitted:
            with self._lock:
                self._give_back((decision.key, decision.group), decision.stamp)

    @abstractmethod
    def _take(self, slot: tuple[str, RateGroup], limit: int, now: float) -> tuple[float | None, float]:
        """(None, stamp) when admitted and recorded, else (seconds until a slot frees, 0)."""

    @abstractmethod
    def _give_back(self, slot: tuple[str, RateGroup], stamp: float) -> None: ...


class SlidingWindowLimiter(Limiter):
    """At most ``limit`` admissions in any ``window`` seconds (a log of admission times)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._logs: dict[tuple[str, RateGroup], deque[float]] = {}

    def _take(self, slot: tuple[str, RateGroup], limit: int, now: float) -> tuple[float | None, float]:
        log = self._logs.setdefault(slot, deque())
        while log and log[0] <= now - self._window:
            log.popleft()
        if len(log) >= limit:
            return log[0] + self._window - now, 0.0
        log.append(now)
        return None, now

    def _give_back(self, slot: tuple[str, RateGroup], stamp: float) -> None:
        log = self._logs.get(slot)
        if log is not None and stamp in log:  # already expired: nothing to give back
            log.remove(stamp)


class FixedWindowLimiter(Limiter):
    """At most ``limit`` admissions per window, the windows aligned to multiples of
    ``window`` on the clock; a window's count starts again at 0 at its end (so up to
    2 x limit around an edge -- the fixed-window reading the suite must accept)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counts: dict[tuple[str, RateGroup], tuple[int, int]] = {}  # slot -> (window index, count)

    def _take(self, slot: tuple[str, RateGroup], limit: int, now: float) -> tuple[float | None, float]:
        index = math.floor(now / self._window)
        current, count = self._counts.get(slot, (index, 0))
        if current != index:
            count = 0
        if count >= limit:
            return max((index + 1) * self._window - now, 1e-3), 0.0
        self._counts[slot] = (index, count + 1)
        return None, float(index)

    def _give_back(self, slot: tuple[str, RateGroup], stamp: float) -> None:
        current, count = self._counts.get(slot, (-1, 0))
        if current == int(stamp) and count > 0:  # a past window's count is gone anyway
            self._counts[slot] = (current, count - 1)


def make_limiter(config: ServerConfig) -> Limiter | None:
    """The limiter the config asks for, or None with ``rate_limits=False``."""
    if not config.rate_limits:
        return None
    kind = FixedWindowLimiter if config.rate_algorithm == "fixed" else SlidingWindowLimiter
    return kind(limit_function(config), config.rate_window, config.clock, sticky=config.has("rate_no_recovery"))


def limit_function(config: ServerConfig) -> Callable[[RateGroup], int]:
    """The configured limit per group, with the limit faults of faults/api.py applied."""
    faults: dict[RateGroup, str] = {
        "chat": "rate_chat_never_429",
        "management": "rate_management_never_429",
        "info": "rate_info_never_429",
    }
    never = {group for group, fault in faults.items() if config.has(fault)}

    def limit_for(group: RateGroup) -> int:
        if group in never:  # fault: this group is never limited
            return UNLIMITED
        if group == "chat" and config.has("rate_chat_limit_10x"):  # fault: 600 per minute, not 60
            return 10 * config.limit_for(group)
        if group == "management" and config.has("rate_management_limit_half"):  # fault: 15 per minute, not 30
            return max(1, config.limit_for(group) // 2)
        return config.limit_for(group)

    return limit_for


# Whom a request counts for (rate_key) ---------------------------------------------------


def rate_key(principal: str, user_id: str | None) -> str:
    """The limiter's key: the principal, or the principal and a chat's ``user_id``.
    Principal names hold no space (config.py), so the two forms never collide."""
    return principal if user_id is None else f"{principal} user_id={user_id}"


async def peek_user_id(request: Request, limit: int) -> tuple[Request, str | None]:
    """The body's ``user_id`` (a non-empty string, else None) and a request that hands
    the handler the very same body again.

    Bounded like the handler's own read (inputs.read_body): a declared Content-Length
    over ``limit`` is not read at all, and the peek stops once more than ``limit`` bytes
    came; either way the handler then reads the body as usual and refuses it itself.
    What was read is replayed first, then the rest of the original stream follows, so
    the handler sees no difference. Anything unreadable has no user_id.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return request, None
    receive = request.receive
    read: deque[Message] = deque()
    chunks: list[bytes] = []
    total = 0
    complete = False
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            break  # a disconnect: the handler meets it too
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            break
        chunks.append(chunk)
        if not message.get("more_body", False):
            complete = True
            break

    async def replay() -> Message:
        return read.popleft() if read else await receive()

    replayed = Request(request.scope, replay)
    return replayed, _user_id(b"".join(chunks)) if complete else None


def _user_id(raw: bytes) -> str | None:
    try:
        value = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError):  # malformed, not UTF-8, too deep, too many digits
        return None
    user = value.get("user_id") if isinstance(value, dict) else None
    return user if isinstance(user, str) and user else None


# The refusal ---------------------------------------------------------------------------


def retry_after_headers(config: ServerConfig, decision: Decision, now: Callable[[], float] = time.time) -> dict[str, str]:
    """The refusal's ``Retry-After`` as ``config.retry_after`` says: whole seconds
    (rounded up), an IMF-fixdate HTTP date (RFC 9110 5.6.7; the reopening on the wall
    clock rounded up to the next whole second, so never earlier than the real one), or
    no header (READING "`Retry-After`": optional)."""
    if config.retry_after == "none":
        return {}
    if config.retry_after == "http_date":
        return {"Retry-After": email.utils.formatdate(math.ceil(now() + decision.wait), usegmt=True)}
    return {"Retry-After": str(decision.retry_after)}


def broken_refusal(config: ServerConfig, headers: Mapping[str, str]) -> Response | None:
    """The 429 of a refusal fault (faults/api.py), or None for the documented envelope."""
    if config.has("rate_429_plain_text"):  # fault: no envelope, a text body
        return Response("Too Many Requests", status_code=429, headers=dict(headers), media_type="text/plain")
    if config.has("rate_429_wrong_code"):  # fault: a JSON body whose code is not 429
        body = {"code": 4290, "msg": "rate limit exceeded", "data": None}
        return Response(dumps(body), status_code=429, headers=dict(headers), media_type="application/json")
    return None
