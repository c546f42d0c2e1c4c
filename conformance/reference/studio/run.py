"""``POST /api/conversation/chat``: the WebAPI run, always an event stream.

Body ``{bot_id, conversation_id ("0" = new), query, scene (int), content_type?, draft_mode?,
extra?, custom_variables?}``; a missing conversation_id, query or scene is HTTP 400 code 400.
Events: ``message`` (the user's ``ack``, the answer's pieces with ``is_finish`` false, the
whole answer with ``is_finish`` true, a verbose message), then ``done`` with empty data. A run
error (unknown bot, not published without draft_mode, another principal's bot or
conversation) is one answer message ``"Something error:<msg>"`` with is_finish true, then
``done``; a model failure or a server stop one ``error`` event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from .. import model
from ..eventstream import SseEvent
from ..model import Turn
from ..runtime import RunningChat, pause
from ..store import API_CONNECTOR, BotProfile, Conversation
from . import envelope
from .chats import VERBOSE_CONTENT, call_body, digits, envelope_event, string_map, text
from .envelope import bad_request
from .state import Call
from .stream import stream_response


@dataclass
class Reply:
    """One run's message events: numbering and the shared fields."""

    conversation_id: str
    section_id: str
    reply_id: str
    seq: int = 0
    index: int = 0
    started: float = field(default_factory=time.time)

    def event(self, message_id: str, role: str, kind: str, content: str, *, finished: bool) -> SseEvent:
        message = {
            "role": role,
            "type": kind,
            "content": content,
            "content_type": "text",
            "message_id": message_id,
            "reply_id": self.reply_id,
            "section_id": self.section_id,
            "extra_info": {},
            "status": "",
            "content_time": int(time.time() * 1000),
            "message_index": str(self.index),
            "source": 0,
        }
        payload: dict[str, Any] = {
            "message": message,
            "is_finish": finished,
            "index": self.index,
            "conversation_id": self.conversation_id,
            "seq_id": self.seq,
        }
        self.seq += 1
        if finished:
            self.index += 1
        return SseEvent("message", payload)


DONE = SseEvent("done", "")


async def conversation_chat(call: Call) -> Response:
    state, config = call.state, call.config
    has = config.has
    body = await call_body(call)
    bot_id = int(digits(body.get("bot_id"), "bot_id") or 0)
    reference = digits(body.get("conversation_id"), "conversation_id")
    query = text(body, "query", required=not has("studio_run_missing_query_accepted")) or ""  # fault: none accepted
    scene = body.get("scene")
    if scene is None:
        raise bad_request("missing required field: scene")
    if isinstance(scene, bool) or not isinstance(scene, int):
        raise bad_request("invalid scene: expected an integer")
    content_type = text(body, "content_type") or "text"
    draft_mode = body.get("draft_mode")
    if draft_mode is not None and not isinstance(draft_mode, bool):
        raise bad_request("invalid draft_mode: expected a boolean")
    string_map(body, "custom_variables")
    if body.get("extra") is not None and not isinstance(body["extra"], dict):
        raise bad_request("invalid extra: expected an object")
    conversation = None
    if reference != "0" and not has("studio_run_conversation_not_continued"):  # fault: always a new conversation
        conversation = state.store.conversation(reference or "")
    problem = None
    bot = state.store.bot(bot_id)
    profile: BotProfile | None = None
    if bot is None or bot.owner != call.principal:
        problem = f"agent {bot_id} not exist"
    elif draft_mode:
        profile = bot.draft
    elif bot.online is None or API_CONNECTOR not in bot.connectors:
        problem = f"agent {bot_id} not published"
    else:
        profile = bot.online
    if conversation is not None and conversation.owner != call.principal:
        problem = problem or "conversation not exist"
    if conversation is None:
        conversation = state.new_conversation(call.principal, bot_id)
    reply = Reply(conversation.conversation_id, state.section_of(conversation), reply_id=state.new_id())
    running = state.runtime.register(conversation.conversation_id, streaming=True)
    events = _run(call, reply, running, conversation, profile, Turn("user", query, content_type), problem)
    return stream_response(config, events)


async def _run(
    call: Call, reply: Reply, running: RunningChat, conversation: Conversation, profile: BotProfile | None, turn: Turn, problem: str | None
) -> AsyncIterator[SseEvent]:
    state, config = call.state, call.config
    try:
        if problem is not None or profile is None:
            yield reply.event(state.new_id(), "assistant", "answer", f"Something error:{problem}", finished=True)
            yield DONE
            return
        history, number = state.store.start_chat(conversation, [turn])
        if not config.has("studio_run_no_ack"):  # fault: no ack message
            yield reply.event(reply.reply_id, "user", "ack", turn.content, finished=True)
        answer_id = state.new_id()
        tokens = model.tokenize(model.answer(history, number, profile.name, config.answer_style))
        for index, token in enumerate(tokens):
            if model.should_fail(history) and index == model.TOKENS_BEFORE_FAILURE:
                yield envelope_event(envelope.CHAT_RUN_FAILED, model.FAILURE_MSG)
                return
            if await pause(running, config.token_delay):
                yield envelope_event(envelope.CHAT_RUN_FAILED, "server shutting down")
                return
            yield reply.event(answer_id, "assistant", "answer", token, finished=False)
        content = "".join(tokens)
        state.store.add_answer(conversation, content)
        yield reply.event(answer_id, "assistant", "answer", content, finished=True)
        yield reply.event(state.new_id(), "assistant", "verbose", VERBOSE_CONTENT, finished=True)
        yield DONE
    finally:
        state.runtime.unregister(running)
