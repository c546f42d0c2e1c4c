"""Sliding-window rate limiting per principal and group (spec "速率限制").

The spec gives requests per minute per user for three groups: Chat API 60, Bot 管理
API 30, Bot 信息 API 100. A sliding log (one timestamp per admitted request) is exact:
at any instant at most ``limit`` requests were admitted in the last ``window``
seconds, which a fixed-bucket counter cannot promise at a bucket edge. Every
authenticated request of a group counts, whatever its answer (READING "Rate-limit
groups": clients must pace as if every request counts).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

from starlette.responses import Response

from .config import RateGroup, ServerConfig
from .envelope import dumps

#: A limit no test reaches: the never-429 faults (faults_api.py) give their group this.
UNLIMITED = 2**62


class SlidingWindowLimiter:
    """``admit`` is atomic (one lock), so a concurrent burst gets exactly ``limit`` admissions.

    ``sticky`` is the no-recovery fault (faults_api.py ``rate_no_recovery``): a principal
    refused once in a group stays refused however long it waits.
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
        self._logs: dict[tuple[str, RateGroup], deque[float]] = {}
        self._lock = threading.Lock()
        self._sticky = sticky
        self._stuck: set[tuple[str, RateGroup]] = set()

    def admit(self, principal: str, group: RateGroup) -> int | None:
        """Record and admit one request, or refuse it: None, or seconds until a slot frees.

        The seconds are rounded up (``Retry-After`` is whole seconds) and at least 1.
        """
        with self._lock:
            now = self._clock()
            if (principal, group) in self._stuck:  # fault: no recovery after a 429
                return max(1, math.ceil(self._window))
            log = self._logs.setdefault((principal, group), deque())
            while log and log[0] <= now - self._window:
                log.popleft()
            if len(log) >= self._limit_for(group):
                if self._sticky:
                    self._stuck.add((principal, group))
                return max(1, math.ceil(log[0] + self._window - now))
            log.append(now)
            return None


def limit_function(config: ServerConfig) -> Callable[[RateGroup], int]:
    """The configured limit per group, with the limit faults of faults_api.py applied."""
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


def broken_refusal(config: ServerConfig, retry_after: int) -> Response | None:
    """The 429 of a refusal fault (faults_api.py), or None for the documented envelope."""
    headers = {"Retry-After": str(retry_after)}
    if config.has("rate_429_plain_text"):  # fault: no envelope, a text body
        return Response("Too Many Requests", status_code=429, headers=headers, media_type="text/plain")
    if config.has("rate_429_wrong_code"):  # fault: a JSON body whose code is not 429
        body = {"code": 4290, "msg": "rate limit exceeded", "data": None}
        return Response(dumps(body), status_code=429, headers=headers, media_type="application/json")
    return None
