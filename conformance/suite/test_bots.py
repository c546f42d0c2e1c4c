"""Bots: create, update_display_info, publish, get_online_info and /v1/bots/:bot_id.

Spec: agent-api.zh.md "智能体管理 API" and "智能体信息 API", read with READING.md rows
"Id types", "Timestamps", "Update vs online version", "Publish version", "Fields the
API cannot set" and "Unknown bot / conversation id".

* One lifecycle test makes one bot and walks it through create -> publish -> update ->
  publish -> both info endpoints, judging every step with soft checks (a real
  deployment gives the suite 5 bots per principal per run and has no delete).
* The documented fields of both info endpoints are also judged on the run's shared,
  published bot (``--bot-id`` may make that a real, richer bot).
* Refusals -- a missing required parameter, an unknown bot id, a path segment that is
  not an int64 -- are a table; none of them needs a bot.

Ids are kept as text and sent in the type each request table gives (profile
``id_types``): an integer ``bot_id`` in /api/draftbot/*, digits in the query and path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.settings import Settings
from conformance.suite.conftest import BotMaker
from conformance.suite.helpers import (
    Answer,
    Bot,
    fields_of,
    id_text,
    is_integer,
    send,
)
from conformance.transport.client import ApiClient

#: The display fields every bot answer carries (spec response examples).
DISPLAY_FIELDS = ("name", "description", "icon_url")

#: Path segments that are not an int64 (BOT-GET-002): not a number at all, and one
#: past the largest int64 (a server may read the latter as invalid or as unknown).
NOT_INT64_SEGMENTS = {"letters": "not-a-bot-id", "beyond-int64": str(2**63)}


# --------------------------------------------------------------------------- requests


def unknown_bot_id(run_id: str) -> str:
    """A positive 19-digit int64 no server of this run handed out (READING "Unknown bot
    / conversation id"). Never 0 or negative: a server may read those as a missing or
    malformed id. Even a snowflake id with a 1970 epoch stays below 9.1e18 until 2038."""
    digest = int(hashlib.sha256(f"cz-conf-unknown-bot-{run_id}".encode()).hexdigest(), 16)
    return str(9_100_000_000_000_000_000 + digest % 10**17)


# --------------------------------------------------------------------------- judging both info endpoints


def judge_online_info(check: Checks, profile: Profile, answer: Answer, bot_id: str) -> None:
    """BOT-ONLINE-001/003/004/005 on a get_online_info answer of a published bot."""
    ok = check("BOT-ONLINE-001", answer.ok, expected="code 0 with a data object", actual=answer.describe(), soft=True)
    if not ok:
        for rid in ("BOT-ONLINE-003", "BOT-ONLINE-004", "BOT-ONLINE-005"):
            check.skip(rid, "blocked by BOT-ONLINE-001: get_online_info of a published bot failed")
        return
    data = answer.data
    check(
        "BOT-ONLINE-001",
        profile.ids.is_bot_id(data.get("bot_id"))
        and id_text(data.get("bot_id")) == bot_id
        and all(isinstance(data.get(key), str) for key in DISPLAY_FIELDS),
        expected=f"bot_id {bot_id} (an integer or decimal string); name, description, icon_url strings",
        actual=fields_of(data, ("bot_id", *DISPLAY_FIELDS)),
        soft=True,
    )
    check(
        "BOT-ONLINE-003",
        is_integer(data.get("version")) and data.get("status") == profile.bots.online_status,
        expected=f"version an integer, status {profile.bots.online_status!r}",
        actual=fields_of(data, ("version", "status")),
        soft=True,
    )
    check(
        "BOT-ONLINE-004",
        profile.timestamps.plausible(data.get("published_at")),
        expected="published_at: seconds since the epoch",
        actual=data.get("published_at"),
        soft=True,
    )
    # READING "Fields the API cannot set": absent or empty (null too) when never set.
    check(
        "BOT-ONLINE-005",
        data.get("model") is None or isinstance(data.get("model"), str),
        expected="model absent, null or a string",
        actual=data.get("model"),
        soft=True,
    )


def _tools_shaped(tools: Any) -> bool:
    # READING "Fields the API cannot set": absent or empty (null too); else the example's shape.
    if tools is None:
        return True
    return isinstance(tools, list) and all(isinstance(t, dict) and isinstance(t.get("type"), str) for t in tools)


def judge_bot_detail(check: Checks, profile: Profile, answer: Answer, bot_id: str) -> None:
    """BOT-GET-001/003/004/005/006 on a /v1/bots/:bot_id answer of a published bot."""
    ok = check("BOT-GET-001", answer.ok, expected="code 0 with a data object", actual=answer.describe(), soft=True)
    if not ok:
        for rid in ("BOT-GET-003", "BOT-GET-004", "BOT-GET-005", "BOT-GET-006"):
            check.skip(rid, "blocked by BOT-GET-001: /v1/bots/:bot_id of a published bot failed")
        return
    data = answer.data
    check(
        "BOT-GET-001",
        profile.ids.is_bot_id(data.get("bot_id"))
        and id_text(data.get("bot_id")) == bot_id
        and all(isinstance(data.get(key), str) for key in DISPLAY_FIELDS),
        expected=f"bot_id {bot_id} (an integer or decimal string); name, description, icon_url strings",
        actual=fields_of(data, ("bot_id", *DISPLAY_FIELDS)),
        soft=True,
    )
    # Status is not pinned: after a later update the detail may describe the draft.
    check(
        "BOT-GET-003",
        is_integer(data.get("version")) and isinstance(data.get("status"), str),
        expected="version an integer, status a string",
        actual=fields_of(data, ("version", "status")),
        soft=True,
    )
    check(
        "BOT-GET-004",
        isinstance(data.get("prompt"), str) and (data.get("model") is None or isinstance(data.get("model"), str)),
        expected="prompt a string; model absent, null or a string",
        actual=fields_of(data, ("prompt", "model")),
        soft=True,
    )
    check(
        "BOT-GET-005",
        _tools_shaped(data.get("tools")),
        expected="tools absent, null, or an array of objects each with a string type",
        actual=data.get("tools"),
        soft=True,
    )
    stamps = ("created_at", "updated_at", "published_at")
    check(
        "BOT-GET-006",
        all(profile.timestamps.plausible(data.get(key)) for key in stamps),
        expected="created_at, updated_at, published_at: seconds since the epoch",
        actual=fields_of(data, stamps),
        soft=True,
    )


ONLINE_READ = ("BOT-ONLINE-001", "BOT-ONLINE-003", "BOT-ONLINE-004", "BOT-ONLINE-005")
DETAIL_READ = ("BOT-GET-001", "BOT-GET-003", "BOT-GET-004", "BOT-GET-005", "BOT-GET-006")


@pytest.mark.parametrize(
    ("endpoint_name", "judge"),
    [
        pytest.param(
            "online_info", judge_online_info, marks=pytest.mark.requirement(*ONLINE_READ), id="get_online_info"
        ),
        pytest.param("bot_detail", judge_bot_detail, marks=pytest.mark.requirement(*DETAIL_READ), id="bots-detail"),
    ],
)
def test_info_shows_documentedfields_of(
    api: ApiClient,
    check: Checks,
    profile: Profile,
    published_bot: Bot,
    endpoint_name: str,
    judge: Callable[[Checks, Profile, Answer, str], None],
) -> None:
    answer = send(api, profile.endpoint(endpoint_name), {"bot_id": published_bot.id})
    judge(check, profile, answer, published_bot.id)


# --------------------------------------------------------------------------- the lifecycle


@pytest.fixture
def bot_name(bot_maker: BotMaker) -> str:
    """A bot name from the run's per-principal budget, for the test that judges create
    itself: ``new_bot()`` SKIPs as "blocked by BOT-CREATE-001" when create breaks, but
    the test owning BOT-CREATE-001 must FAIL."""
    return bot_maker.reserve_name("l")


def _publish(api: ApiClient, check: Checks, profile: Profile, bot_id: str, which: str) -> Any:
    """Publish and judge BOT-PUBLISH-001/003/005; returns the answer's version."""
    answer = send(api, profile.endpoint("publish"), {"bot_id": bot_id})
    check("BOT-PUBLISH-001", answer.ok, expected="code 0 with a data object", actual=answer.describe(), detail=which)
    data = answer.data
    check(
        "BOT-PUBLISH-001",
        id_text(data.get("bot_id")) == bot_id and data.get("status") == profile.bots.online_status,
        expected=f"bot_id {bot_id}, status {profile.bots.online_status!r}",
        actual=fields_of(data, ("bot_id", "status")),
        detail=which,
        soft=True,
    )
    check(
        "BOT-PUBLISH-003",
        is_integer(data.get("version")),
        expected="an integer",
        actual=data.get("version"),
        detail=which,
        soft=True,
    )
    check(
        "BOT-PUBLISH-005",
        profile.timestamps.plausible(data.get("published_at")),
        expected="seconds since the epoch",
        actual=data.get("published_at"),
        detail=which,
        soft=True,
    )
    return data.get("version")


@pytest.mark.requirement(
    "BOT-CREATE-001",
    "BOT-CREATE-003",
    "BOT-CREATE-004",
    "BOT-CREATE-005",
    "BOT-CREATE-006",
    "BOT-UPDATE-001",
    "BOT-UPDATE-003",
    "BOT-PUBLISH-001",
    "BOT-PUBLISH-003",
    "BOT-PUBLISH-004",
    "BOT-PUBLISH-005",
    "BOT-ONLINE-006",
    "BOT-GET-007",
    *ONLINE_READ,
    *DETAIL_READ,
)
def test_bot_lifecycle(
    api: ApiClient, check: Checks, profile: Profile, conformance_settings: Settings, bot_name: str, run_id: str
) -> None:
    # Create (spec "创建草稿智能体"): the response example echoes what was sent.
    sent = {
        "name": bot_name,
        "description": f"conformance suite lifecycle bot of run {run_id}",
        "icon_url": "https://example.com/cz-conf-lifecycle.png",
        "prompt": "你是一个测试助手。",
    }
    if conformance_settings.model:
        sent["model"] = conformance_settings.model
    created = send(api, profile.endpoint("create"), sent)
    check("BOT-CREATE-001", created.ok, expected="code 0 with a data object", actual=created.describe())
    data = created.data
    check(
        "BOT-CREATE-003",
        profile.ids.is_bot_id(data.get("bot_id")),
        expected="an integer or a decimal string",
        actual=data.get("bot_id"),
    )
    bot_id = id_text(data["bot_id"])
    assert bot_id is not None  # is_bot_id held
    check(
        "BOT-CREATE-004",
        fields_of(data, DISPLAY_FIELDS) == {key: sent[key] for key in DISPLAY_FIELDS},
        expected={key: sent[key] for key in DISPLAY_FIELDS},
        actual=fields_of(data, DISPLAY_FIELDS),
        soft=True,
    )
    check(
        "BOT-CREATE-005",
        data.get("status") == profile.bots.draft_status,
        expected=profile.bots.draft_status,
        actual=data.get("status"),
        soft=True,
    )
    check(
        "BOT-CREATE-006",
        all(profile.timestamps.plausible(data.get(key)) for key in ("created_at", "updated_at")),
        expected="created_at, updated_at: seconds since the epoch",
        actual=fields_of(data, ("created_at", "updated_at")),
        soft=True,
    )

    first = _publish(api, check, profile, bot_id, "first publish")
    check(
        "BOT-PUBLISH-004",
        is_integer(first) and first == profile.bots.first_version,
        expected=profile.bots.first_version,
        actual=first,
        detail="first publish",
    )

    # Update (spec "更新智能体显示信息"): the draft changes; the answer echoes it.
    new = {"name": f"{bot_name}-upd"[: profile.bots.name_max], "description": f"updated by the conformance suite, run {run_id}"}
    assert new["name"] != bot_name
    updated = send(api, profile.endpoint("update"), {"bot_id": bot_id, **new})
    check("BOT-UPDATE-001", updated.ok, expected="code 0 with a data object", actual=updated.describe())
    data = updated.data
    check(
        "BOT-UPDATE-001",
        id_text(data.get("bot_id")) == bot_id and fields_of(data, ("name", "description")) == new,
        expected={"bot_id": bot_id, **new},
        actual=fields_of(data, ("bot_id", "name", "description")),
        soft=True,
    )
    check(
        "BOT-UPDATE-003",
        profile.timestamps.plausible(data.get("updated_at")),
        expected="seconds since the epoch",
        actual=data.get("updated_at"),
        soft=True,
    )

    # READING "Publish version": a later publish (after an update) has a greater version.
    later = _publish(api, check, profile, bot_id, "publish after the update")
    check(
        "BOT-PUBLISH-004",
        is_integer(first) and is_integer(later) and later > first,
        expected=f"greater than the first publish's {first!r}",
        actual=later,
        detail="publish after the update",
    )

    # READING "Update vs online version": after the next publish both show the update.
    for endpoint_name, rid, judge in (
        ("online_info", "BOT-ONLINE-006", judge_online_info),
        ("bot_detail", "BOT-GET-007", judge_bot_detail),
    ):
        answer = send(api, profile.endpoint(endpoint_name), {"bot_id": bot_id})
        check(
            rid,
            answer.ok and fields_of(answer.data, ("name", "description")) == new,
            expected=new,
            actual=fields_of(answer.data, ("name", "description")) if answer.ok else answer.describe(),
            soft=True,
        )
        judge(check, profile, answer, bot_id)


# --------------------------------------------------------------------------- refusals


@dataclass(frozen=True)
class Refusal:
    """A request a bot endpoint must refuse with a code of ``codes``: "bad request" for
    a missing 必填 parameter, "unknown" for an id no one has."""

    requirement: str
    endpoint: str
    codes: str
    fields: Callable[[str], dict[str, str]]  # given the run's unknown bot id


def refusal(requirement: str, endpoint: str, codes: str, fields: Callable[[str], dict[str, str]], *, id: str) -> Any:
    """One row of the refusal table: the case, marked with the requirement it judges."""
    return pytest.param(
        Refusal(requirement, endpoint, codes, fields), marks=pytest.mark.requirement(requirement), id=id
    )


def _codes(profile: Profile, kind: str) -> frozenset[int]:
    return frozenset({profile.envelope.parameter_error_code}) if kind == "bad request" else profile.unknown_ids.codes


def _segment(segment: str) -> Callable[[str], dict[str, str]]:
    return lambda _: {"bot_id": segment}


#: Display values of an otherwise valid update, so only the bot_id is wrong or missing.
_DISPLAY = {"name": "cz-conf-refused", "description": "must not be stored"}


@pytest.mark.parametrize(
    "case",
    [
        refusal(
            "BOT-CREATE-002",
            "create",
            "bad request",
            lambda _: {"description": "no name", "icon_url": "https://example.com/cz-conf-icon.png"},
            id="create-without-name",
        ),
        refusal("BOT-UPDATE-002", "update", "bad request", lambda _: dict(_DISPLAY), id="update-without-bot_id"),
        refusal("BOT-UPDATE-004", "update", "unknown", lambda bot: {"bot_id": bot, **_DISPLAY}, id="update-unknown-bot"),
        refusal("BOT-PUBLISH-002", "publish", "bad request", lambda _: {}, id="publish-without-bot_id"),
        refusal("BOT-PUBLISH-006", "publish", "unknown", lambda bot: {"bot_id": bot}, id="publish-unknown-bot"),
        refusal("BOT-ONLINE-002", "online_info", "bad request", lambda _: {}, id="online_info-without-bot_id"),
        refusal("BOT-ONLINE-007", "online_info", "unknown", lambda bot: {"bot_id": bot}, id="online_info-unknown-bot"),
        refusal("BOT-GET-008", "bot_detail", "unknown", lambda bot: {"bot_id": bot}, id="bots-detail-unknown-bot"),
        # BOT-GET-002: a segment that is no int64 reads as invalid (400) or unknown (404).
        *(
            refusal("BOT-GET-002", "bot_detail", "unknown", _segment(segment), id=f"bots-detail-{label}")
            for label, segment in NOT_INT64_SEGMENTS.items()
        ),
    ],
)
def test_bot_endpoint_refuses(api: ApiClient, check: Checks, profile: Profile, run_id: str, case: Refusal) -> None:
    answer = send(api, profile.endpoint(case.endpoint), case.fields(unknown_bot_id(run_id)))
    codes = _codes(profile, case.codes)
    # The body code decides (READING "HTTP status of errors"); the HTTP status is ERR-003's.
    check(case.requirement, answer.code in codes, expected=f"code in {sorted(codes)}", actual=answer.describe())
