"""Generated and mutated requests at every endpoint: never a 5xx, never a hang.

Hypothesis builds a valid request for a random endpoint and then, most of the time,
breaks it: a key dropped or retyped, an id turned into a float or a huge number, text
with lone surrogates or NUL, the body replaced by another JSON value or by bytes that
are no JSON at all, other or missing credentials, a mangled query or path. Every
answer must be the documented envelope (or a complete event stream), and every
endpoint must have answered both 2xx and 4xx, so that neither half went untested.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.reference import DEV_PRINCIPALS, ENDPOINTS, ReferenceServer

if TYPE_CHECKING:
    from conftest import Api, StartServer

ALICE, BOB = DEV_PRINCIPALS
EXAMPLES = 2100
MIN_REQUESTS = 2000
TERMINAL = (b"event: conversation.stream.done", b"event: done")
ERROR_EVENT = b"event: conversation.error\n"

# Text that may travel: no lone surrogates (they cannot be UTF-8), no NUL.
clean_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24)
non_blank = clean_text.filter(lambda s: bool(s.strip()))
# Text that may not: the server must refuse it with a 400, not fail on it.
odd_text = st.sampled_from(["\ud800", "a\udfffb", "\x00", "x\x00", "\ufeff", "\u2028", "١٢٣", " ", ""])
any_text = st.one_of(clean_text, odd_text)
big_ints = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 2**53 + 1, 2**63 - 1, 2**63, 10**30, 10**4000])
)
scalars = st.one_of(
    st.none(), st.booleans(), big_ints, st.floats(allow_nan=True, allow_infinity=True), any_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=12,
)
# Every documented request field: "set" mutations put a wrong value under any of them.
FIELD_NAMES = (
    "bot_id user_id stream ConversationID conversation_id additional_messages custom_variables meta_data"
    " extra_params agent_id query name description icon_url prompt model"
).split()


@dataclass(frozen=True)
class World:
    bot: int  # Alice's, published
    draft: int  # Alice's, never published
    bob_bot: int
    conversation: str  # Alice's
    bob_conversation: str


@dataclass(frozen=True)
class Case:
    endpoint: str
    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    content: bytes | None


def messages() -> st.SearchStrategy[list[dict[str, Any]]]:
    content_types = st.sampled_from(["text", "image", "file", "object_string", "card"])

    @st.composite
    def message(draw: st.DrawFn) -> dict[str, Any]:
        kind = draw(content_types)
        if kind == "object_string":
            content = json.dumps(draw(st.dictionaries(clean_text, clean_text, max_size=3)))
        elif kind in ("image", "file"):
            content = "https://example.com/" + quote(draw(clean_text))
        else:
            content = draw(clean_text)
        key = draw(st.sampled_from(["content_type", "type"]))
        return {"role": draw(st.sampled_from(["user", "assistant"])), "content": content, key: kind}

    return st.lists(message(), max_size=3)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value, or the marker for "leave the key out"."""
    return st.one_of(st.just(...), strategy)


def valid_bodies(world: World) -> dict[str, st.SearchStrategy[dict[str, Any]]]:
    bot_ids = st.sampled_from([world.bot, str(world.bot)])
    string_maps = st.dictionaries(clean_text, clean_text, max_size=3)
    return {
        "/v3/chat": st.fixed_dictionaries(
            {"bot_id": st.just(str(world.bot)), "user_id": non_blank},
            optional={
                "stream": st.booleans(),
                "ConversationID": st.just(world.conversation),
                "additional_messages": messages(),
                "custom_variables": string_maps,
                "meta_data": string_maps,
                "extra_params": string_maps,
            },
        ),
        "/v3/chat/cancel": st.fixed_dictionaries({"conversation_id": st.just(world.conversation)}),
        "/api/conversation/chat": st.fixed_dictionaries(
            {"agent_id": bot_ids, "query": non_blank},
            optional={
                "stream": st.booleans(),
                "conversation_id": st.just(world.conversation),
                "additional_messages": messages(),
            },
        ),
        "/api/draftbot/create": st.fixed_dictionaries(
            {"name": non_blank},
            optional={k: clean_text for k in ("description", "icon_url", "prompt", "model")},
        ),
        "/api/draftbot/update_display_info": st.fixed_dictionaries(
            {"bot_id": bot_ids}, optional={"name": non_blank, "description": clean_text, "icon_url": clean_text}
        ),
        "/api/draftbot/publish": st.fixed_dictionaries({"bot_id": bot_ids}),
    }


def mutated_body(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """A valid body, or one of several ways of breaking it, as the bytes to send."""

    def dump(value: Any) -> bytes:
        # ensure_ascii: lone surrogates travel as \\ud800 escapes (valid JSON text);
        # allow_nan: NaN and Infinity go out as the non-JSON tokens they are.
        return json.dumps(value, ensure_ascii=True, allow_nan=True).encode("ascii")

    def drop_key(body: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
        if body:
            body.pop(data.draw(st.sampled_from(sorted(body))))
        return body

    def set_key(body: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
        body[data.draw(st.sampled_from(sorted(body) + FIELD_NAMES))] = data.draw(json_values)
        return body

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        body = draw(valid)
        how = draw(st.sampled_from(["valid", "valid", "valid", "drop", "set", "set", "replace", "raw", "cut"]))
        data = draw(st.data())
        if how == "drop":
            body = drop_key(body, data)
        elif how == "set":
            body = set_key(body, data)
        elif how == "replace":
            return dump(draw(json_values))
        elif how == "raw":
            return draw(st.binary(max_size=64))
        elif how == "cut":
            text = dump(body)
            return text[: draw(st.integers(0, max(0, len(text) - 1)))]
        return dump(body)

    return build()


def credentials() -> st.SearchStrategy[dict[str, str]]:
    return st.sampled_from(
        [
            {"Authorization": f"Bearer {ALICE.api_key}"},
            {"Authorization": f"Bearer {ALICE.api_key}"},
            {"Authorization": f"Bearer {ALICE.api_key}"},
            {"Cookie": f"session_key={ALICE.session_key}"},
            {"Authorization": f"Bearer {BOB.api_key}"},
            {"Authorization": "Bearer wrong"},
            {},
        ]
    )


def raw_quote(text: str) -> str:
    """Percent-encode any text, lone surrogates included (as their would-be UTF-8 bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def cases(world: World) -> st.SearchStrategy[Case]:
    bodies = valid_bodies(world)
    bot_texts = st.one_of(
        st.sampled_from([str(world.bot), str(world.draft), str(world.bob_bot)]),
        st.sampled_from([str(world.bot)] * 3),  # weigh the valid one up
        any_text,
        big_ints.map(str),
    )

    @st.composite
    def case(draw: st.DrawFn) -> Case:
        endpoint = draw(st.sampled_from([e.path for e in ENDPOINTS]))
        headers = draw(credentials())
        if endpoint == "/v1/bot/get_online_info":
            query = draw(st.one_of(bot_texts.map(lambda v: "?bot_id=" + raw_quote(v)), st.just("")))
            return Case(endpoint, "GET", endpoint + query, {}, headers, None)
        if endpoint == "/v1/bots/{bot_id}":
            url = "/v1/bots/" + raw_quote(draw(bot_texts))
            return Case(endpoint, "GET", url, {}, headers, None)
        params = {}
        if endpoint == "/v3/chat" and draw(st.integers(0, 9)) == 0:
            params = {"conversation_id": draw(st.sampled_from([world.conversation, world.bob_conversation, "x"]))}
        return Case(endpoint, "POST", endpoint, params, headers | {"Content-Type": "application/json"}, draw(mutated_body(bodies[endpoint])))

    return case()


@dataclass
class Tally:
    fired: int = 0
    classes: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))


def fire(client: httpx.Client, case: Case, tally: Tally) -> None:
    started = time.monotonic()
    # params=None, not {}: an empty mapping would wipe a query already in the URL.
    params = case.params or None
    with client.stream(case.method, case.url, params=params, headers=case.headers, content=case.content) as response:
        raw = response.read()
    tally.fired += 1
    status = response.status_code
    assert status < 500, f"{case}: {status} {raw[:300]!r}"
    assert time.monotonic() - started < 10, f"{case}: took too long"
    if response.headers["content-type"].startswith("text/event-stream"):
        assert status == 200, f"{case}: {status}"
        if raw.startswith(ERROR_EVENT) and raw.count(b"\n\n") == 1:
            # A refused streaming chat: one error event carrying the 4xx code (spec "SSE 错误事件").
            code = json.loads(raw.split(b"data: ", 1)[1].split(b"\n", 1)[0])["code"]
            assert 400 <= code < 500, f"{case}: {raw[:300]!r}"
            tally.classes[case.endpoint][4] += 1
            return
        assert raw.rstrip().rsplit(b"\n\n", 1)[-1].startswith(TERMINAL), f"{case}: {raw[-300:]!r}"
        tally.classes[case.endpoint][2] += 1
        return
    tally.classes[case.endpoint][status // 100] += 1
    body = json.loads(raw)
    if status >= 400:
        assert body == {"code": status, "msg": body.get("msg"), "data": None} and isinstance(body["msg"], str), case
    else:
        assert status == 200 and body["code"] == 0, case


@pytest.mark.slow
def test_generated_requests_never_get_a_5xx_or_hang(start_server: StartServer, api_for: Any) -> None:
    server: ReferenceServer = start_server(rate_limits=False)
    alice: Api = api_for(server, ALICE)
    bob: Api = api_for(server, BOB)
    bot, bob_bot = alice.published_bot(), bob.published_bot()
    world = World(
        bot=bot,
        draft=alice.create_bot()["bot_id"],
        bob_bot=bob_bot,
        conversation=alice.chat(bot)["conversation_id"],
        bob_conversation=bob.chat(bob_bot)["conversation_id"],
    )
    tally = Tally()
    client = api_for(server, headers={}).client

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=cases(world))
    def run(case: Case) -> None:
        fire(client, case, tally)

    run()
    assert tally.fired >= MIN_REQUESTS
    for endpoint in (e.path for e in ENDPOINTS):
        seen = tally.classes[endpoint]
        assert seen[2] > 0 and seen[4] > 0, f"{endpoint}: {dict(seen)} {tally.fired} {dict(tally.classes)}"
