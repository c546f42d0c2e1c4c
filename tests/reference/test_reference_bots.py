"""Bot management and information endpoints: every documented key, and state seen elsewhere.

Spec sections "创建草稿智能体", "更新智能体显示信息", "发布智能体", "获取智能体在线信息",
"获取智能体详细信息". Each response is checked for every documented key, its type and
(where the request fixes it) its value; each change is then read back through another
endpoint.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conformance.reference import ReferenceServer

if TYPE_CHECKING:
    from conftest import Api

FULL = {
    "name": "客服助手",
    "description": "专业的客服智能助手",
    "icon_url": "https://example.com/icon.png",
    "prompt": "你是一个专业的客服助手...",
    "model": "gpt-4",
}


def assert_timestamp(value: Any) -> None:
    """Seconds since the epoch (READING "Timestamps"), and recent."""
    assert type(value) is int
    assert time.time() - 120 <= value <= time.time() + 5


def assert_bot_id(value: Any, raw: str) -> None:
    """A JSON integer of 19 digits above 2^53, written exactly in the raw body."""
    assert type(value) is int
    assert len(str(value)) == 19 and value > 2**53
    assert int(float(value)) != value  # a float round-trip would be visible
    assert re.search(rf'"bot_id":{value}\b', raw)


def envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == 0 and body["msg"] == "success"
    assert isinstance(body["data"], dict)
    return body["data"]


def online_info(api: Api, bot_id: int) -> dict[str, Any]:
    return envelope(api.client.get("/v1/bot/get_online_info", params={"bot_id": str(bot_id)}))


def details(api: Api, bot_id: int) -> dict[str, Any]:
    return envelope(api.client.get(f"/v1/bots/{bot_id}"))


def test_create_answers_every_documented_key(alice: Api) -> None:
    response = alice.client.post("/api/draftbot/create", json=FULL)
    data = envelope(response)
    assert set(data) >= {"bot_id", "name", "description", "icon_url", "status", "created_at", "updated_at"}
    assert_bot_id(data["bot_id"], response.text)
    assert (data["name"], data["description"], data["icon_url"]) == (FULL["name"], FULL["description"], FULL["icon_url"])
    assert data["status"] == "draft"
    assert_timestamp(data["created_at"])
    assert data["updated_at"] == data["created_at"]


def test_create_with_only_a_name_has_empty_optional_fields(alice: Api) -> None:
    data = alice.create_bot(name="minimal")
    assert (data["name"], data["description"], data["icon_url"], data["status"]) == ("minimal", "", "", "draft")
    shown = details(alice, data["bot_id"])
    assert (shown["prompt"], shown["tools"]) == ("", [])
    assert "model" not in shown  # READING "Fields the API cannot set": absent when not set


def test_a_new_bot_is_a_draft_everywhere(alice: Api) -> None:
    bot_id = alice.create_bot(**FULL)["bot_id"]
    shown = details(alice, bot_id)
    assert shown["status"] == "draft"
    assert "version" not in shown and "published_at" not in shown
    response = alice.client.get("/v1/bot/get_online_info", params={"bot_id": bot_id})
    assert response.status_code == 404 and response.json()["code"] == 404


def test_update_echoes_the_new_values_and_changes_the_draft(alice: Api) -> None:
    created = alice.create_bot(**FULL)
    bot_id = created["bot_id"]
    response = alice.client.post(
        "/api/draftbot/update_display_info",
        json={"bot_id": bot_id, "name": "高级客服助手", "description": "更专业的客服智能助手"},
    )
    data = envelope(response)
    assert set(data) >= {"bot_id", "name", "description", "updated_at"}
    assert_bot_id(data["bot_id"], response.text)
    assert data["bot_id"] == bot_id
    assert (data["name"], data["description"]) == ("高级客服助手", "更专业的客服智能助手")
    assert data["icon_url"] == FULL["icon_url"]  # not sent, so unchanged
    assert_timestamp(data["updated_at"])
    assert data["updated_at"] >= created["created_at"]
    shown = details(alice, bot_id)
    assert (shown["name"], shown["description"], shown["icon_url"]) == (
        "高级客服助手",
        "更专业的客服智能助手",
        FULL["icon_url"],
    )


def test_publish_answers_version_one_then_higher(alice: Api) -> None:
    bot_id = alice.create_bot(**FULL)["bot_id"]
    response = alice.client.post("/api/draftbot/publish", json={"bot_id": bot_id})
    first = envelope(response)
    assert set(first) >= {"bot_id", "version", "status", "published_at"}
    assert_bot_id(first["bot_id"], response.text)
    assert first["bot_id"] == bot_id
    assert (type(first["version"]), first["version"], first["status"]) == (int, 1, "online")
    assert_timestamp(first["published_at"])
    second = alice.publish(bot_id)
    assert second["version"] == 2 and second["published_at"] >= first["published_at"]
    assert online_info(alice, bot_id)["version"] == 2
    assert details(alice, bot_id)["version"] == 2


def test_online_info_is_the_published_snapshot(alice: Api) -> None:
    bot_id = alice.create_bot(**FULL)["bot_id"]
    published = alice.publish(bot_id)
    response = alice.client.get("/v1/bot/get_online_info", params={"bot_id": str(bot_id)})
    data = envelope(response)
    assert set(data) >= {"bot_id", "name", "description", "icon_url", "version", "status", "model", "published_at"}
    assert_bot_id(data["bot_id"], response.text)
    assert data["bot_id"] == bot_id
    assert (data["name"], data["description"], data["icon_url"], data["model"]) == (
        FULL["name"],
        FULL["description"],
        FULL["icon_url"],
        FULL["model"],
    )
    assert (data["version"], data["status"], data["published_at"]) == (1, "online", published["published_at"])


def test_details_answer_every_documented_key(ref_server: ReferenceServer, alice: Api) -> None:
    tools = (
        {"type": "knowledge_base", "knowledge_id": 7493710240598375201},
        {"type": "plugin", "plugin_id": 7493710240598375301},
    )
    bot_id = ref_server.seed_published_bot("alice", name="seeded", prompt="be brief", model="gpt-4", tools=tools)
    response = alice.client.get(f"/v1/bots/{bot_id}")
    data = envelope(response)
    documented = {"bot_id", "name", "description", "icon_url", "version", "status", "model", "prompt", "tools"}
    assert set(data) >= documented | {"created_at", "updated_at", "published_at"}
    assert_bot_id(data["bot_id"], response.text)
    assert str(data["bot_id"]) == bot_id
    assert (data["name"], data["prompt"], data["model"], data["status"], data["version"]) == (
        "seeded",
        "be brief",
        "gpt-4",
        "online",
        1,
    )
    assert data["tools"] == [dict(t) for t in tools]
    assert '"knowledge_id":7493710240598375201' in response.text  # ids in tools stay exact too
    for key in ("created_at", "updated_at", "published_at"):
        assert_timestamp(data[key])
    assert data["updated_at"] == data["published_at"]  # as in the spec's example


def test_draft_and_online_versions_split_until_the_next_publish(alice: Api) -> None:
    """READING "Update vs online version": online info keeps the snapshot until republished."""
    bot_id = alice.create_bot(**FULL)["bot_id"]
    alice.publish(bot_id)
    change = {"bot_id": bot_id, "name": "v2 name", "description": "v2 description", "icon_url": "https://e.x/2.png"}
    envelope(alice.client.post("/api/draftbot/update_display_info", json=change))
    before = online_info(alice, bot_id)
    assert (before["name"], before["description"], before["icon_url"], before["version"]) == (
        FULL["name"],
        FULL["description"],
        FULL["icon_url"],
        1,
    )
    assert details(alice, bot_id)["name"] == "v2 name"  # the draft, with its publish state
    assert alice.publish(bot_id)["version"] == 2
    after = online_info(alice, bot_id)
    assert (after["name"], after["description"], after["icon_url"], after["version"]) == (
        "v2 name",
        "v2 description",
        "https://e.x/2.png",
        2,
    )


def test_chat_uses_the_online_version(alice: Api) -> None:
    bot_id = alice.published_bot(name="Online Name")
    alice.client.post("/api/draftbot/update_display_info", json={"bot_id": bot_id, "name": "Draft Name"})
    answer = alice.chat(bot_id, "hi")["content"]
    assert "Online Name" in answer and "Draft Name" not in answer


@pytest.mark.parametrize(
    "as_text", [pytest.param(False, id="integer-id"), pytest.param(True, id="string-id")]
)
def test_bot_ids_are_accepted_as_integers_and_as_digit_strings(alice: Api, as_text: bool) -> None:
    bot_id = alice.create_bot()["bot_id"]
    sent = str(bot_id) if as_text else bot_id
    data = envelope(alice.client.post("/api/draftbot/update_display_info", json={"bot_id": sent, "name": "renamed"}))
    assert data["bot_id"] == bot_id and data["name"] == "renamed"
    assert envelope(alice.client.post("/api/draftbot/publish", json={"bot_id": sent}))["bot_id"] == bot_id


def test_update_with_no_change_keeps_the_values(alice: Api) -> None:
    created = alice.create_bot(**FULL)
    data = envelope(alice.client.post("/api/draftbot/update_display_info", json={"bot_id": created["bot_id"]}))
    assert (data["name"], data["description"]) == (FULL["name"], FULL["description"])
