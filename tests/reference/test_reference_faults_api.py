"""The API faults (conformance/reference/faults/api.py) are really on the wire.

For every fault of ``API_FAULTS`` a probe makes the few requests that show its
breakage and answers "broken?". The probe runs twice: against a server with only that
fault on (it must answer yes) and against the same configuration without it (no). So a
fault whose hook is missing, misspelt or unreachable fails here, and so does a probe
that would see "broken" on a clean server.

The registry itself is checked against the catalogue: every declared requirement
exists, is not retired, and has the declared level (the kill matrix relies on both).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig
from conformance.reference.faults import Fault
from conformance.reference.faults.api import API_FAULTS

ALICE, BOB = DEV_PRINCIPALS
REFERENCE = Path(__file__).resolve().parents[2] / "conformance" / "reference"
CATALOGUE = REFERENCE.parent / "oracle" / "catalogue.toml"
#: The files that hold the API faults' hooks (faults/api.py's docstring names them).
HOOK_FILES = ("auth.py", "access.py", "bots.py", "ratelimit.py", "runtime.py")

#: An id no server here hands out: the mint (reference/ids.py) starts below 8e18 and
#: steps by less than 1000, so a probe's handful of ids stays far below it.
UNKNOWN_BOT = 9_100_000_000_000_000_001
#: Seconds since the epoch stay below this until the year 33658; milliseconds exceed it.
MILLISECONDS = 10**12
WINDOW = 10.0
LIMIT = 2


class FakeClock:
    """A monotonic clock that moves only when told to (the rate-limit probes)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def both(principal: Any) -> dict[str, str]:
    """Both credentials of one principal: setup requests pass whichever mode a fault refuses."""
    return {"Authorization": f"Bearer {principal.api_key}", "Cookie": f"session_key={principal.session_key}"}


@dataclass
class Wire:
    """One server as the probes see it: clients per credential, and a few bot helpers."""

    server: ReferenceServer
    stack: ExitStack
    clock: FakeClock | None = None
    _clients: dict[tuple[tuple[str, str], ...], httpx.Client] = field(default_factory=dict)

    def client(self, headers: dict[str, str]) -> httpx.Client:
        key = tuple(sorted(headers.items()))
        if key not in self._clients:
            self._clients[key] = self.stack.enter_context(
                httpx.Client(base_url=self.server.url, headers=headers, timeout=10.0)
            )
        return self._clients[key]

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.client(both(ALICE) if headers is None else headers).request(method, path, **kwargs)

    def json(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.call(method, path, headers, **kwargs).json()
        return body

    def create(self, principal: Any = ALICE, **fields: Any) -> dict[str, Any]:
        return self.json("POST", "/api/draftbot/create", both(principal), json={"name": "probe", **fields})

    def bot(self, principal: Any = ALICE, *, published: bool = True, **fields: Any) -> int:
        bot_id = int(self.create(principal, **fields)["data"]["bot_id"])
        if published:
            self.publish(bot_id, principal)
        return bot_id

    def publish(self, bot_id: int, principal: Any = ALICE) -> dict[str, Any]:
        return self.json("POST", "/api/draftbot/publish", both(principal), json={"bot_id": bot_id})

    def update(self, bot_id: int, principal: Any = ALICE, **fields: Any) -> dict[str, Any]:
        return self.json("POST", "/api/draftbot/update_display_info", both(principal), json={"bot_id": bot_id, **fields})

    def online(self, bot_id: int | str, principal: Any = ALICE) -> dict[str, Any]:
        return self.json("GET", "/v1/bot/get_online_info", both(principal), params={"bot_id": str(bot_id)})

    def detail(self, bot_id: int | str, principal: Any = ALICE) -> dict[str, Any]:
        return self.json("GET", f"/v1/bots/{bot_id}", both(principal))

    def republished(self, endpoint: Callable[[int], dict[str, Any]]) -> Any:
        """Create, publish, rename, publish again: the name ``endpoint`` then shows."""
        bot_id = self.bot(name="first")
        self.update(bot_id, name="second")
        self.publish(bot_id)
        return endpoint(bot_id)["data"]["name"]

    def chat(self, bot_id: int, text: str, principal: Any = ALICE, **extra: Any) -> httpx.Response:
        body = {
            "bot_id": str(bot_id),
            "user_id": "probe-user",
            "additional_messages": [{"role": "user", "content": text, "content_type": "text"}],
            **extra,
        }
        return self.call("POST", "/v3/chat", both(principal), json=body)

    def burst(self, method: str, path: str, count: int, **kwargs: Any) -> list[httpx.Response]:
        return [self.call(method, path, **kwargs) for _ in range(count)]


def code(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def admitted_before_429(responses: list[httpx.Response]) -> int:
    statuses = [r.status_code for r in responses]
    return statuses.index(429) if 429 in statuses else len(statuses)


# --------------------------------------------------------------------------- probes: auth and isolation

Probe = Callable[[Wire], bool]


def _auth_probe(headers: dict[str, str]) -> Probe:
    """/v1/bots/:bot_id of the owner's bot with ``headers``: broken when it is served."""
    return lambda w: code(w.call("GET", f"/v1/bots/{w.bot()}", headers)) == 0


def _cancel_with_bearer(w: Wire) -> bool:
    bot_id = w.bot()
    conversation = w.chat(bot_id, "hi").json()["data"]["conversation_id"]
    bearer = {"Authorization": f"Bearer {ALICE.api_key}"}
    return code(w.call("POST", "/v3/chat/cancel", bearer, json={"conversation_id": conversation})) == 401


def _run_with_cookie(w: Wire) -> bool:
    body = {"agent_id": w.bot(), "query": "hi"}
    return code(w.call("POST", "/api/conversation/chat", {"Cookie": f"session_key={ALICE.session_key}"}, json=body)) == 401


def _bob_reads(endpoint: str) -> Probe:
    return lambda w: bool(getattr(w, endpoint)(w.bot(), BOB)["code"] == 0)


def _bob_updates(w: Wire) -> bool:
    bot_id = w.bot(name="alice's")
    w.update(bot_id, BOB, name="bob's")
    return bool(w.detail(bot_id)["data"]["name"] == "bob's")


def _bob_publishes(w: Wire) -> bool:
    bot_id = w.bot()
    w.publish(bot_id, BOB)
    return bool(w.online(bot_id)["data"]["version"] != 1)


def _bob_sees_history(w: Wire) -> bool:
    conversation = w.chat(w.bot(), "the secret is 4711").json()["data"]["conversation_id"]
    answer = w.chat(w.bot(BOB), "what was the secret?", BOB, ConversationID=conversation)
    return "4711" in answer.text


def _bob_cancels(w: Wire) -> bool:
    conversation = w.chat(w.bot(), "hi").json()["data"]["conversation_id"]
    return code(w.call("POST", "/v3/chat/cancel", both(BOB), json={"conversation_id": conversation})) == 0


# --------------------------------------------------------------------------- probes: rate limits


def _never_limited(method: str, path: str, **kwargs: Any) -> Probe:
    return lambda w: all(r.status_code != 429 for r in w.burst(method, path, LIMIT + 1, **kwargs))


def _chat_limit_10x(w: Wire) -> bool:
    return admitted_before_429(w.burst("POST", "/v3/chat/cancel", 10 * LIMIT + 1, json={})) == 10 * LIMIT


def _refusal(w: Wire) -> httpx.Response:
    return w.burst("GET", f"/v1/bots/{UNKNOWN_BOT}", LIMIT + 1)[-1]


def _refusal_not_json(w: Wire) -> bool:
    refused = _refusal(w)
    return refused.status_code == 429 and not refused.headers["content-type"].startswith("application/json")


def _refusal_wrong_code(w: Wire) -> bool:
    refused = _refusal(w)
    return refused.status_code == 429 and code(refused) not in (429, None)


def _no_recovery(w: Wire) -> bool:
    assert _refusal(w).status_code == 429
    assert w.clock is not None
    w.clock.now += WINDOW + 1
    return w.call("GET", f"/v1/bots/{UNKNOWN_BOT}").status_code == 429


# --------------------------------------------------------------------------- probes: bots


def _created(test: Callable[[dict[str, Any]], bool], **fields: Any) -> Probe:
    return lambda w: test(w.create(**fields))


def _published(test: Callable[[dict[str, Any]], bool]) -> Probe:
    return lambda w: test(w.publish(w.bot(published=False)))


def _read(endpoint: str, test: Callable[[dict[str, Any]], bool]) -> Probe:
    return lambda w: test(getattr(w, endpoint)(w.bot(model="probe-model")))


def _refused_or_not(method: str, path: str, **kwargs: Any) -> Probe:
    """Broken when a request that must be refused answers code 0."""
    return lambda w: code(w.call(method, path, **kwargs)) == 0


def _ms(*keys: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: any(body["data"][key] > MILLISECONDS for key in keys)


def _version_stuck(w: Wire) -> bool:
    bot_id = w.bot(published=False)
    first = w.publish(bot_id)["data"]["version"]
    return bool(w.publish(bot_id)["data"]["version"] <= first)


def _update_not_echoed(w: Wire) -> bool:
    return bool(w.update(w.bot(name="old"), name="new")["data"]["name"] != "new")


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    probe: Probe
    rate_limited: bool = False  # small limits and a fake clock instead of no limits


CASES: dict[str, Case] = {
    "auth_no_check": Case(_auth_probe({})),
    "auth_any_bearer": Case(_auth_probe({"Authorization": "Bearer wrong-api-key"})),
    "auth_any_cookie": Case(_auth_probe({"Cookie": "session_key=wrong-session-key"})),
    "auth_bearer_refused_on_openapi": Case(_cancel_with_bearer),
    "auth_cookie_refused_on_webapi": Case(_run_with_cookie),
    "auth_cookie_refused_on_openapi": Case(
        lambda w: code(w.call("GET", f"/v1/bots/{w.bot()}", {"Cookie": f"session_key={ALICE.session_key}"})) == 401
    ),
    "auth_bearer_refused_on_webapi": Case(
        lambda w: code(
            w.call("POST", "/api/draftbot/create", {"Authorization": f"Bearer {ALICE.api_key}"}, json={"name": "x"})
        )
        == 401
    ),
    "iso_online_info_other_bot": Case(_bob_reads("online")),
    "iso_bot_detail_other_bot": Case(_bob_reads("detail")),
    "iso_update_other_bot": Case(_bob_updates),
    "iso_publish_other_bot": Case(_bob_publishes),
    "iso_conversation_refusal_quotes_history": Case(_bob_sees_history),
    "iso_conversation_owner_unchecked": Case(_bob_cancels),
    "rate_chat_never_429": Case(_never_limited("POST", "/v3/chat/cancel", json={}), rate_limited=True),
    "rate_chat_limit_10x": Case(_chat_limit_10x, rate_limited=True),
    "rate_management_limit_half": Case(
        lambda w: admitted_before_429(w.burst("POST", "/api/draftbot/create", LIMIT + 1, json={})) < LIMIT,
        rate_limited=True,
    ),
    "rate_management_never_429": Case(_never_limited("POST", "/api/draftbot/create", json={}), rate_limited=True),
    "rate_info_never_429": Case(_never_limited("GET", f"/v1/bots/{UNKNOWN_BOT}"), rate_limited=True),
    "rate_429_plain_text": Case(_refusal_not_json, rate_limited=True),
    "rate_429_wrong_code": Case(_refusal_wrong_code, rate_limited=True),
    "rate_no_recovery": Case(_no_recovery, rate_limited=True),
    "bot_create_without_data": Case(_created(lambda body: body["code"] == 0 and "data" not in body)),
    "bot_create_name_optional": Case(_refused_or_not("POST", "/api/draftbot/create", json={"description": "x"})),
    "bot_create_id_float": Case(_created(lambda body: isinstance(body["data"]["bot_id"], float))),
    "bot_create_id_prefixed": Case(
        _created(lambda body: isinstance(body["data"]["bot_id"], str) and not body["data"]["bot_id"].isdigit())
    ),
    "bot_create_no_echo": Case(
        _created(lambda body: body["data"].get("description") != "d", description="d", icon_url="https://e.x/i.png")
    ),
    "bot_create_status_online": Case(_created(lambda body: body["data"]["status"] != "draft")),
    "ts_ms_create": Case(_created(_ms("created_at", "updated_at"))),
    "bot_update_no_echo": Case(_update_not_echoed),
    "bot_update_bot_id_optional": Case(
        _refused_or_not("POST", "/api/draftbot/update_display_info", json={"name": "x"})
    ),
    "ts_ms_update": Case(lambda w: _ms("updated_at")(w.update(w.bot(), name="x"))),
    "bot_update_unknown_ok": Case(
        _refused_or_not("POST", "/api/draftbot/update_display_info", json={"bot_id": UNKNOWN_BOT, "name": "x"})
    ),
    "bot_publish_status_published": Case(_published(lambda body: body["data"]["status"] != "online")),
    "bot_publish_bot_id_optional": Case(_refused_or_not("POST", "/api/draftbot/publish", json={})),
    "bot_publish_no_version": Case(_published(lambda body: "version" not in body["data"])),
    "bot_publish_version_string": Case(_published(lambda body: isinstance(body["data"]["version"], str))),
    "bot_publish_version_starts_at_2": Case(_published(lambda body: body["data"]["version"] != 1)),
    "bot_publish_version_stuck": Case(_version_stuck),
    "ts_ms_publish": Case(_published(_ms("published_at"))),
    "bot_publish_unknown_ok": Case(_refused_or_not("POST", "/api/draftbot/publish", json={"bot_id": UNKNOWN_BOT})),
    "bot_online_missing_display": Case(_read("online", lambda body: "icon_url" not in body["data"])),
    "bot_online_bot_id_optional": Case(_refused_or_not("GET", "/v1/bot/get_online_info")),
    "bot_online_status_published": Case(_read("online", lambda body: body["data"]["status"] != "online")),
    "ts_ms_online": Case(_read("online", _ms("published_at"))),
    "bot_online_model_object": Case(_read("online", lambda body: not isinstance(body["data"]["model"], str))),
    "bot_online_stale": Case(lambda w: w.republished(w.online) != "second"),
    "bot_online_unknown_ok": Case(_refused_or_not("GET", "/v1/bot/get_online_info", params={"bot_id": UNKNOWN_BOT})),
    "bot_detail_missing_display": Case(_read("detail", lambda body: "icon_url" not in body["data"])),
    "bot_detail_not_int64_ok": Case(_refused_or_not("GET", "/v1/bots/not-a-bot-id")),
    "bot_online_not_int64_ok": Case(_refused_or_not("GET", "/v1/bot/get_online_info", params={"bot_id": "not-a-bot-id"})),
    "bot_detail_not_int64_500": Case(lambda w: w.call("GET", "/v1/bots/not-a-bot-id").status_code == 500),
    "bot_detail_no_version": Case(_read("detail", lambda body: "version" not in body["data"])),
    "bot_detail_no_prompt": Case(_read("detail", lambda body: "prompt" not in body["data"])),
    "bot_detail_model_object": Case(_read("detail", lambda body: not isinstance(body["data"]["model"], str))),
    "bot_detail_tools_strings": Case(
        _read("detail", lambda body: any(not isinstance(tool, dict) for tool in body["data"]["tools"]))
    ),
    "ts_ms_detail": Case(_read("detail", _ms("created_at", "updated_at", "published_at"))),
    "bot_detail_stale": Case(lambda w: w.republished(w.detail) != "second"),
    "bot_detail_unknown_ok": Case(_refused_or_not("GET", f"/v1/bots/{UNKNOWN_BOT}")),
}


def _config(case: Case, faults: frozenset[str], clock: FakeClock) -> ServerConfig:
    if case.rate_limited:
        return ServerConfig(
            token_delay=0,
            rate_window=WINDOW,
            chat_limit=LIMIT,
            management_limit=LIMIT,
            info_limit=LIMIT,
            clock=clock,
            faults=faults,
        )
    return ServerConfig(token_delay=0, rate_limits=False, faults=faults)


@pytest.fixture(scope="module")
def clean_unlimited() -> Iterator[Wire]:
    """One clean server for every probe without rate limits (each makes its own bots)."""
    with ExitStack() as stack:
        server = stack.enter_context(ReferenceServer(_config(Case(lambda w: False), frozenset(), FakeClock())))
        yield Wire(server, stack)


@pytest.fixture
def wire_for(clean_unlimited: Wire) -> Iterator[Callable[[Case, frozenset[str]], Wire]]:
    with ExitStack() as stack:

        def make(case: Case, faults: frozenset[str]) -> Wire:
            if not faults and not case.rate_limited:
                return clean_unlimited
            clock = FakeClock()  # a fresh budget and clock for every rate-limited server
            server = stack.enter_context(ReferenceServer(_config(case, faults, clock)))
            return Wire(server, stack, clock)

        yield make


@pytest.mark.slow  # a server per fault: every fault's wire probe, in CI and the full run
@pytest.mark.parametrize("name", [pytest.param(fault.name, id=fault.name) for fault in API_FAULTS])
def test_the_fault_is_on_the_wire_and_the_clean_server_is_not(
    name: str, wire_for: Callable[[Case, frozenset[str]], Wire]
) -> None:
    case = CASES[name]
    assert case.probe(wire_for(case, frozenset({name}))), f"{name}: a server with the fault does not show it"
    assert not case.probe(wire_for(case, frozenset())), f"{name}: the probe sees the breakage on a clean server"


def test_every_fault_has_a_probe_and_every_probe_a_fault() -> None:
    assert sorted(CASES) == sorted(fault.name for fault in API_FAULTS)


# --------------------------------------------------------------------------- the registry


def _catalogue() -> dict[str, dict[str, Any]]:
    with CATALOGUE.open("rb") as handle:
        return {entry["id"]: entry for entry in tomllib.load(handle)["requirement"]}


@pytest.mark.parametrize("fault", [pytest.param(fault, id=fault.name) for fault in API_FAULTS])
def test_the_declared_requirement_is_in_the_catalogue_at_its_level(fault: Fault) -> None:
    entry = _catalogue().get(fault.requirement)
    assert entry is not None, f"{fault.name}: {fault.requirement} is not in conformance/oracle/catalogue.toml"
    assert not entry.get("retired", False), f"{fault.name}: {fault.requirement} is retired"
    assert entry["level"] == fault.level, f"{fault.name}: {fault.requirement} is {entry['level']}, not {fault.level}"
    assert fault.description and (fault.collateral is None or fault.collateral.strip())


#: The catalogue areas this registry covers; each of their MUST
#: and SHOULD requirements needs a fault.
AREAS = ("AUTH-", "ISO-", "RATE-", "BP-001", "BOT-CREATE-", "BOT-UPDATE-", "BOT-PUBLISH-", "BOT-ONLINE-", "BOT-GET-")


def test_every_must_and_should_of_the_covered_areas_has_a_fault() -> None:
    wanted = {
        rid
        for rid, entry in _catalogue().items()
        if rid.startswith(AREAS) and entry["level"] in ("MUST", "SHOULD") and not entry.get("retired", False)
    }
    assert wanted - {fault.requirement for fault in API_FAULTS} == set()


def test_every_fault_is_named_by_a_hook() -> None:
    # A fault only the registry knows is dead; the wire test shows the hook works.
    hooks = "".join((REFERENCE / name).read_text(encoding="utf-8") for name in HOOK_FILES)
    assert [fault.name for fault in API_FAULTS if f'"{fault.name}"' not in hooks] == []
