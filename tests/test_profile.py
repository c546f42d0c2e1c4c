"""The ``doc`` profile's data, its loader's validation, and the rule that no code
compares a profile's name."""

from __future__ import annotations

import ast
import copy
import pickle
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import conformance
from conformance.oracle.catalogue import normalise_whitespace, spec_text
from conformance.oracle.profile import (
    PROFILES_DIR,
    Profile,
    ProfileError,
    available_profiles,
    load_profile,
    read_profile,
)

DOC = load_profile("doc")
DOC_PATH = PROFILES_DIR / "doc.toml"
SPEC = normalise_whitespace(spec_text())


# --------------------------------------------------------------------------- loading


def test_available_and_cached() -> None:
    assert "doc" in available_profiles()
    assert load_profile("doc") is DOC
    assert isinstance(DOC, Profile) and DOC.name == "doc" and DOC.source == DOC_PATH


def test_a_rate_window_replaces_the_profiles_and_nothing_else() -> None:
    short = load_profile("doc", rate_window=2.5)
    assert short.ratelimits.window_seconds == 2.5 and DOC.ratelimits.window_seconds == 60
    assert short.ratelimits.groups == DOC.ratelimits.groups and short.endpoints == DOC.endpoints


def test_profile_pickles_and_copies() -> None:
    # A profile may travel to an xdist worker or into a report.
    assert pickle.loads(pickle.dumps(DOC)) == DOC
    assert copy.deepcopy(DOC) == DOC
    assert dict(pickle.loads(pickle.dumps(DOC.stream))) == dict(DOC.stream)


def test_unknown_profile_lists_the_available() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'cloud'; available: coze, doc, studio"):
        load_profile("cloud")
    # A name is a file stem, never a path.
    with pytest.raises(ProfileError, match="unknown profile"):
        load_profile("../profiles/doc")


# --------------------------------------------------------------------------- the doc profile's values


def test_envelope() -> None:
    env = DOC.envelope
    assert (env.code_key, env.msg_key, env.data_key) == ("code", "msg", "data")
    assert env.success_code == 0 and env.description(0) == "成功"
    assert env.preferred_success_msg == "success"
    assert env.error_data_null_preferred is True
    assert {e.code: e.description for e in env.error_codes} == {
        400: "请求参数错误",
        401: "未授权,认证失败",
        403: "禁止访问,权限不足",
        404: "资源不存在",
        429: "请求过于频繁",
        500: "服务器内部错误",
    }
    with pytest.raises(KeyError, match="code 418 is not listed"):
        env.description(418)


@pytest.mark.parametrize("code", [pytest.param(c, id=str(c)) for c in (0, 400, 401, 403, 404, 429, 500)])
def test_code_descriptions_are_the_spec_rows(code: int) -> None:
    assert f"| {code} | {DOC.envelope.description(code)} |" in SPEC


ENDPOINTS = [
    # name, method, path, auth, rate group, params in, required, id types, success data
    ("chat", "POST", "/v3/chat", "openapi", "chat", "body", ("bot_id", "user_id"),
     {"bot_id": "string", "ConversationID": "string", "conversation_id": "string"}, True),
    ("cancel", "POST", "/v3/chat/cancel", "openapi", "chat", "body", ("conversation_id",),
     {"conversation_id": "string"}, False),
    ("run", "POST", "/api/conversation/chat", "webapi", "chat", "body", ("agent_id", "query"),
     {"agent_id": "integer", "conversation_id": "string"}, True),
    ("create", "POST", "/api/draftbot/create", "webapi", "management", "body", ("name",), {}, True),
    ("update", "POST", "/api/draftbot/update_display_info", "webapi", "management", "body", ("bot_id",),
     {"bot_id": "integer"}, True),
    ("publish", "POST", "/api/draftbot/publish", "webapi", "management", "body", ("bot_id",),
     {"bot_id": "integer"}, True),
    ("online_info", "GET", "/v1/bot/get_online_info", "openapi", "info", "query", ("bot_id",),
     {"bot_id": "digits"}, True),
    ("bot_detail", "GET", "/v1/bots/:bot_id", "openapi", "info", "path", ("bot_id",), {"bot_id": "digits"}, True),
]


@pytest.mark.parametrize("row", [pytest.param(row, id=row[0]) for row in ENDPOINTS])
def test_endpoint(row: tuple[Any, ...]) -> None:
    name, method, path, auth, group, params_in, required, id_types, success_data = row
    e = DOC.endpoint(name)
    assert (e.method, e.path, e.auth, e.rate_group, e.params_in) == (method, path, auth, group, params_in)
    assert e.required == required and dict(e.id_types) == id_types and e.success_data is success_data
    assert DOC.endpoint(e.key) is e
    assert e.key in SPEC, f"{e.key} is not an 接口地址 of the spec"
    for param in required:
        assert f"| {param} |" in SPEC


def test_endpoints_are_exactly_the_table() -> None:
    assert [e.name for e in DOC.endpoints] == [row[0] for row in ENDPOINTS]
    with pytest.raises(KeyError, match="no endpoint 'delete'"):
        DOC.endpoint("delete")


def test_url_path() -> None:
    detail = DOC.endpoint("bot_detail")
    assert detail.path_params == ("bot_id",)
    assert detail.url_path(bot_id=7_300_000_000_000_000_001) == "/v1/bots/7300000000000000001"
    assert DOC.endpoint("chat").url_path() == "/v3/chat"
    with pytest.raises(ValueError, match="expected path parameters"):
        detail.url_path()
    with pytest.raises(ValueError, match="expected path parameters"):
        detail.url_path(bot_id=1, agent_id=2)


def test_auth() -> None:
    auth = DOC.auth
    assert auth.unauthorized_code == 401
    openapi, webapi = auth["openapi"], auth["webapi"]
    assert (openapi.mode, openapi.header, openapi.scheme, openapi.cookie) == ("bearer", "Authorization", "Bearer", None)
    assert (webapi.mode, webapi.cookie, webapi.header) == ("cookie", "session_key", None)
    assert f"{openapi.header}: {openapi.scheme} your_api_key" in SPEC
    assert f"Cookie: {webapi.cookie}=your_session_key" in SPEC
    assert auth.class_for("/v3/chat/cancel") is openapi and auth.class_for("/v1/bots/1") is openapi
    assert auth.class_for("/api/draftbot/create") is webapi
    with pytest.raises(KeyError):
        auth.class_for("/v2/other")
    with pytest.raises(KeyError):
        auth["basic"]


def test_ratelimits() -> None:
    rl = DOC.ratelimits
    assert (rl.window_seconds, rl.refusal_code, rl.retry_after_max_seconds) == (60, 429, 60)
    assert {g.name: g.limit for g in rl.groups} == {"chat": 60, "management": 30, "info": 100}
    assert rl["chat"].endpoints == ("chat", "cancel", "run")
    assert rl["management"].endpoints == ("create", "update", "publish")
    assert rl["info"].endpoints == ("online_info", "bot_detail")
    assert rl.group_of("cancel").name == "chat"
    for g in rl.groups:
        assert f"{g.limit} 次/分钟/用户" in SPEC


def test_ids() -> None:
    ids = DOC.ids
    assert ids.compare_as_text
    assert ids.is_bot_id(7_300_000_000_000_000_001) and ids.is_bot_id("7300000000000000001")
    not_bot_ids: tuple[Any, ...] = ("bot_1", "", "1.0", 1.0, True, None, ["1"])
    for bad in not_bot_ids:
        assert not ids.is_bot_id(bad), bad
    for ok in ("conv_001", "987654321", 987654321):
        assert ids.is_opaque_id(ok)
    not_opaque: tuple[Any, ...] = ("", 1.5, False, None, {})
    for bad in not_opaque:
        assert not ids.is_opaque_id(bad), bad
    # Values beyond 2^53 keep their exact text.
    assert ids.text(2**63 - 1) == "9223372036854775807" and ids.text("conv_1") == "conv_1"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        pytest.param(1_704_067_200, True, id="spec-example"),
        pytest.param(1_500_000_000, True, id="min"),
        pytest.param(1_499_999_999, False, id="below-min"),
        pytest.param(1_800_000_000 + 86_400, True, id="now-plus-a-day"),
        pytest.param(1_800_000_000 + 86_401, False, id="beyond-a-day"),
        pytest.param(1_704_067_200_000, False, id="milliseconds"),
        pytest.param(1_704_067_200.0, False, id="float"),
        pytest.param("1704067200", False, id="string"),
        pytest.param(True, False, id="bool"),
    ],
)
def test_timestamps(value: Any, ok: bool) -> None:
    ts = DOC.timestamps
    assert (ts.unit, ts.min, ts.max_ahead_seconds) == ("seconds", 1_500_000_000, 86_400)
    assert ts.plausible(value, now=1_800_000_000) is ok


def test_timestamps_default_to_the_clock() -> None:
    assert DOC.timestamps.plausible(1_704_067_200)


def test_conversation_forms_in_the_order_tried() -> None:
    conv = DOC.conversation
    assert [(f.location, f.key) for f in conv.forms] == [
        ("body", "ConversationID"),
        ("body", "conversation_id"),
        ("query", "conversation_id"),
    ]
    assert conv.preferred is conv.forms[0] and conv.preferred.name == "body.ConversationID"
    assert conv.response_key == "conversation_id"


def test_negative_answer_codes() -> None:
    assert DOC.unknown_ids.codes == {400, 404}
    assert DOC.unknown_ids.conversation_codes == {400, 403, 404}
    assert DOC.forbidden.codes == {403, 404}
    assert DOC.forbidden.conversation_codes == {400, 403, 404}


def test_messages_chat_and_bots() -> None:
    m = DOC.messages
    assert m.required == ("role", "content") and m.content_type_keys == ("content_type", "type")
    assert m.roles == ("user", "assistant")
    assert m.accepted_content_types == ("text", "image", "object_string") and m.preferred_content_types == ("card",)
    for t in (*m.accepted_content_types, *m.preferred_content_types):
        assert f"| {t} |" in SPEC
    assert (DOC.chat.answer_role, DOC.chat.answer_type, DOC.chat.answer_within_seconds) == ("assistant", "answer", 30)
    assert (DOC.bots.draft_status, DOC.bots.online_status, DOC.bots.first_version) == ("draft", "online", 1)


def test_stream_is_the_plain_table() -> None:
    raw = tomllib.loads(DOC_PATH.read_text(encoding="utf-8"))["stream"]
    assert dict(DOC.stream) == raw
    with pytest.raises(TypeError):
        DOC.stream["media_type"] = "text/plain"  # type: ignore[index]
    # The grammar builds its own rules from it.
    from conformance.oracle.grammar import StreamRules

    rules = StreamRules.from_mapping(DOC.stream)
    assert rules.preferred_terminal == "conversation.stream.done"


# --------------------------------------------------------------------------- validation of profile files


def _variant(tmp_path: Path, old: str, new: str, *, name: str = "doc") -> Path:
    text = DOC_PATH.read_text(encoding="utf-8")
    assert text.count(old) >= 1, f"fixture text {old!r} not in doc.toml"
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_read_profile_of_an_unchanged_copy(tmp_path: Path) -> None:
    assert read_profile(_variant(tmp_path, "[chat]", "[chat]")).endpoints == DOC.endpoints


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param('path = "/v3/chat"\nauth = "openapi"', 'path = "/v3/chat"\nauth = "webapi"',
                     r"\[\[endpoint\]\] chat: auth 'webapi', but its path prefix belongs to 'openapi'", id="auth-prefix"),
        pytest.param('auth = "openapi"', 'auth = "basic"', r"unknown auth class 'basic'", id="auth-unknown"),
        pytest.param('endpoints = ["chat", "cancel", "run"]', 'endpoints = ["chat", "run"]',
                     r"cancel: rate_group 'chat', but \[\[ratelimits.group\]\] chat does not list it", id="rate-member"),
        pytest.param('endpoints = ["online_info", "bot_detail"]', 'endpoints = ["online_info", "bot_detail", "nope"]',
                     r"unknown endpoint 'nope'", id="rate-unknown"),
        pytest.param("limit = 30", "limit = 0", r"\.limit: expected a positive integer", id="rate-limit"),
        pytest.param('preferred_form = "body.ConversationID"', 'preferred_form = "header.ConversationID"',
                     r"\[conversation\].preferred_form: 'header.ConversationID' is not one of", id="preferred-form"),
        pytest.param('id_types = { bot_id = "integer" }', 'id_types = { bot_id = "digits" }',
                     r"id_types.bot_id: 'digits' does not fit parameters in the body", id="digits-in-body"),
        pytest.param('id_types = { agent_id = "integer"', 'id_types = { agent_id = "int64"',
                     r"id_types.agent_id: expected one of", id="id-type"),
        pytest.param("[forbidden]\ncodes = [403, 404]", "[forbidden]\ncodes = [403, 418]",
                     r"\[forbidden\]: codes \[418\] are not in", id="unlisted-code"),
        pytest.param('name = "doc"', 'name = "studio"', r"\[profile\].name: 'studio' must equal the file name 'doc'",
                     id="name"),
        pytest.param("max_ahead_seconds = 86_400", 'max_ahead_seconds = "a day"',
                     r"\[timestamps\].max_ahead_seconds: expected an integer, got 'a day'", id="type"),
        pytest.param("first_version = 1", "first_version = 1\nfirst_verison = 1", r"\[bots\]: unknown keys \['first_verison'\]",
                     id="typo-key"),
        pytest.param("[bots]", "[robots]", r"missing key 'bots'", id="missing-table"),
        pytest.param('method = "GET"', 'method = "FETCH"', r"\.method: expected one of", id="method"),
        pytest.param('code = 404\ndescription = "资源不存在"', 'code = 400\ndescription = "资源不存在"',
                     r"repeated codes", id="repeated-code"),
        pytest.param('roles = ["user", "assistant"]', 'roles = []', r"\[messages\].roles: expected a list", id="empty-list"),
    ],
)
def test_read_profile_rejects(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _variant(tmp_path, old, new)
    with pytest.raises(ProfileError, match=message) as info:
        read_profile(path)
    assert str(path) in str(info.value)


def test_read_profile_rejects_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[profile\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="cannot read the profile"):
        read_profile(path)


# --------------------------------------------------------------------------- no code compares a profile's name


def name_comparisons(source: str, names: Iterable[str]) -> list[int]:
    """Line numbers where ``source`` compares something with one of ``names``:
    ``== "doc"``, ``"doc" !=``, ``in ("doc", ...)``, ``case "doc":`` and the like. An AST
    walk, not a regex: comments, docstrings and data (``default="doc"``) do not count."""
    names = set(names)

    def named(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and node.value in names

    def holds_name(node: ast.AST) -> bool:
        return isinstance(node, ast.Tuple | ast.List | ast.Set) and any(named(e) for e in node.elts)

    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
                if named(left) or named(right):
                    hits.append(node.lineno)
                elif isinstance(op, ast.In | ast.NotIn) and holds_name(right):
                    hits.append(node.lineno)
        elif isinstance(node, ast.MatchValue) and named(node.value):
            hits.append(node.lineno)
    return sorted(set(hits))


@pytest.mark.parametrize(
    ("source", "hits"),
    [
        pytest.param('if profile.name == "doc":\n    pass\n', [1], id="eq"),
        pytest.param("x = 1\nok = 'doc' != settings.profile\n", [2], id="ne-reversed"),
        pytest.param('if name in ("coze", "doc"):\n    pass\n', [1], id="in-tuple"),
        pytest.param('if name not in ["doc"]:\n    pass\n', [1], id="not-in-list"),
        pytest.param('match name:\n    case "doc":\n        pass\n', [2], id="match"),
        pytest.param('a < b == "doc"\n', [1], id="chained"),
        pytest.param('default = "doc"  # == "doc"\n"""profile == "doc" """\n', [], id="data-and-comments"),
        pytest.param('if name == "docs":\n    pass\n', [], id="other-string"),
        pytest.param('if "doc" in text:\n    pass\n', [1], id="substring-test"),
    ],
)
def test_the_detector(source: str, hits: list[int]) -> None:
    assert name_comparisons(source, ["doc"]) == hits


def test_no_code_compares_a_profile_name() -> None:
    package = Path(conformance.__file__).parent
    files = sorted(package.rglob("*.py"))
    assert Path(__file__).resolve().parent.parent / "conformance" / "oracle" / "profile.py" in [f.resolve() for f in files]
    offenders = [
        f"{path.relative_to(package.parent)}:{line}"
        for path in files
        for line in name_comparisons(path.read_text(encoding="utf-8"), available_profiles())
    ]
    assert not offenders, "code compares a profile's name (put the rule in the profile's data): " + ", ".join(offenders)
