"""Bot management and information: ``/api/draftbot/*``, ``/v1/bot/get_online_info``, ``/v1/bots/:bot_id``.

A bot has a draft (what create and update_display_info change) and, once
published, an online snapshot of the draft at publish time (spec "发布智能体":
"将草稿智能体发布为在线版本"). ``get_online_info`` shows the snapshot;
``/v1/bots/:bot_id`` shows the current draft with the publish state (READING
"Update vs online version": the update is visible on both after the next publish).
Bot ids go out as JSON integers, as in every response example.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .access import owned_bot
from .config import ServerConfig
from .inputs import Fields, bad_request, parse_id_text, read_object, refuse_unknown
from .responses import ApiError, ok_response
from .runtime import Runtime
from .store import Bot, BotProfile, now_seconds

# Faults (faults/api.py) are one-line branches marked "fault:"; the helpers below carry
# the ones every endpoint shares (milliseconds, unknown ids answered, another's bot).


def _stamp(config: ServerConfig, fault: str, seconds: int | None) -> int | None:
    """A timestamp in seconds (READING "Timestamps"), or in milliseconds under ``fault``."""
    return seconds * 1000 if seconds is not None and config.has(fault) else seconds


def _phantom(bot_id: int, principal: str) -> Bot:
    """A published bot that was never created: what the faults that answer an unknown or
    missing id with code 0 show. It is never stored."""
    stamp = now_seconds()
    profile = BotProfile(name=f"bot {bot_id}", description="", icon_url="", prompt="")
    return Bot(bot_id, principal, profile, stamp, stamp, 1, stamp, profile, profile)


def _find(runtime: Runtime, bot_id: int, principal: str, *, unknown_ok: str, any_owner: str) -> Bot:
    """The principal's bot; the faults named by ``unknown_ok`` (an unknown id answered
    with code 0) and ``any_owner`` (another principal's bot served) break one endpoint each."""
    config = runtime.config
    if config.has(unknown_ok) and runtime.store.bot(bot_id) is None:  # fault: unknown id answered
        return _phantom(bot_id, principal)
    return owned_bot(runtime.store, config, bot_id, principal, any_owner=config.has(any_owner))


async def create(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /api/draftbot/create`` (spec "创建草稿智能体"): a new bot in status ``draft``."""
    config = runtime.config
    fields = Fields(await read_object(request, config), faults=config.faults)
    if config.has("bot_create_name_optional"):  # fault: a missing name is accepted
        name = fields.str_("name") or ""
    else:
        name = fields.required_str("name", non_empty=True)
    profile = BotProfile(
        name=name,
        description=fields.str_("description") or "",
        icon_url=fields.str_("icon_url") or "",
        prompt=fields.str_("prompt") or "",
        model=fields.str_("model") or None,
    )
    bot = runtime.store.create_bot(principal, profile)
    if config.has("bot_create_without_data"):  # fault: success without a data object
        return ok_response(config.success_msg)
    bot_id: object = bot.bot_id
    if config.has("bot_create_id_float"):  # fault: the id through a float (it loses digits)
        bot_id = float(bot.bot_id)
    if config.has("bot_create_id_prefixed"):  # fault: an id that is no decimal string
        bot_id = f"bot_{bot.bot_id}"
    data: dict[str, object] = {
        "bot_id": bot_id,
        "name": profile.name,
        "description": profile.description,
        "icon_url": profile.icon_url,
        "status": "online" if config.has("bot_create_status_online") else "draft",  # fault: not "draft"
        "created_at": _stamp(config, "ts_ms_create", bot.created_at),
        "updated_at": _stamp(config, "ts_ms_create", bot.updated_at),
    }
    if config.has("bot_create_no_echo"):  # fault: description and icon_url not echoed
        del data["description"], data["icon_url"]
    return ok_response(config.success_msg, data)


async def update_display_info(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /api/draftbot/update_display_info`` (spec "更新智能体显示信息"): the draft only."""
    config = runtime.config
    fields = Fields(await read_object(request, config), faults=config.faults)
    # fault: a missing bot_id is accepted (and updates a bot that does not exist)
    no_id = config.has("bot_update_bot_id_optional") and fields.body.get("bot_id") is None
    bot_id = 0 if no_id else fields.bot_id("bot_id")
    changes: dict[str, object] = {}
    name = fields.str_("name", non_empty=True)
    if name is not None:
        changes["name"] = name
    for key in ("description", "icon_url"):
        value = fields.str_(key)
        if value is not None:
            changes[key] = value
    # Validation first, ownership next, change last: a refused request changes nothing.
    if no_id:
        bot = _phantom(bot_id, principal)
    else:
        bot = _find(runtime, bot_id, principal, unknown_ok="bot_update_unknown_ok", any_owner="iso_update_other_bot")
    before = bot.draft
    bot = runtime.store.update_draft(bot, **changes)
    shown = before if config.has("bot_update_no_echo") else bot.draft  # fault: the old values
    return ok_response(
        config.success_msg,
        {
            "bot_id": bot.bot_id,
            "name": shown.name,
            "description": shown.description,
            "icon_url": shown.icon_url,
            "updated_at": _stamp(config, "ts_ms_update", bot.updated_at),
        },
    )


async def publish(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /api/draftbot/publish`` (spec "发布智能体"): version 1, then one higher each time."""
    config = runtime.config
    fields = Fields(await read_object(request, config), faults=config.faults)
    if config.has("bot_publish_bot_id_optional") and fields.body.get("bot_id") is None:
        bot = _phantom(0, principal)  # fault: a missing bot_id is accepted
    else:
        bot_id = fields.bot_id("bot_id")
        bot = _find(runtime, bot_id, principal, unknown_ok="bot_publish_unknown_ok", any_owner="iso_publish_other_bot")
    bot = runtime.store.publish(bot)
    data: dict[str, object] = {
        "bot_id": bot.bot_id,
        "version": str(bot.version) if config.has("bot_publish_version_string") else bot.version,  # fault: "1"
        "status": "published" if config.has("bot_publish_status_published") else "online",  # fault: not "online"
        "published_at": _stamp(config, "ts_ms_publish", bot.published_at),
    }
    if config.has("bot_publish_no_version"):  # fault: no version at all
        del data["version"]
    return ok_response(config.success_msg, data)


def _query_bot_id(request: Request) -> int:
    values = request.query_params.getlist("bot_id")
    if not values:
        bad_request("missing required query parameter: bot_id")
    if len(values) > 1:
        bad_request("bot_id given more than once in the query")
    return parse_id_text(values[0], "bot_id")


async def online_info(runtime: Runtime, request: Request, principal: str) -> Response:
    """``GET /v1/bot/get_online_info?bot_id=`` (spec "获取智能体在线信息"): the published snapshot."""
    config = runtime.config
    if config.has("req_unknown_key_refused"):  # fault: a strict schema refuses unknown parameters
        refuse_unknown(request.query_params.keys(), frozenset({"bot_id"}), "query parameter")
    if config.has("bot_online_bot_id_optional") and "bot_id" not in request.query_params:
        bot = _phantom(0, principal)  # fault: a missing bot_id is accepted
    else:
        try:
            bot_id = _query_bot_id(request)
        except ApiError:
            if not config.has("bot_online_not_int64_ok") or "bot_id" not in request.query_params:
                raise
            return ok_response(config.success_msg, {"bot_id": 0, "name": "", "version": 1, "status": "online"})  # fault
        bot = _find(
            runtime, bot_id, principal, unknown_ok="bot_online_unknown_ok", any_owner="iso_online_info_other_bot"
        )
    online = bot.first_online if config.has("bot_online_stale") else bot.online  # fault: the first publish
    if online is None:
        # Not said (READING, last row); a bot with no online version has nothing to show.
        raise ApiError(404, f"bot {bot.bot_id} has no online version: it was never published")
    data: dict[str, object] = {
        "bot_id": bot.bot_id,
        "name": online.name,
        "description": online.description,
        "icon_url": online.icon_url,
        "version": bot.version,
        "status": "published" if config.has("bot_online_status_published") else "online",  # fault: not "online"
        "published_at": _stamp(config, "ts_ms_online", bot.published_at),
    }
    _unset_fields(config, data, model=online.model)  # READING "Fields the API cannot set"
    if config.has("bot_online_model_object"):  # fault: model an object, not a string
        data["model"] = {"name": online.model or "default"}
    if config.has("bot_online_missing_display"):  # fault: icon_url left out
        del data["icon_url"]
    return ok_response(config.success_msg, data)


async def details(runtime: Runtime, request: Request, principal: str) -> Response:
    """``GET /v1/bots/:bot_id`` (spec "获取智能体详细信息"): the current bot, draft and publish state."""
    config = runtime.config
    if config.has("req_unknown_key_refused"):  # fault: a strict schema refuses unknown parameters
        refuse_unknown(request.query_params.keys(), frozenset(), "query parameter")
    segment = request.path_params["bot_id"]
    if config.has("bot_detail_not_int64_500"):
        bot_id = int(segment)  # fault: unchecked, so a segment of letters raises (a 500)
    else:
        try:
            bot_id = parse_id_text(segment, "bot_id")
        except ApiError:
            if not config.has("bot_detail_not_int64_ok"):
                raise
            return ok_response(config.success_msg, bot_details(config, _phantom(0, principal)))  # fault: answered
    bot = _find(runtime, bot_id, principal, unknown_ok="bot_detail_unknown_ok", any_owner="iso_bot_detail_other_bot")
    return ok_response(config.success_msg, bot_details(config, bot))


def bot_details(config: ServerConfig, bot: Bot) -> dict[str, object]:
    draft = bot.draft
    if config.has("bot_detail_stale") and bot.first_online is not None:  # fault: the first publish, forever
        draft = bot.first_online
    data: dict[str, object] = {
        "bot_id": bot.bot_id,
        "name": draft.name,
        "description": draft.description,
        "icon_url": draft.icon_url,
        "status": bot.status,
        "prompt": draft.prompt,
        "tools": [dict(tool) for tool in draft.tools],
        "created_at": _stamp(config, "ts_ms_detail", bot.created_at),
        "updated_at": _stamp(config, "ts_ms_detail", bot.updated_at),
    }
    _unset_fields(config, data, model=draft.model)
    if bot.published_at is not None:
        # Publish state only once there is one: no version 0 or published_at 0.
        data["version"] = bot.version
        data["published_at"] = _stamp(config, "ts_ms_detail", bot.published_at)
    for key, fault in (
        ("icon_url", "bot_detail_missing_display"),
        ("prompt", "bot_detail_no_prompt"),
        ("version", "bot_detail_no_version"),
    ):
        if config.has(fault):  # fault: this documented field left out
            data.pop(key, None)
    if config.has("bot_detail_model_object"):  # fault: model an object, not a string
        data["model"] = {"name": draft.model or "default"}
    if config.has("bot_detail_tools_strings"):  # fault: tools as bare names, not objects
        data["tools"] = [str(tool.get("type")) for tool in draft.tools] or ["code_interpreter"]
    return data


def _unset_fields(config: ServerConfig, data: dict[str, object], *, model: str | None) -> None:
    """``model`` into ``data`` and its ``tools`` (if any) in the form of
    ``config.unset_fields`` when the API never set them (READING "Fields the API cannot
    set": "may be empty or absent") -- "mixed": model absent, tools ``[]``; "absent":
    both absent; "empty": model ``""``, tools ``[]``. Set values are always shown."""
    form = config.unset_fields
    if model:
        data["model"] = model
    elif form == "empty":
        data["model"] = ""
    if form == "absent" and data.get("tools") == []:
        del data["tools"]
