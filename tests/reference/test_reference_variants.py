"""Every variant knob, end to end over a real socket, and prompt stops with open streams.

Each knob is another legal reading of the spec (READING "Known ambiguities"); the
tests show that the knob changes the wire as described and that nothing else breaks.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conformance.reference import DEV_PRINCIPALS, FAIL_TRIGGER, ReferenceServer, ServerConfig

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
