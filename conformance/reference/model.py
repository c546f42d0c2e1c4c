"""The deterministic fake model behind every chat.

It answers from the conversation history so that continuity is observable: the
default ("echo") answer names the turn number and quotes the last user message, so a
chat that continued the wrong conversation, or none, answers differently. The text is
cut into small tokens that are streamed one by one (at least five, so a stream is a
real stream). Nothing here is a requirement of the spec: READING forbids asserting an
answer's content, and the "count" style exists to prove the suite does not.

Failure trigger: a chat whose last user message is exactly ``__reference_fail__``
(surrounding whitespace ignored) fails after two tokens -- a stream sends an error
event and ``conversation.chat.failed``; a non-stream chat answers a 500 envelope.
It simulates a model failure for the project's own tests; no conformance test sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .config import AnswerStyle

FAIL_TRIGGER = "__reference_fail__"
#: Tokens streamed before a triggered failure (so the failure is mid-stream).
TOKENS_BEFORE_FAILURE = 2
FAILURE_CODE = 500
FAILURE_MSG = "simulated model failure (trigger message __reference_fail__)"
MIN_TOKENS = 5
_TOKEN_CHARS = 4
_ECHO_CHARS = 60


@dataclass(frozen=True)
class Turn:
    role: str
    content: str
    content_type: str


def last_user_text(history: Sequence[Turn]) -> str:
    for turn in reversed(history):
        if turn.role == "user":
            return turn.content
    return ""


def should_fail(history: Sequence[Turn]) -> bool:
    return last_user_text(history).strip() == FAIL_TRIGGER


def answer(history: Sequence[Turn], turn_number: int, bot_name: str, style: AnswerStyle) -> str:
    last = last_user_text(history)
    if style == "count":
        return (
            f"{bot_name} has read {len(history)} messages in this conversation;"
            f" the last user message had {len(last)} characters."
        )
    echo = last if len(last) <= _ECHO_CHARS else last[:_ECHO_CHARS] + "…"
    return f"Turn {turn_number} with {bot_name}: you said “{echo}”."


def tokenize(text: str) -> list[str]:
    """Small pieces that join back to ``text``; at least five for any text of five characters."""
    size = max(1, min(_TOKEN_CHARS, len(text) // MIN_TOKENS))
    return [text[i : i + size] for i in range(0, len(text), size)]


def prompt_tokens(history: Sequence[Turn]) -> int:
    """A deterministic stand-in for the prompt's token count: one per started 4 characters."""
    return max(1, sum(-(-len(turn.content) // _TOKEN_CHARS) for turn in history))
