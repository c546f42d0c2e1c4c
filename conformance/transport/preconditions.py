"""Preconditions of a deployment, checked before any test (profile ``[[precondition]]``).

A real Coze Studio is only certifiable when an online model is configured, the bot is
published to the API connector and the API key belongs to the bot's owner (coze-wire.md
§5, "Environment preconditions"). Without them every chat and bot-info test would fail
with the same code; instead, the setup answer that shows it ends the run with one line
naming the precondition (exit code 3, as the preflight's).

With ``--bot-id`` the bot's online info is read with the API key. Otherwise one bot is
made as the suite makes its bots (named ``cz-conf-preflight-<hex>``; the API has no
delete, so it stays), configured and published, and its online info read with the API
key: the same requests the run's setup makes first, so a deployment that passes them
is ready for the run.
"""

from __future__ import annotations

import secrets
from typing import Any

from conformance.oracle.profile import Profile, fill
from conformance.transport.client import ApiClient, ApiResponse, TransportError

__all__ = ["check_preconditions"]

ICON_URI = "default_icon/cz-conf-bot.png"


def _code(response: ApiResponse) -> Any:
    body = response.json_or_none()
    return body.get("code") if isinstance(body, dict) else None


def _data(response: ApiResponse) -> Any:
    body = response.json_or_none()
    return body.get("data") if isinstance(body, dict) else None


def check_preconditions(client: ApiClient, profile: Profile, *, bot_id: str | None, space_id: str | None) -> str | None:
    """The first unmet precondition as one line, or None (all met, or not telling)."""
    if not profile.preconditions:
        return None
    unmet = {(p.endpoint, p.code): p.text for p in profile.preconditions}

    def call(endpoint_name: str, *, json: Any = None, params: dict[str, Any] | None = None, **path: str) -> ApiResponse:
        endpoint = profile.endpoint(endpoint_name)
        return client.request(endpoint.method, endpoint.url_path(**path), json=json, params=params)

    def judged(endpoint_name: str, response: ApiResponse) -> str | None:
        text = unmet.get((endpoint_name, _code(response)))
        if text is None:
            return None
        return f"precondition not met: {text} ({profile.endpoint(endpoint_name).key} answered code {_code(response)})"

    def online(bot: str) -> str | None:
        params = {"bot_id": bot, **(profile.bots.online_query or {})}
        return judged("online_info", call("online_info", params=params))

    try:
        if bot_id is not None:
            return online(bot_id)
        if space_id is None and "space_list" in {e.name for e in profile.endpoints}:
            spaces = _data(call("space_list", json={}))
            listed = spaces.get("bot_space_list") if isinstance(spaces, dict) else None
            first = listed[0] if isinstance(listed, list) and listed and isinstance(listed[0], dict) else {}
            space_id = first.get("id") if isinstance(first.get("id"), str) else None
        name = f"cz-conf-preflight-{secrets.token_hex(4)}"
        values = {
            "name": name, "description": "conformance suite preflight bot", "icon_uri": ICON_URI,
            "icon_url": "https://example.com/cz-conf-icon.png", "prompt": "你是一个测试助手。", "model": None,
            "space_id": space_id,
        }
        created = call("create", json=fill(profile.bots.create_body, values))
        problem = judged("create", created)
        data = _data(created)
        made = data.get("bot_id") if isinstance(data, dict) else None
        if problem or not (isinstance(made, str | int) and str(made).isdigit()):
            return problem  # otherwise the create tests say what is wrong with create
        made = str(made)
        if profile.bots.configure_body is not None:
            call("update_info", json=fill(profile.bots.configure_body, {**values, "bot_id": made}))
        call("publish", json=fill(profile.bots.publish_body, {**values, "bot_id": made}))
        return online(made)
    except TransportError:
        return None  # the preflight proper has already shown the target answers
