"""Id generation: 19-digit integers that a float cannot hold.

Coze ids are 64-bit snowflakes (19 digits, far above 2^53), and the spec transmits
them both as JSON numbers and as strings (READING "Id types"). Every id minted here is
checked to change under ``int(float(n))``, so a client or checker that lets an id pass
through a float is caught on the first id, not one time in a thousand.
"""

from __future__ import annotations

import random
import threading

from .config import IdStyle

LOWEST = 10**18  # the smallest 19-digit number
HIGHEST = 2**63 - 1  # int64, as the spec's tables type bot_id


def float_safe(value: int) -> bool:
    """True when ``value`` survives a round trip through a float (2^53 and below, mostly)."""
    return int(float(value)) == value


class IdMint:
    """Unique, increasing 19-digit ids, like a snowflake generator, thread-safe.

    Starts at a random point so ids differ between runs (no test can hard-code one) and
    advances by a random step so neighbouring ids do not look sequential.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._last = self._random.randrange(LOWEST + 10**17, LOWEST * 8)

    def next(self) -> int:
        with self._lock:
            candidate = self._last
            while True:
                candidate += self._random.randrange(1, 1000)
                if not float_safe(candidate):
                    break
            if candidate > HIGHEST:
                raise RuntimeError("id space exhausted")
            self._last = candidate
            return candidate


def format_conversation_id(value: int, style: IdStyle) -> str:
    return f"conv_{value}" if style == "prefixed" else str(value)


def format_message_id(value: int, style: IdStyle) -> str:
    return f"msg_{value}" if style == "prefixed" else str(value)


def format_chat_id(value: int, style: IdStyle) -> str:
    return f"chat_{value}" if style == "prefixed" else str(value)
