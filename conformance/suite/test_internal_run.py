"""POST /api/conversation/chat, the internal agent run (spec "内部智能体运行").

The page documents the request alone: ``agent_id`` (int64) and ``query`` required,
``conversation_id``, ``stream`` and ``additional_messages`` optional. READING
"``/api/conversation/chat`` response": an envelope or an event stream, never a 5xx; a
missing ``agent_id`` or ``query`` is 400. The endpoint is of the cookie class (``/api/*``),
the client's default mode for it; ``agent_id`` goes as a JSON integer (READING "Id types").

Every answer is read through ``read_chat_stream``: whether the server streams is not
documented (``stream`` is omitted, as the table allows), and an answer that streams is
read bounded -- to its terminal event, the server's close or the stream deadline.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.suite.helpers import (
    Bot,
    StreamResult,
    is_integer,
    read_chat_stream,
    stream_rules,
)
from conformance.transport.client import ApiClient


def run_path(profile: Profile) -> str:
    return profile.endpoint("run").path


def run_body(bot: Bot) -> dict[str, Any]:
    """A run with the required parameters only: agent_id a JSON integer, and a query."""
    return {"agent_id": bot.json_id, "query": "你好"}


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _first_error_code(result: StreamResult, profile: Profile) -> Any:
    """The code the stream's first event carries when that event is an error event
    (READING "Errors on a streaming request"): at the top of its payload, as in the
    spec's error section, or under ``error``, as its client example reads it."""
    assert result.reading is not None
    events = result.reading.events
    rules = stream_rules(profile)
    if not events or rules.kind(events[0].type) != "error":
        return None
    payload = _json(events[0].data.encode())
    if not isinstance(payload, dict):
        return None
    key = profile.envelope.code_key
    nested = payload.get("error")
    return payload.get(key, nested.get(key) if isinstance(nested, dict) else None)


def answer_code(result: StreamResult, profile: Profile) -> Any:
    """The envelope's code, or the code of a stream's leading error event."""
    if result.is_event_stream:
        return _first_error_code(result, profile)
    body = _json(result.body)
    return body.get(profile.envelope.code_key) if isinstance(body, dict) else None


def describe(result: StreamResult) -> str:
    if result.reading is not None:
        names = [e.type for e in result.reading.events]
        shown = names if len(names) <= 12 else [*names[:12], f"... ({len(names)} events)"]
        return f"HTTP {result.status} {result.content_type!r}: events {shown}"
    text = result.body.decode("utf-8", "replace")
    return f"HTTP {result.status} {result.content_type!r}: {text[:400]}{'...' if len(text) > 400 else ''}"


@pytest.mark.requirement("RUN-001")
def test_run_answers(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot) -> None:
    result = read_chat_stream(api, run_path(profile), run_body(published_bot), profile)
    if result.reading is not None:
        # A stream that answers: a success status and events, none of them an error.
        rules = stream_rules(profile)
        events = result.reading.events
        answered = 200 <= result.status < 300 and bool(events) and all(rules.kind(e.type) != "error" for e in events)
    else:
        # An envelope that answers: the success code. A refusal of a run the table calls
        # valid is no answer to it, whatever its status.
        code = answer_code(result, profile)
        answered = result.status < 400 and is_integer(code) and code == profile.envelope.success_code
    check(
        "RUN-001",
        answered,
        expected=f"an envelope with code {profile.envelope.success_code}, or an event stream without an error event",
        actual=describe(result),
    )


def missing(field: str, requirement: str) -> Any:
    return pytest.param(field, requirement, id=f"{field}-missing", marks=pytest.mark.requirement(requirement))


@pytest.mark.parametrize(("field", "requirement"), [missing("agent_id", "RUN-002"), missing("query", "RUN-003")])
def test_run_without_required_field_refused(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, field: str, requirement: str
) -> None:
    assert field in profile.endpoint("run").required, f"suite bug: {field} is not required by the profile"
    body = {k: v for k, v in run_body(published_bot).items() if k != field}
    result = read_chat_stream(api, run_path(profile), body, profile)
    code = answer_code(result, profile)
    check(
        requirement,
        is_integer(code) and code == profile.envelope.parameter_error_code,
        expected=f"code {profile.envelope.parameter_error_code} in the envelope (or in a leading error event, should the run stream)",
        actual=describe(result),
    )
