"""The requirement catalogue: quotes are the spec's words, readings are READING.md's
rows, ids are stable and well-formed, and every point of the granularity list below
has its requirement."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conformance.oracle.catalogue import (
    CATALOGUE_PATH,
    SPEC_PATH,
    Catalogue,
    CatalogueError,
    Requirement,
    format_catalogue,
    load_catalogue,
    normalise_whitespace,
    read_catalogue,
    spec_sha256,
    spec_text,
)
from conformance.oracle.profile import load_profile

READING_PATH = SPEC_PATH.parent / "READING.md"
ALL = load_catalogue()
#: The doc profile's requirements: most tests below are about the spec page's.
CAT = ALL.for_profile("doc")
COZE = ALL.for_profile("coze")
STUDIO = ALL.for_profile("studio")
DOC = load_profile("doc")
SPEC = normalise_whitespace(spec_text())


def _reading_points() -> list[str]:
    """The "Point" cells of READING.md's ambiguity table, verbatim."""
    lines = READING_PATH.read_text(encoding="utf-8").splitlines()
    start = lines.index("| Point | What the page says | Reading |")
    points = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        points.append(line.split("|")[1].strip())
    return points


POINTS = _reading_points()


def per_requirement() -> list[Any]:
    return [pytest.param(r, id=r.id) for r in ALL.values()]


def _source_text(source: str) -> tuple[str, list[str]]:
    """The file a ``source`` names, as (path, lines): cozepy's installed package, or a
    captured cloud stream in tests/data/sse/coze-cloud/."""
    origin, rest = source.split(" ", 1)
    path = rest.split(":", 1)[0]
    if origin == "cozepy":
        import cozepy

        file = Path(cozepy.__file__).parent / path
    elif origin == "coze-wire":
        file = CATALOGUE_PATH.parent.parent / "spec" / path
    else:
        file = Path(__file__).parent / "data" / "sse" / "coze-cloud" / path
    return str(file), file.read_text(encoding="utf-8").splitlines()


# --------------------------------------------------------------------------- quotes, readings, ids


def test_reading_table_parsed() -> None:
    # Guards the parser below: READING.md's table has 33 rows, the first and last known.
    assert len(POINTS) == 33
    assert POINTS[0] == "Auth per endpoint"
    assert POINTS[-1].startswith("`get_online_info` of a never-published bot")


@pytest.mark.parametrize("req", per_requirement())
def test_quote_is_verbatim_in_its_source(req: Requirement) -> None:
    """A quote is the spec page's words, or, with a ``source``, the words of that file at
    the lines it names (give or take three: a quote may begin a line before its range)."""
    quote = normalise_whitespace(req.quote)
    assert quote, "empty quote"
    if req.source is None:
        assert quote in SPEC, f"{req.id}: quote not found verbatim in {SPEC_PATH.name}: {quote!r}"
        return
    path, lines = _source_text(req.source)
    lines_part = req.source.rsplit(":", 1)[1] if req.source.count(":") else ""
    if lines_part and lines_part.replace("-", "").isdigit():
        first, _, last = lines_part.partition("-")
        lo, hi = int(first), int(last or first)
        window = normalise_whitespace("\n".join(lines[max(0, lo - 4) : hi + 3]))
        assert quote in window, f"{req.id}: quote not at lines {lo}-{hi} of {path}: {quote!r}"
    else:
        assert quote in normalise_whitespace("\n".join(lines)), f"{req.id}: quote not in {path}: {quote!r}"


def test_normalise_whitespace() -> None:
    assert normalise_whitespace(" a \n\t b  c\r\n") == "a b c"
    # Only whitespace is normalised: punctuation and width stay as written.
    assert normalise_whitespace("用户标识,用于") != normalise_whitespace("用户标识，用于")


def test_a_misquote_is_not_found() -> None:
    # The quote test can fail: a changed character (full-width comma) is not in the spec.
    assert normalise_whitespace("| 401 | 未授权,认证失败 |") in SPEC
    assert normalise_whitespace("| 401 | 未授权，认证失败 |") not in SPEC


@pytest.mark.parametrize("req", [p for p in per_requirement() if p.values[0].reading is not None])
def test_reading_is_a_point_of_reading_md(req: Requirement) -> None:
    assert req.reading in POINTS, f"{req.id}: reading {req.reading!r} is not a Point of READING.md"


@pytest.mark.parametrize("point", [pytest.param(p, id=f"row{i + 1:02d}") for i, p in enumerate(POINTS)])
def test_every_reading_row_has_a_requirement(point: str) -> None:
    assert any(r.reading == point for r in CAT.values()), f"no requirement follows READING row {point!r}"


def test_ids_unique_and_well_formed() -> None:
    raw = tomllib.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))["requirement"]
    ids = [entry["id"] for entry in raw]
    assert len(ids) == len(set(ids)) == len(ALL)
    for rid in ids:
        assert re.fullmatch(r"[A-Z]+(-[A-Z]+)?-\d{3}", rid), rid


def test_areas_are_contiguous_and_numbered_in_order() -> None:
    # Grouped by area, in the spec's order; within an area the numbers run 001, 002, ...
    # with no gap (ids are never deleted, only retired).
    areas: list[str] = []
    for r in CAT.values():
        if not areas or areas[-1] != r.area:
            assert r.area not in areas, f"area {r.area} appears in two places (at {r.id})"
            areas.append(r.area)
    for area in areas:
        numbers = [int(r.id.rsplit("-", 1)[1]) for r in CAT.values() if r.area == area]
        assert numbers == list(range(1, len(numbers) + 1)), f"{area}: {numbers}"


def test_size_and_levels() -> None:
    assert 80 <= len(CAT) <= 130
    assert 40 <= len(COZE) <= 80
    assert 40 <= len(STUDIO) <= 80
    assert len(CAT) + len(COZE) + len(STUDIO) == len(ALL), "every requirement belongs to exactly one profile"
    assert {r.level for r in ALL.values()} <= {"MUST", "SHOULD", "MAY"}
    assert all(r.profiles in (("doc",), ("coze",), ("studio",)) and not r.retired for r in ALL.values())
    assert all(r.gloss == " ".join(r.gloss.split()) and "\n" not in r.gloss for r in ALL.values())
    # The coze profile's own ids; its quotes come from cozepy or the cloud captures
    # unless they are the spec page's words.
    assert all(r.id.startswith("COZE-") for r in COZE.values())
    # The studio profile's: each quotes the research (coze-wire.md) at its line, with
    # the claim's label; a derived claim is SHOULD until verified on a live server.
    assert all(r.id.startswith("STUDIO-") and r.origin == "coze-wire" and r.evidence for r in STUDIO.values())
    assert all(r.level == "SHOULD" for r in STUDIO.values() if r.evidence == "derived")


def test_endpoints_are_the_profiles() -> None:
    keys = {e.key for e in DOC.endpoints}
    for r in CAT.values():
        assert r.endpoint == "*" or r.endpoint in keys, f"{r.id}: unknown endpoint {r.endpoint!r}"
    # ...and every endpoint of the spec is judged.
    assert keys == {r.endpoint for r in CAT.values()} - {"*"}


# --------------------------------------------------------------------------- rules of the checker and grammar

RULES = {
    "sse.media_type": "MUST",
    "sse.invalid_utf8": "MUST",
    "sse.unterminated_event": "MUST",
    "grammar.payload_json": "MUST",
    "grammar.event_key_matches": "MUST",
    "grammar.event_key_present": "SHOULD",
    "grammar.start_before_messages": "MUST",
    "grammar.start_events_present": "SHOULD",
    "grammar.message_fields": "MUST",
    "grammar.deltas_before_completed": "MUST",
    "grammar.deltas_join_completed": "MUST",
    "grammar.duplicate_message_completed": "MUST",
    "grammar.chat_outcome": "MUST",
    "grammar.usage_integers": "MUST",
    "grammar.usage_total": "SHOULD",
    "grammar.terminal_present": "MUST",
    "grammar.terminal_last": "MUST",
    "grammar.preferred_terminal": "SHOULD",
    "grammar.ids_consistent": "MUST",
    "grammar.liveness": "SHOULD",
    "envelope.success_shape": "MUST",
    "envelope.success_msg": "SHOULD",
    "envelope.error_shape": "MUST",
    "envelope.error_data_null": "SHOULD",
    "envelope.error_status": "SHOULD",
    "envelope.no_server_error": "MUST",
    "auth.accepts_bearer": "MUST",
    "auth.accepts_cookie": "MUST",
    "auth.accepts_cookie_on_bearer_class": "SHOULD",
    "auth.accepts_bearer_on_cookie_class": "SHOULD",
    "auth.refuses_none": "MUST",
    "auth.refuses_wrong_bearer": "MUST",
    "auth.refuses_wrong_cookie": "MUST",
}

# The coze profile's: cozepy's framing, the done data, the close after it, the cloud's
# chat fields and usage, and the SDKs' known events; no event key, no preferred terminal.
COZE_RULES = {
    **{
        rule: level
        for rule, level in RULES.items()
        if rule
        not in (
            "sse.unterminated_event",
            "grammar.event_key_matches",
            "grammar.event_key_present",
            "grammar.preferred_terminal",
            "envelope.success_msg",
            "envelope.error_data_null",
            "envelope.error_status",
            "envelope.no_server_error",
            "auth.accepts_cookie",
            "auth.accepts_cookie_on_bearer_class",
            "auth.accepts_bearer_on_cookie_class",
            "auth.refuses_wrong_cookie",
        )
    },
    "sse.sdk_framing": "MUST",
    "grammar.chat_fields": "MUST",
    "grammar.usage_present": "MUST",
    "grammar.terminal_data": "MUST",
    "grammar.closed_after_terminal": "MUST",
    "grammar.known_events": "SHOULD",
    "grammar.payload_schema": "MUST",
    "envelope.logid": "SHOULD",
}


@pytest.mark.parametrize(("cat", "rules"), [(CAT, RULES), (COZE, COZE_RULES)], ids=["doc", "coze"])
def test_rules_are_the_agreed_names_each_once(cat: Catalogue, rules: dict[str, str]) -> None:
    used = [rule for r in cat.values() for rule in r.rules]
    assert sorted(used) == sorted(rules)
    for rule, level in rules.items():
        req = cat.by_rule(rule)
        assert req is not None and req.level == level, (rule, req)
    assert cat.by_rule("grammar.no_such_rule") is None


def test_a_rule_maps_to_one_requirement_per_profile() -> None:
    # Across profiles a rule has several requirements: ask one profile.
    with pytest.raises(CatalogueError, match="select one profile"):
        ALL.by_rule("grammar.terminal_last")


def test_rules_exist_in_the_checker_and_grammar() -> None:
    # The rule names are a contract with conformance/oracle/sse.py and grammar.py: each named
    # rule exists there, with the severity that matches the requirement's level.
    from conformance.oracle import grammar, sse
    from conformance.oracle.envelope_judge import RULES as ENVELOPE_RULES

    known: dict[str, tuple[str, str]] = {**sse.RULES, **grammar.RULES}
    for rule, level in {**RULES, **COZE_RULES}.items():
        if rule.startswith("envelope."):
            assert rule in ENVELOPE_RULES, rule  # the judge has no severities: the check call says
            continue
        if rule.startswith("auth."):
            from conformance.suite.test_auth import RULES as AUTH_RULES

            assert rule in AUTH_RULES, rule
            continue
        assert rule in known, rule
        assert (known[rule][0] == "should") == (level == "SHOULD"), (rule, known[rule][0], level)


# --------------------------------------------------------------------------- granularity

# Every required request parameter of every endpoint: missing (or, for a path
# parameter, not an int64) -> an error code.
REQUIRED_PARAMS = [
    ("chat", "bot_id", "CHAT-REQ-001"),
    ("chat", "user_id", "CHAT-REQ-003"),
    ("cancel", "conversation_id", "CANCEL-002"),
    ("run", "agent_id", "RUN-002"),
    ("run", "query", "RUN-003"),
    ("create", "name", "BOT-CREATE-002"),
    ("update", "bot_id", "BOT-UPDATE-002"),
    ("publish", "bot_id", "BOT-PUBLISH-002"),
    ("online_info", "bot_id", "BOT-ONLINE-002"),
    ("bot_detail", "bot_id", "BOT-GET-002"),
]


@pytest.mark.parametrize(
    ("endpoint", "param", "rid"), [pytest.param(*row, id=f"{row[0]}-{row[1]}") for row in REQUIRED_PARAMS]
)
def test_required_parameter_has_a_requirement(endpoint: str, param: str, rid: str) -> None:
    req = CAT[rid]
    assert req.level == "MUST"
    assert req.endpoint == DOC.endpoint(endpoint).key
    assert f"| {param} |" in req.quote and "| 是 |" in req.quote, "quotes the parameter's row"
    assert "400" in req.gloss


def test_required_parameter_table_matches_the_profile() -> None:
    assert {(n, p) for n, p, _ in REQUIRED_PARAMS} == {(e.name, p) for e in DOC.endpoints for p in e.required}


@pytest.mark.parametrize(
    ("field", "rid"),
    [
        pytest.param("role", "CHAT-MSG-002", id="role"),
        pytest.param("content", "CHAT-MSG-003", id="content"),
        pytest.param("content_type", "CHAT-MSG-005", id="content_type"),
    ],
)
def test_required_message_field_has_a_requirement(field: str, rid: str) -> None:
    req = CAT[rid]
    assert req.level == "MUST" and f"| {field} |" in req.quote and "400" in req.gloss


# The documented response fields, per endpoint (the page's response examples), and the
# requirements that judge them: every field is named by one of them.
RESPONSE_FIELDS = {
    "chat": (
        ["conversation_id", "id", "content", "role", "type", "created_at"],
        ["CHAT-RESP-001", "CHAT-RESP-002", "CHAT-RESP-003", "CHAT-RESP-004"],
    ),
    "cancel": (["code", "msg"], ["CANCEL-001", "ENV-001"]),
    "run": ([], ["RUN-001"]),
    "create": (
        ["bot_id", "name", "description", "icon_url", "status", "created_at", "updated_at"],
        ["BOT-CREATE-003", "BOT-CREATE-004", "BOT-CREATE-005", "BOT-CREATE-006"],
    ),
    "update": (["bot_id", "name", "description", "updated_at"], ["BOT-UPDATE-001", "BOT-UPDATE-003"]),
    "publish": (
        ["bot_id", "version", "status", "published_at"],
        ["BOT-PUBLISH-001", "BOT-PUBLISH-003", "BOT-PUBLISH-005"],
    ),
    "online_info": (
        ["bot_id", "name", "description", "icon_url", "version", "status", "model", "published_at"],
        ["BOT-ONLINE-001", "BOT-ONLINE-003", "BOT-ONLINE-004", "BOT-ONLINE-005"],
    ),
    "bot_detail": (
        [
            "bot_id", "name", "description", "icon_url", "version", "status", "model", "prompt", "tools",
            "created_at", "updated_at", "published_at",
        ],
        ["BOT-GET-001", "BOT-GET-003", "BOT-GET-004", "BOT-GET-005", "BOT-GET-006"],
    ),
}


@pytest.mark.parametrize(("endpoint", "fields", "rids"), [pytest.param(k, *v, id=k) for k, v in RESPONSE_FIELDS.items()])
def test_response_field_groups(endpoint: str, fields: list[str], rids: list[str]) -> None:
    reqs = [CAT[rid] for rid in rids]
    assert all(r.endpoint in (DOC.endpoint(endpoint).key, "*") for r in reqs)
    text = " ".join(r.gloss for r in reqs)
    for field in fields:
        assert f'"{field}"' in SPEC, f"{field} is not a field of the page"
        assert re.search(rf"(?<!\w){re.escape(field)}\b", text), f"{endpoint}: no requirement names {field}"


def test_response_field_table_covers_every_endpoint() -> None:
    assert set(RESPONSE_FIELDS) == {e.name for e in DOC.endpoints}


# Each SSE event type and the requirement whose quote names it.
EVENT_TYPES = [
    ("conversation.chat.created", "CHAT-SSE-005"),
    ("conversation.chat.in_progress", "CHAT-SSE-006"),
    ("conversation.chat.completed", "CHAT-SSE-007"),
    ("conversation.chat.failed", "CHAT-SSE-007"),
    ("conversation.message.delta", "CHAT-SSE-008"),
    ("conversation.message.completed", "CHAT-SSE-010"),
    ("conversation.error", "ERR-SSE-001"),
    ("conversation.stream.done", "CHAT-SSE-011"),
    ("error", "ERR-SSE-002"),
    ("done", "CHAT-SSE-013"),
]


@pytest.mark.parametrize(("event", "rid"), [pytest.param(*row, id=row[0]) for row in EVENT_TYPES])
def test_sse_event_type_has_a_requirement(event: str, rid: str) -> None:
    assert re.search(rf"(?<![\w.]){re.escape(event)}(?![\w.])", CAT[rid].quote), f"{rid} does not quote {event}"


def test_event_types_are_the_profiles() -> None:
    s = DOC.stream
    names = {
        *s["start_events"], *s["delta_events"], *s["message_completed_events"], *s["chat_completed_events"],
        *s["chat_failed_events"], *s["error_events"], *s["terminal_events"],
    }
    assert names == {event for event, _ in EVENT_TYPES}


@pytest.mark.parametrize("code", [pytest.param(e.code, id=str(e.code)) for e in DOC.envelope.error_codes])
def test_error_code_has_a_requirement(code: int) -> None:
    row = f"| {code} | {DOC.envelope.description(code)} |"
    assert row in SPEC
    assert any(row in r.quote for r in CAT.values()), f"no requirement quotes {row}"


def test_error_codes_are_the_six_listed() -> None:
    assert DOC.envelope.codes == {400, 401, 403, 404, 429, 500}


def test_envelope_requirements() -> None:
    assert CAT["ENV-001"].level == "MUST" and "| 0 | 成功 |" in CAT["ENV-001"].quote
    assert CAT["ERR-001"].level == "MUST" and '"data": null' in normalise_whitespace(CAT["ERR-001"].quote)
    assert CAT["ERR-001"].reading == "Error envelope"


@pytest.mark.parametrize(
    ("group", "rid"),
    [pytest.param("chat", "RATE-001", id="chat"), pytest.param("management", "RATE-002", id="management"),
     pytest.param("info", "RATE-003", id="info")],
)
def test_rate_limit_row_has_a_requirement(group: str, rid: str) -> None:
    limit = DOC.ratelimits[group].limit
    req = CAT[rid]
    assert req.level == "MUST"
    assert f"| {limit} 次/分钟/用户 |" in req.quote
    assert f"More than {limit} " in req.gloss and "429" in req.gloss


def test_rate_refusal_has_a_requirement() -> None:
    assert "| 429 | 请求过于频繁 |" in CAT["RATE-004"].quote


# Auth classes: the class's own mode MUST, the other SHOULD, bad credentials 401.
AUTH = [
    ("AUTH-001", "MUST", "Bearer", "/v1/*, /v3/*"),
    ("AUTH-002", "MUST", "session_key", "/api/*"),
    ("AUTH-003", "SHOULD", "session_key", "/v1/*, /v3/*"),
    ("AUTH-004", "SHOULD", "Bearer", "/api/*"),
    ("AUTH-005", "MUST", "401", "without credentials"),
    ("AUTH-006", "MUST", "401", "wrong bearer"),
    ("AUTH-007", "MUST", "401", "wrong `session_key` cookie"),
]


@pytest.mark.parametrize(("rid", "level", "mode", "scope"), [pytest.param(*row, id=row[0]) for row in AUTH])
def test_auth_class_has_a_requirement(rid: str, level: str, mode: str, scope: str) -> None:
    req = CAT[rid]
    assert (req.level, req.area) == (level, "AUTH")
    assert mode in req.gloss and scope in req.gloss


def test_auth_classes_are_the_profiles() -> None:
    assert {c.name: c.path_prefixes for c in DOC.auth.classes} == {"openapi": ("/v1/", "/v3/"), "webapi": ("/api/",)}


BEST_PRACTICE = [
    ("BP-001", "MUST", "请求过于频繁,等待后重试"),
    ("BP-002", "SHOULD", "30秒超时"),
    ("BP-003", "MUST", "及时关闭 SSE 连接"),
    ("CHAT-CONV-001", "MUST", "后续对话使用相同的 conversation_id"),
]


@pytest.mark.parametrize(("rid", "level", "words"), [pytest.param(*row, id=row[0]) for row in BEST_PRACTICE])
def test_best_practice_statement_has_a_requirement(rid: str, level: str, words: str) -> None:
    assert CAT[rid].level == level and words in CAT[rid].quote


# Levels READING.md fixes explicitly.
LEVELS = [
    ("CHAT-SSE-019", "SHOULD"),  # Usage: total = prompt + completion
    ("CHAT-SSE-018", "MUST"),  # Usage: three non-negative integers
    ("ENV-002", "SHOULD"),  # msg "success"
    ("ENV-001", "MUST"),  # data on success
    ("CHAT-SSE-005", "SHOULD"),  # start events presence
    ("CHAT-SSE-006", "MUST"),  # start events first when sent
    ("CHAT-CONV-002", "SHOULD"),  # ConversationID honoured
    ("CHAT-CONV-001", "MUST"),  # at least one form honoured
    ("BOT-PUBLISH-004", "SHOULD"),  # first publish 1, later greater
    ("BOT-PUBLISH-003", "MUST"),  # version an integer
    ("CHAT-CT-004", "SHOULD"),  # card
    ("ERR-003", "SHOULD"),  # HTTP status equals the body code
    ("ERR-002", "SHOULD"),  # data: null in errors
    ("CHAT-SSE-016", "SHOULD"),  # event key present
    ("CHAT-SSE-015", "MUST"),  # event key, when present, equals the name
    ("CHAT-SSE-013", "SHOULD"),  # conversation.stream.done preferred
    ("CHAT-SSE-004", "SHOULD"),  # liveness
    ("BP-002", "SHOULD"),  # 30 s
    ("AUTH-003", "SHOULD"),  # the other mode
    ("AUTH-004", "SHOULD"),
]


@pytest.mark.parametrize(("rid", "level"), [pytest.param(*row, id=row[0]) for row in LEVELS])
def test_level_follows_reading(rid: str, level: str) -> None:
    assert CAT[rid].level == level


# --------------------------------------------------------------------------- the Catalogue API


def test_mapping_order_and_lookup() -> None:
    assert isinstance(CAT, Mapping)
    assert list(CAT)[0] == "AUTH-001"
    assert CAT["CHAT-SSE-004"].rules == ("grammar.liveness",)
    assert "NOPE-001" not in CAT
    with pytest.raises(KeyError):
        CAT["NOPE-001"]


def test_select_globs() -> None:
    assert list(CAT.select(["CHAT-SSE-00[1-3]"])) == ["CHAT-SSE-001", "CHAT-SSE-002", "CHAT-SSE-003"]
    both = CAT.select(["RATE-*", "READ-*"])
    assert list(both) == ["RATE-001", "RATE-002", "RATE-003", "RATE-004", "RATE-005", "READ-001"]
    # Globs are case-sensitive and anchored: "CHAT-*" takes CHAT-SSE-* too, "chat-*" is a typo.
    assert "CHAT-SSE-001" in CAT.select(["CHAT-*"])
    with pytest.raises(CatalogueError, match="'chat-\\*'"):
        CAT.select(["chat-*"])


def test_levels_and_profiles() -> None:
    must, should = CAT.must(), CAT.should()
    assert len(must) + len(should) == len(CAT)
    assert all(r.level == "MUST" for r in must.values()) and all(r.level == "SHOULD" for r in should.values())
    assert len(CAT.for_profile("doc")) == len(CAT)
    assert len(CAT.for_profile("nosuch")) == 0
    assert must.sha256 == CAT.sha256


def test_sha256_is_the_files() -> None:
    assert CAT.sha256 == hashlib.sha256(CATALOGUE_PATH.read_bytes()).hexdigest()
    assert spec_sha256() == hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest()
    assert spec_text().startswith("智能体 API")


def test_load_catalogue_is_cached() -> None:
    assert load_catalogue() is ALL


def test_format_catalogue() -> None:
    short = format_catalogue(CAT)
    assert short.splitlines()[0].split() == ["id", "level", "endpoint", "gloss"]
    for rid in CAT:
        assert re.search(rf"^{rid}\s+(MUST|SHOULD)\s", short, re.M), rid
    assert f"{len(CAT)} requirements ({len(CAT.must())} MUST, {len(CAT.should())} SHOULD, 0 MAY)" in short
    assert "用户标识" not in short  # quotes only when verbose
    verbose = format_catalogue(CAT, verbose=True)
    assert "spec: | user_id | string | 是 | 用户标识,用于数据隔离,需保证唯一性 |" in verbose
    assert "rule: grammar.liveness" in verbose and "reading: Auth per endpoint" in verbose
    assert max(len(line) for line in short.splitlines()) <= 110
    assert format_catalogue(CAT.select(["AUTH-001"])).count("\n") == 4  # header, rule, row, blank, summary


# --------------------------------------------------------------------------- loader validation


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "TEST-001",
        "level": "MUST",
        "area": "TEST",
        "endpoint": "*",
        "quote": "智能体 API",
        "gloss": "Something is checked.",
        "profiles": ["doc"],
        "retired": False,
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def _write(path: Path, *entries: dict[str, Any]) -> Path:
    # JSON scalars and arrays of strings are valid TOML values.
    blocks = ["[[requirement]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in e.items()) for e in entries]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def test_loader_accepts_a_valid_file(tmp_path: Path) -> None:
    cat = read_catalogue(
        _write(tmp_path / "c.toml", _entry(), _entry(id="TEST-002", rule="grammar.x", reading="Usage", note="n"))
    )
    assert isinstance(cat, Catalogue) and list(cat) == ["TEST-001", "TEST-002"]
    assert cat["TEST-002"] == Requirement(
        "TEST-002", "MUST", "TEST", "*", "智能体 API", "Something is checked.", ("doc",), False, "Usage", ("grammar.x",), "n"
    )


def test_a_requirement_may_judge_several_rules(tmp_path: Path) -> None:
    cat = read_catalogue(_write(tmp_path / "c.toml", _entry(rule=["grammar.x", "sse.y"])))
    assert cat["TEST-001"].rules == ("grammar.x", "sse.y")
    assert cat.by_rule("sse.y") is cat["TEST-001"] and cat.by_rule("grammar.x") is cat["TEST-001"]
    with pytest.raises(CatalogueError, match="must name an sse"):
        read_catalogue(_write(tmp_path / "d.toml", _entry(rule=[])))
    with pytest.raises(CatalogueError, match="already judged by TEST-001"):
        read_catalogue(_write(tmp_path / "e.toml", _entry(rule=["grammar.x"]), _entry(id="TEST-002", rule="grammar.x")))


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param([_entry(), _entry()], r"#2 \(TEST-001\): duplicate id TEST-001 \(first at #1\)", id="duplicate-id"),
        pytest.param([_entry(level="MUSTN'T")], r"#1 \(TEST-001\): unknown level", id="unknown-level"),
        pytest.param([_entry(gloss=None)], r"#1 \(TEST-001\): missing gloss", id="missing-field"),
        pytest.param([_entry(quote="  ")], r"TEST-001\): quote must be a non-empty string", id="blank-quote"),
        pytest.param([_entry(profiles=["nosuch"])], r"TEST-001\): unknown profile 'nosuch'; available: coze, doc, studio", id="unknown-profile"),
        pytest.param([_entry(profiles=[])], r"TEST-001\): profiles must be a non-empty list", id="no-profiles"),
        pytest.param([_entry(id="test-1", area="test")], r"#1 \(test-1\): id must look like AREA-NNN", id="bad-id"),
        pytest.param([_entry(id="A-B-C-001", area="A-B-C")], r"id must look like", id="too-many-parts"),
        pytest.param([_entry(area="OTHER")], r"TEST-001\): area 'OTHER' must be the id without its number", id="area"),
        pytest.param([_entry(rule="liveness")], r"TEST-001\): rule 'liveness' must name", id="bad-rule"),
        pytest.param(
            [_entry(rule="sse.x"), _entry(id="TEST-002", rule="sse.x")],
            r"TEST-002: rule sse.x is already judged by TEST-001",
            id="rule-twice",
        ),
        pytest.param([_entry(colour="red")], r"TEST-001\): unknown keys colour", id="unknown-key"),
        pytest.param([_entry(retired="no")], r"TEST-001\): retired must be true or false", id="retired-type"),
        pytest.param([{"level": "MUST"}], r"requirement #1: missing id", id="no-id"),
    ],
)
def test_loader_rejects(tmp_path: Path, entries: list[dict[str, Any]], message: str) -> None:
    path = _write(tmp_path / "c.toml", *entries)
    with pytest.raises(CatalogueError, match=message) as info:
        read_catalogue(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "no \\[\\[requirement\\]\\] entries", id="empty"),
        pytest.param("[[requirement]\n", "not valid UTF-8 TOML", id="bad-toml"),
        pytest.param('title = "x"\n[[requirement]]\nid = "X-001"\n', "unknown top-level keys title", id="top-level"),
    ],
)
def test_loader_rejects_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError, match=message):
        read_catalogue(path)


def test_known_profiles_can_be_given(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.toml", _entry(profiles=["doc", "cloud"]))
    with pytest.raises(CatalogueError, match="unknown profile 'cloud'"):
        read_catalogue(path)
    assert read_catalogue(path, profiles=["doc", "cloud"])["TEST-001"].profiles == ("doc", "cloud")


def test_retired_requirements_stay_but_are_not_counted(tmp_path: Path) -> None:
    cat = read_catalogue(_write(tmp_path / "c.toml", _entry(), _entry(id="TEST-002", retired=True)))
    assert "TEST-002" in cat and cat["TEST-002"].retired
    assert list(cat.must()) == ["TEST-001"]
    assert list(cat.active()) == ["TEST-001"]
    assert list(cat.for_profile("doc")) == ["TEST-001"]
    assert "[retired]" in format_catalogue(cat)
    assert "1 MUST, 0 SHOULD, 0 MAY, 1 retired" in format_catalogue(cat)
