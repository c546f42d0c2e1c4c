"""The faults of faults/wire.py are on the wire, and only when switched on.

One table row per fault: a probe that talks to a real server over a real socket and
answers "is the breakage visible?". Each row runs the probe twice -- against a server
with only that fault on (it must see the breakage) and against a clean server with the
same knobs (it must not) -- so a fault that breaks nothing, or a probe that sees
breakage everywhere, fails here. The probes read bytes with httpx and httpx-sse, never
with the suite's checker: whether the suite kills each fault is the kill matrix's job.

The registry itself is checked against conformance/oracle/catalogue.toml (read here with
tomllib; the server never reads it): every requirement a fault declares exists, is not
retired and has the declared level, and every MUST and SHOULD requirement of these
areas has a fault.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource

from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig
from conformance.reference.faults import all_faults
from conformance.reference.faults.stream import ENDLESS_STREAM_SECONDS, HOLD_SECONDS, STREAM_FAULTS
from conformance.reference.faults.wire import WIRE_FAULTS

CATALOGUE = Path(__file__).resolve().parents[2] / "conformance" / "oracle" / "catalogue.toml"
ALICE = DEV_PRINCIPALS[0]
TIMEOUT = httpx.Timeout(10.0)
#: The catalogue areas this registry covers (the rest are faults/api.py's).
AREAS = ("CHAT-", "CANCEL-", "RUN-", "ENV-", "ERR-", "REQ-")
SINGLE_IDS = ("BP-002", "BP-003", "READ-001")
#: How long a probe waits to call a stream endless: long past a clean stream's end,
#: well short of ENDLESS_STREAM_SECONDS (when the server would close it).
ENDLESS_PROBE_SECONDS = 1.5
SMALL_BODY_LIMIT = 2048
SLOW_ANSWER_SECONDS = 0.4
TERMINALS = ("conversation.stream.done", "done")
START = ("conversation.chat.created", "conversation.chat.in_progress")
DELTA = "conversation.message.delta"
COMPLETED = "conversation.message.completed"
CHAT_COMPLETED = "conversation.chat.completed"
CHAT_FAILED = "conversation.chat.failed"


# --------------------------------------------------------------------------- the probe's view


@dataclass(frozen=True)
class Sse:
    """One event as a WHATWG decoder (httpx-sse) reads it; ``payload`` None when not JSON."""

    name: str
    data: str

    @property
    def payload(self) -> Any:
        try:
            return json.loads(self.data)
        except ValueError:
            return None


@dataclass
class Streamed:
    status: int
    content_type: str
    raw: bytes
    events: list[Sse]
    closed: bool  # the server ended the stream within the read's time limit


def decode(raw: bytes) -> list[Sse]:
    text_type = {"content-type": "text/event-stream"}
    response = httpx.Response(200, headers=text_type, content=raw)
    return [Sse(sse.event, sse.data) for sse in EventSource(response).iter_sse() if sse.data]


class Wire:
    """Alice's client for one server, with a published bot."""

    def __init__(self, server: ReferenceServer, client: httpx.Client) -> None:
        self.server = server
        self.client = client
        self.bot_id = server.seed_published_bot()

    def body(self, text: str = "hello", **extra: Any) -> dict[str, Any]:
        body = {
            "bot_id": self.bot_id,
            "user_id": "user_001",
            "stream": False,
            "additional_messages": [{"role": "user", "content": text, "content_type": "text"}],
        }
        return body | extra

    def without(self, key: str, **extra: Any) -> dict[str, Any]:
        return {k: v for k, v in self.body(**extra).items() if k != key}

    def message_body(self, **message: Any) -> dict[str, Any]:
        return self.body(additional_messages=[message])

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)

    def chat(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.post("/v3/chat", body, **kwargs)

    def code(self, response: httpx.Response) -> Any:
        try:
            return response.json().get("code")
        except ValueError:
            return None

    def data(self, response: httpx.Response) -> dict[str, Any]:
        data: dict[str, Any] = response.json()["data"]
        return data

    def conversation(self, **extra: Any) -> str:
        """A new conversation, by one non-stream chat."""
        response = self.chat(self.body(**extra))
        assert self.code(response) == 0, response.text
        return str(self.data(response)["conversation_id"])

    def stream(self, body: dict[str, Any], path: str = "/v3/chat", *, limit: float = 5.0) -> Streamed:
        """POST a stream request and read it for at most ``limit`` seconds."""
        with self.client.stream("POST", path, json={**body, "stream": True}, timeout=read_limit(limit)) as response:
            raw, closed = read_for(response.iter_raw(), limit)
        return Streamed(response.status_code, response.headers.get("content-type", ""), raw, decode(raw), closed)

    def stream_events(self, **extra: Any) -> list[Sse]:
        return self.stream(self.body(**extra)).events


def read_limit(seconds: float) -> httpx.Timeout:
    """A read timeout, so that a silent stream cannot hold a probe past ``seconds``."""
    return httpx.Timeout(TIMEOUT.connect, read=seconds)


def read_for(chunks: Iterator[bytes], seconds: float, raw: bytes = b"") -> tuple[bytes, bool]:
    """Read ``chunks`` for at most ``seconds``: the bytes, and whether the server closed."""
    deadline = time.monotonic() + seconds
    try:
        for chunk in chunks:
            raw += chunk
            if time.monotonic() > deadline:
                return raw, False
    except httpx.ReadTimeout:
        return raw, False
    return raw, True


def names(events: list[Sse]) -> list[str]:
    return [e.name for e in events]


def payloads(events: list[Sse], name: str) -> list[Any]:
    return [e.payload for e in events if e.name == name]


def first(events: list[Sse], *wanted: str) -> int:
    return next((i for i, e in enumerate(events) if e.name in wanted), len(events))


# --------------------------------------------------------------------------- probes: streams


def utf8_broken(w: Wire) -> bool:
    try:
        w.stream(w.body()).raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def held_back(w: Wire) -> bool:
    """The gap between the first event and the second is the hold (a clean stream has none)."""
    arrivals: list[float] = []
    seen = b""
    with w.client.stream("POST", "/v3/chat", json=w.body(stream=True)) as response:
        for chunk in response.iter_raw():
            seen += chunk
            arrivals.extend(time.monotonic() for _ in range(chunk.count(b"\n\n")))
    return len(arrivals) > 2 and arrivals[1] - arrivals[0] >= HOLD_SECONDS * 0.8


def endless(w: Wire) -> bool:
    got = w.stream(w.body(), limit=ENDLESS_PROBE_SECONDS)
    return not got.closed and not set(names(got.events)) & set(TERMINALS) and b": keep-alive" in got.raw


def deltas_differ(w: Wire) -> bool:
    events = w.stream_events()
    joined = "".join(p["message_item"]["content"] for p in payloads(events, DELTA))
    return any(p["message_item"]["content"] != joined for p in payloads(events, COMPLETED))


def delta_ids_differ(w: Wire) -> bool:
    events = w.stream_events()
    delta_ids = {p["message_item"]["id"] for p in payloads(events, DELTA)}
    completed_ids = {p["message_item"]["id"] for p in payloads(events, COMPLETED)}
    return delta_ids != completed_ids


def conversation_ids_differ(w: Wire) -> bool:
    events = w.stream_events()
    ids = {
        part["conversation_id"]
        for e in events
        if isinstance(e.payload, dict)
        for part in e.payload.values()
        if isinstance(part, dict) and "conversation_id" in part
    }
    return len(ids) > 1


def usage(w: Wire) -> dict[str, Any]:
    (completed,) = payloads(w.stream_events(), CHAT_COMPLETED)
    found: dict[str, Any] = completed["run_record_item"]["usage"]
    return found


def stream_error(w: Wire) -> list[Sse]:
    """A stream request without user_id, answered as an event stream (the default)."""
    got = w.stream(w.without("user_id"))
    assert got.content_type.startswith("text/event-stream"), got.raw
    return got.events


def error_code_string(w: Wire) -> bool:
    errors = [e.payload for e in stream_error(w) if e.name in ("conversation.error", "error")]
    return any(isinstance(p.get("code"), str) for p in errors)


# --------------------------------------------------------------------------- probes: chats


def refused(w: Wire, body: dict[str, Any]) -> bool:
    return w.code(w.chat(body)) != 0


def accepted(w: Wire, body: dict[str, Any]) -> bool:
    return w.code(w.chat(body)) == 0


def not_400(w: Wire, path: str, body: dict[str, Any]) -> bool:
    return w.code(w.post(path, body)) != 400


def answer(w: Wire) -> dict[str, Any]:
    response = w.chat(w.body())
    assert w.code(response) == 0, response.text
    return w.data(response)


def slow(w: Wire) -> bool:
    started = time.monotonic()
    assert w.code(w.chat(w.without("stream"))) == 0
    return time.monotonic() - started >= SLOW_ANSWER_SECONDS


def abort_breaks(w: Wire) -> bool:
    conversation = w.conversation()
    with w.client.stream("POST", "/v3/chat", json=w.body(stream=True, conversation_id=conversation)) as response:
        seen = b""
        for chunk in response.iter_raw():
            seen += chunk
            if DELTA.encode() in seen:
                break  # leaving the block closes the connection mid-answer
    time.sleep(0.1)  # the close reaches the server
    return refused(w, w.body(conversation_id=conversation))


def continued_id(w: Wire, key: str) -> bool:
    """Does a chat continuing a conversation by ``key`` come back in another one?"""
    conversation = w.conversation()
    return str(answer_in(w, **{key: conversation})) != conversation


def answer_in(w: Wire, **extra: Any) -> Any:
    response = w.chat(w.body(**extra))
    assert w.code(response) == 0, response.text
    return w.data(response)["conversation_id"]


def unknown_adopted(w: Wire) -> bool:
    unknown = "1234567890123456789"
    response = w.chat(w.body(ConversationID=unknown))
    return w.code(response) == 0 and str(w.data(response)["conversation_id"]) == unknown


# --------------------------------------------------------------------------- probes: cancel


def cancel_code(w: Wire, body: dict[str, Any]) -> Any:
    return w.code(w.post("/v3/chat/cancel", body))


def cancelled_stream_lingers(w: Wire) -> bool:
    """Cancel mid-stream (token_delay > 0), then read on: a clean stream ends at once with
    chat.failed; the faulty one sends nothing more and stays open."""
    conversation = w.conversation()
    body = w.body(stream=True, conversation_id=conversation)
    raw = b""
    with w.client.stream("POST", "/v3/chat", json=body, timeout=read_limit(ENDLESS_PROBE_SECONDS)) as response:
        chunks = response.iter_raw()
        for chunk in chunks:
            raw += chunk
            if DELTA.encode() in raw:
                break
        assert cancel_code(w, {"conversation_id": conversation}) == 0
        raw, closed = read_for(chunks, ENDLESS_PROBE_SECONDS, raw)
    return not closed and CHAT_FAILED not in names(decode(raw))


# --------------------------------------------------------------------------- probes: envelopes


def huge(w: Wire) -> httpx.Response:
    return w.chat(w.body(meta_data={"padding": "x" * SMALL_BODY_LIMIT}))


def an_error(w: Wire) -> httpx.Response:
    response = w.chat(w.without("user_id"))
    assert w.code(response) == 400, response.text
    return response


def run_body(w: Wire, **extra: Any) -> dict[str, Any]:
    return {"agent_id": int(w.bot_id), "query": "hello"} | extra


# --------------------------------------------------------------------------- the table

Probe = Callable[[Wire], bool]
SMALL_BODIES = {"max_body_bytes": SMALL_BODY_LIMIT}


def not_json(w: Wire) -> httpx.Response:
    return w.client.post("/v3/chat", content=b"{'bot_id': 1", headers={"Content-Type": "application/json"})


def unknown_key_refused(w: Wire) -> bool:
    body = w.code(w.chat(w.body(x_cz_extra=1))) == 400
    query = w.code(w.client.get("/v1/bot/get_online_info", params={"bot_id": w.bot_id, "x_cz_q": "1"})) == 400
    return body and query


def stream_on_a_false_string(w: Wire) -> bool:
    """``"stream": "false"`` answered with an event stream (a clean server refuses it)."""
    return w.chat(w.body(stream="false")).headers.get("content-type", "").startswith("text/event-stream")


def row(fault: str, probe: Probe, **knobs: Any) -> Any:
    return pytest.param(fault, probe, knobs, id=fault)


PROBES = [
    # streams
    row("stream_wrong_media_type", lambda w: not w.stream(w.body()).content_type.startswith("text/event-stream")),
    row("stream_invalid_utf8", utf8_broken),
    row("stream_last_event_unterminated", lambda w: not w.stream(w.body()).raw.endswith(b"\n\n")),
    row("stream_held_back", held_back),
    row("stream_no_start_events", lambda w: not set(START) & set(names(w.stream_events()))),
    row("stream_start_after_message", lambda w: first(ev := w.stream_events(), *START) > first(ev, DELTA)),
    row("stream_no_chat_completed", lambda w: CHAT_COMPLETED not in names(w.stream_events())),
    row("stream_chat_completed_twice", lambda w: names(w.stream_events()).count(CHAT_COMPLETED) == 2),
    row("stream_delta_after_completed", lambda w: first(ev := w.stream_events(), COMPLETED) < first(ev, DELTA)),
    row("stream_deltas_differ", deltas_differ),
    row("stream_message_completed_twice", lambda w: names(w.stream_events()).count(COMPLETED) == 2),
    row("stream_no_terminal", lambda w: not set(TERMINALS) & set(names(w.stream_events()))),
    row("stream_never_ends", endless),
    row("stream_terminal_twice", lambda w: sum(n in TERMINALS for n in names(w.stream_events())) == 2),
    row("stream_event_after_terminal", lambda w: first(ev := w.stream_events(), *TERMINALS) < len(ev) - 1),
    row("stream_done_terminal", lambda w: names(w.stream_events())[-1] == "done"),
    row("stream_invalid_json", lambda w: any(e.payload is None for e in w.stream_events())),
    row("stream_event_key_mismatch", lambda w: any(e.payload.get("event", e.name) != e.name for e in w.stream_events())),
    row("stream_no_event_key", lambda w: all("event" not in e.payload for e in w.stream_events())),
    row(
        "stream_message_without_role",
        lambda w: any("role" not in p["message_item"] for p in payloads(w.stream_events(), DELTA)),
    ),
    row("stream_usage_strings", lambda w: any(not isinstance(v, int) for v in usage(w).values())),
    row(
        "stream_usage_total_wrong",
        lambda w: (u := usage(w))["total_tokens"] != u["prompt_tokens"] + u["completion_tokens"],
    ),
    row("stream_message_ids_differ", delta_ids_differ),
    row("stream_conversation_ids_differ", conversation_ids_differ),
    row("stream_error_code_string", error_code_string),
    row("stream_error_after_start", lambda w: stream_error(w)[0].name not in ("conversation.error", "error")),
    # chats
    row("chat_bot_id_string_refused", lambda w: refused(w, w.body())),
    row("chat_missing_bot_id_404", lambda w: not_400(w, "/v3/chat", w.without("bot_id"))),
    row("chat_unknown_bot_answered", lambda w: accepted(w, w.body(bot_id="1234567890123456789"))),
    row("chat_missing_user_id_accepted", lambda w: accepted(w, w.without("user_id"))),
    row(
        "chat_stream_default_true",
        lambda w: w.chat(w.without("stream")).headers["content-type"].startswith("text/event-stream"),
    ),
    row("chat_user_id_object_accepted", lambda w: accepted(w, w.body(user_id={"id": "user_001"}))),
    row("chat_custom_variables_refused", lambda w: refused(w, w.body(custom_variables={"name": "x"}))),
    row("chat_meta_data_refused", lambda w: refused(w, w.body(meta_data={"k": "v"}))),
    row("chat_extra_params_refused", lambda w: refused(w, w.body(extra_params={"k": "v"}))),
    row("chat_response_without_id", lambda w: not {"id", "conversation_id"} & set(answer(w))),
    row("chat_response_content_not_string", lambda w: not isinstance(answer(w)["content"], str)),
    row("chat_response_role_bot", lambda w: answer(w)["role"] != "assistant"),
    row("chat_created_at_ms", lambda w: answer(w)["created_at"] > time.time() + 86_400),
    row("chat_slow_answer", slow, slow_answer_seconds=SLOW_ANSWER_SECONDS),
    row("chat_abort_breaks_conversation", abort_breaks),
    # messages
    row(
        "msg_assistant_refused",
        lambda w: refused(
            w,
            w.body(
                additional_messages=[
                    {"role": "user", "content": "hi", "content_type": "text"},
                    {"role": "assistant", "content": "hello", "content_type": "text"},
                    {"role": "user", "content": "go on", "content_type": "text"},
                ]
            ),
        ),
    ),
    row("msg_missing_role_accepted", lambda w: accepted(w, w.message_body(content="hi", content_type="text"))),
    row("msg_missing_content_accepted", lambda w: accepted(w, w.message_body(role="user", content_type="text"))),
    row("msg_type_alias_refused", lambda w: refused(w, w.message_body(role="user", content="hi", type="text"))),
    row("msg_no_content_type_accepted", lambda w: accepted(w, w.message_body(role="user", content="hi"))),
    row("msg_text_refused", lambda w: refused(w, w.body())),
    row(
        "msg_image_refused",
        lambda w: refused(w, w.message_body(role="user", content="https://example.com/a.png", content_type="image")),
    ),
    row(
        "msg_object_string_refused",
        lambda w: refused(w, w.message_body(role="user", content='{"a": 1}', content_type="object_string")),
    ),
    row("msg_card_refused", lambda w: refused(w, w.message_body(role="user", content='{"t": 1}', content_type="card"))),
    # validation
    row(
        "validation_missing_content_500",
        lambda w: w.chat(w.message_body(role="user", content_type="text")).status_code == 500,
    ),
    row("validation_huge_body_500", lambda w: huge(w).status_code == 500, **SMALL_BODIES),
    # conversations
    row("conv_id_not_kept", lambda w: continued_id(w, "conversation_id")),
    row("conv_conversationid_ignored", lambda w: continued_id(w, "ConversationID")),
    row("conv_reused_without_id", lambda w: w.conversation() == w.conversation()),
    row("conv_unknown_id_adopted", unknown_adopted),
    # cancel
    row("cancel_refused", lambda w: cancel_code(w, {"conversation_id": w.conversation()}) != 0),
    row("cancel_missing_id_accepted", lambda w: cancel_code(w, {}) == 0),
    row("cancel_stream_never_ends", cancelled_stream_lingers, token_delay=0.05),
    row("cancel_unknown_ok", lambda w: cancel_code(w, {"conversation_id": "1234567890123456789"}) == 0),
    # run
    row("run_server_error", lambda w: w.post("/api/conversation/chat", run_body(w)).status_code == 500),
    row(
        "run_missing_agent_id_404",
        lambda w: not_400(w, "/api/conversation/chat", {"query": "hello"}),
    ),
    row(
        "run_missing_query_accepted",
        lambda w: w.code(w.post("/api/conversation/chat", {"agent_id": int(w.bot_id)})) == 0,
    ),
    # requests
    row("req_not_json_500", lambda w: not_json(w).status_code == 500),
    row("req_required_wrong_type_500", lambda w: w.post("/api/draftbot/publish", {"bot_id": [1]}).status_code == 500),
    row("req_optional_wrong_type_500", lambda w: w.chat(w.body(custom_variables=[1])).status_code == 500),
    row("req_optional_wrong_type_ignored", lambda w: w.code(w.chat(w.body(custom_variables=[1]))) == 0),
    row("req_body_over_64kib_500", lambda w: w.chat(w.body(meta_data={"padding": "x" * 65536})).status_code == 500),
    row("chat_stream_wrong_type_truthy", stream_on_a_false_string),
    row("req_unknown_key_refused", unknown_key_refused),
    # envelopes
    row("env_success_without_msg", lambda w: "msg" not in w.chat(w.body()).json()),
    row("env_run_success_without_data", lambda w: "data" not in w.post("/api/conversation/chat", run_body(w)).json()),
    row("env_success_msg_ok", lambda w: w.chat(w.body()).json()["msg"] != "success"),
    row("err_without_msg", lambda w: "msg" not in an_error(w).json()),
    row("err_cancel_code_string", lambda w: isinstance(w.post("/v3/chat/cancel", {}).json()["code"], str)),
    row("err_run_code_4000", lambda w: w.code(w.post("/api/conversation/chat", {"agent_id": int(w.bot_id)})) == 4000),
    row(
        "err_huge_body_plain_text",
        lambda w: (r := huge(w)).status_code == 413 and r.headers["content-type"].startswith("text/plain"),
        **SMALL_BODIES,
    ),
    row("err_data_not_null", lambda w: an_error(w).json()["data"] is not None),
    row("err_status_200", lambda w: an_error(w).status_code == 200),
    row(
        "err_huge_body_bad_gateway",
        lambda w: (r := huge(w)).status_code == 502 and r.headers["content-type"].startswith("text/html"),
        **SMALL_BODIES,
    ),
]


def start(**fields: Any) -> tuple[ReferenceServer, httpx.Client]:
    config = ServerConfig(**{"token_delay": 0, "rate_limits": False, **fields})
    server = ReferenceServer(config).start()
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ALICE.api_key}"}, timeout=TIMEOUT)
    return server, client


@pytest.fixture(scope="module")
def clean() -> Iterator[Callable[..., Wire]]:
    """Clean servers, one per set of knobs, shared by the table's rows."""
    running: dict[tuple[tuple[str, Any], ...], tuple[ReferenceServer, httpx.Client]] = {}

    def get(**knobs: Any) -> Wire:
        key = tuple(sorted(knobs.items()))
        if key not in running:
            running[key] = start(**knobs)
        return Wire(*running[key])

    yield get
    for server, client in running.values():
        client.close()
        server.stop()


@pytest.fixture
def faulty() -> Iterator[Callable[..., Wire]]:
    """A server of this test's own with one fault on."""
    started: list[tuple[ReferenceServer, httpx.Client]] = []

    def get(fault: str, **knobs: Any) -> Wire:
        started.append(start(faults=frozenset({fault}), **knobs))
        return Wire(*started[-1])

    yield get
    for server, client in started:
        client.close()
        server.stop()


@pytest.mark.slow  # a server per fault: every fault's wire probe, in CI and the full run
@pytest.mark.parametrize(("fault", "probe", "knobs"), PROBES)
def test_the_fault_is_on_the_wire_and_only_when_on(
    faulty: Callable[..., Wire], clean: Callable[..., Wire], fault: str, probe: Probe, knobs: dict[str, Any]
) -> None:
    assert probe(faulty(fault, **knobs)), f"{fault}: the probe saw no breakage"
    assert not probe(clean(**knobs)), f"{fault}: the probe sees the breakage on a clean server too"


# --------------------------------------------------------------------------- the registry


def catalogue() -> dict[str, dict[str, Any]]:
    with CATALOGUE.open("rb") as fh:
        return {r["id"]: r for r in tomllib.load(fh)["requirement"]}


def test_every_wire_fault_has_exactly_one_probe() -> None:
    probed = [p.values[0] for p in PROBES]
    assert len(probed) == len(set(probed))
    assert set(probed) == {f.name for f in (*STREAM_FAULTS, *WIRE_FAULTS)}


def test_fault_names_are_unique_across_the_registry() -> None:
    names_ = [f.name for f in (*STREAM_FAULTS, *WIRE_FAULTS)]
    assert len(names_) == len(set(names_))
    assert set(names_) <= set(all_faults())  # all_faults() itself refuses a duplicate across the parts


@pytest.mark.parametrize("fault", [*STREAM_FAULTS, *WIRE_FAULTS], ids=lambda f: f.name)
def test_the_declared_requirement_exists_with_its_level(fault: Any) -> None:
    requirement = catalogue().get(fault.requirement)
    assert requirement is not None, f"{fault.name}: {fault.requirement} is not in the catalogue"
    assert not requirement.get("retired", False)
    assert requirement["level"] == fault.level
    assert fault.description.strip()
    assert fault.collateral is None or fault.collateral.strip()


def test_every_must_and_should_requirement_of_these_areas_has_a_fault() -> None:
    mine = {
        rid
        for rid, r in catalogue().items()
        if (rid.startswith(AREAS) or rid in SINGLE_IDS)
        and r["level"] in ("MUST", "SHOULD")
        and not r.get("retired", False)
    }
    assert mine, "the areas matched no requirement"
    assert mine - {f.requirement for f in (*STREAM_FAULTS, *WIRE_FAULTS)} == set()


@pytest.mark.slow
def test_the_endless_streams_outlast_the_matrix_stream_timeout() -> None:
    # The kill matrix runs the suite with --stream-timeout 5: the suite's deadline, not
    # the server, must be what ends an endless stream there.
    assert ENDLESS_STREAM_SECONDS > 5 + 1
