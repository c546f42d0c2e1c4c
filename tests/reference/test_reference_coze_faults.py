"""The coze dialect's faults (conformance/reference/faults/coze.py): one per COZE-*
requirement, each on the wire when on and only then.

One row per fault: a probe that talks to a real coze-dialect server and answers True
when it sees the breakage. Each row runs against a server with only that fault on
(the probe must see it) and against a clean one (it must not).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig
from conformance.reference.faults import all_faults, dialect_faults
from conformance.reference.faults.coze import COZE_FAULTS

ALICE, BOB = DEV_PRINCIPALS
UNKNOWN_ID = "7000000000000000001"
CLOUD_EVENTS = frozenset(
    {
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.chat.completed",
        "conversation.chat.failed",
        "conversation.chat.requires_action",
        "conversation.message.delta",
        "conversation.message.completed",
        "conversation.audio.delta",
        "error",
        "done",
    }
)
#: The COZE-* ids of conformance/oracle/catalogue.toml, with their levels.
REQUIREMENTS = {
    **{f"COZE-SSE-{n:03d}": "MUST" for n in range(1, 24)},
    **{f"COZE-CHAT-{n:03d}": "MUST" for n in range(1, 10)},
    **{f"COZE-CANCEL-{n:03d}": "MUST" for n in range(1, 4)},
    **{f"COZE-BOT-{n:03d}": "MUST" for n in range(1, 7)},
    **{f"COZE-ENV-{n:03d}": "MUST" for n in range(1, 4)},
    **{f"COZE-AUTH-{n:03d}": "MUST" for n in range(1, 4)},
    **{f"COZE-ISO-{n:03d}": "MUST" for n in range(1, 4)},
} | dict.fromkeys(("COZE-SSE-006", "COZE-SSE-014", "COZE-SSE-021", "COZE-SSE-022", "COZE-ENV-003"), "SHOULD")
#: How long the probe waits for the end of a stream's body after its last byte.
EOF_WAIT = 2.0


@dataclass
class Stream:
    headers: httpx.Headers
    raw: bytes
    seconds: float

    def text(self) -> str:
        return self.raw.decode("utf-8", errors="replace")

    def events(self) -> list[tuple[str, str]]:
        """(name, data) of every block with an event line; comments and other lines ignored."""
        found = []
        for block in self.text().split("\n\n"):
            lines = block.split("\n")
            name = next((line[6:] for line in lines if line.startswith("event:")), None)
            data = next((line[5:] for line in lines if line.startswith("data:")), None)
            if name is not None:
                found.append((name, data or ""))
        return found

    def payloads(self, *names: str) -> list[Any]:
        return [json.loads(data) for name, data in self.events() if name in names]

    def names(self) -> list[str]:
        return [name for name, _ in self.events()]


class Wire:
    """A server as a probe sees it: alice's client, bob's, a published bot of alice's."""

    def __init__(self, server: ReferenceServer) -> None:
        self.server = server
        self.alice = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ALICE.api_key}"}, timeout=10)
        self.bob = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {BOB.api_key}"}, timeout=10)
        self.bot = server.seed_published_bot("alice")

    def close(self) -> None:
        self.alice.close()
        self.bob.close()

    def body(self, bot: str | None = None, **extra: Any) -> dict[str, Any]:
        message = {"role": "user", "content": "hello", "content_type": "text", "type": "question"}
        return {"bot_id": bot or self.bot, "user_id": "u1", "additional_messages": [message]} | extra

    def stream(self, conversation_id: str = "") -> Stream:
        started = time.monotonic()
        client = httpx.Client(headers=self.alice.headers, timeout=httpx.Timeout(10, read=EOF_WAIT))
        raw = b""
        with client, client.stream("POST", f"{self.server.url}/v3/chat", params={"conversation_id": conversation_id},
                                   json=self.body(stream=True)) as response:
            try:
                for chunk in response.iter_raw():
                    raw += chunk
            except httpx.ReadTimeout:
                raw += b"\n<<no EOF>>"
            return Stream(response.headers, raw, time.monotonic() - started)

    def chat(self, client: httpx.Client | None = None, bot: str | None = None, query: str = "", **body: Any) -> dict[str, Any]:
        response = (client or self.alice).post("/v3/chat", params={"conversation_id": query}, json=self.body(bot, **body) | body)
        result: dict[str, Any] = response.json()
        return result

    def retrieve(self, chat: dict[str, Any], client: httpx.Client | None = None) -> dict[str, Any]:
        params = {"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
        result: dict[str, Any] = (client or self.alice).post("/v3/chat/retrieve", params=params).json()
        return result

    def finished(self, chat: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data: dict[str, Any] = self.retrieve(chat)["data"]
            if data["status"] not in ("created", "in_progress") or time.monotonic() > deadline - 4:
                return data
            time.sleep(0.02)
        return data

    def cancel(self, chat: dict[str, Any], client: httpx.Client | None = None, **only: str) -> dict[str, Any]:
        ids = only or {"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
        result: dict[str, Any] = (client or self.alice).post("/v3/chat/cancel", json=ids).json()
        return result

    def created_bot(self, name: str = "probe bot") -> str:
        bot_id: str = self.alice.post("/v1/bot/create", json={"space_id": "1", "name": name}).json()["data"]["bot_id"]
        return bot_id

    def published_bot(self, name: str = "probe bot") -> str:
        bot_id = self.created_bot(name)
        self.alice.post("/v1/bot/publish", json={"bot_id": bot_id, "connector_ids": ["1024"]})
        return bot_id

    def online(self, bot_id: str, client: httpx.Client | None = None) -> dict[str, Any]:
        result: dict[str, Any] = (client or self.alice).get("/v1/bot/get_online_info", params={"bot_id": bot_id}).json()
        return result


Probe = Callable[[Wire], bool]
COMPLETED, DELTA, CHAT_COMPLETED = "conversation.message.completed", "conversation.message.delta", "conversation.chat.completed"
START = ("conversation.chat.created", "conversation.chat.in_progress")
CHATS = (*START, CHAT_COMPLETED, "conversation.chat.failed")


def first(names: list[str], *wanted: str) -> int:
    return min((i for i, name in enumerate(names) if name in wanted), default=len(names))


def not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def usage_of(w: Wire) -> Any:
    return w.stream().payloads(CHAT_COMPLETED)[0].get("usage")


def deltas_differ(w: Wire) -> bool:
    stream = w.stream()
    return "".join(p["content"] for p in stream.payloads(DELTA)) != stream.payloads(COMPLETED)[0]["content"]


def stuck_retrieve(w: Wire) -> bool:
    chat = w.chat()["data"]
    w.finished(chat)
    time.sleep(0.3)
    return bool(w.retrieve(chat)["data"]["status"] != "completed")


def listed_answer(w: Wire) -> bool:
    chat = w.chat()["data"]
    w.finished(chat)
    listed = w.alice.get("/v3/chat/message/list", params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]})
    return not any(m["type"] == "answer" and m["role"] == "assistant" for m in listed.json()["data"])


def not_continued(w: Wire) -> bool:
    chat = w.chat()["data"]
    w.finished(chat)
    return bool(w.chat(query=chat["conversation_id"])["data"]["conversation_id"] != chat["conversation_id"])


def cancel_ignored(w: Wire) -> bool:
    chat = w.chat()["data"]
    w.cancel(chat)
    time.sleep(0.2)
    return bool(w.retrieve(chat)["data"]["status"] != "canceled")


def cancel_finished(w: Wire) -> bool:
    chat = w.chat()["data"]
    w.finished(chat)
    return bool(w.cancel(chat)["code"] == 0)


def update_lost(w: Wire) -> bool:
    bot_id = w.created_bot("before")
    w.alice.post("/v1/bot/update", json={"bot_id": bot_id, "name": "after"})
    return bool(w.alice.get(f"/v1/bots/{bot_id}", params={"is_published": "false"}).json()["data"]["name"] != "after")


def online_shows_draft(w: Wire) -> bool:
    bot_id = w.published_bot("published")
    w.alice.post("/v1/bot/update", json={"bot_id": bot_id, "name": "draft edit"})
    return bool(w.online(bot_id)["data"]["name"] == "draft edit")


def no_logid(w: Wire) -> bool:
    response = w.alice.get("/v1/bot/get_online_info", params={"bot_id": w.bot})
    return "x-tt-logid" not in response.headers or "detail" not in response.json()


def bobs_chat_retrieved(w: Wire) -> bool:
    bobs = w.chat(w.bob, bot=w.server.seed_published_bot("bob"))["data"]
    return bool(w.retrieve(bobs, w.alice)["code"] == 0)


def bobs_chat_canceled(w: Wire) -> bool:
    bobs = w.chat(w.bob, bot=w.server.seed_published_bot("bob"))["data"]
    return bool(w.cancel(bobs, w.alice)["code"] == 0)


def row(fault: str, probe: Probe, *marks: Any, **knobs: Any) -> Any:
    return pytest.param(fault, probe, knobs, id=fault, marks=marks)


SLOW_CHAT = {"token_delay": 0.05}  # a non-stream chat still in flight when the next request comes
PROBES = [
    row("coze_stream_media_type", lambda w: not w.stream().headers["content-type"].startswith("text/event-stream")),
    row("coze_sse_comment_line", lambda w: any(line.startswith(":") for line in w.stream().text().split("\n"))),
    row("coze_stream_invalid_utf8", lambda w: not_utf8(w.stream().raw)),
    row("coze_payload_not_object", lambda w: any(not isinstance(json.loads(d), dict) for n, d in w.stream().events() if n != "done")),
    row("coze_start_after_message", lambda w: first(n := w.stream().names(), *START) > first(n, DELTA, COMPLETED)),
    row("coze_no_start_events", lambda w: "conversation.chat.created" not in w.stream().names()),
    row("coze_message_without_role", lambda w: any("role" not in p for p in w.stream().payloads(DELTA, COMPLETED))),
    row("coze_chat_without_status", lambda w: any("status" not in p for p in w.stream().payloads(*CHATS))),
    row("coze_delta_after_completed", lambda w: first(n := w.stream().names(), COMPLETED) < len(n) - 1 - n[::-1].index(DELTA)),
    row("coze_deltas_differ", deltas_differ),
    row("coze_message_completed_twice", lambda w: w.stream().names().count(COMPLETED) != 1),
    row("coze_chat_completed_twice", lambda w: w.stream().names().count(CHAT_COMPLETED) != 1),
    row("coze_usage_prompt_keys", lambda w: set(usage_of(w)) != {"token_count", "output_count", "input_count"}),
    row("coze_usage_total_wrong", lambda w: (u := usage_of(w))["token_count"] != u["input_count"] + u["output_count"]),
    row("coze_no_usage", lambda w: usage_of(w) is None),
    row("coze_no_done", lambda w: w.stream().names()[-1] != "done"),
    row("coze_done_twice", lambda w: w.stream().names().count("done") != 1),
    row("coze_done_data_empty", lambda w: [d for n, d in w.stream().events() if n == "done"] != ['"[DONE]"']),
    row("coze_body_open_after_done", lambda w: w.stream().raw.endswith(b"<<no EOF>>")),
    row("coze_conversation_ids_differ", lambda w: len({p["conversation_id"] for p in w.stream().payloads(*CHATS, DELTA, COMPLETED)}) > 1),
    row("coze_unknown_event", lambda w: not set(w.stream().names()) <= CLOUD_EVENTS),
    row("coze_held_back", lambda w: w.stream().seconds > 1.0),
    row("coze_event_bot_id_integer", lambda w: any(not isinstance(p["bot_id"], str) for p in w.stream().payloads(*CHATS, DELTA))),
    row("coze_nonstream_completed", lambda w: w.chat()["data"]["status"] != "in_progress"),
    row(
        "coze_stream_default_true",
        lambda w: w.alice.post("/v3/chat", json=w.body()).headers["content-type"].startswith("text/event-stream"),
    ),
    row("coze_empty_conversation_refused", lambda w: w.chat(query="")["code"] != 0),
    row("coze_retrieve_stuck_in_progress", stuck_retrieve),
    row("coze_message_list_empty", listed_answer),
    row("coze_conversation_not_continued", not_continued),
    row("coze_missing_user_id_accepted", lambda w: w.alice.post("/v3/chat", json={"bot_id": w.bot}).json()["code"] == 0),
    row("coze_unknown_bot_answered", lambda w: w.chat(bot=UNKNOWN_ID)["code"] == 0),
    row("coze_unpublished_bot_code_4000", lambda w: w.chat(bot=w.created_bot())["code"] != 4015),
    row("coze_cancel_ignored", cancel_ignored, **SLOW_CHAT),
    row("coze_cancel_without_chat_id_accepted", lambda w: w.cancel(c := w.chat()["data"], conversation_id=c["conversation_id"])["code"] == 0,
        **SLOW_CHAT),
    row("coze_cancel_finished_ok", cancel_finished),
    row("coze_create_bot_id_integer", lambda w: not isinstance(
        w.alice.post("/v1/bot/create", json={"space_id": "1", "name": "n"}).json()["data"]["bot_id"], str)),
    row("coze_update_not_stored", update_lost),
    row("coze_publish_answers_error", lambda w: w.alice.post(
        "/v1/bot/publish", json={"bot_id": w.created_bot(), "connector_ids": ["1024"]}).json()["code"] != 0),
    row("coze_online_info_shows_draft", online_shows_draft),
    row("coze_online_info_unknown_ok", lambda w: w.online(UNKNOWN_ID)["code"] == 0),
    row("coze_bot_details_not_found", lambda w: w.alice.get(f"/v1/bots/{w.bot}").json()["code"] != 0),
    row("coze_success_without_msg", lambda w: "msg" not in w.online(w.bot)),
    row("coze_error_without_msg", lambda w: "msg" not in w.online(UNKNOWN_ID)),
    row("coze_no_logid", no_logid),
    row("coze_bearer_refused", lambda w: w.alice.get(f"/v1/bots/{w.bot}").json()["code"] != 0 and w.online(w.bot)["code"] == 0),
    row("coze_no_credentials_served", lambda w: httpx.get(
        f"{w.server.url}/v1/bot/get_online_info", params={"bot_id": w.bot}).json()["code"] == 0),
    row("coze_any_bearer", lambda w: httpx.get(
        f"{w.server.url}/v1/bot/get_online_info", params={"bot_id": w.bot}, headers={"Authorization": "Bearer nope"}).json()["code"] == 0),
    row("coze_iso_online_info_other_bot", lambda w: w.online(w.server.seed_published_bot("bob"))["code"] == 0),
    row("coze_iso_retrieve_other_chat", bobs_chat_retrieved),
    row("coze_iso_cancel_other_chat", bobs_chat_canceled, **SLOW_CHAT),
]


def wire(config: ServerConfig) -> Iterator[Wire]:
    with ReferenceServer(config) as server:
        probe = Wire(server)
        yield probe
        probe.close()


@pytest.mark.slow  # two servers per fault, as the doc dialect's probes (tests/reference/test_reference_faults_wire.py)
@pytest.mark.parametrize(("fault", "probe", "knobs"), PROBES)
def test_the_fault_is_on_the_wire_and_only_when_on(fault: str, probe: Probe, knobs: dict[str, Any]) -> None:
    config = {"dialect": "coze", "token_delay": 0.0} | knobs
    for w in wire(ServerConfig(**config, faults=frozenset({fault}))):
        assert probe(w), f"{fault}: the probe saw no breakage"
    for w in wire(ServerConfig(**config)):
        assert not probe(w), f"{fault}: the probe sees the breakage on a clean server too"


def test_every_coze_requirement_has_exactly_one_fault_at_its_level() -> None:
    assert sorted(f.requirement for f in COZE_FAULTS) == sorted(REQUIREMENTS)
    assert all(f.level == REQUIREMENTS[f.requirement] and f.dialect == "coze" for f in COZE_FAULTS)
    assert all(f.description.strip() and f.name.startswith("coze_") for f in COZE_FAULTS)


def test_every_coze_fault_has_exactly_one_probe_and_is_registered() -> None:
    probed = [p.values[0] for p in PROBES]
    assert sorted(probed) == sorted(f.name for f in COZE_FAULTS)
    assert set(dialect_faults("coze")) == set(probed) and set(probed) <= set(all_faults())
    assert not set(dialect_faults("coze")) & set(dialect_faults("doc"))
