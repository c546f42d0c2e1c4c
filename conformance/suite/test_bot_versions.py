"""Bots with a draft and a published version (profile ``coze``): create, update, publish,
and the two read endpoints, as cozepy's ``bots`` client uses them.

One lifecycle test walks a bot of its own through create -> publish -> update and reads
it after each step: the update is stored in the draft (the bot-detail endpoint with the
profile's ``draft_query``), while get_online_info keeps answering the published
version, never the draft edit. Request bodies come from the profile's templates
(``[bots] create_body`` / ``publish_body``), names within its ``name_max``.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile, fill
from conformance.suite.conftest import BotMaker
from conformance.suite.helpers import Answer, Bot, id_text, is_integer, refused, send, unknown_id
from conformance.transport.client import ApiClient, TransportError


def name_of(answer: Answer) -> Any:
    return answer.data.get("name") if isinstance(answer.data, dict) else None


def read(api: ApiClient, profile: Profile, endpoint: str, bot_id: str, **params: Any) -> Answer:
    return send(api, profile.endpoint(endpoint), {"bot_id": bot_id}, params=params or None)


@pytest.mark.requirement("COZE-BOT-001", "COZE-BOT-002", "COZE-BOT-003", "COZE-BOT-004", "COZE-BOT-006")
def test_bot_lifecycle(api: ApiClient, check: Checks, profile: Profile, bot_maker: BotMaker) -> None:
    name = bot_maker.reserve_name("v")
    body = bot_maker.create_body(name)
    create = profile.endpoint("create")
    try:
        created = send(api, create, body)
    except TransportError as exc:
        check.fail("COZE-BOT-001", expected="an answer", actual=str(exc))
        return
    bot_id = id_text(created.data.get("bot_id")) if created.ok else None
    check(
        "COZE-BOT-001",
        bot_id is not None and isinstance(created.data.get("bot_id"), str) and bot_id.isdigit(),
        expected="code 0, data.bot_id a string of digits",
        actual=created.describe(),
    )
    assert bot_id is not None

    published = send(api, profile.endpoint("publish"), fill(profile.bots.publish_body, {"bot_id": bot_id}))
    check("COZE-BOT-003", published.ok or published.code == profile.envelope.success_code,
          expected="code 0", actual=published.describe())

    online = read(api, profile, "online_info", bot_id)
    check(
        "COZE-BOT-004",
        online.ok and id_text(online.data.get("bot_id")) == bot_id and name_of(online) == name,
        expected=f"code 0, bot_id {bot_id}, name {name!r} (as published)",
        actual=online.describe(),
        detail="get_online_info after the publish",
        soft=True,
    )
    detail = read(api, profile, "bot_detail", bot_id)
    check(
        "COZE-BOT-006",
        detail.ok and id_text(detail.data.get("bot_id")) == bot_id,
        expected=f"code 0, bot_id {bot_id}",
        actual=detail.describe(),
    )

    new_name = f"{name}u"[: profile.bots.name_max]
    if new_name == name:
        new_name = name[:-1] + ("x" if name[-1] != "x" else "y")
    updated = send(api, profile.endpoint("update"), {"bot_id": bot_id, "name": new_name})
    draft_query = dict(profile.bots.draft_query or {})
    draft = read(api, profile, "bot_detail", bot_id, **draft_query)
    check(
        "COZE-BOT-002",
        is_integer(updated.code) and updated.code == profile.envelope.success_code and name_of(draft) == new_name,
        expected=f"update: code 0; the draft ({draft_query or 'the detail'}): name {new_name!r}",
        actual=f"update {updated.describe()}; draft {draft.describe()}",
    )
    online_after = read(api, profile, "online_info", bot_id)
    check(
        "COZE-BOT-004",
        online_after.ok and name_of(online_after) == name,
        expected=f"code 0, name {name!r} (the published version, not the draft edit {new_name!r})",
        actual=online_after.describe(),
        detail="get_online_info after an update that was not published",
    )


@pytest.mark.requirement("COZE-BOT-005")
def test_online_info_of_an_unknown_bot_is_an_error(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot
) -> None:
    answer = read(api, profile, "online_info", unknown_id(published_bot.id))
    check("COZE-BOT-005", refused(answer, profile), expected="an error code, never code 0", actual=answer.describe())


@pytest.mark.parametrize("endpoint", ["online_info", "bot_detail"])
@pytest.mark.requirement("COZE-ISO-001")
def test_another_principals_bot_is_never_read(
    api2: ApiClient, check: Checks, profile: Profile, published_bot: Bot, endpoint: str
) -> None:
    answer = read(api2, profile, endpoint, published_bot.id)
    check(
        "COZE-ISO-001",
        refused(answer, profile) and not answer.data,
        expected="an error code, never the bot's data",
        actual=answer.describe(),
        detail=f"principal 2 asked for principal 1's bot {published_bot.id}",
    )
