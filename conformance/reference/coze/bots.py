"""The bot endpoints of the coze dialect.

* ``POST /v1/bot/create`` ``{space_id, name (1-20 characters), description?, icon_file_id?,
  prompt_info?, onboarding_info?, suggest_reply_info?, model_info_config?, plugin_id_list?,
  workflow_id_list?}`` -> ``data {"bot_id"}``: a draft.
* ``POST /v1/bot/update`` ``{bot_id, name?, ...}`` -> ``data {}``: the draft changes.
* ``POST /v1/bot/publish`` ``{bot_id, connector_ids}`` -> ``data {"bot_id", "version"}``:
  the draft becomes the online version (version "1", then +1); a chat needs connector
  "1024" (the API connector) among the connectors of the last publish.
* ``GET /v1/bot/get_online_info?bot_id=`` -> the online version (4200 before a publish).
* ``GET /v1/bots/{bot_id}[?is_published=true|false]`` -> the online version (default) or
  the draft.

Another principal's bot answers 4101, an unknown one 4200, bad input 4000.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..inputs import Fields, read_object
from ..store import Bot, BotProfile
from . import envelope
from .chats import id_text, query_value
from .envelope import CozeError, bad_request
from .state import Call

NAME_LIMIT = 20
DESCRIPTION_LIMIT = 500
DEFAULT_MODEL = "reference-echo"
ICON_URL = "https://example.com/coze-reference/{}.png"


def _object(body: dict[str, Any], name: str) -> Fields | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"invalid {name}: expected an object")
    return Fields(value, prefix=f"{name}.")


def _profile_changes(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The BotProfile fields a create or update body sets (type-checked: 4000 otherwise)."""
    fields = Fields(body)
    changes: dict[str, Any] = {}
    name = fields.str_("name", required=creating, non_empty=True)
    if name is not None:
        if len(name) > NAME_LIMIT:
            raise bad_request(f"invalid name: at most {NAME_LIMIT} characters, got {len(name)}")
        changes["name"] = name
    description = fields.str_("description")
    if description is not None:
        if len(description) > DESCRIPTION_LIMIT:
            raise bad_request(f"invalid description: at most {DESCRIPTION_LIMIT} characters")
        changes["description"] = description
    icon = fields.str_("icon_file_id", non_empty=True)
    if icon is not None:
        changes["icon_url"] = ICON_URL.format(icon)
    if (prompt := _object(body, "prompt_info")) is not None:
        changes["prompt"] = prompt.required_str("prompt")
    if (onboarding := _object(body, "onboarding_info")) is not None:
        changes["prologue"] = onboarding.str_("prologue") or ""
        questions = onboarding.body.get("suggested_questions")
        if questions is not None and not (isinstance(questions, list) and all(isinstance(q, str) for q in questions)):
            raise bad_request("invalid onboarding_info.suggested_questions: expected an array of strings")
        changes["suggested_questions"] = tuple(questions or ())
    if (model_info := _object(body, "model_info_config")) is not None:
        changes["model"] = model_info.required_str("model_id", non_empty=True)
    for name in ("suggest_reply_info", "plugin_id_list", "workflow_id_list", "knowledge"):
        _object(body, name)
    return changes


def _owned(call: Call, bot_id: int, *, any_owner: bool = False) -> Bot:
    bot = call.state.store.bot(bot_id)
    if bot is None:
        raise CozeError(envelope.NOT_FOUND, f"bot {bot_id} not found")
    if bot.owner != call.principal and not any_owner:
        raise CozeError(envelope.FORBIDDEN, f"bot {bot_id} belongs to another user")
    return bot


def bot_info(bot: Bot, profile: BotProfile, *, extra: bool = False) -> dict[str, object]:
    """BotInfo as cozepy's ``Bot`` reads it (``extra``: coze_extra_fields's undocumented keys)."""
    info: dict[str, object] = {
        "bot_id": str(bot.bot_id),
        "name": profile.name,
        "description": profile.description,
        "icon_url": profile.icon_url or ICON_URL.format("default"),
        "create_time": bot.created_at,
        "update_time": bot.updated_at,
        "version": str(bot.version),
        "prompt_info": {"prompt": profile.prompt},
        "onboarding_info": {"prologue": profile.prologue, "suggested_questions": list(profile.suggested_questions)},
        "bot_mode": 0,
        "plugin_info_list": [],
        "model_info": {"model_id": profile.model or DEFAULT_MODEL, "model_name": profile.model or DEFAULT_MODEL},
    }
    if extra:
        info.update(folder_id="0", owner_user_id="1000", knowledge={"dataset_ids": [], "auto_call": True, "search_strategy": 0})
    return info


async def create(call: Call) -> Response:
    body = await read_object(call.request, call.config)
    Fields(body).required_str("space_id", non_empty=True)
    changes = _profile_changes(body, creating=True)
    bot = call.state.store.create_bot(call.principal, BotProfile(**changes))
    bot_id: object = bot.bot_id if call.config.has("coze_create_bot_id_integer") else str(bot.bot_id)  # fault: a number
    return envelope.ok(call.config, call.logid, {"bot_id": bot_id})


async def update(call: Call) -> Response:
    body = await read_object(call.request, call.config)
    bot_id = id_text(body.get("bot_id"), "bot_id")
    changes = _profile_changes(body, creating=False)  # the whole body is read before any lookup
    bot = _owned(call, bot_id)
    if not call.config.has("coze_update_not_stored"):  # fault: answered, never stored
        call.state.store.update_draft(bot, **changes)
    return envelope.ok(call.config, call.logid, {})


async def publish(call: Call) -> Response:
    body = await read_object(call.request, call.config)
    bot_id = id_text(body.get("bot_id"), "bot_id")
    connectors = body.get("connector_ids")
    if not (isinstance(connectors, list) and connectors and all(isinstance(c, str) and c for c in connectors)):
        raise bad_request("invalid connector_ids: expected a non-empty array of connector id strings")
    bot = _owned(call, bot_id)
    call.state.store.publish(bot, frozenset(connectors))
    if call.config.has("coze_publish_answers_error"):
        raise CozeError(envelope.SERVER_ERROR, "publish failed")  # fault: published, yet answered as failed
    return envelope.ok(call.config, call.logid, {"bot_id": str(bot.bot_id), "version": str(bot.version)})


async def online_info(call: Call) -> Response:
    has = call.config.has
    bot_id = id_text(query_value(call, "bot_id"), "bot_id")
    if has("coze_online_info_unknown_ok") and call.state.store.bot(bot_id) is None:
        return envelope.ok(call.config, call.logid, {"bot_id": str(bot_id)})  # fault: an unknown bot answered
    bot = _owned(call, bot_id, any_owner=has("coze_iso_online_info_other_bot"))  # fault: no owner check
    if bot.online is None:
        raise CozeError(envelope.NOT_FOUND, f"bot {bot_id} has not been published")
    profile = bot.draft if has("coze_online_info_shows_draft") else bot.online  # fault: the draft shown
    return envelope.ok(call.config, call.logid, bot_info(bot, profile, extra=call.config.coze_extra_fields))


async def details(call: Call) -> Response:
    bot_id = id_text(call.request.path_params["bot_id"], "bot_id")
    published = query_value(call, "is_published", required=False)
    if published not in (None, "true", "false"):
        raise bad_request("invalid is_published: expected true or false")
    bot = _owned(call, bot_id)
    if call.config.has("coze_bot_details_not_found"):
        raise CozeError(envelope.NOT_FOUND, f"bot {bot_id} not found")  # fault: every bot unknown here
    if published == "false":
        return envelope.ok(call.config, call.logid, bot_info(bot, bot.draft, extra=call.config.coze_extra_fields))
    if bot.online is None:
        raise CozeError(envelope.NOT_FOUND, f"bot {bot_id} has not been published")
    return envelope.ok(call.config, call.logid, bot_info(bot, bot.online, extra=call.config.coze_extra_fields))
