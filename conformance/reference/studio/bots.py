"""The bot endpoints of the studio dialect (contract "Endpoints", OpenAPI and WebAPI).

* ``POST /api/draftbot/create`` -> ``data {bot_id, check_not_pass}``: a draft with the
  default model and an empty prompt (studio_no_model: code 100000013 instead).
* ``POST /api/playground_api/draftbot/update_draft_bot_info`` -> the draft changes.
* ``POST /api/draftbot/update_display_info`` / ``get_display_info`` -> the tab state.
* ``POST /api/draftbot/publish`` ``{bot_id, connectors: {"1024": {}}, commit_version?}`` ->
  the draft becomes the online version, with a new version string.
* ``GET /v1/bot/get_online_info?bot_id=&connector_id=`` -> the bare BotInfo (connector 1024
  when none is given); ``GET /v1/bots/{bot_id}`` -> ``{"data": BotInfo, "code": 0, "msg": ""}``.

Unknown bot: 100000003 (100000000 "not published" on the OpenAPI side); another
principal's: 110000001; bind errors: HTTP 400 code 400.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..store import API_CONNECTOR, Bot, BotProfile
from . import envelope
from .chats import call_body, digits, query_value, text
from .envelope import StudioError, bad_request
from .state import Call

NAME_LIMIT = 50
DESCRIPTION_LIMIT = 2000
#: The first online model: the default of every new draft.
DEFAULT_MODEL_ID = "1737521813"
ICON_URL = "https://example.com/studio-reference/{}"
CONNECTORS = frozenset({"999", API_CONNECTOR})


def _owned(call: Call, bot_id: int, *, unknown_code: int = envelope.NOT_EXIST, any_owner: bool = False) -> Bot:
    bot = call.state.store.bot(bot_id)
    if bot is None:
        msg = "invalid parameter : agent not published" if unknown_code == envelope.INVALID_PARAMETER else "agent not exist"
        raise StudioError(unknown_code, msg)
    if bot.owner != call.principal and not any_owner:
        raise StudioError(envelope.NOT_OWNER, "unauthorized access : agent not own")
    return bot


def _object(body: dict[str, Any], name: str, *, required: bool = False) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name.replace('_', ' ')} is nil")
        return None
    if not isinstance(value, dict):
        raise bad_request(f"invalid {name}: expected an object")
    return value


def _limited(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = text(body, name)
    if value is not None and len(value) > limit:
        raise bad_request(f"{name} is too long: at most {limit} characters, got {len(value)}")
    return value


def model_id(profile: BotProfile) -> str:
    return profile.model if profile.model and profile.model.isdigit() else DEFAULT_MODEL_ID


def bot_info(call: Call, bot: Bot, profile: BotProfile) -> dict[str, object]:
    return {
        "bot_id": str(bot.bot_id),
        "name": profile.name,
        "description": profile.description,
        "icon_url": profile.icon_url,
        "create_time": 0,
        "update_time": 0,
        "version": call.state.online_version(bot.bot_id, bot.version),
        "prompt_info": {"prompt": profile.prompt},
        "onboarding_info": {"prologue": "", "suggested_questions": []},
        "bot_mode": 0,
        "model_info": {"model_id": model_id(profile)},
        "plugin_info_list": [],
        "workflow_info_list": [],
        "shortcut_commands": None,
        "default_user_input_type": "",
        "suggest_reply_info": None,
        "background_image_info": None,
        "variables": None,
    }


# WebAPI ---------------------------------------------------------------------------------------


async def create(call: Call) -> Response:
    config, has = call.config, call.config.has
    body = await call_body(call)
    if body.get("space_id") is None:
        raise bad_request("space id is not set")
    space_id = digits(body.get("space_id"), "space_id")
    if body.get("name") in (None, ""):
        raise bad_request("name is nil")
    name = _limited(body, "name", NAME_LIMIT)
    description = _limited(body, "description", DESCRIPTION_LIMIT) or ""
    icon = text(body, "icon_uri")
    if not icon and not has("studio_create_empty_icon_accepted"):  # fault: no icon_uri accepted
        raise bad_request("icon uri is nil")
    text(body, "create_from")
    if body.get("visibility") is not None and (isinstance(body["visibility"], bool) or not isinstance(body["visibility"], int)):
        raise bad_request("invalid visibility: expected an integer")
    if space_id != call.state.principals[call.principal].space_id:
        raise StudioError(envelope.NOT_EXIST, f"space {space_id} not exist")
    if config.studio_no_model:
        raise StudioError(envelope.NO_MODEL, "there is no llm model in use, please config a model first")
    assert name is not None
    profile = BotProfile(name=name, description=description, icon_url=ICON_URL.format(icon or "default"), model=DEFAULT_MODEL_ID)
    bot = call.state.store.create_bot(call.principal, profile)
    data: dict[str, object] = {"bot_id": str(bot.bot_id), "check_not_pass": False}
    if has("studio_create_bot_id_number"):
        data["bot_id"] = bot.bot_id  # fault: an id as a JSON number
    if has("studio_create_no_bot_id"):
        del data["bot_id"]  # fault: no bot_id
    return envelope.ok(config, data)


async def update_draft(call: Call) -> Response:
    body = await call_body(call)
    info = _object(body, "bot_info", required=True)
    assert info is not None
    bot_id = int(digits(info.get("bot_id"), "bot_info.bot_id") or 0)
    text(body, "base_commit_version")
    changes: dict[str, object] = {}
    for key, limit in (("name", NAME_LIMIT), ("description", DESCRIPTION_LIMIT)):
        if (value := _limited(info, key, limit)) is not None:
            changes[key] = value
    if (icon := text(info, "icon_uri")) is not None:
        changes["icon_url"] = ICON_URL.format(icon)
    if (prompt := _object(info, "prompt_info")) is not None:
        changes["prompt"] = text(prompt, "prompt") or ""
    if (model := _object(info, "model_info")) is not None and (chosen := digits(model.get("model_id"), "model_id", required=False)):
        changes["model"] = chosen
    bot = _owned(call, bot_id)
    if not call.config.has("studio_update_not_stored"):  # fault: answered, never stored
        call.state.store.update_draft(bot, **changes)
    return envelope.ok(call.config, {"has_change": True, "check_not_pass": False, "branch": 0, "same_with_online": False})


async def update_display_info(call: Call) -> Response:
    body = await call_body(call)
    bot_id = int(digits(body.get("bot_id"), "bot_id") or 0)
    digits(body.get("space_id"), "space_id", required=False)
    display = _object(body, "display_info", required=True)
    assert display is not None
    tabs = _object(display, "tab_display_info") or {}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in tabs.values()):
        raise bad_request("invalid display_info.tab_display_info: expected integer values")
    _owned(call, bot_id)
    if not call.config.has("studio_display_info_not_stored"):  # fault: answered, never stored
        call.state.display[bot_id] = {**call.state.display.get(bot_id, {}), **tabs}
    return envelope.ok(call.config)


async def get_display_info(call: Call) -> Response:
    body = await call_body(call)
    bot_id = int(digits(body.get("bot_id"), "bot_id") or 0)
    _owned(call, bot_id)
    return envelope.ok(call.config, {"tab_display_info": dict(call.state.display.get(bot_id, {}))})


async def publish(call: Call) -> Response:
    state, has = call.state, call.config.has
    body = await call_body(call)
    bot_id = int(digits(body.get("bot_id"), "bot_id") or 0)
    digits(body.get("space_id"), "space_id", required=False)
    connectors = body.get("connectors")
    if not connectors:
        raise bad_request("connectors is nil")
    if not isinstance(connectors, dict):
        raise bad_request("invalid connectors: expected an object")
    commit = digits(body.get("commit_version"), "commit_version", required=False)
    bot = _owned(call, bot_id)
    foreign = sorted(set(connectors) - CONNECTORS)
    if foreign and not has("studio_publish_any_connector"):  # fault: any connector accepted
        raise StudioError(envelope.NOT_EXIST, f"unauthorized access : connector {foreign[0]} not allowed")
    earlier = state.versions.setdefault(bot.bot_id, [])
    version = commit or state.new_id()
    if earlier and has("studio_publish_version_stuck"):
        version = earlier[0]  # fault: every publish keeps the first version
    state.store.publish(bot, frozenset(connectors))
    earlier.append(version)
    result = {name: {"connector": None, "code": 0, "msg": "", "publish_result_status": 1} for name in connectors}
    return envelope.ok(call.config, {"connector_bind_result": None, "publish_result": result, "check_not_pass": False})


# OpenAPI --------------------------------------------------------------------------------------


def _published(call: Call, bot_id: int, connector: str, *, any_owner: bool = False) -> Bot:
    bot = _owned(call, bot_id, unknown_code=envelope.INVALID_PARAMETER, any_owner=any_owner)
    if bot.online is None or connector not in bot.connectors:
        raise StudioError(envelope.INVALID_PARAMETER, f"invalid parameter : agent not published to connector {connector}")
    return bot


async def online_info(call: Call) -> Response:
    has = call.config.has
    bot_id = int(query_value(call, "bot_id") or 0)
    connector = query_value(call, "connector_id", required=False)
    if connector is None and has("studio_online_info_500"):
        return envelope.json_answer({"code": 500, "msg": "internal server error"}, 500)  # fault: as Coze Plus
    bot = _published(call, bot_id, connector or API_CONNECTOR, any_owner=has("studio_iso_online_info_other_bot"))  # fault
    assert bot.online is not None
    profile = bot.draft if has("studio_online_info_shows_draft") else bot.online  # fault: the draft shown
    info = bot_info(call, bot, profile)
    if has("studio_online_info_no_name"):
        info["name"] = ""  # fault: the published bot's name left out
    return envelope.json_answer(info)


async def details(call: Call) -> Response:
    bot_id = int(digits(call.request.path_params["bot_id"], "bot_id") or 0)
    bot = _published(call, bot_id, API_CONNECTOR)
    assert bot.online is not None
    if call.config.has("studio_bot_details_not_found"):
        raise StudioError(envelope.INVALID_PARAMETER, "invalid parameter : agent not published")  # fault
    return envelope.json_answer({"data": bot_info(call, bot, bot.online), "code": 0, "msg": ""})
