"""docs/profiles.md (python -m tools.profiles): generated from the catalogue, current,
and readable with any number of profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.oracle.catalogue import Requirement, load_catalogue
from conformance.oracle.profile import available_profiles
from tools.profiles import cli
from tools.profiles.page import OTHER, ProfileInfo, load_topics, render, topic_of


def req(rid: str, endpoint: str, profiles: tuple[str, ...], level: str = "MUST", source: str | None = None) -> Requirement:
    return Requirement(
        id=rid,
        level=level,
        area=rid.rsplit("-", 1)[0],
        endpoint=endpoint,
        quote="q",
        gloss=f"gloss of {rid} | piped",
        profiles=profiles,
        retired=False,
        source=source,
    )


PROFILES = [
    ProfileInfo("studio", "The studio", {"create": "POST /api/bot/create", "chat": "POST /v3/chat"}),
    ProfileInfo("coze", "The cloud", {"create": "POST /v1/bot/create", "chat": "POST /v3/chat"}),
    ProfileInfo("doc", "The page", {"create": "POST /api/draftbot/create", "chat": "POST /v3/chat"}),
]
REQUIREMENTS = [
    req("BOT-CREATE-001", "POST /api/draftbot/create", ("doc",)),
    req("CHAT-SSE-001", "POST /v3/chat", ("doc",), "SHOULD"),
    req("COZE-BOT-001", "POST /v1/bot/create", ("coze",), source="cozepy bots/__init__.py:10"),
    req("COZE-SSE-001", "POST /v3/chat", ("coze",)),
    req("STUDIO-BOT-001", "POST /api/bot/create", ("studio",)),
    req("STUDIO-SSE-001", "POST /v3/chat", ("studio",)),
    req("STUDIO-SSE-002", "POST /v3/chat", ("studio",), "MAY"),
    req("STUDIO-WIDGET-001", "*", ("studio",)),
    req("ENV-001", "*", ("doc", "studio")),
]


def test_the_committed_page_is_current() -> None:
    assert cli.PAGE.read_text(encoding="utf-8") == cli.current(), "docs/profiles.md is stale: python -m tools.profiles --write"


def test_every_area_of_the_catalogue_has_a_topic() -> None:
    topics, profiles = load_topics(), available_profiles()
    lost = sorted({r.area for r in load_catalogue().active().values() if topic_of(r.area, topics, profiles) == OTHER})
    assert not lost, f"areas in no topic of tools/profiles/topics.toml: {lost}"


def test_a_profiles_own_areas_fall_in_the_topic_of_the_area_without_its_prefix() -> None:
    topics = load_topics()
    assert topic_of("COZE-SSE", topics, ["doc", "coze"]) == topic_of("CHAT-SSE", topics, ["doc"]) == "Streaming (SSE)"
    assert topic_of("STUDIO-BOT", topics, ["studio"]) == topic_of("BOT-CREATE", topics, []) == "Bots"
    assert topic_of("STUDIO-BOT", topics, ["doc"]) == OTHER  # STUDIO is no profile here
    assert topic_of("STUDIO-WIDGET", topics, ["studio"]) == OTHER


def test_any_number_of_profiles_stand_side_by_side_the_baseline_first() -> None:
    page = render(REQUIREMENTS, PROFILES, load_topics())
    assert "| Topic | `doc` | `coze` | `studio` |" in page
    # Per profile: MUST, SHOULD, MAY, total, quoting a source; per topic.
    assert "| `doc` | 2 | 1 | 0 | 3 | 0 |\n| `coze` | 2 | 0 | 0 | 2 | 1 |\n| `studio` | 4 | 0 | 1 | 5 | 0 |" in page
    assert "| [Streaming (SSE)](#streaming-sse) | 1 | 1 | 2 |" in page
    # One operation, three paths: one group, each profile's requirement in its column.
    assert "| **create** | `POST /api/draftbot/create` | `POST /v1/bot/create` | `POST /api/bot/create` |" in page
    assert (
        "| | **BOT-CREATE-001** MUST: gloss of BOT-CREATE-001 \\| piped"
        " | **COZE-BOT-001** MUST: gloss of COZE-BOT-001 \\| piped *(from cozepy bots/__init__.py:10)*"
        " | **STUDIO-BOT-001** MUST: gloss of STUDIO-BOT-001 \\| piped |"
    ) in page
    # Rows of a column that has fewer requirements stay empty; a profile without any is a dash.
    streaming = page[page.index("## Streaming (SSE)") :]
    assert "| **chat** | `POST /v3/chat` | `POST /v3/chat` | `POST /v3/chat` |" in streaming
    assert "| |  |  | **STUDIO-SSE-002** MAY: gloss of STUDIO-SSE-002 \\| piped |" in streaming
    assert "| **every endpoint** | every endpoint | — | every endpoint |" in page  # ENV-001: doc and studio
    assert f"## {OTHER}" in page and "STUDIO-WIDGET-001" in page[page.index(f"## {OTHER}") :]


def test_the_page_is_deterministic_whatever_the_order_of_its_inputs() -> None:
    topics = load_topics()
    assert render(REQUIREMENTS, PROFILES, topics) == render(REQUIREMENTS, list(reversed(PROFILES)), topics)


def test_an_area_in_two_topics_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text('baseline = "doc"\n[[topic]]\nname = "A"\nareas = ["X"]\n[[topic]]\nname = "B"\nareas = ["X"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"an area is in two topics: \['X'\]"):
        load_topics(path)


def test_check_fails_on_a_stale_page_with_the_command_and_write_mends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    monkeypatch.setattr(cli, "PAGE", tmp_path / "profiles.md")
    (tmp_path / "profiles.md").write_text("# old\n", encoding="utf-8")
    assert cli.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "-# old" in out and "profiles.md is stale" in out and "`python -m tools.profiles --write`" in out
    assert cli.main(["--write"]) == 0 and cli.main(["--check"]) == 0
