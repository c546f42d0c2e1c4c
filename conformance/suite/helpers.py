"""Small helpers the conformance test modules share: request bodies, envelopes, and
reading a chat stream through the byte-level checker and the grammar.

Ids are carried as text (``Bot.id``) and sent in the JSON type each request table
gives (READING "Id types"): a string for ``bot_id`` in ``/v3/chat``, an integer for
``bot_id`` in ``/api/draftbot/*`` and for ``agent_id``, digits in queries and paths.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from conformance.oracle.envelope_judge import error_event_code
from conformance.oracle.grammar import StreamReading, StreamRules, check_chat_stream
from conformance.oracle.profile import Endpoint, Profile
from conformance.oracle.sse import Event, SSEChecker
from conformance.transport.client import (
    ApiClient,
    ApiResponse,
    ApiStream,
    DeadlineExceeded,
    NotJson,
    ResponseTooLarge,
)

#: A request a real model answers at length, so that a stream lasts (liveness, cancel
#: and abort mid-answer mean something); its content is never asserted (READING).
LONG_ANSWER = "请用大约三百字介绍一下你自己。"


@dataclass(frozen=True)
class Bot:
    """A bot the suite made (or was given), its id kept as exact text."""

    id: str
    name: str
    description: str = ""
    icon_url: str = ""
    prompt: str = ""
    published: bool = False

    @property
    def json_id(self) -> int:
        """The id as the JSON integer /api/draftbot/* and agent_id expect."""
        return int(self.id)


@dataclass
class Answer:
    """An answer read as the documented envelope; ``body`` is None when not JSON."""

    status: int
    body: Any
    response: ApiResponse
    #: Why the body is not JSON ("not UTF-8 at byte 19 (b'\\xff')"), "" when it is.
    not_json: str = ""

    @property
    def code(self) -> Any:
        return self.body.get("code") if isinstance(self.body, dict) else None

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def ok(self) -> bool:
        return self.status < 400 and self.code == 0 and isinstance(self.data, dict)

    def describe(self) -> str:
        """The answer in a line, naming what a client would trip on first: a redirect
        (the suite follows none) or a body that is not JSON, and why."""
        text = self.response.text
        what = f"HTTP {self.status}"
        if 300 <= self.status < 400:
            location = self.response.headers.get("location")
            what += f", a redirect to {location} (not followed)" if location else ", a redirect without a Location"
        if self.not_json and self.response.body:
            what += f", not JSON: {self.not_json}"
        return f"{what}: {text[:400]}{'...' if len(text) > 400 else ''}"


def is_integer(value: Any) -> bool:
    """A JSON integer (``True`` is not one, nor 400.0 or "400")."""
    return isinstance(value, int) and not isinstance(value, bool)


def has_code(answer: Answer, codes: frozenset[int] | set[int]) -> bool:
    """The body code is one of ``codes``."""
    return is_integer(answer.code) and answer.code in codes


def refused(answer: Answer, profile: Profile) -> bool:
    """An error answer, whatever its code: a body code other than success (or, with no
    code, an HTTP error status) -- for a profile whose errors may carry any code."""
    if is_integer(answer.code):
        return bool(answer.code != profile.envelope.success_code)
    return answer.status >= 400 and answer.code is None


def fields_of(data: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The ``keys`` of a data object, for showing what a server answered."""
    return {key: data.get(key) for key in keys} if isinstance(data, dict) else {}


def blocked(requirement: str, why: str) -> BaseException:
    """A setup step the server failed: the test SKIPs as "blocked by <requirement>" (or
    by the endpoint, "POST /v1/bot/create", where profiles judge it under other ids),
    and the test owning that requirement FAILs it."""
    return pytest.skip.Exception(f"blocked by {requirement}: {why}", _use_item_location=True)


def id_value(endpoint: Endpoint, key: str, text: str) -> int | str:
    """An id (kept as text) in the JSON type ``endpoint``'s table gives (READING "Id types")."""
    return int(text) if endpoint.id_types.get(key) == "integer" else text


def send(
    api: ApiClient, endpoint: Endpoint, fields: Mapping[str, Any], *, params: Mapping[str, Any] | None = None
) -> Answer:
    """Call ``endpoint`` with ``fields`` where its table puts them (body, query or path),
    ids converted per ``id_types``; ``params`` are extra query parameters."""
    values: dict[str, Any] = {
        key: id_value(endpoint, key, value) if key in endpoint.id_types else value for key, value in fields.items()
    }
    if endpoint.params_in == "body":
        return envelope(api.request(endpoint.method, endpoint.path, json=values, params=params))
    in_path = {key: values.pop(key) for key in endpoint.path_params}
    query = {**values, **(params or {})}
    return envelope(api.request(endpoint.method, endpoint.url_path(**in_path), params=query or None))


def chat_path(profile: Profile) -> str:
    return profile.endpoint("chat").path


def unknown_id(*known: str | None) -> str:
    """Eighteen random digits: an id no server has handed out, in int64 range."""
    while True:
        candidate = str(10**17 + secrets.randbelow(9 * 10**17))
        if candidate not in known:
            return candidate


def leading_error_code(body: bytes, content_type: str | None, profile: Profile) -> Any:
    """The code an event stream's first event carries when that event is an error event
    (READING "Errors on a streaming request"); None otherwise."""
    rules = stream_rules(profile)
    checker = rules.checker(content_type)
    checker.feed(body, time.monotonic())
    checker.close(time.monotonic())
    if not checker.events or rules.kind(checker.events[0].type) != "error":
        return None
    return error_event_code(checker.events[0].data, profile.envelope.code_key)


def open_stream_or_skip(answer: ApiStream, rules: StreamRules) -> None:
    """A stream a test needs as setup: anything but an event stream blocks the test."""
    if answer.media_type != rules.media_type:
        body = answer.read_all().decode("utf-8", "replace")[:300]
        raise blocked(
            "CHAT-SSE-001",
            f"a stream in the conversation answered HTTP {answer.status} {answer.media_type or 'no Content-Type'}: {body}",
        )


def envelope(response: ApiResponse) -> Answer:
    try:
        return Answer(response.status, response.json(), response)
    except NotJson as exc:
        return Answer(response.status, None, response, exc.reason)


def id_text(value: Any) -> str | None:
    """An id as exact text (integers never pass through a float), None when it is
    neither a non-empty string nor an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def user_message(text: str, content_type: str = "text", *, key: str = "content_type", role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text, key: content_type}


def chat_body(
    bot: Bot,
    user_id: str,
    text: str = "你好",
    *,
    stream: bool = False,
    messages: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A /v3/chat body as the request table documents it (bot_id a JSON string)."""
    body: dict[str, Any] = {
        "bot_id": bot.id,
        "user_id": user_id,
        "stream": stream,
        "additional_messages": messages if messages is not None else [user_message(text)],
    }
    body.update(extra)
    return body


def in_every_form(profile: Profile, conversation_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str] | None]:
    """``body`` naming ``conversation_id`` in every form the profile lists at once
    (READING "Conversation id in a chat request": a server MUST honour at least one;
    which one is CHAT-CONV's business). Returns (body, query parameters or None)."""
    query: dict[str, str] = {}
    for index in range(len(profile.conversation.forms)):
        body, params = conversation_request(profile, index, conversation_id, body)
        query.update(params or {})
    return body, query or None


def conversation_request(profile: Profile, form_index: int, conversation_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Put ``conversation_id`` where the profile's ``form_index``-th form carries it
    (READING "Conversation id in a chat request"): returns (body, query params)."""
    form = profile.conversation.forms[form_index]
    if form.location == "query":
        return body, {form.key: conversation_id}
    return {**body, form.key: conversation_id}, None


def stream_rules(profile: Profile) -> StreamRules:
    return StreamRules.from_mapping(profile.stream)


@dataclass
class StreamResult:
    """What one streamed request showed: status, media type, events, findings."""

    status: int
    media_type: str
    content_type: str | None
    reading: StreamReading | None
    body: bytes = b""
    elapsed: float = 0.0
    #: ``stopped``: why the client stopped reading a stream that had not ended (its
    #: deadline, the size cap), when it did.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_event_stream(self) -> bool:
        return self.reading is not None


def read_events(
    answer: ApiStream,
    rules: StreamRules,
    *,
    stop: Callable[[Event], bool] | None = None,
    checker: SSEChecker | None = None,
) -> StreamReading:
    """Read an open event stream through the SSE checker, then judge it by the grammar.

    Reads until the server closes, or until the terminal (or an error) event and then
    at most ``after_terminal_grace_seconds`` more for stray events (READING "After the
    terminal event": a server may keep the connection open; the client closes it).
    ``stop(event)`` returning True ends the reading early (the caller closes the
    stream, e.g. a client abort after the first delta)."""
    if checker is None:
        checker = rules.checker(answer.headers.get("content-type"))
    ended = stopped = False
    for chunk, t in answer.chunks():
        for event in checker.feed(chunk, t):
            ended = ended or rules.kind(event.type) in ("terminal", "error")
            stopped = stopped or (stop is not None and stop(event))
        if ended or stopped or checker.stopped:
            break
    else:
        checker.close(time.monotonic())
        return _reading(checker, rules, "server")
    if stopped or checker.stopped:
        return _reading(checker, rules, "client")
    grace = rules.after_terminal_grace_seconds
    began = time.monotonic()
    for chunk, t in answer.drain(grace):
        checker.feed(chunk, t)
    # drain() returns early only when the server closed (or dropped) the connection.
    if time.monotonic() - began < grace * 0.9 and answer.exchange.error is None:
        checker.close(time.monotonic())
        return _reading(checker, rules, "server")
    return _reading(checker, rules, "client")


def _reading(checker: SSEChecker, rules: StreamRules, closed_by: Literal["server", "client"]) -> StreamReading:
    return StreamReading(
        events=list(checker.events),
        sse_findings=list(checker.findings),
        grammar=check_chat_stream(checker.events, rules, closed_by),
        closed_by=closed_by,
    )


def read_chat_stream(
    api: ApiClient,
    path: str,
    body: Mapping[str, Any],
    profile: Profile,
    *,
    params: Mapping[str, str] | None = None,
    auth: str = "default",
) -> StreamResult:
    """POST ``body`` as a stream and read it whole (see ``read_events``). An answer
    that is not an event stream (e.g. an error envelope) is read whole as a body."""
    rules = stream_rules(profile)
    started = time.monotonic()
    with api.stream("POST", path, json=dict(body), params=params, auth=auth) as answer:
        content_type = answer.headers.get("content-type")
        if answer.media_type != rules.media_type:
            data = answer.read_all()
            return StreamResult(answer.status, answer.media_type, content_type, None, data, time.monotonic() - started)
        checker = rules.checker(content_type)
        extra: dict[str, Any] = {}
        try:
            reading = read_events(answer, rules, checker=checker)
        except (DeadlineExceeded, ResponseTooLarge) as exc:
            # A stream that never ends, or never stops growing, is judged on what
            # arrived (the grammar then finds no terminal event), not lost to a
            # transport error; why the client stopped reading goes with the verdicts.
            reading = _reading(checker, rules, "client")
            extra["stopped"] = exc.reason
        return StreamResult(
            answer.status, answer.media_type, content_type, reading, answer.received, time.monotonic() - started, extra
        )
