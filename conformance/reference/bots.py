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
from .envelope import ApiError, ok_response
from .inputs import Fields, bad_request, parse_id_text, parse_object, read_body
from .runtime import Runtime
from .store import Bot, BotProfile


async def create(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /api/draftbot/create`` (spec "创建草稿智能体"): a new bot in status ``draft``."""
    fields = Fields(parse_object(await read_body(request, runtime.config.max_body_bytes)))
    profile = BotProfile(
        name=fields.required_str("name", non_empty=True),
        description=fields.str_("description") or "",
        icon_url=fields.str_("icon_url") or "",
        prompt=fields.str_("prompt") or "",
        model=fields.str_("model") or None,
    )
    bot = runtime.store.create_bot(principal, profile)
    return ok_response(
        runtime.config.success_msg,
        {
            "bot_id": bot.bot_id,
            "name": profile.name,
            "description": profile.description,
            "icon_url": profile.icon_url,
            "status": "draft",
            "created_at": bot.created_at,
            "updated_at": bot.updated_at,
        },
    )


async def update_display_info(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /api/draftbot/update_display_info`` (spec "更新智能体显示信息"): the draft only."""
    fields = Fields(parse_object(await read_body(request, runtime.config.max_body_bytes)))
    bot_id = fields.bot_id("bot_id")
    changes: dict[str, object] = {}
    name = fields.str_("name", non_empty=True)
    if name is not None:
        changes["name"] = name
    for key in ("description", "icon_url"):
        value = fields.str_(key)
        if value is not None:
            changes[key] = value
    # Validation first, ownership next, change last: a refused request changes nothing.
    bot = owned_bot(runtime.store, runtime.config, bot_id, principal)
    bot = runtime.store.update_draft(bot, **changes)
    return ok_response(
        runtime.config.success_msg,
        {
            "bot_id": bot.bot_id,
            "name": bot.draft.name,
            "description": bot.draft.description,
            "icon_url": bot.draft.icon_url,
            "updated_at": bot.updated_at,
        },
    )


async def publish(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /api/draftbot/publish`` (spec "发布智能体"): version 1, then one higher each time."""
    fields = Fields(parse_object(await read_body(request, runtime.config.max_body_bytes)))
    bot = owned_bot(runtime.store, runtime.config, fields.bot_id("bot_id"), principal)
    bot = runtime.store.publish(bot)
    return ok_response(
        runtime.config.success_msg,
        {"bot_id": bot.bot_id, "version": bot.version, "status": "online", "published_at": bot.published_at},
    )


def _query_bot_id(request: Request) -> int:
    values = request.query_params.getlist("bot_id")
    if not values:
        bad_request("missing required query parameter: bot_id")
    if len(values) > 1:
        bad_request("bot_id given more than once in the query")
    return parse_id_text(values[0], "bot_id")


async def online_info(runtime: Runtime, request: Request, principal: str) -> Response:
    """``GET /v1/bot/get_online_info?bot_id=`` (spec "获取智能体在线信息"): the published snapshot."""
    bot = owned_bot(runtime.store, runtime.config, _query_bot_id(request), principal)
    online = bot.online
    if online is None:
        # Not said (READING, last row); a bot with no online version has nothing to show.
        raise ApiError(404, f"bot {bot.bot_id} has no online version: it was never published")
    data: dict[str, object] = {
        "bot_id": bot.bot_id,
        "name": online.name,
        "description": online.description,
        "icon_url": online.icon_url,
        "version": bot.version,
        "status": "online",
        "published_at": bot.published_at,
    }
    if online.model:
        data["model"] = online.model  # READING "Fields the API cannot set": absent when not set
    return ok_response(runtime.config.success_msg, data)


async def details(runtime: Runtime, request: Request, principal: str) -> Response:
    """``GET /v1/bots/:bot_id`` (spec "获取智能体详细信息"): the current bot, draft and publish state."""
    bot_id = parse_id_text(request.path_params["bot_id"], "bot_id")
    bot = owned_bot(runtime.store, runtime.config, bot_id, principal)
    return ok_response(runtime.config.success_msg, bot_details(bot))


def bot_details(bot: Bot) -> dict[str, object]:
    draft = bot.draft
    data: dict[str, object] = {
        "bot_id": bot.bot_id,
        "name": draft.name,
        "description": draft.description,
        "icon_url": draft.icon_url,
        "status": bot.status,
        "prompt": draft.prompt,
        "tools": [dict(tool) for tool in draft.tools],
        "created_at": bot.created_at,
        "updated_at": bot.updated_at,
    }
    if draft.model:
        data["model"] = draft.model
    if bot.published_at is not None:
        # Publish state only once there is one: no version 0 or published_at 0.
        data["version"] = bot.version
        data["published_at"] = bot.published_at
    return data
