"""Authentication: every endpoint accepts its class's mode, and bad credentials are refused.

Spec 认证方式 (Session 认证 (WebAPI): ``Cookie: session_key=…``; API Key 认证 (OpenAPI):
``Authorization: Bearer …``) and 错误码 ``| 401 | 未授权,认证失败 |``, read with READING
"Auth per endpoint": an endpoint MUST accept the mode of its class -- Bearer on /v1/*
and /v3/* (AUTH-001), the ``session_key`` cookie on /api/* (AUTH-002) -- and SHOULD
accept the other mode (AUTH-003 on OpenAPI, AUTH-004 on WebAPI). No credentials, a
wrong bearer token, a wrong cookie answer code 401 (AUTH-005, -006, -007), each on a
request that would otherwise succeed, so 401 is the only right answer.

The checks are named by rule (``RULES``: ``auth.accepts_bearer`` ...); each profile's
catalogue maps a rule to its own requirement -- doc the ids above, coze (Bearer only, the
refusal code 4100) COZE-AUTH-001..003 -- and a rule a profile does not map is not run.

Both tables come from the profile's endpoint table (``profile.endpoints``, each with
its auth class; ``profile.auth`` gives each class its mode and the 401 code). Test ids
are ``<endpoint>-<mode>``: ``chat-bearer``, ``update-wrong-cookie``.

Request budget. A real deployment rate-limits the suite (spec 速率限制); this module's
share per principal in a default run is 10 chat-group, 12 management and 12 info
requests, so:

* acceptance: one request per endpoint and mode (16 tests); cancel also starts the
  conversation it cancels (one chat each) -- 8 chat, 6 management (+1 for the module's
  bot when no create test has made one yet), 4 info requests;
* refusals (AUTH-005..007) run on a subset, NOT on every endpoint as their catalogue
  glosses say ("on every endpoint"): all three modes on both info endpoints (the
  biggest budget; the OpenAPI class) and on update_display_info (the management group;
  the WebAPI class); no credentials also on /v3/chat and /api/conversation/chat (one
  per auth class of the chat group) -- 2 chat, 3 management, 6 info requests. Left
  out: cancel (READING "Cancel": a cancel of a finished chat may answer an error, so
  401 would not be the only right answer), create (a wrongly accepted request would
  make a bot beyond the run's budget), publish (update already covers its class and
  group), and the wrong-credential modes on the chat group (no budget left).

Totals: 10 chat, 9-10 management, 10 info requests; 2 bots (3 at most under xdist,
when an update or publish test runs before both create tests).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.keys import SETTINGS_KEY
from conformance.oracle.catalogue import Catalogue, load_catalogue
from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Endpoint, Profile, fill, load_profile
from conformance.run.shared_state import SharedState
from conformance.settings import OPTIONS_BY_DEST, Settings
from conformance.suite.helpers import (
    Bot,
    chat_body,
    envelope,
    id_text,
    id_value,
    read_chat_stream,
    stream_rules,
)
from conformance.transport.client import ApiClient, MissingCredential

# --------------------------------------------------------------------------- requirements by mode

#: What this module judges, by rule: the catalogue's ``rule`` field names the
#: requirement of each profile that a rule judges (doc: AUTH-001..007; coze:
#: COZE-AUTH-001..003); a rule the run's profile does not map is not run.
RULES = {
    "auth.accepts_bearer": "a Bearer-class endpoint accepts the API key",
    "auth.accepts_cookie": "a cookie-class endpoint accepts the session cookie",
    "auth.accepts_cookie_on_bearer_class": "a Bearer-class endpoint also accepts the session cookie alone",
    "auth.accepts_bearer_on_cookie_class": "a cookie-class endpoint also accepts the API key alone",
    "auth.refuses_none": "a request without credentials is refused",
    "auth.refuses_wrong_bearer": "a request with a wrong API key is refused",
    "auth.refuses_wrong_cookie": "a request with a wrong session cookie is refused",
}
#: The class's own mode, and the other mode on that class, by the class's mode.
OWN_MODE_RULE = {"bearer": "auth.accepts_bearer", "cookie": "auth.accepts_cookie"}
OTHER_MODE_RULE = {"bearer": "auth.accepts_cookie_on_bearer_class", "cookie": "auth.accepts_bearer_on_cookie_class"}
OTHER_MODE = {"bearer": "cookie", "cookie": "bearer"}
#: The setting that carries each mode's credential of the first principal.
MODE_CREDENTIAL = {"bearer": "api_key", "cookie": "session_key"}
#: The bad credentials (client auth modes) and the rule each judges.
REFUSAL_RULE = {"none": "auth.refuses_none", "wrong-bearer": "auth.refuses_wrong_bearer", "wrong-cookie": "auth.refuses_wrong_cookie"}

#: Where the refusals are sent (endpoint name -> client auth modes); see the module
#: docstring for why this is a subset and what is left out.
ALL_REFUSALS = tuple(REFUSAL_RULE)
REFUSAL_PLAN: Mapping[str, tuple[str, ...]] = {
    "chat": ("none",),
    "run": ("none",),
    "update": ALL_REFUSALS,
    "online_info": ALL_REFUSALS,
    "bot_detail": ALL_REFUSALS,
}

#: shared_state key of the bot this module updates and publishes (never the run's
#: shared published bot: publishing changes its version under other tests).
MODULE_BOT = "auth-module-bot"

MESSAGE = "你好"


# --------------------------------------------------------------------------- what a valid request needs


class Resources:
    """What a request that would otherwise succeed needs, made on first use (each one
    costs requests, so a test asks only for what its endpoint needs)."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    def _fixture(self, name: str) -> Any:
        return self._request.getfixturevalue(name)

    def published_bot(self) -> Bot:
        """The run's shared, published bot: for requests that change nothing."""
        bot: Bot = self._fixture("published_bot")
        return bot

    def module_bot(self) -> Bot:
        """A bot of the first principal for update and publish: one per run (the first
        create test offers its bot; otherwise ``new_bot`` makes one)."""
        state: SharedState = self._fixture("shared_state")
        make: Callable[..., Bot] = self._fixture("new_bot")
        return Bot(**state.get_or_create(MODULE_BOT, lambda: dataclasses.asdict(make(label="a"))))

    def offer_module_bot(self, bot: Bot) -> None:
        """Let ``bot`` (made by a create test) be the module's bot if none exists yet."""
        state: SharedState = self._fixture("shared_state")
        state.get_or_create(MODULE_BOT, lambda: dataclasses.asdict(bot))

    def conversation(self) -> str:
        """A finished conversation of this test's own (one non-stream chat)."""
        start: Callable[[], str] = self._fixture("conversation_of")
        return start()

    def chat(self) -> dict[str, str]:
        """A chat of this test's own (one non-stream chat): its conversation_id and
        chat_id, for the endpoints that name a chat."""
        start: Callable[[], dict[str, str]] = self._fixture("chat_of")
        return start()

    def bot_body(self) -> dict[str, Any]:
        """A create body from the profile's template, with a name from the budget."""
        maker = self._fixture("bot_maker")
        return dict(maker.create_body(maker.reserve_name("a")))

    def user_id(self) -> str:
        return str(self._fixture("user_id"))

    def required(self, endpoint: str) -> tuple[str, ...]:
        profile: Profile = self._fixture("profile")
        return profile.endpoint(endpoint).required

    def bot_name(self) -> str:
        """A name from the run's per-principal bot budget."""
        return str(self._fixture("bot_maker").reserve_name("a"))


@dataclass(frozen=True)
class Recipe:
    """How to build a request to one endpoint that would succeed with good credentials.

    ``fields`` gives the parameters (ids as text); ``place`` puts them where the
    endpoint's table says (body, query or path) in the type ``id_types`` gives.
    ``may_stream``: READING "/api/conversation/chat response": not documented -- an
    envelope or an event stream. ``finished_ok``: READING "Cancel" -- a cancel that
    arrives after the chat completed may answer code 0 or an error (400/404).
    ``adopt``: what to keep of a successful answer."""

    fields: Callable[[Resources], dict[str, Any]]
    may_stream: bool = False
    finished_ok: bool = False
    adopt: Callable[[Resources, Any], None] | None = None


def _adopt_created(resources: Resources, data: Any) -> None:
    bot_id = id_text(data.get("bot_id")) if isinstance(data, dict) else None
    if bot_id is not None and bot_id.isdigit():
        resources.offer_module_bot(Bot(bot_id, str(data.get("name", ""))))


def _chat_fields(r: Resources) -> dict[str, Any]:
    # The documented /v3/chat body (helpers.chat_body: bot_id a JSON string), no stream.
    return chat_body(r.published_bot(), r.user_id(), MESSAGE)


def _chat_ids(r: Resources, keys: tuple[str, ...]) -> dict[str, Any]:
    chat = r.chat()
    return {key: chat[key] for key in keys}


def _publish_fields(r: Resources) -> dict[str, Any]:
    bot = r.module_bot()
    profile: Profile = r._fixture("profile")
    return dict(fill(profile.bots.publish_body, {"bot_id": bot.id}))


RECIPES: Mapping[str, Recipe] = {
    "chat": Recipe(_chat_fields),
    # doc: the conversation alone; coze: its chat too (the profile's required fields).
    "cancel": Recipe(lambda r: _chat_ids(r, r.required("cancel")), finished_ok=True),
    "retrieve": Recipe(lambda r: _chat_ids(r, ("conversation_id", "chat_id"))),
    "message_list": Recipe(lambda r: _chat_ids(r, ("conversation_id", "chat_id"))),
    "run": Recipe(lambda r: {"agent_id": r.published_bot().id, "query": MESSAGE, "stream": False}, may_stream=True),
    "create": Recipe(lambda r: {**r.bot_body(), "description": "conformance suite: auth checks"}, adopt=_adopt_created),
    "update": Recipe(lambda r: {"bot_id": r.module_bot().id, "description": "conformance suite: auth checks, updated"}),
    "publish": Recipe(_publish_fields),
    "online_info": Recipe(lambda r: {"bot_id": r.published_bot().id}),
    "bot_detail": Recipe(lambda r: {"bot_id": r.published_bot().id}),
}


@dataclass(frozen=True)
class Call:
    path: str
    json: dict[str, Any] | None
    params: dict[str, Any] | None


def place(endpoint: Endpoint, fields: Mapping[str, Any]) -> Call:
    """Put ``fields`` where ``endpoint``'s table puts its parameters, ids typed."""
    values = {key: id_value(endpoint, key, value) if key in endpoint.id_types else value for key, value in fields.items()}
    if endpoint.params_in == "body":
        return Call(endpoint.path, values, None)
    in_path = {key: values.pop(key) for key in endpoint.path_params}
    return Call(endpoint.url_path(**in_path), None, values or None)


# --------------------------------------------------------------------------- sending and reading an answer


@dataclass(frozen=True)
class Answer:
    """One answer, an envelope or (``events`` set) an event stream."""

    status: int
    body: Any  # the JSON body, None when not JSON or an event stream
    events: tuple[tuple[str, Any], ...] | None  # (event type, payload) of an event stream
    shown: str

    def opens_with_error(self, profile: Profile) -> bool:
        if not self.events:
            return False
        return stream_rules(profile).kind(self.events[0][0]) == "error"

    def code(self, profile: Profile) -> Any:
        """The body's code; for an event stream that opens with an error event, that
        event's code, at ``code`` or ``error.code`` (READING "Errors on a streaming
        request"; ERR-SSE-001); else None."""
        key = profile.envelope.code_key
        if self.events is None:
            return self.body.get(key) if isinstance(self.body, dict) else None
        if not self.opens_with_error(profile):
            return None
        payload = self.events[0][1] if self.events else None
        if not isinstance(payload, dict):
            return None
        nested = payload.get("error")
        return payload.get(key, nested.get(key) if isinstance(nested, dict) else None)

    def data(self, profile: Profile) -> Any:
        return self.body.get(profile.envelope.data_key) if isinstance(self.body, dict) else None


def _payload(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def send(api: ApiClient, endpoint: Endpoint, recipe: Recipe, call: Call, mode: str, profile: Profile) -> Answer:
    if recipe.may_stream:
        # Read as a stream: an event-stream answer is read whole by the checker, any
        # other answer as a body (and then judged by the plugin as an envelope).
        assert call.json is not None, f"{endpoint.key}: a streamable answer needs a JSON body"
        result = read_chat_stream(api, call.path, call.json, profile, params=call.params, auth=mode)
        if result.reading is not None:
            events = tuple((e.type, _payload(e.data)) for e in result.reading.events)
            return Answer(result.status, None, events, f"HTTP {result.status}: event stream {[t for t, _ in events][:8]}")
        text = result.body.decode("utf-8", "replace")
        return Answer(result.status, _payload(text), None, f"HTTP {result.status}: {text[:400]}")
    kwargs: dict[str, Any] = {"params": call.params, "auth": mode}
    if call.json is not None:
        kwargs["json"] = call.json
    answer = envelope(api.request(endpoint.method, call.path, **kwargs))
    return Answer(answer.status, answer.body, None, answer.describe())


def accepted(answer: Answer, recipe: Recipe, profile: Profile) -> bool:
    """Whether the server took the credential and served the request. A success's shape
    (``data`` and all) is ENV-001's to judge on every answer, not this requirement's."""
    if answer.events is not None:
        # An event stream that does not open with an error event is a chat under way.
        return answer.status < 400 and bool(answer.events) and not answer.opens_with_error(profile)
    code = answer.code(profile)
    if not isinstance(code, int) or isinstance(code, bool):
        return False
    if recipe.finished_ok and code in profile.chat.finished_cancel_codes:
        # Nothing left to cancel: the credential was taken (a refused one is 401).
        return True
    return answer.status < 400 and code == profile.envelope.success_code


def unauthorized(answer: Answer, profile: Profile) -> bool:
    """Whether the answer is the 401 refusal. The body code decides (READING "HTTP status
    of errors"); only an answer with no code at all falls back to the HTTP status (its
    shape is ERR-001's to judge, not this requirement's)."""
    code = answer.code(profile)
    if isinstance(code, int) and not isinstance(code, bool):
        return code == profile.auth.unauthorized_code
    if answer.events and not answer.opens_with_error(profile):
        return False  # a chat under way: the request was served
    return answer.status == profile.auth.unauthorized_code


# --------------------------------------------------------------------------- the tables


@dataclass(frozen=True)
class Case:
    endpoint: str
    mode: str  # a client auth mode
    requirement: str


def _run_profile(config: pytest.Config) -> Profile:
    settings = config.stash.get(SETTINGS_KEY, None)
    return load_profile(settings.profile if settings is not None else Settings().profile)


def _recipe(endpoint: Endpoint) -> Recipe:
    if endpoint.name not in RECIPES:
        raise pytest.UsageError(f"test_auth: no request recipe for endpoint {endpoint.name!r} ({endpoint.key})")
    return RECIPES[endpoint.name]


def acceptance_cases(profile: Profile, catalogue: Catalogue) -> list[Any]:
    """Every endpoint in its class's mode (MUST) and in the other mode (SHOULD), where
    the profile has a requirement for it (``catalogue``: the profile's)."""
    cases = []
    for endpoint in profile.endpoints:
        own = profile.auth[endpoint.auth].mode
        for mode, rule in ((own, OWN_MODE_RULE[own]), (OTHER_MODE[own], OTHER_MODE_RULE[own])):
            requirement = catalogue.by_rule(rule)
            if requirement is None:
                continue
            _recipe(endpoint)
            case = Case(endpoint.name, mode, requirement.id)
            cases.append(pytest.param(case, id=f"{endpoint.name}-{mode}", marks=pytest.mark.requirement(requirement.id)))
    return cases


def refusal_cases(profile: Profile, catalogue: Catalogue) -> list[Any]:
    """The bad credentials on the endpoints of ``REFUSAL_PLAN`` (a budgeted subset)."""
    cases = []
    for endpoint in profile.endpoints:
        for mode in REFUSAL_PLAN.get(endpoint.name, ()):
            requirement = catalogue.by_rule(REFUSAL_RULE[mode])
            if requirement is None:
                continue
            _recipe(endpoint)
            case = Case(endpoint.name, mode, requirement.id)
            cases.append(pytest.param(case, id=f"{endpoint.name}-{mode}", marks=pytest.mark.requirement(requirement.id)))
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # The tables follow the run's profile (--profile), known only once configured.
    profile = _run_profile(metafunc.config)
    catalogue = load_catalogue().for_profile(profile.name)
    if "acceptance" in metafunc.fixturenames:
        metafunc.parametrize("acceptance", acceptance_cases(profile, catalogue))
    if "refusal" in metafunc.fixturenames:
        metafunc.parametrize("refusal", refusal_cases(profile, catalogue))


def _accepted_codes(recipe: Recipe, profile: Profile) -> str:
    success = f"code {profile.envelope.success_code}"
    if recipe.finished_ok:
        return f"{success}, or {sorted(profile.chat.finished_cancel_codes)} for a chat already finished"
    return f"{success}, or an event stream" if recipe.may_stream else success


def _describe(mode: str, endpoint: Endpoint) -> str:
    return f"{endpoint.key} (auth class {endpoint.auth}) sent with auth mode {mode!r}"


# --------------------------------------------------------------------------- the tests


def test_endpoint_accepts_auth_mode(
    api: ApiClient,
    check: Checks,
    profile: Profile,
    conformance_settings: Settings,
    request: pytest.FixtureRequest,
    acceptance: Case,
) -> None:
    endpoint = profile.endpoint(acceptance.endpoint)
    if acceptance.mode not in conformance_settings.auth_modes():
        option = OPTIONS_BY_DEST[MODE_CREDENTIAL[acceptance.mode]]
        reason = f"auth mode {acceptance.mode!r} is not configured: give {option.flag} ({option.env})"
        check.skip(acceptance.requirement, reason)
        pytest.skip(reason)
    recipe = _recipe(endpoint)
    resources = Resources(request)
    call = place(endpoint, recipe.fields(resources))
    try:
        answer = send(api, endpoint, recipe, call, acceptance.mode, profile)
    except MissingCredential as exc:  # belt and braces: the check above should have caught it
        check.skip(acceptance.requirement, str(exc))
        pytest.skip(str(exc))
    held = check(
        acceptance.requirement,
        accepted(answer, recipe, profile),
        expected=_accepted_codes(recipe, profile),
        actual=answer.shown,
        detail=_describe(acceptance.mode, endpoint),
    )
    if held and recipe.adopt is not None:
        recipe.adopt(resources, answer.data(profile))


def test_endpoint_refuses_bad_credentials(
    api: ApiClient, check: Checks, profile: Profile, request: pytest.FixtureRequest, refusal: Case
) -> None:
    endpoint = profile.endpoint(refusal.endpoint)
    recipe = _recipe(endpoint)
    # The body would succeed with good credentials (the acceptance tests show it), so
    # 401 is the only right answer.
    call = place(endpoint, recipe.fields(Resources(request)))
    answer = send(api, endpoint, recipe, call, refusal.mode, profile)
    check(
        refusal.requirement,
        unauthorized(answer, profile),
        expected=f"code {profile.auth.unauthorized_code}",
        actual=answer.shown,
        detail=_describe(refusal.mode, endpoint),
    )
