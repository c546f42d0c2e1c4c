"""Every variant knob, end to end over a real socket, and prompt stops with open streams.

Each knob is another legal reading of the spec (READING "Known ambiguities"); the
tests show that the knob changes the wire as described and that nothing else breaks.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from httpx_sse import EventSource

from conformance.reference import (
    DEV_PRINCIPALS,
    FAIL_TRIGGER,
    ReferenceServer,
    ServerConfig,
)

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


@pytest.mark.slow
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



# ---- JSON wire forms (wireforms.py): extra keys, key order, transfer, error envelopes,
# unset fields. Each knob on and off, probed over a real socket.

EXTRA_KEYS = ("x_ref_extra", "x_ref_extra_object")


def json_objects(value: Any) -> list[dict[str, Any]]:
    """Every JSON object in ``value``, outermost first, leaving out the extra keys' values."""
    if isinstance(value, dict):
        found = [value]
        for key, item in value.items():
            if key not in EXTRA_KEYS:
                found += json_objects(item)
        return found
    if isinstance(value, list):
        return [o for item in value for o in json_objects(item)]
    return []


def key_orders(text: str | bytes) -> list[list[str]]:
    """The key order of every JSON object in ``text``, in the order the parser closes them."""
    orders: list[list[str]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        orders.append([key for key, _ in pairs])
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return orders


def raw_http(server: ReferenceServer, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One HTTP/1.1 exchange on a plain socket, the response's bytes exactly as sent."""
    host, port = server.url.removeprefix("http://").split(":")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def dechunk(body: bytes) -> list[bytes]:
    """The chunks of a chunked body, in order (the last, empty one left out)."""
    chunks: list[bytes] = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return chunks
        chunks.append(body[:size])
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


def stream_payloads(api: Api, bot_id: int) -> list[bytes]:
    """The raw ``data:`` text of every event of one streamed chat."""
    _, raw = raw_stream(api, bot_id)
    return [line.removeprefix(b"data: ") for line in raw.split(b"\n") if line.startswith(b"data: ")]


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_json_extra_keys_in_every_object(setup: Setup, on: bool) -> None:
    api, bot_id = setup(json_extra_keys=on)
    answers = [
        api.client.get(f"/v1/bots/{bot_id}").json(),
        api.client.post("/v3/chat", json=api.chat_body(bot_id)).json(),
        api.client.get("/v1/bots/12345").json(),  # an error envelope
        api.client.get("/no/such/path").json(),  # an error outside the endpoints
    ]
    payloads = [json.loads(p) for p in stream_payloads(api, bot_id)]
    objects = [o for value in answers + payloads for o in json_objects(value)]
    assert len(objects) > len(answers) + len(payloads)  # nested objects are in there too
    for obj in objects:
        assert all((key in obj) is on for key in EXTRA_KEYS), obj
    assert answers[1]["code"] == 0 and answers[1]["data"]["content"]  # the documented keys are unchanged
    assert answers[2]["code"] == 404 and answers[2]["data"] is None
    assert [p["event"] for p in payloads][-1] == "conversation.stream.done"


def test_json_keys_reversed_in_every_object(setup: Setup) -> None:
    plain, plain_bot = setup()
    reversed_, reversed_bot = setup(json_key_order="reversed")
    for api, bot_id, flip in ((plain, plain_bot, False), (reversed_, reversed_bot, True)):
        details = key_orders(api.client.get(f"/v1/bots/{bot_id}").content)
        error = key_orders(api.client.get("/v1/bots/12345").content)
        chat = key_orders(api.client.post("/v3/chat", json=api.chat_body(bot_id)).content)
        stream = [key_orders(p) for p in stream_payloads(api, bot_id)]
        first = (lambda keys: keys[-1]) if flip else (lambda keys: keys[0])
        assert first(details[-1]) == first(error[-1]) == first(chat[-1]) == "code"  # the envelope
        assert first(chat[0]) == "prompt_tokens"  # usage, nested in data
        assert all(first(orders[-1]) == "event" for orders in stream)
    # The same objects, each in exactly the reverse order.
    assert [k[::-1] for k in key_orders(plain.client.get("/v1/bots/12345").content)] == key_orders(
        reversed_.client.get("/v1/bots/12345").content
    )


def test_json_chunked_transfer(start_server: StartServer, api_for: Callable[..., Api]) -> None:
    headers = {"Authorization": f"Bearer {DEV_PRINCIPALS[0].api_key}"}
    plain = start_server()
    status, head, body = split_response(raw_http(plain, "GET", f"/v1/bots/{plain.seed_published_bot()}", headers))
    assert status == 200 and int(head["content-length"]) == len(body) and "transfer-encoding" not in head
    server = start_server(json_transfer="chunked")
    bot_id = server.seed_published_bot()
    for path, code in ((f"/v1/bots/{bot_id}", 0), ("/v1/bots/12345", 404)):
        status, head, body = split_response(raw_http(server, "GET", path, headers))
        assert head["transfer-encoding"] == "chunked" and "content-length" not in head
        assert head["content-type"].startswith("application/json")
        chunks = dechunk(body)
        assert len(chunks) >= 3 and len(chunks[0]) == 1
        assert json.loads(b"".join(chunks))["code"] == code and status == (code or 200)
    # Streams keep their own framing.
    assert stream_payloads(api_for(server), int(bot_id))[-1].startswith(b'{"event":"conversation.stream.done"')


@pytest.mark.parametrize(
    ("fields", "accept", "gzipped"),
    [
        pytest.param({}, "gzip, deflate", False, id="off"),
        pytest.param({"json_transfer": "gzip"}, "gzip, deflate", True, id="gzip-accepted"),
        pytest.param({"json_transfer": "gzip"}, "br;q=1, *;q=0.5", True, id="star-accepted"),
        pytest.param({"json_transfer": "gzip"}, "identity", False, id="identity-only"),
        pytest.param({"json_transfer": "gzip"}, "gzip;q=0, *", False, id="gzip-refused"),
    ],
)
def test_json_gzip_transfer(start_server: StartServer, fields: dict[str, Any], accept: str, gzipped: bool) -> None:
    server = start_server(**fields)
    bot_id = server.seed_published_bot()
    headers = {"Authorization": f"Bearer {DEV_PRINCIPALS[0].api_key}", "Accept-Encoding": accept}
    for path, code in ((f"/v1/bots/{bot_id}", 0), ("/v1/bots/12345", 404)):
        status, head, body = split_response(raw_http(server, "GET", path, headers))
        assert int(head["content-length"]) == len(body)
        assert (head.get("content-encoding") == "gzip") is gzipped
        assert json.loads(gzip.decompress(body) if gzipped else body)["code"] == code


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_error_http_status_200(start_server: StartServer, api_for: Callable[..., Api], on: bool) -> None:
    fields: dict[str, Any] = {"error_http_status": "200"} if on else {}
    server = start_server(info_limit=2, rate_window=60.0, **fields)
    api = api_for(server)
    unknown = api.client.get("/v1/bots/12345")
    assert unknown.json() == {"code": 404, "msg": unknown.json()["msg"], "data": None}
    assert unknown.status_code == (200 if on else 404)
    api.client.get("/v1/bots/12345")
    refused = api.client.get("/v1/bots/12345")  # the third in the window: a 429
    assert refused.json()["code"] == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.status_code == (200 if on else 429)
    anonymous = api_for(server, headers={}).client.get("/v1/bots/1")
    assert anonymous.json()["code"] == 401 and anonymous.status_code == (200 if on else 401)
    other = api_for(server, principal=DEV_PRINCIPALS[1]).client.get("/v1/bots/12345")
    assert other.json()["code"] == 404 and other.status_code == (200 if on else 404)  # not limited yet


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_error_data_absent(setup: Setup, on: bool) -> None:
    api, bot_id = setup(error_data="absent" if on else "null")
    for response in (api.client.get("/v1/bots/12345"), api.client.post("/v3/chat", json={"bot_id": str(bot_id)})):
        body = response.json()
        assert response.status_code == body["code"] and isinstance(body["msg"], str)
        assert ("data" in body) is not on and body.get("data") is None
    assert api.client.get(f"/v1/bots/{bot_id}").json()["data"]["bot_id"] == bot_id  # success keeps its data


@pytest.mark.parametrize(
    ("form", "model", "tools"),
    [
        pytest.param("mixed", None, []),
        pytest.param("absent", None, None),
        pytest.param("empty", "", []),
    ],
)
def test_unset_fields(setup: Setup, form: str, model: str | None, tools: list[object] | None) -> None:
    api, bot_id = setup(unset_fields=form)
    details = api.client.get(f"/v1/bots/{bot_id}").json()["data"]
    online = api.client.get("/v1/bot/get_online_info", params={"bot_id": bot_id}).json()["data"]
    assert details.get("model", None) == online.get("model", None) == model
    assert ("model" in details) is ("model" in online) is (model is not None)
    assert details.get("tools", None) == tools and ("tools" in details) is (tools is not None)
    assert "tools" not in online  # not on the page's online-info example, in every form
    # A model that was set is shown in every form.
    set_bot = api.published_bot(name="With model", model="gpt-4")
    assert api.client.get(f"/v1/bots/{set_bot}").json()["data"]["model"] == "gpt-4"
    assert api.client.get("/v1/bot/get_online_info", params={"bot_id": set_bot}).json()["data"]["model"] == "gpt-4"


# ---- stream and conversation forms: message_shape, unknown_events,
# payload_event_key, unknown_conversation, conversation_keys, cancel_after_end, run_answer.


def sse_blocks(raw: bytes) -> list[tuple[str, str]]:
    """(event name, data text) of every event, the data kept as text: with
    unknown_events some data is not JSON, which ``decode_events`` would refuse."""
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=raw)
    return [(sse.event, sse.data) for sse in EventSource(response).iter_sse() if sse.data]


def messages_of(events: list[Event]) -> dict[str, dict[str, Any]]:
    """Per message id, in order of appearance: its deltas and its completed contents."""
    messages: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.name not in ("conversation.message.delta", "conversation.message.completed"):
            continue
        item = event.payload["message_item"]
        entry = messages.setdefault(item["id"], {"deltas": [], "completed": []})
        entry["deltas" if event.name.endswith("delta") else "completed"].append(item["content"])
    return messages


def test_message_shape_deltas_by_default(setup: Setup) -> None:
    api, bot_id = setup()
    (entry,) = messages_of(api.chat_stream(bot_id, "abc")).values()
    assert len(entry["deltas"]) >= 5 and entry["completed"] == ["".join(entry["deltas"])]


def test_message_shape_completed_only(setup: Setup) -> None:
    api, bot_id = setup(message_shape="completed_only")
    events = api.chat_stream(bot_id, "abc")
    assert collapse(events) == [n for n in DOCUMENTED if n != "conversation.message.delta"]
    (entry,) = messages_of(events).values()
    assert entry == {"deltas": [], "completed": [api.chat(bot_id, "abc")["content"]]}
    # A failure still ends the stream with the error event, chat.failed and the terminal event.
    failed = [e.name for e in api.chat_stream(bot_id, FAIL_TRIGGER)]
    assert failed[-3:] == ["conversation.error", "conversation.chat.failed", "conversation.stream.done"]
    assert "conversation.message.completed" not in failed


def test_message_shape_several(setup: Setup) -> None:
    api, bot_id = setup(message_shape="several")
    events = api.chat_stream(bot_id, "abc")
    messages = messages_of(events)
    assert len(messages) == 2
    for entry in messages.values():
        assert entry["deltas"] and entry["completed"] == ["".join(entry["deltas"])]
    # One message after the other; together they are the whole answer.
    names = collapse(events)
    assert names == [*DOCUMENTED[:4], *DOCUMENTED[2:]]
    whole = "".join(entry["completed"][0] for entry in messages.values())
    assert whole == "Turn 1 with Variant: you said “abc”."
    # The non-stream answer is one message object (spec "非流式响应"): the whole answer.
    answer = api.chat(bot_id, "abc")
    assert answer["content"] == whole and answer["id"] not in messages


def test_unknown_events_off_by_default(setup: Setup) -> None:
    api, bot_id = setup()
    _, raw = raw_stream(api, bot_id)
    assert {name for name, _ in sse_blocks(raw)} == set(DOCUMENTED)


def test_unknown_events(setup: Setup) -> None:
    api, bot_id = setup(unknown_events=True)
    _, raw = raw_stream(api, bot_id, "abc")
    blocks = sse_blocks(raw)
    names = [name for name, _ in blocks]
    assert blocks[0] == ("ping", "keep-alive") and blocks[-2] == ("ping", "keep-alive")
    assert names[-1] == "conversation.stream.done"
    documented = [name for name in names if name in DOCUMENTED]
    assert [n for i, n in enumerate(documented) if i == 0 or documented[i - 1] != n] == DOCUMENTED
    audio = [json.loads(data) for name, data in blocks if name == "conversation.audio.delta"]
    messages = sum(1 for name in names if name.startswith("conversation.message."))
    assert len(audio) == messages
    assert {a["message_item"]["content_type"] for a in audio} == {"audio"}
    assert all(a["event"] == "conversation.audio.delta" for a in audio)
    text_ids = {json.loads(data)["message_item"]["id"] for name, data in blocks if name.startswith("conversation.message.")}
    assert len({a["message_item"]["id"] for a in audio} | text_ids) == 2  # one audio message beside the answer
    # An error answer still opens with its error event (READING "Errors on a streaming request").
    response, error = raw_stream_body(api, {**api.chat_body(bot_id, stream=True), "user_id": None})
    assert [name for name, _ in sse_blocks(error)] == ["conversation.error"]


def raw_stream_body(api: Api, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    with api.client.stream("POST", "/v3/chat", json=body) as response:
        return response, response.read()


def test_payload_event_key_on_by_default(setup: Setup) -> None:
    api, bot_id = setup()
    assert all(e.payload["event"] == e.name for e in api.chat_stream(bot_id))


@pytest.mark.parametrize("error_event", ["conversation.error", "error"])
def test_payload_without_event_key(setup: Setup, error_event: str) -> None:
    api, bot_id = setup(payload_event_key=False, unknown_events=True, error_event=error_event)
    _, raw = raw_stream(api, bot_id)
    blocks = sse_blocks(raw)
    payloads = [json.loads(data) for name, data in blocks if name != "ping"]
    assert payloads and all("event" not in p for p in payloads)
    assert blocks[-1] == ("conversation.stream.done", "{}")
    _, raw = raw_stream(api, bot_id, FAIL_TRIGGER)
    failed = [(name, json.loads(data)) for name, data in sse_blocks(raw) if name != "ping"]
    assert failed[-3][0] == error_event and failed[-3][1]["code"] == 500
    assert all("event" not in payload for _, payload in failed)
    _, error = raw_stream_body(api, {**api.chat_body(bot_id, stream=True), "user_id": None})
    ((name, data),) = sse_blocks(error)
    assert name == error_event and "event" not in json.loads(data) and json.loads(data)["code"] == 400


def test_unknown_conversation_refused_by_default(setup: Setup) -> None:
    api, bot_id = setup()
    response = api.client.post("/v3/chat", json=api.chat_body(bot_id, ConversationID="123456789"))
    assert response.json()["code"] == 404


def test_unknown_conversation_new(start_server: StartServer, api_for: Callable[..., Api]) -> None:
    server = start_server(unknown_conversation="new")
    alice, bob = api_for(server), api_for(server, DEV_PRINCIPALS[1])
    bot_id, bob_bot = alice.published_bot(name="Variant"), bob.published_bot(name="Bob's")
    first = alice.chat(bot_id, "secret")
    # Unknown: a new conversation with an id of its own, in every form and in a stream.
    for extra in ({"ConversationID": "123456789"}, {"conversation_id": "123456789"}):
        data = alice.chat(bot_id, "hi", **extra)
        assert data["conversation_id"] not in ("123456789", first["conversation_id"])
        assert data["content"].startswith("Turn 1 ")
    events = alice.chat_stream(bot_id, ConversationID="123456789")
    assert events[0].payload["chat"]["conversation_id"] != "123456789"
    # Another principal's: a new conversation of Bob's; Alice's is untouched.
    data = bob.chat(bob_bot, "what did she say?", ConversationID=first["conversation_id"])
    assert data["conversation_id"] != first["conversation_id"] and data["content"].startswith("Turn 1 ")
    assert "secret" not in data["content"]
    after = alice.chat(bot_id, "again", ConversationID=first["conversation_id"])
    assert after["conversation_id"] == first["conversation_id"] and after["content"].startswith("Turn 2 ")
    # The same principal's conversation with another bot is still refused, and so is a
    # cancel of an unknown conversation (READING "Cancel": 400 or 404).
    other_bot = alice.published_bot(name="Other")
    response = alice.client.post("/v3/chat", json=alice.chat_body(other_bot, ConversationID=first["conversation_id"]))
    assert response.json()["code"] == 400
    assert alice.client.post("/v3/chat/cancel", json={"conversation_id": "123456789"}).json()["code"] == 404


def continued(api: Api, bot_id: int, conversation: str, where: str) -> bool:
    """Whether a chat naming ``conversation`` in the form ``where`` (a body key, or
    "query") continued it."""
    params = {"conversation_id": conversation} if where == "query" else None
    body = api.chat_body(bot_id, **({} if where == "query" else {where: conversation}))
    data = api.client.post("/v3/chat", json=body, params=params).json()["data"]
    return bool(data["conversation_id"] == conversation)


@pytest.mark.parametrize(
    ("keys", "honoured"),
    [
        pytest.param(None, {"ConversationID", "conversation_id", "query"}, id="default-all"),
        pytest.param(("ConversationID",), {"ConversationID"}, id="ConversationID"),
        pytest.param(("conversation_id", "query"), {"conversation_id", "query"}, id="conversation_id"),
        pytest.param(("query",), {"query"}, id="query"),
    ],
)
def test_conversation_keys(setup: Setup, keys: tuple[str, ...] | None, honoured: set[str]) -> None:
    api, bot_id = setup(**({} if keys is None else {"conversation_keys": keys}))
    conversation_id = api.chat(bot_id)["conversation_id"]
    for where in ("ConversationID", "conversation_id", "query"):
        assert continued(api, bot_id, conversation_id, where) == (where in honoured), where
    # An ignored form is still type-checked (REQ-004: a wrong type is 400, not ignored) ...
    for key in ("ConversationID", "conversation_id"):
        response = api.client.post("/v3/chat", json=api.chat_body(bot_id, **{key: {"id": conversation_id}}))
        assert response.json()["code"] == 400
    # ... but conflicts only between the honoured forms.
    body = api.chat_body(bot_id, ConversationID=conversation_id, conversation_id="987654321")
    code = api.client.post("/v3/chat", json=body).json()["code"]
    expected = 400 if {"ConversationID", "conversation_id"} <= honoured else 404 if "conversation_id" in honoured else 0
    assert code == expected


@pytest.mark.parametrize(
    "keys", [(), ("conversation_id", "conversation_id"), ("query", "ConversationId"), ["query"]]
)
def test_conversation_keys_refused(keys: Any) -> None:
    with pytest.raises(ValueError, match="conversation_keys"):
        ServerConfig(conversation_keys=keys)


@pytest.mark.parametrize(
    ("field", "value"),
    [("message_shape", "none"), ("unknown_conversation", "adopt"), ("cancel_after_end", 0), ("run_answer", True)],
)
def test_stream_form_knobs_refuse_other_values(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        ServerConfig(**{field: value})


@pytest.mark.slow
@pytest.mark.parametrize(("after_end", "code"), [("ok", 0), ("error", 400)])
def test_cancel_after_end(start_server: StartServer, api_for: Callable[..., Api], after_end: str, code: int) -> None:
    api = api_for(start_server(token_delay=0.2, cancel_after_end=after_end))
    bot_id = api.published_bot()
    conversation_id = api.chat(bot_id, "x")["conversation_id"]
    # Nothing running: code 0, or the error the knob asks for.
    finished = api.client.post("/v3/chat/cancel", json={"conversation_id": conversation_id}).json()
    assert finished["code"] == code
    # A streaming chat is cancelled with code 0 either way.
    lines: list[str] = []
    first_delta = threading.Event()

    def read() -> None:
        body = api.chat_body(bot_id, stream=True, ConversationID=conversation_id)
        with api.client.stream("POST", "/v3/chat", json=body) as response:
            for line in response.iter_lines():
                lines.append(line)
                if line == "event: conversation.message.delta":
                    first_delta.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert first_delta.wait(5)
    running = api.client.post("/v3/chat/cancel", json={"conversation_id": conversation_id}).json()
    thread.join(5)
    assert running == {"code": 0, "msg": "success"}
    assert "event: conversation.chat.failed" in lines


def run(api: Api, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    with api.client.stream("POST", "/api/conversation/chat", json=body) as response:
        return response, response.read()


@pytest.mark.parametrize(
    ("run_answer", "stream", "streams"),
    [
        ("as_asked", None, False),
        ("as_asked", False, False),
        ("as_asked", True, True),
        ("stream", None, True),
        ("stream", False, True),
        ("envelope", True, False),
    ],
)
def test_run_answer(
    setup: Setup, decode: Callable[[bytes], list[Event]], run_answer: str, stream: bool | None, streams: bool
) -> None:
    api, bot_id = setup(run_answer=run_answer)
    body: dict[str, Any] = {"agent_id": bot_id, "query": "hi"} | ({} if stream is None else {"stream": stream})
    response, raw = run(api, body)
    assert response.status_code == 200
    if streams:
        assert response.headers["content-type"] == "text/event-stream"
        assert collapse(decode(raw)) == DOCUMENTED
    else:
        assert response.json()["code"] == 0 and response.json()["data"]["content"].startswith("Turn 1 ")
    # A missing query: the error as the answer would have been, a leading error event or an envelope.
    response, raw = run(api, {k: v for k, v in body.items() if k != "query"})
    if streams:
        assert [(e.name, e.payload["code"]) for e in decode(raw)] == [("conversation.error", 400)]
    else:
        assert response.status_code == 400 and response.json()["code"] == 400


def test_run_always_streams_with_envelope_errors(setup: Setup) -> None:
    api, bot_id = setup(run_answer="stream", stream_errors="envelope")
    response, _ = run(api, {"agent_id": bot_id})
    assert response.status_code == 400 and response.json()["code"] == 400
    response, raw = run(api, {"agent_id": bot_id, "query": "hi", "stream": "yes"})
    assert response.json()["code"] == 400  # stream is still type-checked


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


# ---- other readings: bot_id_text, chat_payloads, cancel_data, draft_chat. Each on and off.


@pytest.mark.parametrize("on", [False, True])
def test_bot_id_text(setup: Setup, on: bool) -> None:
    api, bot_id = setup(bot_id_text=on)
    expected: int | str = str(bot_id) if on else bot_id
    if on:  # the create answer already carries it as text; the ids are the same digits
        assert isinstance(api.create_bot()["bot_id"], str)
    online = api.client.get("/v1/bot/get_online_info", params={"bot_id": bot_id}).json()["data"]
    assert online["bot_id"] == expected
    assert api.chat(bot_id)["bot_id"] == expected
    payloads = [e.payload for e in api.chat_stream(bot_id) if isinstance(e.payload, dict)]
    ids = [p[key]["bot_id"] for p in payloads for key in ("chat", "message_item") if key in p]
    assert ids and all(i == expected for i in ids)


@pytest.mark.parametrize("form", ["full", "bare"])
def test_chat_payloads(setup: Setup, form: str) -> None:
    api, bot_id = setup(chat_payloads=form)
    events = api.chat_stream(bot_id)
    status = [e for e in events if e.name in ("conversation.chat.created", "conversation.chat.in_progress")]
    assert len(status) == 2
    for event in status:
        assert ("chat" in event.payload) is (form == "full") and event.payload["event"] == event.name
    failed = [e for e in api.chat_stream(bot_id, FAIL_TRIGGER) if e.name == "conversation.chat.failed"]
    assert len(failed) == 1 and ("chat" in failed[0].payload) is (form == "full")


@pytest.mark.parametrize("on", [False, True])
def test_cancel_data(setup: Setup, on: bool) -> None:
    api, bot_id = setup(cancel_data=on)
    conversation_id = api.chat(bot_id)["conversation_id"]
    answer = api.client.post("/v3/chat/cancel", json={"conversation_id": conversation_id}).json()
    assert answer["code"] == 0
    assert answer.get("data") == ({"conversation_id": conversation_id, "status": "cancelled"} if on else None)
    assert ("data" in answer) is on


@pytest.mark.parametrize("form", ["refuse", "answer"])
def test_draft_chat(start_server: StartServer, api_for: Callable[..., Api], form: str) -> None:
    api = api_for(start_server(draft_chat=form))
    draft = api.create_bot(name="Draft only")["bot_id"]
    answer = api.client.post("/v3/chat", json=api.chat_body(draft)).json()
    assert answer["code"] == (0 if form == "answer" else 400)
    assert ("data" in answer and answer["data"] is not None) is (form == "answer")
