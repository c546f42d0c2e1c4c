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

from .config import RateGroup


class SlidingWindowLimiter:
    """``admit`` is atomic (one lock), so a concurrent burst gets exactly ``limit`` admissions."""

    def __init__(self, limit_for: Callable[[RateGroup], int], window: float, clock: Callable[[], float]) -> None:
        self._limit_for = limit_for
        self._window = window
        self._clock = clock
        self._logs: dict[tuple[str, RateGroup], deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, principal: str, group: RateGroup) -> int | None:
        """Record and admit one request, or refuse it: None, or seconds until a slot frees.

        The seconds are rounded up (``Retry-After`` is whole seconds) and at least 1.
        """
        with self._lock:
            now = self._clock()
            log = self._logs.setdefault((principal, group), deque())
            while log and log[0] <= now - self._window:
                log.popleft()
            if len(log) >= self._limit_for(group):
                return max(1, math.ceil(log[0] + self._window - now))
            log.append(now)
            return None
