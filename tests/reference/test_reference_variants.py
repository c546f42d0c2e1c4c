"""Every variant knob, end to end over a real socket, and prompt stops with open streams.

Each knob is another legal reading of the spec (READING "Known ambiguities"); the
tests show that the knob changes the wire as described and that nothing else breaks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conformance.reference import FAIL_TRIGGER, ReferenceServer, ServerConfig

if TYPE_CHECKING:
    from conftest import Api, Event, StartServer

DOCUMENTED = [
    "conversation.chat.created",
    "conversation.chat.in_progress",
    "conversation.message.delta",
    "conversation.message.completed",
    "conversation.chat.completed",
    "conversation.stream.done",
]


def collapse(events: list[Event]) -> list[str]:
    names = [e.name for e in events]
    return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]


def raw_stream(api: Api, bot_id: int, text: str = "你好 hello 🙂") -> tuple[httpx.Response, bytes]:
    with api.client.stream("POST", "/v3/chat", json=api.chat_body(bot_id, text, stream=True)) as response:
        return response, response.read()


Setup = Callable[..., "tuple[Api, int]"]


@pytest.fixture
def setup(start_server: StartServer, api_for: Callable[..., Api]) -> Setup:
    """A server with the given knobs, Alice's client on it and a published bot."""

    def make(**fields: Any) -> tuple[Api, int]:
        api = api_for(start_server(**fields))
        return api, api.published_bot(name="Variant")

    return make


def test_prefixed_ids(setup: Setup) -> None:
    api, bot_id = setup(id_style="prefixed")
    first = api.chat(bot_id)
    assert first["conversation_id"].startswith("conv_") and first["id"].startswith("msg_")
    second = api.chat(bot_id, ConversationID=first["conversation_id"])
    assert second["conversation_id"] == first["conversation_id"] and second["content"].startswith("Turn 2 ")
    events = api.chat_stream(bot_id)
    delta = next(e for e in events if e.name == "conversation.message.delta")
    assert delta.payload["message_item"]["id"].startswith("msg_")
    assert events[0].payload["chat"]["conversation_id"].startswith("conv_")
    assert type(delta.payload["message_item"]["bot_id"]) is int  # bot ids stay integers
    # A prefixed id is cancellable too.
    cancel = api.client.post("/v3/chat/cancel", json={"conversation_id": first["conversation_id"]})
    assert cancel.json()["code"] == 0


def test_success_msg(setup: Setup) -> None:
    api, bot_id = setup(success_msg="ok")
    assert api.client.get(f"/v1/bots/{bot_id}").json()["msg"] == "ok"
    assert api.client.post("/v3/chat", json=api.chat_body(bot_id)).json()["msg"] == "ok"


def test_answer_style_count(setup: Setup) -> None:
    api, bot_id = setup(answer_style="count")
    first = api.chat(bot_id, "abc")
    assert first["content"] == "Variant has read 1 messages in this conversation; the last user message had 3 characters."
    events = api.chat_stream(bot_id, "abc")
    completed = next(e for e in events if e.name == "conversation.message.completed")
    assert completed.payload["message_item"]["content"] == first["content"]


def test_without_start_events(setup: Setup) -> None:
    api, bot_id = setup(start_events=False)
    events = api.chat_stream(bot_id)
    assert collapse(events) == DOCUMENTED[2:]


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        pytest.param({"line_ending": "\r\n"}, lambda raw: b"\r\n\r\n" in raw and b"\n\n" not in raw, id="crlf"),
        pytest.param({"line_ending": "\r"}, lambda raw: b"\r\r" in raw and b"\n" not in raw, id="cr"),
        pytest.param({"space_after_colon": False}, lambda raw: raw.startswith(b"event:conversation"), id="no-space"),
        pytest.param({"sse_extras": True}, lambda raw: b"\nid: 3\n" in raw and b"retry: " in raw, id="extras"),
        pytest.param({"multiline_data": True}, lambda raw: raw.count(b"data: ") > 60, id="multiline"),
        pytest.param({"bom": True}, lambda raw: raw.startswith(b"\xef\xbb\xbfevent: "), id="bom"),
        pytest.param({"chunk_sizes": (1, 3)}, lambda raw: raw.startswith(b"event: "), id="chunked"),
        pytest.param(
            {"line_ending": "\r", "space_after_colon": False, "sse_extras": True, "multiline_data": True, "bom": True,
             "chunk_sizes": (1, 5)},
            lambda raw: raw.startswith(b"\xef\xbb\xbf:"),
            id="everything",
        ),
    ],
)
def test_framing_variants_carry_the_same_events(
    setup: Setup, decode: Callable[[bytes], list[Event]], fields: dict[str, Any], check: Callable[[bytes], bool]
) -> None:
    api, bot_id = setup(**fields)
    response, raw = raw_stream(api, bot_id)
    assert check(raw)
    events = decode(raw)
    assert collapse(events) == DOCUMENTED
    content = next(e for e in events if e.name == "conversation.message.completed").payload["message_item"]["content"]
    assert "你好 hello 🙂" in content


def test_content_type_with_charset(setup: Setup) -> None:
    api, bot_id = setup(content_type="text/event-stream; charset=utf-8")
    response, _ = raw_stream(api, bot_id)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"


def test_chunked_writes_reach_the_client_in_small_pieces(setup: Setup) -> None:
    """With 1-3 byte writes and a token delay, the client sees many small reads."""
    api, bot_id = setup(chunk_sizes=(1, 3), token_delay=0.01)
    with api.client.stream("POST", "/v3/chat", json=api.chat_body(bot_id, stream=True)) as response:
        sizes = [len(chunk) for chunk in response.iter_raw()]
    assert len(sizes) > 5 and min(sizes) <= 3


@pytest.mark.parametrize(
    ("fields", "error_name", "terminal"),
    [
        pytest.param({"terminal_event": "done"}, "conversation.error", "done", id="done"),
        pytest.param({"error_event": "error"}, "error", "conversation.stream.done", id="error"),
        pytest.param({"terminal_event": "done", "error_event": "error"}, "error", "done", id="both"),
    ],
)
def test_event_name_variants(setup: Setup, fields: dict[str, Any], error_name: str, terminal: str) -> None:
    api, bot_id = setup(**fields)
    ok = api.chat_stream(bot_id)
    assert ok[-1].name == terminal and ok[-1].payload == {"event": terminal}
    failed = api.chat_stream(bot_id, FAIL_TRIGGER)
    assert [e.name for e in failed[-3:]] == [error_name, "conversation.chat.failed", terminal]
    error = failed[-3].payload
    if error_name == "error":
        # Exactly the spec's error-section payload: {"code":500,"msg":"..."}.
        assert set(error) == {"code", "msg"} and error["code"] == 500
    else:
        assert error["event"] == error_name and error["code"] == 500


def test_keep_open_after_terminal(setup: Setup) -> None:
    api, bot_id = setup(keep_open_after_terminal=1.0)
    terminal_at = closed_at = 0.0
    with api.client.stream("POST", "/v3/chat", json=api.chat_body(bot_id, stream=True)) as response:
        for line in response.iter_lines():
            if line == "event: conversation.stream.done":
                terminal_at = time.monotonic()
        closed_at = time.monotonic()
    assert terminal_at > 0
    assert 0.8 <= closed_at - terminal_at < 3.0


def read_in_background(api: Api, bot_id: int) -> tuple[threading.Thread, list[str], threading.Event]:
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        try:
            with api.client.stream("POST", "/v3/chat", json=api.chat_body(bot_id, stream=True)) as response:
                for line in response.iter_lines():
                    lines.append(line)
                    started.set()
        except httpx.HTTPError as exc:  # the server going away mid-stream is fine here
            lines.append(f"error: {exc!r}")

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, lines, started


@pytest.mark.parametrize(
    "fields",
    [pytest.param({"token_delay": 1.0}, id="slow-stream"), pytest.param({"keep_open_after_terminal": 30.0}, id="kept-open")],
)
def test_stop_is_prompt_with_open_streams(api_for: Callable[..., Api], fields: dict[str, Any]) -> None:
    server = ReferenceServer(ServerConfig(**{"token_delay": 0} | fields))
    server.start()
    try:
        api = api_for(server)
        bot_id = api.published_bot()
        thread, lines, started = read_in_background(api, bot_id)
        assert started.wait(5)
        time.sleep(0.1)
    finally:
        began = time.monotonic()
        server.stop()
        stopped_in = time.monotonic() - began
    thread.join(5)
    assert not thread.is_alive()
    assert stopped_in < 1.5
    if fields.get("token_delay"):
        assert "event: conversation.chat.failed" in lines and lines[-2] == "data: {\"event\":\"conversation.stream.done\"}"


def test_a_server_restarts_on_a_new_port(start_server: StartServer) -> None:
    first = start_server()
    second = start_server()
    assert first.url != second.url
    first.stop()
    first.stop()  # idempotent
    assert httpx.get(f"{second.url}/v1/bots/1").status_code == 401


def test_a_busy_port_is_a_clear_error(start_server: StartServer) -> None:
    taken = int(start_server().url.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError, match="failed to start"):
        ReferenceServer(ServerConfig(port=taken)).start()

