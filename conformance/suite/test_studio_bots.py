"""Bots, auth and the internal chat of a Coze Studio deployment (profile ``studio``).

Bots are made as Studio makes them (coze-wire §2.5): ``/api/draftbot/create`` with
``space_id`` (found through the space list) and ``icon_uri``, configured through
``update_draft_bot_info``, published to connector 1024; the OpenAPI reads them with
Bearer. Auth is by path (coze-wire §1.2): Bearer only on /v1 and /v3, the cookie only
on /api -- the other credential alone is refused. Login and personal access tokens
run when the run has a principal's email and password (``--email``/``--password``; the
embedded server's are its own), else they SKIP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile, fill
from conformance.settings import Settings
from conformance.suite.conftest import BotMaker
from conformance.suite.helpers import Answer, Bot, envelope, id_text, send, unknown_id
from conformance.suite.studio import API_CONNECTOR, digits, object_at, succeeded
from conformance.transport.client import ApiClient


def refused(answer: Answer, profile: Profile) -> bool:
    """An auth refusal: HTTP 401, or the unauthorized code (coze-wire §5 #18)."""
    return answer.status == 401 or answer.code == profile.auth.unauthorized_code


def info(api: ApiClient, profile: Profile, bot_id: str, **params: Any) -> Answer:
    return send(api, profile.endpoint("online_info"), {"bot_id": bot_id, **(profile.bots.online_query or {}), **params})


def info_object(answer: Answer, profile: Profile) -> Any:
    return object_at(answer, profile, "online_info") if succeeded(answer, profile) else None


# --------------------------------------------------------------------------- auth


@pytest.mark.requirement("STUDIO-AUTH-001", "STUDIO-AUTH-003", "STUDIO-AUTH-006")
def test_openapi_takes_bearer_only(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot) -> None:
    detail = profile.endpoint("bot_detail")
    path = detail.url_path(bot_id=published_bot.id)
    good = envelope(api.request("GET", path))
    check("STUDIO-AUTH-001", good.ok, expected="code 0 with the bot", actual=good.describe(), soft=True)
    for mode, requirement in (("none", "STUDIO-AUTH-003"), ("wrong-bearer", "STUDIO-AUTH-003"), ("cookie", "STUDIO-AUTH-006")):
        answer = envelope(api.request("GET", path, auth=mode))
        check(
            requirement,
            refused(answer, profile),
            expected=f"HTTP 401 or code {profile.auth.unauthorized_code}",
            actual=answer.describe(),
            detail=f"auth {mode}",
            soft=True,
        )


@pytest.mark.requirement("STUDIO-AUTH-002", "STUDIO-AUTH-004", "STUDIO-AUTH-005", "STUDIO-AUTH-007")
def test_webapi_takes_the_cookie_only(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot) -> None:
    endpoint = profile.endpoint("display_info")
    body = {"bot_id": published_bot.id}
    good = envelope(api.request(endpoint.method, endpoint.path, json=body))
    check("STUDIO-AUTH-002", good.ok, expected="code 0", actual=good.describe(), soft=True)
    none = envelope(api.request(endpoint.method, endpoint.path, json=body, auth="none"))
    check(
        "STUDIO-AUTH-004", none.status == 401 and none.code == 401, expected="HTTP 401 with code 401", actual=none.describe(), soft=True
    )
    for mode, requirement in (("wrong-cookie", "STUDIO-AUTH-005"), ("bearer", "STUDIO-AUTH-007")):
        answer = envelope(api.request(endpoint.method, endpoint.path, json=body, auth=mode))
        check(
            requirement,
            refused(answer, profile),
            expected=f"HTTP 401 or code {profile.auth.unauthorized_code}",
            actual=answer.describe(),
            detail=f"auth {mode}",
            soft=True,
        )


def credentials(settings: Settings) -> tuple[str, str]:
    if not (settings.email and settings.password):
        pytest.skip("no --email/--password for the first principal: login is not judged")
    return settings.email, settings.password


@pytest.mark.requirement("STUDIO-AUTH-008")
def test_login_sets_the_session_cookie(api: ApiClient, check: Checks, profile: Profile, conformance_settings: Settings) -> None:
    email, password = credentials(conformance_settings)
    login = profile.endpoint("login")
    wrong = api.request(login.method, login.path, json={"email": email, "password": password + "x"}, auth="none")
    check(
        "STUDIO-AUTH-008",
        envelope(wrong).code not in (None, 0) and "session_key" not in wrong.headers.get("set-cookie", ""),
        expected="a wrong password: a non-zero code and no session cookie",
        actual=f"HTTP {wrong.status}, Set-Cookie {'present' if wrong.headers.get('set-cookie') else 'absent'}: {wrong.text[:200]}",
        soft=True,
    )
    good = api.request(login.method, login.path, json={"email": email, "password": password}, auth="none")
    cookie = session_cookie(good.headers.get_list("set-cookie"))
    check("STUDIO-AUTH-008", envelope(good).code == 0 and cookie is not None, expected="code 0 and Set-Cookie session_key",
          actual=f"HTTP {good.status}, cookie {'set' if cookie else 'not set'}: {good.text[:200]}")
    if cookie is None:
        return
    listing = profile.endpoint("space_list")
    used = envelope(api.request(listing.method, listing.path, json={}, auth="none", headers={"Cookie": f"session_key={cookie}"}))
    check("STUDIO-AUTH-008", used.ok, expected="the new session authenticates the space list", actual=used.describe())


def session_cookie(set_cookies: list[str]) -> str | None:
    for header in set_cookies:
        name, _, rest = header.partition("=")
        if name.strip() == "session_key":
            return rest.split(";", 1)[0].strip() or None
    return None


@pytest.mark.requirement("STUDIO-AUTH-009")
def test_a_minted_token_authenticates(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, run_id: str) -> None:
    pat = profile.endpoint("pat_create")
    minted = envelope(api.request(pat.method, pat.path, json={"name": f"cz-conf-{run_id}", "duration_day": "1"}))
    token = minted.data.get("token") if minted.ok else None
    check("STUDIO-AUTH-009", isinstance(token, str) and bool(token), expected="code 0 with data.token", actual="code 0, a token" if token else minted.describe())
    if not isinstance(token, str) or not token:
        return
    path = profile.endpoint("bot_detail").url_path(bot_id=published_bot.id)
    used = envelope(api.request("GET", path, auth="none", headers={"Authorization": f"Bearer {token}"}))
    check("STUDIO-AUTH-009", used.ok, expected="the token authenticates GET /v1/bots/:bot_id", actual=used.describe())


@pytest.mark.requirement("STUDIO-AUTH-010")
def test_space_list(api: ApiClient, check: Checks, profile: Profile) -> None:
    listing = profile.endpoint("space_list")
    answer = envelope(api.request(listing.method, listing.path, json={}))
    spaces = answer.data.get("bot_space_list") if answer.ok else None
    check(
        "STUDIO-AUTH-010",
        isinstance(spaces, list) and bool(spaces) and all(isinstance(s, dict) and digits(s.get("id")) for s in spaces),
        expected="code 0, data.bot_space_list a non-empty list of {id: digit string, ...}",
        actual=answer.describe(),
    )


# --------------------------------------------------------------------------- bots


@pytest.mark.requirement("STUDIO-BOT-001", "STUDIO-BOT-003", "STUDIO-BOT-004", "STUDIO-BOT-006", "STUDIO-BOT-007", "STUDIO-ENV-006")
def test_bot_lifecycle(api: ApiClient, check: Checks, profile: Profile, bot_maker: BotMaker) -> None:
    name = bot_maker.reserve_name("v")
    created = send(api, profile.endpoint("create"), bot_maker.create_body(name))
    raw_id = created.data.get("bot_id") if created.ok else None
    check("STUDIO-ENV-006", raw_id is None or digits(raw_id), expected="bot_id a JSON string of digits", actual=repr(raw_id), soft=True)
    check("STUDIO-BOT-001", digits(raw_id), expected="code 0 and data.bot_id a string of digits", actual=created.describe())
    if not digits(raw_id):
        return
    bot = Bot(str(raw_id), name)
    bot_maker.configure(bot)

    def publish() -> str | None:
        answer = send(api, profile.endpoint("publish"), fill(profile.bots.publish_body, {"bot_id": bot.id, "space_id": bot_maker.space()}))
        result = answer.data.get("publish_result") if answer.ok else None
        entry = result.get(API_CONNECTOR) if isinstance(result, dict) else None
        check(
            "STUDIO-BOT-004",
            isinstance(entry, dict) and entry.get("publish_result_status") == 1,
            expected=f'code 0 and data.publish_result["{API_CONNECTOR}"].publish_result_status 1',
            actual=answer.describe(),
        )
        online = info_object(info(api, profile, bot.id), profile)
        version = online.get("version") if isinstance(online, dict) else None
        check("STUDIO-ENV-006", version is None or digits(version), expected="version a string of digits", actual=repr(version), soft=True)
        return version if isinstance(version, str) else None

    first = publish()
    online = info(api, profile, bot.id)
    shown = info_object(online, profile)
    check(
        "STUDIO-BOT-006",
        isinstance(shown, dict) and id_text(shown.get("bot_id")) == bot.id and shown.get("name") == name and isinstance(shown.get("version"), str),
        expected=f"the published info: bot_id {bot.id}, name {name!r}, a version string",
        actual=online.describe(),
    )
    detail = send(api, profile.endpoint("bot_detail"), {"bot_id": bot.id})
    check(
        "STUDIO-BOT-007",
        detail.ok and id_text(detail.data.get("bot_id")) == bot.id and detail.data.get("name") == name,
        expected=f"code 0, data.bot_id {bot.id}, name {name!r}",
        actual=detail.describe(),
    )
    renamed = f"{name}r"[: profile.bots.name_max]
    updated = send(api, profile.endpoint("update_info"), {"bot_info": {"bot_id": bot.id, "name": renamed}})
    before = info_object(info(api, profile, bot.id), profile)
    check(
        "STUDIO-BOT-003",
        updated.ok and isinstance(before, dict) and before.get("name") == name,
        expected=f"code 0, and the online info still named {name!r} (the draft changed, not the published version)",
        actual=f"update: {updated.describe()}; online name {before.get('name') if isinstance(before, dict) else before!r}",
    )
    second = publish()
    check(
        "STUDIO-BOT-004",
        first is not None and second is not None and first != second,
        expected="a new version at each publish",
        actual=f"versions {first!r} then {second!r}",
    )
    after = info_object(info(api, profile, bot.id), profile)
    check(
        "STUDIO-BOT-003",
        isinstance(after, dict) and after.get("name") == renamed,
        expected=f"after the second publish the online info is named {renamed!r}",
        actual=repr(after)[:300],
    )


CREATE_ERRORS = [
    pytest.param(lambda b: {k: v for k, v in b.items() if k != "space_id"}, id="no-space_id"),
    pytest.param(lambda b: {k: v for k, v in b.items() if k != "name"}, id="no-name"),
    pytest.param(lambda b: {k: v for k, v in b.items() if k != "icon_uri"}, id="no-icon_uri"),
    pytest.param(lambda b: {**b, "name": "长" * 51}, id="name-51"),
]


@pytest.mark.parametrize("change", CREATE_ERRORS)
@pytest.mark.requirement("STUDIO-BOT-002")
def test_create_validation(api: ApiClient, check: Checks, profile: Profile, bot_maker: BotMaker, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    body = change(bot_maker.create_body(f"cz-conf-{int(time.time())}-bad"))
    answer = send(api, profile.endpoint("create"), body)
    check("STUDIO-BOT-002", answer.status == 400, expected="HTTP 400", actual=answer.describe())


@pytest.mark.parametrize("connectors", [pytest.param({}, id="empty"), pytest.param({"12345": {}}, id="not-allowed")])
@pytest.mark.requirement("STUDIO-BOT-005")
def test_publish_validation(
    api: ApiClient, check: Checks, profile: Profile, bot_maker: BotMaker, draft_bot: Bot, connectors: dict[str, Any]
) -> None:
    bot = draft_bot
    answer = send(api, profile.endpoint("publish"), {"space_id": bot_maker.space(), "bot_id": bot.id, "connectors": connectors})
    expected_400 = not connectors
    check(
        "STUDIO-BOT-005",
        answer.status == 400 if expected_400 else not succeeded(answer, profile),
        expected="HTTP 400" if expected_400 else "an error (a non-zero code or HTTP 4xx)",
        actual=answer.describe(),
        soft=True,
    )
    online = info(api, profile, bot.id)
    check("STUDIO-BOT-005", not succeeded(online, profile), expected="the bot stays unpublished", actual=online.describe())


@pytest.mark.parametrize("which", ["draft", "unknown", "another-principal"])
@pytest.mark.requirement("STUDIO-BOT-008")
def test_info_of_a_bot_not_online_is_refused(
    api: ApiClient, api2: ApiClient, check: Checks, profile: Profile, request: pytest.FixtureRequest, published_bot: Bot, which: str
) -> None:
    makers: dict[str, Callable[[], str]] = {
        "draft": lambda: str(request.getfixturevalue("draft_bot").id),
        "unknown": unknown_id,
        "another-principal": lambda: published_bot.id,
    }
    bot_id = makers[which]()
    client = api2 if which == "another-principal" else api
    for answer in (info(client, profile, bot_id), send(client, profile.endpoint("bot_detail"), {"bot_id": bot_id})):
        check(
            "STUDIO-BOT-008",
            not succeeded(answer, profile),
            expected="an error code, never code 0 with an info",
            actual=answer.describe(),
            detail=f"{answer.response.exchange.method} {answer.response.exchange.path}",
            soft=True,
        )


@pytest.mark.requirement("STUDIO-BOT-009")
def test_display_info_is_stored(api: ApiClient, check: Checks, profile: Profile, draft_bot: Bot) -> None:
    bot = draft_bot
    tabs = {"plugin_tab_status": 1, "workflow_tab_status": 2, "knowledge_tab_status": 1}
    stored = send(api, profile.endpoint("update"), {"bot_id": bot.id, "display_info": {"tab_display_info": tabs}})
    read = send(api, profile.endpoint("display_info"), {"bot_id": bot.id})
    shown = read.data.get("tab_display_info") if read.ok else None
    check(
        "STUDIO-BOT-009",
        succeeded(stored, profile) and isinstance(shown, dict) and all(shown.get(k) == v for k, v in tabs.items()),
        expected=f"code 0, then get_display_info answers tab_display_info {json.dumps(tabs)}",
        actual=f"update: {stored.describe()}; read: {read.describe()}",
    )


@pytest.mark.requirement("STUDIO-BOT-010")
def test_online_info_without_connector(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot) -> None:
    answer = send(api, profile.endpoint("online_info"), {"bot_id": published_bot.id})
    check(
        "STUDIO-BOT-010",
        answer.status < 500 and answer.body is not None,
        expected="a JSON answer below HTTP 500 (the info or an error code)",
        actual=answer.describe(),
    )


@pytest.mark.parametrize("path", ["/v1/cz-conf-no-such-endpoint", "/v3/chat/cz-conf-no-such-endpoint"])
@pytest.mark.requirement("STUDIO-ENV-005")
def test_unknown_path_is_404(api: ApiClient, check: Checks, path: str) -> None:
    answer = envelope(api.request("GET", path))
    check("STUDIO-ENV-005", answer.status == 404 and answer.code == 404, expected="HTTP 404 with code 404", actual=answer.describe())
