"""Finding a principal's bot or conversation, or the documented error for it.

An unknown id answers ``unknown_id_status`` (404 "资源不存在" by default, 400 as in
the spec's only error example "invalid bot_id"); another principal's resource answers
``forbidden_status`` (403 "权限不足" by default, or 404). READING "Unknown bot /
conversation id" and "Another principal's bot or conversation" accept both. With 404
for another's resource the message is the unknown-id one, so it reveals nothing.
"""

from __future__ import annotations

from .config import ServerConfig
from .inputs import shorten
from .responses import ApiError
from .store import Bot, Conversation, Store


def _unknown(config: ServerConfig, what: str) -> ApiError:
    return ApiError(config.unknown_id_status, f"{what} not found")


def _forbidden(config: ServerConfig, what: str) -> ApiError:
    if config.forbidden_status == 404:
        return ApiError(404, f"{what} not found")
    return ApiError(403, f"{what} belongs to another user")


def owned_bot(store: Store, config: ServerConfig, bot_id: int, principal: str, *, any_owner: bool = False) -> Bot:
    """``any_owner`` is only for the isolation faults of faults/api.py (one per endpoint)."""
    bot = store.bot(bot_id)
    if bot is None:
        raise _unknown(config, f"bot {bot_id}")
    if bot.owner != principal and not any_owner:
        raise _forbidden(config, f"bot {bot_id}")
    return bot


def owned_conversation(store: Store, config: ServerConfig, conversation_id: str, principal: str) -> Conversation:
    conversation = store.conversation(conversation_id)
    shown = shorten(conversation_id)
    if conversation is None:
        raise _unknown(config, f"conversation {shown}")
    if conversation.owner != principal and not config.has("iso_conversation_owner_unchecked"):
        if config.has("iso_conversation_refusal_quotes_history") and conversation.history:
            # fault: the refusal quotes the conversation's first message to a stranger
            said = conversation.history[0].content
            raise ApiError(config.forbidden_status, f"conversation {shown} belongs to the user who said: {said}")
        raise _forbidden(config, f"conversation {shown}")
    return conversation
