"""Every variant knob, end to end over a real socket, and prompt stops with open streams.

Each knob is another legal reading of the spec (READING "Known ambiguities"); the
tests show that the knob changes the wire as described and that nothing else breaks.
"""

from __future__ import annotations

import email.utils
import json
import re
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



# --------------------------------------------------------------------------- rate-limit variants
# READING "Rate-limit groups", "\"per user\" in the rate-limit table", "`Retry-After`":
# the limiter knobs of config.py, each on and off, with a clock that moves when told to.

IMF_FIXDATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT")


class StepClock:
    """A monotonic clock that moves only when told to (window 10 s: 1000 opens one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def info_statuses(api: Api, count: int, bot_id: int | str = 1) -> list[int]:
    return [api.client.get(f"/v1/bots/{bot_id}").status_code for _ in range(count)]


@pytest.mark.parametrize(("algorithm", "after_edge"), [("fixed", [404] * 3 + [429]), ("sliding", [429])])
def test_rate_algorithm(start_server: StartServer, api_for: Callable[..., Api], algorithm: str, after_edge: list[int]) -> None:
    clock = StepClock()
    api = api_for(start_server(clock=clock, rate_window=10.0, info_limit=3, rate_algorithm=algorithm))
    clock.now = 1008.0  # 2 s before the fixed window [1000, 1010) ends
    assert info_statuses(api, 3) == [404] * 3
    refused = api.client.get("/v1/bots/1")
    assert refused.status_code == 429
    # fixed: the window ends at 1010; sliding: the first admission frees its slot at 1018.
    assert refused.headers["retry-after"] == ("2" if algorithm == "fixed" else "10")
    clock.now = 1010.0
    assert info_statuses(api, len(after_edge)) == after_edge


def test_rate_key_user_id(start_server: StartServer, api_for: Callable[..., Api]) -> None:
    """Chats count per principal and user_id; a body without one, cancel and the internal
    run count for the principal; counted before validation all the same."""
    server = start_server(clock=StepClock(), chat_limit=2, rate_key="user_id")
    api = api_for(server)
    bot_id = api.published_bot()

    def chat(user: str | None, **extra: Any) -> httpx.Response:
        body = {k: v for k, v in api.chat_body(bot_id, "peek").items() if k != "user_id"} | extra
        return api.client.post("/v3/chat", json=body | ({} if user is None else {"user_id": user}))

    first = chat("u-a")
    assert first.status_code == 200 and "peek" in first.json()["data"]["content"]  # the handler saw the body
    assert chat("u-a", bot_id="not-an-id").status_code == 400  # invalid, still counted for u-a
    assert chat("u-a").status_code == 429
    assert [chat("u-b").status_code for _ in range(3)] == [200, 200, 429]
    # No user_id (a 400) and the other chat endpoints: the principal's own count.
    assert chat(None).status_code == 400
    assert api.client.post("/v3/chat/cancel", json={"conversation_id": "1"}).status_code in (400, 404)
    assert api.client.post("/api/conversation/chat", json={"agent_id": bot_id, "query": "q"}).status_code == 429
    assert chat("u-c").status_code == 200


def test_rate_key_principal_is_the_default(start_server: StartServer, api_for: Callable[..., Api]) -> None:
    api = api_for(start_server(clock=StepClock(), chat_limit=2))
    bot_id = api.published_bot()
    for user, status in (("u-a", 200), ("u-b", 200), ("u-c", 429)):
        assert api.client.post("/v3/chat", json=api.chat_body(bot_id) | {"user_id": user}).status_code == status


def test_the_user_id_peek_leaves_large_bodies_to_the_handler(start_server: StartServer, api_for: Callable[..., Api]) -> None:
    api = api_for(start_server(clock=StepClock(), rate_key="user_id", max_body_bytes=2000))
    bot_id = api.published_bot()
    body = api.chat_body(bot_id, "x" * 5000)
    raw = json.dumps(body).encode()

    def chunked() -> Any:  # no Content-Length: the peek stops past the limit
        for i in range(0, len(raw), 700):
            yield raw[i : i + 700]

    for content in (raw, chunked()):
        answer = api.client.post("/v3/chat", content=content, headers={"content-type": "application/json"})
        assert answer.status_code == 400 and "too large" in answer.json()["msg"]
    small = json.dumps(api.chat_body(bot_id, "ok")).encode()
    pieces = iter([small[:10], small[10:]])
    answer = api.client.post("/v3/chat", content=(p for p in pieces), headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("style", ["seconds", "http_date", "none"])
def test_retry_after(start_server: StartServer, api_for: Callable[..., Api], style: str) -> None:
    api = api_for(start_server(clock=StepClock(), rate_window=10.0, info_limit=1, retry_after=style))
    assert info_statuses(api, 1) == [404]
    before = time.time()
    refused = api.client.get("/v1/bots/1")
    after = time.time()
    assert refused.status_code == 429 and refused.json()["code"] == 429
    value = refused.headers.get("retry-after")
    if style == "none":
        assert value is None
    elif style == "seconds":
        assert value == "10"
    else:
        assert value is not None and IMF_FIXDATE.fullmatch(value), value
        when = email.utils.parsedate_to_datetime(value).timestamp()
        assert before + 10 <= when <= after + 11  # rounded up, never before the reopening


@pytest.mark.parametrize("count_errors", [True, False])
def test_rate_count_errors(start_server: StartServer, api_for: Callable[..., Api], count_errors: bool) -> None:
    api = api_for(start_server(clock=StepClock(), info_limit=2, management_limit=3, rate_count_errors=count_errors))
    bot_id = api.create_bot()["bot_id"]  # one management request
    if count_errors:
        assert info_statuses(api, 3) == [404, 404, 429]
        assert [api.client.post("/api/draftbot/create", json={}).status_code for _ in range(3)] == [400, 400, 429]
    else:
        assert info_statuses(api, 5) == [404] * 5  # 4xx answers keep no slot
        assert [api.client.post("/api/draftbot/create", json={}).status_code for _ in range(5)] == [400] * 5
        assert info_statuses(api, 3, bot_id) == [200, 200, 429]  # successes count
        refused = api.client.get(f"/v1/bots/{bot_id}")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"


@pytest.mark.parametrize("limited", [True, False])
def test_cancel_limited(start_server: StartServer, api_for: Callable[..., Api], limited: bool) -> None:
    api = api_for(start_server(clock=StepClock(), chat_limit=2, cancel_limited=limited))
    bot_id = api.published_bot()
    conversation_id = api.chat(bot_id)["conversation_id"]
    cancels = [api.client.post("/v3/chat/cancel", json={"conversation_id": conversation_id}).status_code for _ in range(3)]
    assert cancels == ([200, 429, 429] if limited else [200] * 3)
    assert api.client.post("/v3/chat", json=api.chat_body(bot_id)).status_code == (429 if limited else 200)
