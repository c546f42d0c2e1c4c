"""The fuzzing's own checks: generated valid bodies are valid under the
very schemas the suite validates with, every broken kind is broken the way it says,
the plan keeps the request budget, every verdict has a requirement -- and, end to end,
the fuzz module FAILs a reference server that answers 500 for one wrong-typed field
(printing the shrunk case as curl) and PASSes the clean one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.oracle.catalogue import (
    SPEC_PATH,
    load_catalogue,
    normalise_whitespace,
    read_catalogue,
    spec_text,
)
from conformance.oracle.profile import load_profile
from conformance.oracle.schemas import validate
from conformance.oracle.strategies import (
    BODY_LADDER,
    DEEP_NESTING,
    EMBEDDED_EXAMPLES,
    FUZZ_SETUP,
    OTHER_REQUESTS,
    PLANNED_SHARE,
    PRIORITIES,
    REMOTE_EXAMPLES,
    REQUIREMENTS,
    STREAM_WRONG,
    UNICODE_EDGES,
    WEIGHTS,
    FuzzCase,
    World,
    body_spec,
    budget_examples,
    cases,
    dump_json,
    edge_cases,
    edge_counts,
    plan,
    valid_bodies,
)
from conformance.reference import ReferenceServer, ServerConfig
from tests.support.against import ROOT, Target

DOC = load_profile("doc")
CATALOGUE = load_catalogue()
WORLD = World(bot_id="7312345678901234567", user_id="cz-conf-abc123-0123abcd")
OWN = World(bot_id="7312345678901234568", user_id="cz-conf-abc123-0123abcd", bot_name="cz-conf-abc123-1f")
BODY_ENDPOINTS = [e.name for e in DOC.endpoints if e.params_in == "body"]
INT64_MAX = 2**63 - 1
FUZZ = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))

#: The catalogue entries the fuzz verdicts (and --ratelimit-exact) need, as proposed
#: for conformance/oracle/catalogue.toml; until an entry is there the rows judging it are
#: deferred. A test below holds the proposal to the catalogue's own rules.
PROPOSED_TOML = '''
# ---------------------------------------------------------------- requests in general (fuzzing)

[[requirement]]
id = "REQ-001"
level = "MUST"
area = "REQ"
endpoint = "*"
quote = "| 400 | 请求参数错误 |"
gloss = "A request whose body is no JSON text (empty, cut short, form fields, XML, single quotes, unquoted keys), sent as application/json, answers code 400 in the error envelope."
note = "Lenient parser corners (NaN, trailing commas, comments, a second document, invalid UTF-8) are not sent: common JSON parsers accept them."
profiles = ["doc"]
retired = false

[[requirement]]
id = "REQ-002"
level = "MUST"
area = "REQ"
endpoint = "*"
quote = "| 400 | 请求参数错误 |"
gloss = "A request whose required body parameter has a JSON type its table cannot mean (an object or an array for a string or an int64; a non-array for an array) answers code 400."
reading = "Id types"
note = "A number for a string id and a digit string for an int64 id are not sent as wrong types: the page's examples and SDKs send both."
profiles = ["doc"]
retired = false

[[requirement]]
id = "REQ-003"
level = "MUST"
area = "REQ"
endpoint = "*"
quote = "| 500 | 服务器内部错误 |"
gloss = "A request with an optional parameter of the wrong JSON type (`stream` as \\"yes\\", \\"false\\", 1 or null among them), a whole body of 64 KiB - 1, 64 KiB + 1, 256 KiB, 1 MiB - 1 or 1 MiB + 1 bytes, a string of up to 1 MiB, JSON nested 20,000 deep, or unusual Unicode text (NUL and controls, lone surrogates, bidi and joiners, astral planes) answers 2xx or 4xx, never 5xx."
reading = "`get_online_info` of a never-published bot; unknown routes; wrong methods; body size limits; GET `/v3/chat`; delete; the \\"运行管理\\" API"
note = "The named cases are sent in every run that fuzzes, whatever --fuzz-examples above 0 (the body sizes on /v3/chat and update_display_info, one endpoint per rate group that takes a body); Hypothesis draws more."
profiles = ["doc"]
retired = false

[[requirement]]
id = "REQ-004"
level = "SHOULD"
area = "REQ"
endpoint = "*"
quote = "| 400 | 请求参数错误 |"
gloss = "A request with an optional parameter of the wrong JSON type answers code 400 rather than ignoring the parameter: `stream` as \\"yes\\", \\"false\\" or 1 included (read by its truthiness, \\"false\\" streams to a client that asked for JSON)."
note = "SHOULD, not MUST: the tables type the optional parameters too, but a server that ignores a parameter it cannot read still answers the request. A JSON null is judged by REQ-003 only: decoders commonly read null as the parameter absent, and the page does not say otherwise."
profiles = ["doc"]
retired = false

[[requirement]]
id = "REQ-005"
level = "MUST"
area = "REQ"
endpoint = "*"
quote = "| 0 | 成功 |"
gloss = "A request valid under its request table -- required parameters present, each documented parameter of its documented type, ids of the principal's own bot, unknown extra keys or query parameters allowed -- answers code 0 with a data object."
reading = "Id types"
profiles = ["doc"]
retired = false

[[requirement]]
id = "BOT-ONLINE-008"
level = "MUST"
area = "BOT-ONLINE"
endpoint = "GET /v1/bot/get_online_info"
quote = "| bot_id | int64 | 是 | 智能体 ID |"
gloss = "get_online_info?bot_id=<a value that is not an int64> answers code 400 or 404 in the error envelope."
note = "Like BOT-GET-002 for the path: a bot_id that is no int64 reads as a parameter error (400) or no such resource (404)."
profiles = ["doc"]
retired = false

[[requirement]]
id = "RATE-005"
level = "SHOULD"
area = "RATE"
endpoint = "*"
quote = "为保证服务稳定性,API 设有速率限制:"
gloss = "After at least one rate window without requests, a burst of one group's requests from one principal gets at least the documented limit admitted before its 429s (judged under --ratelimit-exact only)."
note = "Order-free on purpose: concurrent requests reach the server in any order, so \\"the first N get no 429\\" is read as \\"N of the burst are admitted\\"."
profiles = ["doc"]
retired = false
'''


def _proposed(folder: Path) -> Any:
    path = folder / "proposed.toml"
    path.write_text(PROPOSED_TOML, encoding="utf-8")
    return read_catalogue(path)


def _rows() -> list[Any]:
    return [
        pytest.param(endpoint, kind, field, id=f"{endpoint}-{kind}" + (f"-{field}" if field else ""))
        for endpoint, kinds in PRIORITIES.items()
        for kind, field in kinds
    ]


# --------------------------------------------------------------------------- generated cases


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS)
@FUZZ
@given(data=st.data())
def test_valid_bodies_are_valid_under_the_request_schema(endpoint: str, data: st.DataObject) -> None:
    spec = body_spec(DOC, endpoint)
    body = data.draw(valid_bodies(spec, WORLD, DOC))
    assert validate(spec.schema_name, body) == []
    # The deviations, as named: real ids in the table's type, the test's user, no
    # optional conversation id (a required one is made up), no stream, unknown keys
    # only as x_cz_*.
    for key, id_type in spec.endpoint.id_types.items():
        if key in ("bot_id", "agent_id") and key in spec.properties:
            assert body[key] == (int(WORLD.bot_id) if id_type == "integer" else WORLD.bot_id)
        elif key in spec.required:
            assert body[key].startswith("cz-conf-unknown-")
        else:
            assert key not in body, f"an optional conversation id in a valid body: {key}"
    assert body.get("user_id", WORLD.user_id) == WORLD.user_id
    assert body.get("stream", False) is False
    assert all(k in spec.properties or k.startswith("x_cz_") for k in body)


def _case(data: st.DataObject, endpoint: str, kind: str, field: str | None) -> tuple[FuzzCase, World]:
    world = OWN if endpoint in ("update", "publish") else WORLD
    salt = data.draw(st.integers(0, 2**32 - 1))
    return data.draw(cases(DOC, endpoint, kind, world, field=field, salt=salt)), world


@pytest.mark.slow
@pytest.mark.parametrize(("endpoint", "kind", "field"), _rows())
@FUZZ
@given(data=st.data())
def test_every_case_is_broken_the_way_its_kind_says(endpoint: str, kind: str, field: str | None, data: st.DataObject) -> None:
    case, world = _case(data, endpoint, kind, field)
    ep = DOC.endpoint(endpoint)
    assert (case.method, case.endpoint, case.kind) == (ep.method, endpoint, kind)
    if ep.params_in != "body":
        _check_param_case(case, world)
        return
    spec = body_spec(DOC, endpoint)
    assert case.body is not None
    if kind == "not-json":
        with pytest.raises((UnicodeDecodeError, json.JSONDecodeError)):  # either way no JSON text
            json.loads(case.body.decode("utf-8"))
        return
    body = json.loads(case.body.decode("utf-8"))  # every other kind is JSON text (UTF-8)
    violations = validate(spec.schema_name, body)
    if kind == "valid":
        assert violations == []
    elif kind == "missing":
        assert field not in body and any(v.keyword == "required" for v in violations)
    elif kind in ("wrong-type", "wrong-optional"):
        name = case.change.split(":", 1)[0]
        assert name in (spec.required if kind == "wrong-type" else spec.optional)
        assert any(v.keyword == "type" and v.instance_path.startswith(f"/{name}") for v in violations), violations
        if name in ep.id_types:
            # READING "Id types": a number or a digit string is never a wrong type for an id.
            assert not isinstance(body[name], int | str) or isinstance(body[name], bool)
            assert not (kind == "wrong-type" and isinstance(body[name], bool))
    elif kind == "extreme":
        name = case.change.split(":", 1)[0]
        assert name in spec.strings and isinstance(body[name], str)
        assert len(body[name].encode("utf-8", "surrogatepass")) <= 1024 * 1024
        assert not (name == "name" and world.bot_name), "a bot of the suite's keeps its name"
        rest = {k: v for k, v in body.items() if k != name}
        assert [v for v in validate(spec.schema_name, rest) if v.keyword != "required"] == []


def _check_param_case(case: FuzzCase, world: World) -> None:
    ep = DOC.endpoint(case.endpoint)
    (name,) = ep.required
    params = dict(case.params)
    assert all(k == name or k.startswith("x_cz_") for k in params)
    if ep.params_in == "path":
        prefix = ep.path.split(":", 1)[0]
        value: str | None = unquote(case.path.removeprefix(prefix), errors="surrogatepass")
        assert case.path.startswith(prefix) and value
    else:
        value = params.get(name)
    if case.kind == "valid":
        assert value == world.bot_id
    elif case.kind == "missing":
        assert value is None
    else:
        assert value is not None
        assert not (value.isascii() and value.isdigit() and 0 < int(value) <= INT64_MAX), value


def test_lone_surrogates_travel_as_json_escapes() -> None:
    raw = dump_json({"user_id": "a\ud800b", "content": "中\x00"})
    assert raw == '{"user_id":"a\\ud800b","content":"中\\u0000"}'.encode()
    assert json.loads(raw.decode("utf-8"))["user_id"] == "a\ud800b"


def test_a_case_prints_short_even_with_a_huge_body() -> None:
    case = FuzzCase("chat", "extreme", "POST", "/v3/chat", (), dump_json({"user_id": "a" * 2**20}), "user_id: huge")
    assert len(repr(case)) < 400 and "bytes)" in repr(case)


# --------------------------------------------------------------------------- the plan and its requirements


def _group_totals(rows: list[Any]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        group = DOC.ratelimits.group_of(row.endpoint).name
        totals[group] = totals.get(group, 0) + row.examples
    return totals


def test_the_embedded_plan_keeps_the_fuzz_share_of_the_budget() -> None:
    rows, deferred = plan(EMBEDDED_EXAMPLES, lambda rid: True)
    assert not deferred
    # 10 chat, 20 info; management 3 plus the fuzz bot's create = 4.
    assert _group_totals(rows) == {"chat": 10, "management": 3, "info": 20}
    assert {r.endpoint for r in rows} == set(PRIORITIES) - {"create"}


def test_the_remote_default_deals_25_per_endpoint_over_every_kind() -> None:
    rows, _ = plan(REMOTE_EXAMPLES, lambda rid: True)
    for endpoint, kinds in PRIORITIES.items():
        mine = [r for r in rows if r.endpoint == endpoint]
        assert len(mine) == len(kinds) and sum(r.examples for r in mine) == REMOTE_EXAMPLES
        assert min(r.examples for r in mine) >= REMOTE_EXAMPLES // len(kinds)
    small, _ = plan(2, lambda rid: True)
    assert [(r.endpoint, r.kind) for r in small if r.endpoint == "chat"] == [("chat", "valid"), ("chat", "wrong-optional")]


def _windows_needed(examples: Mapping[str, int], budgets: Mapping[str, int]) -> int:
    """Windows the first principal's planned requests need, group by group."""
    need = 1
    for group in DOC.ratelimits.groups:
        planned = max(1, int(budgets[group.name] * PLANNED_SHARE))
        sent = OTHER_REQUESTS[group.name] + FUZZ_SETUP.get(group.name, 0)
        sent += sum(n for e, n in examples.items() if e in group.endpoints)
        need = max(need, -(-sent // planned))
    return need


@pytest.mark.parametrize(
    "budgets",
    [
        {"chat": 60, "management": 30, "info": 100},  # the documented limits
        {"chat": 30, "management": 30, "info": 100},
        {"chat": 10, "management": 5, "info": 10},
        {"chat": 1, "management": 1, "info": 1},
        {"chat": 1000, "management": 1000, "info": 1000},
    ],
)
def test_the_budget_plan_adds_no_window_and_fills_the_ones_needed(budgets: dict[str, int]) -> None:
    planned = budget_examples(DOC, budgets)
    without_fuzz = _windows_needed(dict.fromkeys(PRIORITIES, 0), budgets)
    assert planned.windows == without_fuzz == _windows_needed(planned.examples, budgets)
    assert set(planned.examples) == set(PRIORITIES)
    assert all(0 <= n <= REMOTE_EXAMPLES for n in planned.examples.values())
    for group in DOC.ratelimits.groups:  # one more example of any group would need another window, or hit the cap
        mine = [e for e in PRIORITIES if e in group.endpoints and WEIGHTS[e]]
        if all(planned.examples[e] < REMOTE_EXAMPLES for e in mine):
            more = {**planned.examples, mine[0]: planned.examples[mine[0]] + 1}
            assert _windows_needed(more, budgets) > planned.windows, group.name


def test_the_budget_plan_at_the_documented_limits() -> None:
    planned = budget_examples(DOC, {g.name: g.limit for g in DOC.ratelimits.groups})
    assert planned.windows == 1
    assert dict(planned.examples) == {
        "chat": 5, "run": 3, "cancel": 2, "create": 1, "update": 2, "publish": 1, "online_info": 25, "bot_detail": 25,
    }
    assert "1 window" in planned.describe() and "chat=60" in planned.describe()


def test_rows_whose_requirement_is_not_catalogued_are_deferred_not_collected() -> None:
    rows, deferred = plan(REMOTE_EXAMPLES, lambda rid: rid != "REQ-001")
    assert deferred and all("REQ-001" in r.requirements for r in deferred)
    assert not any("REQ-001" in r.requirements for r in rows)


def test_every_verdict_names_a_catalogued_or_proposed_requirement(tmp_path: Path) -> None:
    proposed = _proposed(tmp_path)
    for key, ids in REQUIREMENTS.items():
        for rid in ids:
            assert rid in CATALOGUE or rid in proposed, f"{key}: {rid} is neither catalogued nor proposed"
    for endpoint, kinds in PRIORITIES.items():
        for kind, field in kinds:
            plan_rows, deferred = plan({endpoint: len(kinds)}, lambda rid: True)
            assert any(r.kind == kind and r.field == field for r in plan_rows)


def test_the_proposed_entries_follow_the_catalogue_rules(tmp_path: Path) -> None:
    """Each proposed entry: a free id (or already adopted unchanged), a verbatim quote,
    a READING point that exists -- so the lead can paste it as it is."""
    proposed = _proposed(tmp_path)
    spec = normalise_whitespace(spec_text())
    reading = (SPEC_PATH.parent / "READING.md").read_text(encoding="utf-8")
    for rid in proposed:
        entry = proposed[rid]
        assert normalise_whitespace(entry.quote) in spec, f"{rid}: quote not verbatim"
        if entry.reading:
            assert f"| {entry.reading} |" in reading, f"{rid}: no READING point {entry.reading!r}"
        if rid in CATALOGUE:
            assert CATALOGUE[rid].gloss == entry.gloss, f"{rid} adopted with another gloss: drop it from the proposal"


# --------------------------------------------------------------------------- always-run edge cases

EDGES = edge_counts(DOC)
ALWAYS = {("chat", "wrong-optional"), ("chat", "extreme"), ("run", "wrong-optional"), ("update", "wrong-optional"), ("update", "extreme")}


@pytest.mark.parametrize("budget", [1, 5, REMOTE_EXAMPLES])
def test_the_edge_rows_are_planned_under_any_budget(budget: int) -> None:
    # --fuzz-examples 1 deals /v3/chat's one example to its valid kind: the rows with
    # edges must stay, with no drawn example (their edges only) where none is left.
    rows, _ = plan(budget, lambda rid: True, EDGES)
    planned = {(r.endpoint, r.kind): r for r in rows}
    assert ALWAYS <= set(planned)
    for key in ALWAYS:
        assert planned[key].edges == EDGES[key] > 0
    if budget == 1:
        assert planned[("chat", "extreme")].examples == 0 and planned[("chat", "extreme")].requests == EDGES[("chat", "extreme")]


def test_no_edges_when_fuzzing_is_off() -> None:
    rows, _ = plan(0, lambda rid: True, EDGES)
    assert rows == []
    rows, _ = plan({**EMBEDDED_EXAMPLES, "update": 0}, lambda rid: True, EDGES)
    assert not [r for r in rows if r.endpoint == "update"]


def test_the_edges_fit_the_second_principals_share_of_the_budget() -> None:
    # The edges go out as the second principal (test_fuzz.edge_bot), which the other
    # modules leave nearly untouched (tests/test_budget.py: 2 chat, 4 management
    # before the phase); its edge bot costs 2 management requests more. The budget:
    # 50 chat, 25 management per principal (tests/test_budget.py BUDGET).
    rows, _ = plan(EMBEDDED_EXAMPLES, lambda rid: True, EDGES)
    by_group: dict[str, int] = {}
    for row in rows:
        group = DOC.ratelimits.group_of(row.endpoint).name
        if row.edges:
            by_group[group] = by_group.get(group, 0) + row.edges
    assert by_group == {"chat": 26, "management": 13}
    assert 2 + by_group["chat"] <= 50 and 4 + 2 + by_group["management"] <= 25


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def test_the_wrong_optional_edges_retype_every_optional_parameter() -> None:
    for endpoint in ("chat", "run", "update"):
        spec = body_spec(DOC, endpoint)
        world = OWN if endpoint == "update" else WORLD
        edges = edge_cases(DOC, endpoint, "wrong-optional", world)
        retyped: dict[str, list[Any]] = {}
        for case in edges:
            assert case.edge and case.kind == "wrong-optional" and case.body is not None
            body = json.loads(case.body.decode("utf-8"))
            name = case.change.split(":", 1)[0]
            retyped.setdefault(name, []).append(body[name])
            # One change only: the rest of the body is valid.
            rest = {k: v for k, v in body.items() if k != name}
            assert [v for v in validate(spec.schema_name, rest) if v.keyword != "required"] == []
            if body[name] is not None:
                assert any(v.keyword == "type" and v.instance_path == f"/{name}" for v in validate(spec.schema_name, body))
            # A null may be read as absent (strategies.NOT_JUDGED): never judged by REQ-004.
            assert ("REQ-004" in case.not_judged) is (body[name] is None)
        assert set(retyped) == set(spec.optional), endpoint
        if "stream" in retyped:
            assert retyped["stream"] == list(STREAM_WRONG)
    chat_types = {type(v[0]).__name__ for k, v in _retyped_chat().items() if k != "stream"}
    assert chat_types == {"dict", "list", "str", "int", "bool"}, "every JSON type is sent on /v3/chat"


def _retyped_chat() -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for case in edge_cases(DOC, "chat", "wrong-optional", WORLD):
        name = case.change.split(":", 1)[0]
        out.setdefault(name, []).append(json.loads(case.body or b"")[name])
    return out


@pytest.mark.parametrize("endpoint", ["chat", "update"])
def test_the_extreme_edges_are_the_named_boundaries(endpoint: str) -> None:
    spec = body_spec(DOC, endpoint)
    world = OWN if endpoint == "update" else WORLD
    edges = edge_cases(DOC, endpoint, "extreme", world)
    sizes = [len(c.body or b"") for c in edges if c.change.startswith("a body of")]
    assert sizes == list(BODY_LADDER) == [65535, 65537, 262144, 1048575, 1048577]
    for case in edges:
        assert case.edge and not case.not_judged and case.body is not None
        body = _json_or_none(case.body)
        if "nested" in case.change:
            assert body is None  # past Python's own recursion limit
            assert case.body.endswith(b'"x_cz_deep":' + b"[" * DEEP_NESTING + b"]" * DEEP_NESTING + b"}")
            continue
        assert body is not None
        assert [v for v in validate(spec.schema_name, body) if v.keyword != "maxLength"] == [], case.change
        if world.bot_name:
            assert body["name"] == world.bot_name  # the suite's bot keeps its name
    texts = [c.body or b"" for c in edges if any(label in c.change for label, _ in UNICODE_EDGES)]
    assert len(texts) == len(UNICODE_EDGES)
    for raw, (_label, text) in zip(texts, UNICODE_EDGES, strict=True):
        assert dump_json(text)[1:-1] in raw
    assert b"\\u0000" in texts[0] and b"\\ud800" in texts[1] and "\u202e".encode() in texts[2]
    assert "\U0010ffff".encode() in texts[3]


def test_an_edge_case_says_so_when_printed() -> None:
    (case, *_rest) = edge_cases(DOC, "chat", "wrong-optional", WORLD)
    assert repr(case).startswith('FuzzCase(wrong-optional: stream: "yes" ') and repr(case).endswith("[always-run edge case]")


# --------------------------------------------------------------------------- end to end


@contextmanager
def _serving(broken: Callable[[dict[str, Any]], bool] | None) -> Iterator[Target]:
    """The reference server (limits off: shrinking sends more requests), optionally
    wrapped to answer 500 when ``broken(body)`` holds for a /v3/chat body."""
    config = ServerConfig(rate_limits=False, token_delay=0)
    server = ReferenceServer(config)
    if broken is not None:
        server.app = _FiveHundred(server.app, broken)  # type: ignore[assignment]
    with server:
        p1, p2 = config.principals[:2]
        yield Target(server.url, (p1.api_key, p1.session_key, p2.api_key, p2.session_key))


class _FiveHundred:
    """ASGI wrapper: a 500 envelope for a /v3/chat body that ``broken`` picks; every
    other request goes to the reference app with its body replayed."""

    def __init__(self, app: Any, broken: Callable[[dict[str, Any]], bool]) -> None:
        self.app, self.broken = app, broken

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v3/chat":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and self.broken(parsed):
            payload = b'{"code":500,"msg":"internal server error","data":null}'
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": payload})
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return dict(await receive())
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _unpaced() -> list[str]:
    """The servers here run with limits off: where the settings offer --rate-budget,
    lift the pacer's budget so shrinking is not paced to 60 chats a minute."""
    from conformance.settings import OPTIONS_BY_DEST

    return ["--rate-budget=chat=100000"] if "rate_budgets" in OPTIONS_BY_DEST else []


def _run_fuzz(target: Target, row: str, examples: int, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COZE_")}
    return subprocess.run(
        [
            sys.executable, "-m", "pytest", f"conformance/suite/test_fuzz.py::test_fuzz[{row}]",
            "-p", "no:cacheprovider", "-v", f"--fuzz-examples={examples}", *_unpaced(), *extra,
        ],
        cwd=ROOT, env={**env, **target.env(), "CI": "true"}, capture_output=True, text=True, timeout=300, check=False,
    )


def _user_id_not_a_string(body: dict[str, Any]) -> bool:
    return "user_id" in body and not isinstance(body["user_id"], str)


def _meta_data_not_an_object(body: dict[str, Any]) -> bool:
    return "meta_data" in body and not isinstance(body["meta_data"], dict)


FAULTS = [
    # chat's 7 kinds share the examples: 70 gives each kind 10.
    pytest.param("chat-wrong-type", "CHAT-REQ-005", "user_id", _user_id_not_a_string, id="500-for-a-non-string-user_id"),
    pytest.param("chat-wrong-optional", "REQ-003", "meta_data", _meta_data_not_an_object, id="500-for-a-non-object-meta_data"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("row", "requirement", "field", "broken"), FAULTS)
def test_the_fuzz_fails_a_server_that_answers_500_for_one_wrong_typed_field(
    row: str, requirement: str, field: str, broken: Callable[[dict[str, Any]], bool]
) -> None:
    if requirement not in CATALOGUE:
        pytest.skip(f"{row} is deferred until the catalogue has {requirement} (PROPOSED_TOML)")
    with _serving(broken) as target:
        result = _run_fuzz(target, row, 70)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-4000:]
    assert re.search(rf"FAIL\s+{requirement}\s+MUST", out), out[-4000:]
    assert re.search(rf"smallest: FuzzCase\({row.split('-', 1)[1]}: {field}: ", out), out[-4000:]
    curl = out[out.index("Reproduce with:") :]
    # The edge cases go out as the second principal (test_fuzz.edge_bot).
    assert re.search(r'"Authorization: Bearer \$COZE_API_KEY(_2)?"', curl) and f'"{field}"' in curl
    assert target.keys[0] not in out, "the API key leaked into the output"
    assert re.search(rf"fuzz seed of {row}: \d+", out)


@pytest.mark.slow
@pytest.mark.parametrize(("row", "requirement"), [(p.values[0], p.values[1]) for p in FAULTS], ids=[p.id for p in FAULTS])
def test_the_same_fuzz_passes_the_clean_server(row: str, requirement: str) -> None:
    if requirement not in CATALOGUE:
        pytest.skip(f"{row} is deferred until the catalogue has {requirement} (PROPOSED_TOML)")
    with _serving(None) as target:
        result = _run_fuzz(target, row, 70)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert re.search(rf"PASS\s+{requirement}\s+MUST", result.stdout)


# ---------------------------------------------------------------- a run that always streams


def _answer(status: int, body: bytes, content_type: str) -> Any:
    from types import SimpleNamespace

    import httpx

    from conformance.transport.client import ApiResponse

    exchange = SimpleNamespace(method="POST", path="/api/conversation/chat")
    return ApiResponse(status, httpx.Headers({"content-type": content_type}), body, 0.0, exchange)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("endpoint", "body", "held"),
    [
        pytest.param("run", b'event: conversation.error\ndata: {"code":400,"msg":"bad"}\n\n', True, id="run-error-event"),
        pytest.param("run", b'event: error\ndata: {"error":{"code":400,"msg":"bad"}}\n\n', True, id="run-nested-code"),
        pytest.param("run", b'event: conversation.error\ndata: {"code":404,"msg":"x"}\n\n', False, id="run-other-code"),
        pytest.param(
            "run", b'event: conversation.chat.created\ndata: {}\n\nevent: error\ndata: {"code":400}\n\n', False,
            id="run-error-not-first",
        ),
        pytest.param("chat", b'event: conversation.error\ndata: {"code":400,"msg":"bad"}\n\n', False, id="chat-streams-unasked"),
    ],
)
def test_a_refusal_as_a_leading_error_event_counts_for_the_run_only(endpoint: str, body: bytes, held: bool) -> None:
    # READING "`/api/conversation/chat` response": the run may answer an event stream
    # unasked, its refusal then a leading error event; /v3/chat with stream false may not.
    from conformance.oracle.strategies import Row
    from conformance.suite.test_fuzz import _rule

    row = Row(endpoint, "wrong-type", None, ("REQ-002",), 1)
    ok, _ = _rule(row, "REQ-002", load_profile("doc"), _answer(200, body, "text/event-stream"))
    assert ok is held


# ---------------------------------------------------------------- edge cases end to end


@contextmanager
def _serving_fault(faults: frozenset[str]) -> Iterator[Target]:
    """The reference server (limits off) with ``faults`` on (none: the clean one)."""
    config = ServerConfig(rate_limits=False, token_delay=0, faults=faults)
    with ReferenceServer(config) as server:
        p1, p2 = config.principals[:2]
        yield Target(server.url, (p1.api_key, p1.session_key, p2.api_key, p2.session_key))


EDGE_FAULTS = [
    # --fuzz-examples 1: /v3/chat's one drawn example goes to its valid kind, so these
    # rows send their edge cases only -- what kills the fault is always sent.
    pytest.param("req_body_over_64kib_500", "chat-extreme", "REQ-003", "MUST", (), "a body of 65537 bytes", id="body-over-64k-500"),
    pytest.param(
        "chat_stream_wrong_type_truthy", "chat-wrong-optional", "REQ-004", "SHOULD", ("--strict",), 'stream: "yes"',
        id="stream-by-truthiness",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "row", "requirement", "level", "extra", "smallest"), EDGE_FAULTS)
def test_the_edge_cases_catch_a_fault_under_a_budget_of_one(
    fault: str, row: str, requirement: str, level: str, extra: tuple[str, ...], smallest: str
) -> None:
    with _serving_fault(frozenset({fault})) as target:
        result = _run_fuzz(target, row, 1, *extra)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-4000:]
    assert re.search(rf"FAIL\s+{requirement}\s+{level}", out), out[-4000:]
    assert f"FuzzCase({row.split('-', 1)[1]}: {smallest}" in out, out[-4000:]
    assert "[always-run edge case]" in out


@pytest.mark.slow
@pytest.mark.parametrize("row", ["chat-extreme", "chat-wrong-optional", "update-extreme", "run-wrong-optional"])
def test_the_edge_cases_pass_the_clean_server_under_strict(row: str) -> None:
    with _serving_fault(frozenset()) as target:
        result = _run_fuzz(target, row, 1, "--strict")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert re.search(r"PASS\s+REQ-003\s+MUST", out), out[-4000:]


@pytest.mark.parametrize(
    ("body", "held"),
    [
        pytest.param(b'event: error\ndata: {"code":400,"msg":"bad stream"}\n\n', True, id="refused-in-the-stream"),
        pytest.param(
            b'event: conversation.chat.created\ndata: {}\n\nevent: conversation.stream.done\ndata: {}\n\n', False,
            id="streamed-as-asked-for-by-truthiness",
        ),
    ],
)
def test_a_retyped_stream_may_be_refused_in_a_leading_error_event(body: bytes, held: bool) -> None:
    # READING "Errors on a streaming request": a server that read "yes" as a stream
    # request may refuse it in the stream; a stream that is no refusal breaks REQ-004.
    from conformance.oracle.strategies import Row
    from conformance.suite.test_fuzz import _rule

    row = Row("chat", "wrong-optional", None, ("REQ-003", "REQ-004"), 0, 10)
    (case, *_rest) = edge_cases(DOC, "chat", "wrong-optional", WORLD)
    assert case.stream_retyped
    answer = _answer(200, body, "text/event-stream")
    assert _rule(row, "REQ-004", load_profile("doc"), answer, case)[0] is held
    assert _rule(row, "REQ-003", load_profile("doc"), answer, case)[0] is True
    other = next(c for c in edge_cases(DOC, "chat", "wrong-optional", WORLD) if not c.stream_retyped)
    assert _rule(row, "REQ-004", load_profile("doc"), _answer(200, body, "text/event-stream"), other)[0] is False
