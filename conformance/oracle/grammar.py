"""The chat-stream grammar: what the events of a ``/v3/chat`` stream must say, in order.

Spec: agent-api.zh.md "流式响应 (SSE)" (event table, "SSE 数据格式"), read with
READING.md rows "Stream start events", "event key in SSE payloads", "Error
event", "Terminal event", "After the terminal event", "Messages in a stream",
"Usage". Every event name and payload location comes from the ``[stream]`` table
of a profile file (:class:`StreamRules`); nothing here knows a profile by name.

Findings reuse :class:`conformance.oracle.sse.Finding`; ``index`` is the offending
event's position, ``severity`` "violation" (MUST) or "should" (SHOULD).
"""

from __future__ import annotations

import dataclasses
import json
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from conformance.oracle.sse import (
    RAW_EXCERPT_BYTES,
    Event,
    Finding,
    Severity,
    SSEChecker,
)

__all__ = [
    "RULES",
    "GrammarResult",
    "Message",
    "StreamReading",
    "StreamRules",
    "check_chat_stream",
    "load_stream_rules",
    "read_stream",
]

PROFILES_DIR = Path(__file__).parent / "profiles"

# Stable rule names -> (severity, what the rule says).
RULES: dict[str, tuple[Severity, str]] = {
    "grammar.payload_json": (
        "violation",
        "the data of a known event is a JSON object (a terminal event's may be anything)",
    ),
    "grammar.event_key_matches": ("violation", "a payload's event key, when present, equals the SSE event name"),
    "grammar.event_key_present": ("should", "payloads of the event table's events carry the event key"),
    "grammar.start_before_messages": ("violation", "start events, when sent, come before any message event"),
    "grammar.start_events_present": ("should", "the stream sends the start events"),
    "grammar.message_fields": ("violation", "a message payload has an id, a string content and a string role"),
    "grammar.deltas_before_completed": ("violation", "a message's deltas precede its completed event"),
    "grammar.deltas_join_completed": ("violation", "a message's joined deltas equal its completed content"),
    "grammar.duplicate_message_completed": ("violation", "a message id is completed once"),
    "grammar.chat_outcome": (
        "violation",
        "exactly one chat completed/failed event, after the last message event, unless an error event occurred",
    ),
    "grammar.usage_integers": ("violation", "usage, when carried, is three non-negative integers"),
    "grammar.usage_total": ("should", "usage total equals prompt + completion"),
    "grammar.terminal_present": ("violation", "the stream ends with a terminal event unless an error event occurred"),
    "grammar.terminal_last": ("violation", "the terminal event occurs once and nothing follows it"),
    "grammar.preferred_terminal": ("should", "the terminal event is the preferred one"),
    "grammar.ids_consistent": (
        "violation",
        "deltas and their completed event share a message id; conversation ids agree",
    ),
    "grammar.liveness": ("should", "events are sent as they are produced, not held back to the end"),
    # Rules a profile turns on ([stream] keys named in each); off, they find nothing.
    "grammar.chat_fields": ("violation", "a chat payload carries the profile's chat fields (chat_required) as strings"),
    "grammar.usage_present": ("violation", "a chat completed event carries usage (usage_required)"),
    "grammar.terminal_data": ("violation", "the terminal event's data is the profile's terminal_data"),
    "grammar.closed_after_terminal": (
        "violation",
        "the server closes the stream after the terminal event (close_after_terminal)",
    ),
    "grammar.known_events": ("should", "every event name is one the profile knows (flag_unknown_events)"),
    "grammar.payload_schema": (
        "violation",
        "chat and message payloads validate against the profile's schemas (chat_schema, message_schema)",
    ),
}

Outcome = Literal["completed", "failed", "error"]
_Kind = Literal["start", "delta", "completed", "chat_completed", "chat_failed", "error", "terminal"]
_LIVENESS_TAIL = 0.1  # "the last 10 % of its duration" (CHAT-SSE-004's liveness rule)
_SHOWN = 120  # characters of a value quoted in a message


@dataclass(frozen=True)
class StreamRules:
    """The ``[stream]`` table of a profile. An empty ``message_key`` or
    ``run_record_key`` means the fields sit in the payload itself.
    ``usage_fields`` is (prompt, completion, total)."""

    media_type: str
    start_events: tuple[str, ...]
    delta_events: tuple[str, ...]
    message_completed_events: tuple[str, ...]
    chat_completed_events: tuple[str, ...]
    chat_failed_events: tuple[str, ...]
    error_events: tuple[str, ...]
    terminal_events: tuple[str, ...]
    preferred_terminal: str
    message_key: str
    run_record_key: str
    usage_key: str
    usage_fields: tuple[str, str, str]
    event_key: str
    events_with_event_key: tuple[str, ...]
    after_terminal_grace_seconds: float
    liveness_min_seconds: float
    liveness_tail_share: float
    # Not (yet) in doc.toml: the spec's message object and conversation id key.
    message_fields: tuple[str, str, str] = ("id", "content", "role")  # id, content, role
    conversation_id_key: str = "conversation_id"
    # Rules a profile turns on; their defaults find nothing.
    message_required: tuple[str, ...] = ()  # string fields of a message beyond message_fields
    chat_required: tuple[str, ...] = ()  # string fields of a chat payload (start and outcome events)
    chat_id_key: str = ""  # a message's key naming its chat; "" = not checked
    terminal_data: str = ""  # the terminal event's exact data; "" = any
    other_events: tuple[str, ...] = ()  # known events the grammar does not order
    usage_required: bool = False
    close_after_terminal: bool = False
    flag_unknown_events: bool = False
    sdk_framing: bool = False  # the checker's sse.sdk_framing notes are the profile's requirement
    witness: str = ""  # the client parser that reads every judged stream again (oracle/witness.py)
    chat_schema: str = ""  # a profile schema (schemas/<path>.json) of chat payloads; "" = none
    message_schema: str = ""  # ... of message payloads (delta, completed and other_events)

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> StreamRules:
        """Build from a profile's ``[stream]`` table; a missing, unknown or
        wrongly typed key is a ValueError naming it."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"[stream]: unknown keys {unknown}")
        values: dict[str, Any] = {}
        for name, f in fields.items():
            if name not in d:
                if f.default is dataclasses.MISSING:
                    raise ValueError(f"[stream]: missing key {name!r}")
                continue
            value = d[name]
            if f.type.startswith("tuple"):  # annotations are strings (__future__)
                width = 3 if "..." not in f.type else None
                if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    raise ValueError(f"[stream].{name}: expected a list of strings, got {value!r}")
                if width is not None and len(value) != width:
                    raise ValueError(f"[stream].{name}: expected {width} names, got {value!r}")
                value = tuple(value)
            elif f.type == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"[stream].{name}: expected true or false, got {value!r}")
            elif f.type == "float":
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"[stream].{name}: expected a non-negative number, got {value!r}")
                value = float(value)
            elif not isinstance(value, str):
                raise ValueError(f"[stream].{name}: expected a string, got {value!r}")
            values[name] = value
        return cls(**values)

    def checker(self, content_type: str | None) -> SSEChecker:
        """A byte-level checker for a stream these rules judge."""
        return SSEChecker(content_type, self.media_type, sdk_framing=self.sdk_framing)

    def kind(self, event_type: str) -> _Kind | None:
        """Which part of the grammar an event name plays, None when unknown."""
        table: tuple[tuple[_Kind, tuple[str, ...]], ...] = (
            ("start", self.start_events),
            ("delta", self.delta_events),
            ("completed", self.message_completed_events),
            ("chat_completed", self.chat_completed_events),
            ("chat_failed", self.chat_failed_events),
            ("error", self.error_events),
            ("terminal", self.terminal_events),
        )
        for kind, names in table:
            if event_type in names:
                return kind
        return None


def load_stream_rules(profile: str) -> StreamRules:
    """The rules of ``conformance/oracle/profiles/<profile>.toml``."""
    path = PROFILES_DIR / f"{profile}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
        raise ValueError(f"no profile file {path.name!r} in {PROFILES_DIR} (have: {known})")
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    if not isinstance(data.get("stream"), dict):
        raise ValueError(f"{path}: no [stream] table")
    try:
        return StreamRules.from_mapping(data["stream"])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


@dataclass
class Message:
    """What the stream said about one message id."""

    id: str
    role: str | None = None
    deltas: list[str] = field(default_factory=list)
    completed: str | None = None  # content of its (first) completed event

    @property
    def joined(self) -> str:
        return "".join(self.deltas)


@dataclass
class GrammarResult:
    findings: list[Finding] = field(default_factory=list)
    messages: dict[str, Message] = field(default_factory=dict)
    outcome: Outcome | None = None
    usage: dict[str, Any] | None = None
    terminal: str | None = None  # name of the (first) terminal event
    conversation_ids: list[str] = field(default_factory=list)  # distinct, in order seen
    errors: list[Any] = field(default_factory=list)  # error event payloads (raw data when not JSON)
    payloads: list[Any] = field(default_factory=list)  # parsed data per event, None when not JSON
    chat_id: str | None = None  # the first chat payload's id (profiles with chat_required)
    message_chat_ids: list[tuple[int, Any]] = field(default_factory=list)  # (event, chat id) of messages

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "violation"]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _parse(data: str) -> tuple[bool, Any]:
    # json keeps big integers exact (ids exceed 2**53); NaN/Infinity are not JSON.
    try:
        return True, json.loads(data, parse_constant=_reject_constant)
    except ValueError:
        return False, None


def _is_id(value: object) -> bool:
    # READING "Id types": an opaque non-empty string or an integer (never a float).
    return (isinstance(value, str) and value != "") or (isinstance(value, int) and not isinstance(value, bool))


class _Grammar:
    def __init__(self, events: Sequence[Event], rules: StreamRules) -> None:
        self.events = events
        self.rules = rules
        self.result = GrammarResult()
        self.kinds: list[_Kind | None] = []
        self.key_missing: set[str] = set()

    def find(self, rule: str, message: str, index: int | None = None) -> None:
        offset = raw = None
        if index is not None:
            ev = self.events[index]
            offset, raw = ev.offset, ev.raw[:RAW_EXCERPT_BYTES]
            message = f"event {index} ({ev.type}): {message}"
        self.result.findings.append(Finding(rule, message, offset, raw, RULES[rule][0], index))

    def indices(self, *kinds: _Kind) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k in kinds]

    def run(self) -> GrammarResult:
        terminal_at: int | None = None
        for i, ev in enumerate(self.events):
            kind = self.rules.kind(ev.type)
            self.kinds.append(kind)
            ok, payload = _parse(ev.data)
            self.result.payloads.append(payload if ok else None)
            if terminal_at is not None:
                if kind == "terminal":
                    self.find(
                        "grammar.terminal_last", f"a second terminal event (the first was event {terminal_at})", i
                    )
                else:
                    self.find("grammar.terminal_last", f"an event after the terminal event {terminal_at}", i)
            if kind is None:
                if ev.type in self.rules.other_events and self.rules.message_schema:
                    ok_other, other = _parse(ev.data)
                    if ok_other and isinstance(other, dict):
                        self.schema(i, self.rules.message_schema, other)
                if self.rules.flag_unknown_events and ev.type not in self.rules.other_events:
                    self.find("grammar.known_events", f"an event the profile does not know: {ev.type!r}", i)
                continue  # unknown event types are legal and carry no MUST
            if kind == "terminal":
                if terminal_at is None:
                    terminal_at = i
                    self.result.terminal = ev.type
                if self.rules.terminal_data and ev.data != self.rules.terminal_data:
                    self.find(
                        "grammar.terminal_data", f"expected data {self.rules.terminal_data!r}, got {_show(ev.data)}", i
                    )
            elif not isinstance(payload, dict):
                what = f"JSON {type(payload).__name__}" if ok else "not JSON"
                self.find("grammar.payload_json", f"expected a JSON object, got {what}: {_show(ev.data)}", i)
            if kind == "error":
                self.result.errors.append(payload if ok else ev.data)
            if isinstance(payload, dict):
                self.payload(i, ev, kind, payload)
        self.end()
        return self.result

    def payload(self, i: int, ev: Event, kind: _Kind, payload: dict[str, Any]) -> None:
        rules = self.rules
        if rules.event_key:
            if rules.event_key in payload:
                if payload[rules.event_key] != ev.type:
                    self.find(
                        "grammar.event_key_matches",
                        f"expected {rules.event_key!r} = {ev.type!r}, got {_show(payload[rules.event_key])}",
                        i,
                    )
            elif ev.type in rules.events_with_event_key and ev.type not in self.key_missing:
                self.key_missing.add(ev.type)  # once per event type: one finding says it
                self.find("grammar.event_key_present", f"expected an {rules.event_key!r} key in the payload", i)
        self.conversation_ids(i, payload)
        if kind in ("delta", "completed"):
            self.message(i, kind, payload)
        elif kind == "chat_completed":
            self.usage(i, payload)
        if kind in ("start", "chat_completed", "chat_failed"):
            self.chat(i, payload)
        schema = self.rules.chat_schema if kind in ("start", "chat_completed", "chat_failed") else ""
        schema = self.rules.message_schema if kind in ("delta", "completed") else schema
        if schema:
            self.schema(i, schema, payload)

    def schema(self, i: int, schema: str, payload: dict[str, Any]) -> None:
        from conformance.oracle.schemas import validate_profile_object

        problems = validate_profile_object(schema, payload)
        if problems:
            more = f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
            self.find("grammar.payload_schema", f"{schema}: " + "; ".join(map(str, problems[:2])) + more, i)

    def chat(self, i: int, payload: dict[str, Any]) -> None:
        record = self.section(payload, self.rules.run_record_key)
        if not self.rules.chat_required:
            return
        if not isinstance(record, dict):
            self.find("grammar.chat_fields", f"expected a chat object, got {_show(record)}", i)
            return
        bad = [k for k in self.rules.chat_required if not isinstance(record.get(k), str) or record[k] == ""]
        if bad:
            self.find("grammar.chat_fields", "expected non-empty strings: " + ", ".join(f"{k!r} = {_show(record.get(k))}" for k in bad), i)
        chat_id = record.get("id")
        if isinstance(chat_id, str) and chat_id and self.result.chat_id is None:
            self.result.chat_id = chat_id

    def section(self, payload: dict[str, Any], key: str) -> Any:
        return payload if not key else payload.get(key)

    def conversation_ids(self, i: int, payload: dict[str, Any]) -> None:
        key, seen = self.rules.conversation_id_key, self.result.conversation_ids
        nested = [payload.get(k) for k in (self.rules.message_key, self.rules.run_record_key) if k]
        for part in (payload, *nested):
            if isinstance(part, dict) and _is_id(part.get(key)):
                cid = str(part[key])  # ids compare as exact text
                if seen and cid not in seen:
                    self.find("grammar.ids_consistent", f"expected {key} {seen[0]!r}, got {cid!r}", i)
                if cid not in seen:
                    seen.append(cid)

    def message(self, i: int, kind: _Kind, payload: dict[str, Any]) -> None:
        rules = self.rules
        id_key, content_key, role_key = rules.message_fields
        where = f"payload[{rules.message_key!r}]" if rules.message_key else "the payload"
        item = self.section(payload, rules.message_key)
        if not isinstance(item, dict):
            self.find("grammar.message_fields", f"expected a message object in {where}, got {_show(item)}", i)
            return
        problems = []
        if not _is_id(item.get(id_key)):
            problems.append(f"{id_key!r}: expected a non-empty string or integer, got {_show(item.get(id_key))}")
        for key in (content_key, role_key, *rules.message_required):
            if not isinstance(item.get(key), str):
                problems.append(f"{key!r}: expected a string, got {_show(item.get(key))}")
        if rules.chat_id_key:
            self.result.message_chat_ids.append((i, item.get(rules.chat_id_key)))
        if problems:
            self.find("grammar.message_fields", f"{where}: " + "; ".join(problems), i)
        if not _is_id(item.get(id_key)) or not isinstance(item.get(content_key), str):
            return
        mid, content = str(item[id_key]), item[content_key]
        msg = self.result.messages.setdefault(mid, Message(mid))
        if isinstance(item.get(role_key), str) and msg.role is None:
            msg.role = item[role_key]
        if kind == "delta":
            if msg.completed is not None:
                self.find("grammar.deltas_before_completed", f"a delta of message {mid!r} after its completed event", i)
            else:
                msg.deltas.append(content)
        elif msg.completed is not None:
            self.find("grammar.duplicate_message_completed", f"a second completed event for message {mid!r}", i)
        else:
            msg.completed = content
            if msg.deltas and msg.joined != content:
                self.find(
                    "grammar.deltas_join_completed",
                    f"message {mid!r}: expected content = joined deltas {_show(msg.joined)}, got {_show(content)}",
                    i,
                )

    def usage(self, i: int, payload: dict[str, Any]) -> None:
        record = self.section(payload, self.rules.run_record_key)
        if not isinstance(record, dict) or self.rules.usage_key not in record:
            if self.rules.usage_required:
                self.find("grammar.usage_present", f"expected {self.rules.usage_key!r} on the chat's completion", i)
            return  # usage is checked when carried; the schema says where it must be
        usage = record[self.rules.usage_key]
        if self.result.usage is None and isinstance(usage, dict):
            self.result.usage = usage
        names = self.rules.usage_fields
        if not isinstance(usage, dict):
            self.find("grammar.usage_integers", f"expected a usage object, got {_show(usage)}", i)
            return
        bad = {
            n: usage.get(n)
            for n in names
            if isinstance(usage.get(n), bool) or not isinstance(usage.get(n), int) or usage[n] < 0
        }
        if bad:
            self.find("grammar.usage_integers", f"expected non-negative integers, got {_show(bad)}", i)
            return
        prompt, completion, total = (usage[n] for n in names)
        if total != prompt + completion:
            self.find(
                "grammar.usage_total",
                f"expected {names[2]} = {prompt} + {completion} = {prompt + completion}, got {total}",
                i,
            )

    def end(self) -> None:
        rules, result = self.rules, self.result
        messages = self.indices("delta", "completed")
        outcomes = self.indices("chat_completed", "chat_failed")
        errors = self.indices("error")
        terminals = self.indices("terminal")
        for i in self.indices("start"):
            if messages and i > messages[0]:
                self.find("grammar.start_before_messages", f"a start event after message event {messages[0]}", i)
        if self.kinds and self.kinds[0] != "error":  # an error answer need not start a chat
            missing = [name for name in rules.start_events if name not in {ev.type for ev in self.events}]
            if missing:
                self.find("grammar.start_events_present", f"expected start events {missing}, none sent")
        if outcomes:
            result.outcome = "completed" if self.kinds[outcomes[0]] == "chat_completed" else "failed"
        elif errors:
            result.outcome = "error"
        if len(outcomes) > 1:
            self.find(
                "grammar.chat_outcome", f"a second chat outcome event (the first was event {outcomes[0]})", outcomes[1]
            )
        elif not outcomes and not errors:
            self.find(
                "grammar.chat_outcome",
                f"expected one of {rules.chat_completed_events + rules.chat_failed_events}, none sent",
            )
        if outcomes and messages and messages[-1] > outcomes[0]:
            self.find(
                "grammar.chat_outcome", f"a message event after the chat outcome event {outcomes[0]}", messages[-1]
            )
        if not terminals and not errors:
            self.find("grammar.terminal_present", f"expected a terminal event {list(rules.terminal_events)}, none sent")
        if terminals and result.terminal != rules.preferred_terminal:
            self.find(
                "grammar.preferred_terminal",
                f"expected {rules.preferred_terminal!r}, got {result.terminal!r}",
                terminals[0],
            )
        if result.chat_id is not None:
            for i, chat_id in result.message_chat_ids:
                if chat_id != result.chat_id:
                    self.find(
                        "grammar.ids_consistent",
                        f"expected {rules.chat_id_key} {result.chat_id!r} (the chat's id), got {_show(chat_id)}",
                        i,
                    )
        if result.outcome == "completed":
            for msg in result.messages.values():
                if msg.deltas and msg.completed is None:
                    self.find(
                        "grammar.ids_consistent", f"message {msg.id!r} had deltas but no completed event with its id"
                    )
        self.liveness(bool(messages))

    def liveness(self, has_messages: bool) -> None:
        if not has_messages or len(self.events) < 2:
            return  # nothing that should have been streamed
        times = [ev.arrived for ev in self.events]
        start, end = min(times), max(times)
        duration = end - start
        if duration < self.rules.liveness_min_seconds:
            return
        tail = sum(1 for t in times if t >= end - _LIVENESS_TAIL * duration)
        if tail / len(times) >= self.rules.liveness_tail_share:
            self.find(
                "grammar.liveness",
                f"{tail} of {len(times)} events arrived in the last {_LIVENESS_TAIL * duration:.2f} s"
                f" of a {duration:.2f} s stream",
            )


def check_chat_stream(
    events: Sequence[Event], rules: StreamRules, closed_by: Literal["server", "client"] | None = None
) -> GrammarResult:
    """Check a chat stream's dispatched events against the grammar. ``closed_by`` (who
    ended the stream, when known) judges ``close_after_terminal``."""
    result = _Grammar(events, rules).run()
    if rules.close_after_terminal and closed_by == "client" and result.terminal is not None:
        index = next(i for i, ev in enumerate(events) if ev.type == result.terminal)
        ev = events[index]
        result.findings.append(
            Finding(
                "grammar.closed_after_terminal",
                f"event {index} ({ev.type}): the server kept the stream open "
                f"{rules.after_terminal_grace_seconds:g} s after it; the client closed it",
                ev.offset,
                ev.raw[:RAW_EXCERPT_BYTES],
                RULES["grammar.closed_after_terminal"][0],
                index,
            )
        )
    return result


@dataclass
class StreamReading:
    """A stream read by :func:`read_stream`."""

    events: list[Event]
    sse_findings: list[Finding]
    grammar: GrammarResult
    closed_by: Literal["server", "client"]  # who ended the stream

    @property
    def findings(self) -> list[Finding]:
        return self.sse_findings + self.grammar.findings


def read_stream(
    chunks: Iterable[tuple[bytes, float]],
    checker: SSEChecker,
    rules: StreamRules,
    clock: Callable[[], float] = time.monotonic,
) -> StreamReading:
    """Feed ``(bytes, arrival time)`` chunks to ``checker`` until the server ends
    the stream, or until ``after_terminal_grace_seconds`` after the terminal
    event (or an error event) -- READING "After the terminal event": a server
    may keep the connection open, the client closes it. Then check the grammar.

    ``clock`` must be the clock the timestamps come from. The transport bounds
    each read (a read timeout); it may yield ``(b"", t)`` when a read times out
    so that the grace is checked while the server is silent. When the reading
    stops early the iterator is closed (``close()``, if it has one), which lets
    a generator release its connection.
    """
    it = iter(chunks)
    deadline: float | None = None
    closed_by: Literal["server", "client"] = "client"
    try:
        for chunk, t in it:
            if deadline is not None and t > deadline:
                break
            for ev in checker.feed(chunk, t):
                if deadline is None and rules.kind(ev.type) in ("terminal", "error"):
                    deadline = ev.arrived + rules.after_terminal_grace_seconds
            if checker.stopped or (deadline is not None and clock() >= deadline):
                break
        else:
            closed_by = "server"
            checker.close(clock())
    finally:
        close = getattr(it, "close", None)
        if callable(close):
            close()
    return StreamReading(
        events=list(checker.events),
        sse_findings=list(checker.findings),
        grammar=check_chat_stream(checker.events, rules, closed_by),
        closed_by=closed_by,
    )
