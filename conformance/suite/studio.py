"""What the studio test modules share: a Studio deployment's chats, ids and capabilities.

Capabilities (issue #16): features a Coze Studio version has or lacks -- ``nonstream``
(``/v3/chat`` answering JSON for ``stream: false``, Studio >= 0.5.1), ``retrieve``
(``GET /v3/chat/retrieve`` and ``/message/list``, >= 0.5.1) and ``section_id`` (on
messages, later versions) -- are probed, once per run, where a test needs them. A
capability found missing SKIPs the tests of its requirement with the probe's evidence,
which leaves the verdict INCOMPLETE: the deployment is not judged on what it lacks,
nor certified for it. Every probe's evidence is also a report section of its test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.run.shared_state import SharedState
from conformance.suite.helpers import Answer, Bot, StreamResult, chat_body, id_text, is_integer, read_chat_stream, stream_rules
from conformance.transport.client import ApiClient

#: coze-wire §2.3, §5 #10: the statuses a cancelled chat may carry.
CANCELLED = ("canceled", "cancelled", "conversation.chat.cancelled")
#: The connector a bot is published to for the OpenAPI (coze-wire §2.5).
API_CONNECTOR = "1024"


def digits(value: Any) -> bool:
    """A JSON string of digits: how Studio writes every id (coze-wire §5 #2)."""
    return isinstance(value, str) and value.isdigit()


def events_of(result: StreamResult) -> list[tuple[str, Any]]:
    """(event name, parsed payload) of a read stream; [] when it was no stream."""
    if result.reading is None:
        return []
    return list(zip((e.type for e in result.reading.events), result.reading.grammar.payloads, strict=True))


def stream_chat(
    api: ApiClient, profile: Profile, bot: Bot, user_id: str, text: str = "你好", *, conversation: str | None = None
) -> StreamResult:
    """A streamed /v3/chat, in ``conversation`` (the query parameter) when given."""
    form = profile.conversation.preferred
    params = {form.key: conversation} if conversation is not None and form.location == "query" else None
    body = chat_body(bot, user_id, text, stream=True)
    if conversation is not None and form.location == "body":
        body[form.key] = conversation
    return read_chat_stream(api, profile.endpoint("chat").path, body, profile, params=params)


def chat_ids(result: StreamResult, profile: Profile) -> dict[str, str] | None:
    """The conversation and chat id of a stream's first chat event."""
    rules = stream_rules(profile)
    for name, payload in events_of(result):
        if rules.kind(name) in ("start", "chat_completed") and isinstance(payload, dict):
            conversation, chat = id_text(payload.get("conversation_id")), id_text(payload.get("id"))
            if conversation and chat:
                return {"conversation_id": conversation, "chat_id": chat}
    return None


def error_events(result: StreamResult, profile: Profile) -> list[Any]:
    rules = stream_rules(profile)
    return [payload for name, payload in events_of(result) if rules.kind(name) == "error"]


def started(result: StreamResult, profile: Profile) -> bool:
    """The stream started a chat (a start event or any message came)."""
    rules = stream_rules(profile)
    return any(rules.kind(name) in ("start", "delta", "completed") for name, _ in events_of(result))


def stream_refused(result: StreamResult, profile: Profile) -> tuple[bool, str]:
    """A chat request refused, in either legal form (coze-wire §5 #23): a JSON error
    (a 4xx or a non-zero code), or an event stream that starts no chat and carries an
    error event with a non-zero integer code. Returns (refused, what was seen)."""
    if result.reading is None:
        try:
            import json

            body = json.loads(result.body)
        except ValueError:
            body = None
        code = body.get(profile.envelope.code_key) if isinstance(body, dict) else None
        refused = result.status >= 400 or (is_integer(code) and code != profile.envelope.success_code)
        return refused, f"HTTP {result.status} {result.media_type}: {result.body[:300].decode('utf-8', 'replace')}"
    names = [name for name, _ in events_of(result)]
    codes = [p.get(profile.envelope.code_key) if isinstance(p, dict) else None for p in error_events(result, profile)]
    refused = not started(result, profile) and any(is_integer(c) and c != 0 for c in codes)
    return refused, f"HTTP {result.status} event stream: events {names}, error codes {codes}"


def object_at(answer: Answer, profile: Profile, endpoint: str) -> Any:
    """A success's object wherever the endpoint may put it: its own key (or the bare
    body) when the answer has no code, else the envelope's data (coze-wire §5 #10, #15)."""
    body = answer.body
    if not isinstance(body, dict):
        return None
    key = profile.endpoint(endpoint).success_key
    if profile.envelope.code_key not in body and key is not None:
        return body if key == "" else body.get(key)
    return body.get(profile.envelope.data_key)


def succeeded(answer: Answer, profile: Profile) -> bool:
    """HTTP 2xx and no non-zero code (the code may be absent: coze-wire §5 #10)."""
    code = answer.code
    return answer.status < 400 and isinstance(answer.body, dict) and (code is None or code == profile.envelope.success_code)


# --------------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class Capability:
    name: str
    present: bool
    evidence: str

    def require(self, request: pytest.FixtureRequest, check: Checks, requirement: str) -> None:
        """Record the probe's evidence on the test; SKIP it (and ``requirement``, with the
        evidence) when the capability is missing."""
        request.node.add_report_section("call", f"capability {self.name}", f"{'present' if self.present else 'absent'}: {self.evidence}")
        if not self.present:
            why = f"capability {self.name} is absent on this deployment ({self.evidence}); its requirement is not judged"
            check.skip(requirement, why)
            raise pytest.skip.Exception(why, _use_item_location=True)


def capability(state: SharedState, name: str, probe: Any) -> Capability:
    """The capability ``name``, probed once per run (``probe()`` -> (present, evidence))."""
    found: Mapping[str, Any] = state.get_or_create(f"capability-{name}", lambda: dict(zip(("present", "evidence"), probe(), strict=True)))
    return Capability(name, bool(found["present"]), str(found["evidence"]))
