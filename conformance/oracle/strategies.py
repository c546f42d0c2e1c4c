"""Hypothesis strategies for fuzzing the documented requests, and the fuzz plan.

Valid bodies are generated from the request schemas (``conformance.oracle.schemas``) by
hypothesis-jsonschema -- the same schemas the suite validates with -- after the
deviations named in ``GENERATION_DEVIATIONS``, each with its reason. Every other kind
of case breaks a valid body (or the query / path parameter) in one named way:

============== ================================================================ ==============
kind           what the case does                                               expected
============== ================================================================ ==============
valid          a schema-valid body with one or two unknown ``x_cz_*`` keys      accepted
missing        one required parameter left out                                  400
wrong-type     a required parameter of a JSON type its table cannot mean        400 (400/404
                                                                                for an id in a
                                                                                query or path)
not-json       a body that is no JSON text (cut short, form fields, XML, ...)   400
wrong-optional an optional parameter of the wrong JSON type                     2xx or 4xx;
                                                                                400 at SHOULD
extreme        a huge string (up to 1 MiB) or odd Unicode in a string field     2xx or 4xx
============== ================================================================ ==============

``salt`` (the run's fuzz seed) rotates the tables the cases draw from: Hypothesis tries
the all-zero choice first, and with a handful of examples per kind that first case
would otherwise be the same in every run.

The plan (``plan``) decides how many examples each (endpoint, kind) gets -- the kinds
of an endpoint in priority order, ``--fuzz-examples`` per endpoint dealt over them --
and which requirement judges it (``REQUIREMENTS``).

Boundaries no run may leave to the draw are built without Hypothesis (``edge_cases``)
and sent by every run before the drawn cases: each optional parameter of a wrong JSON
type (``stream`` as each of ``STREAM_WRONG``), whole bodies of each ``BODY_LADDER`` size,
``DEEP_NESTING`` and the ``UNICODE_EDGES`` classes. Why these, and on which endpoints:
the comment above ``KIB``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from conformance.oracle.profile import Endpoint, Profile
from conformance.oracle.schemas import load_index, load_schema

__all__ = [
    "BODY_LADDER",
    "WEIGHTS",
    "PLANNED_SHARE",
    "OTHER_REQUESTS",
    "FUZZ_SETUP",
    "BudgetPlan",
    "DEEP_NESTING",
    "EMBEDDED_EXAMPLES",
    "GENERATION_DEVIATIONS",
    "KINDS",
    "PRIORITIES",
    "REMOTE_EXAMPLES",
    "budget_examples",
    "REQUIREMENTS",
    "STREAM_WRONG",
    "UNICODE_EDGES",
    "BodySpec",
    "FuzzCase",
    "Row",
    "World",
    "body_spec",
    "cases",
    "dump_json",
    "edge_cases",
    "edge_counts",
    "fuzzes",
    "generation_schema",
    "plan",
    "request_schema_name",
    "valid_bodies",
]

KINDS = ("valid", "missing", "wrong-type", "not-json", "wrong-optional", "extreme")

#: Where generation departs from a request schema, and why.
GENERATION_DEVIATIONS: Mapping[str, str] = {
    "bot ids": "bot_id and agent_id are a real bot of the suite's, in the JSON type the profile's id_types give: a made-up id is an unknown id, and refusing it is right.",
    "conversation ids": "an optional ConversationID or conversation_id is left out of valid bodies: a made-up one names an unknown conversation (a 4xx is right), a real one needs a chat of its own; a required one (cancel's, which has no valid kind) is made up, so each broken kind changes one thing only.",
    "stream": "pinned to false: a fuzzed chat is judged on its envelope; the stream is the grammar's (test_chat_stream). The wrong-optional kind retypes it, and its edge cases send \"yes\", \"false\", 1 and null in every run.",
    "user_id": "pinned to the test's own user id (cz-conf-<run>-...), so a real deployment sees the suite's users only.",
    "bot name": "when a case changes a bot of the suite's (World.bot_name), name keeps that bot's cz-conf-<run>-... name and is never made extreme: the suite's bots stay recognisable on a real deployment (README, 'What the suite leaves behind').",
    "text": "free text is printable and not blank; NUL, controls, blank and huge strings are the extreme kind's (2xx or 4xx), never a valid body's.",
    "messages": "a message has one accepted content type (profile messages.accepted_content_types: card is SHOULD, file has no requirement), named by one key; image content is a URL and object_string content is JSON text (CHAT-CT-002/003).",
    "sizes": "arrays and string maps hold at most 3 entries; volume is the extreme kind's.",
    "extra keys": "unknown keys are named x_cz_*: a random name could hit a documented key (or `query`, which READING keeps out of positive tests).",
}

#: The spec's ``agent_id`` is a bot id too (智能体 ID).
BOT_ID_PARAMS = frozenset({"bot_id", "agent_id"})
#: Content of each accepted content type (spec "消息内容类型"; CHAT-CT-001..003).
CONTENT_FORMATS = {"text": "cz-text", "image": "cz-url", "object_string": "cz-json-text"}
MAX_ENTRIES = 3

# --------------------------------------------------------------------------- text

_PRINTABLE = st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs"))
TEXT = st.text(_PRINTABLE, min_size=1, max_size=24).filter(lambda s: bool(s.strip()))
KEY = st.from_regex(r"\A[a-z][a-z0-9_]{0,11}\Z")
EXTRA_KEY = st.from_regex(r"\Ax_cz_[a-z]{1,6}\Z")
FORMATS: dict[str, st.SearchStrategy[str]] = {
    "cz-text": TEXT,
    "cz-key": KEY,
    "cz-url": st.from_regex(r"\A[a-z0-9]{1,12}\Z").map(lambda s: f"https://example.com/{s}.png"),
    "cz-json-text": st.dictionaries(KEY, TEXT, max_size=MAX_ENTRIES).map(lambda d: json.dumps(d, ensure_ascii=False)),
    "cz-unknown-id": st.from_regex(r"\A[0-9a-f]{16}\Z").map(lambda s: f"cz-conf-unknown-{s}"),
}
SMALL_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(KEY, inner, max_size=2),
    max_leaves=4,
)

#: Text a server must survive (2xx or 4xx, never 5xx): NUL and other controls, lone
#: surrogates (sent as JSON escapes), BOM, bidi overrides, joiners, combining marks,
#: noncharacters, astral planes, line separators, other scripts' digits, and
#: strings that break naive quoting.
ODD_TEXTS = (
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "",
    "   ",
    "\ufeffbom",
    "\u202eevil\u202c",
    "\u200d" * 8,
    "e" + "\u0301" * 64,
    "\uffff\ufffe",
    "\U0010ffff",
    "\x85\x1b[31m",
    "\u2028\u2029",
    "\r\n\t",
    "١٢٣",
    "ｆｕｌｌ",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",
    "\U0001d54f" * 16,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%s%n{0}${x}",
    "../../etc/passwd",
    "null",
)
#: Huge strings, in bytes of UTF-8: up to the 1 MiB that REQ-003 names.
HUGE_BYTES = (64 * 1024, 1024 * 1024)
HUGE_UNITS = ("a", "中", "\U0001f600", "e\u0301")
#: Bodies that are no JSON text under any standard parser (Go, Python, Node, Java):
#: lenient corners (NaN, trailing commas, comments, a second document after the
#: first, invalid UTF-8) are left out -- common parsers accept them.
NOT_JSON = (
    b"",
    b"{",
    b'{"bot_id": ',
    b"bot_id=1&user_id=u",
    b"<request><bot_id>1</bot_id></request>",
    b"{'bot_id': '1'}",
    b"{bot_id: 1}",
    b"hello",
    b'{"a" "b"}',
    b"[1, 2",
)
#: Ids that are no int64 in a query or path (READING "Id types": digits).
MALFORMED_IDS = (
    "abc",
    "-1",
    "1.5",
    "1e3",
    "0x1f",
    "+7",
    " 7",
    "7 ",
    "9223372036854775808",
    "1" * 40,
    "١٢٣",
    "７",
    "null",
    "true",
    "[]",
    "{}",
    "\x00",
    "\U0001f600",
    "a/b",
    "%",
    "1;2",
    "9" * 2000,
)

_SURROGATE = re.compile("[\ud800-\udfff]")


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; a lone surrogate goes out as its ``\\uXXXX`` escape (valid
    JSON text that no UTF-8 encoder could otherwise carry)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def _rotate(items: Sequence[Any], salt: int) -> list[Any]:
    if not items:
        return []
    cut = salt % len(items)
    return [*items[cut:], *items[:cut]]


def _huge(salt: int) -> st.SearchStrategy[str]:
    def build(pair: tuple[int, str]) -> str:
        size, unit = pair
        return unit * (size // len(unit.encode("utf-8")))

    return st.tuples(st.sampled_from(_rotate(HUGE_BYTES, salt)), st.sampled_from(_rotate(HUGE_UNITS, salt))).map(build)


def extreme_text(salt: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_rotate(ODD_TEXTS, salt)),
        _huge(salt),
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=32),
    )


# --------------------------------------------------------------------------- the world and the cases


@dataclass(frozen=True)
class World:
    """The real ids a case may carry: the bot (the run's published one, or a bot of
    the test's own for endpoints that change it) and the test's user id."""

    bot_id: str
    user_id: str
    #: Set when the bot is one the cases may change (its name is then kept).
    bot_name: str | None = None


@dataclass(frozen=True)
class FuzzCase:
    """One request to send. ``repr`` stays short: Hypothesis prints failing cases."""

    endpoint: str
    kind: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    change: str = ""
    #: One of the always-run edge cases (``edge_cases``), not drawn by Hypothesis.
    edge: bool = False
    #: Requirements of the row that do not judge this case (``NOT_JUDGED`` says why).
    not_judged: frozenset[str] = frozenset()
    #: The case sends ``stream`` of a wrong JSON type: a server may have read it as a
    #: stream request, so its refusal may come as a stream's leading error event
    #: (READING "Errors on a streaming request").
    stream_retyped: bool = False

    def __repr__(self) -> str:
        query = f"?{urlencode(self.params)}" if self.params else ""
        shown = "" if self.body is None else self.body[:160].decode("utf-8", "replace")
        more = f"... ({len(self.body)} bytes)" if self.body is not None and len(self.body) > 160 else ""
        tag = " [always-run edge case]" if self.edge else ""
        return f"FuzzCase({self.kind}: {self.change or 'as generated'}; {self.method} {self.path[:120]}{query[:120]} {shown!r}{more}){tag}"


@dataclass(frozen=True)
class BodySpec:
    """An endpoint's request body as its schema describes it (refs resolved)."""

    endpoint: Endpoint
    schema_name: str
    properties: Mapping[str, Mapping[str, Any]]
    required: tuple[str, ...]

    def json_type(self, name: str) -> str:
        node = self.properties[name]
        kind = node.get("type")
        if isinstance(kind, str):
            return kind
        raise ValueError(f"{self.schema_name}: property {name!r} has no single JSON type")

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(p for p in self.properties if p not in self.required)

    @property
    def strings(self) -> tuple[str, ...]:
        return tuple(p for p in self.properties if self.json_type(p) == "string")


def request_schema_name(endpoint: Endpoint) -> str | None:
    """The request-body schema of ``endpoint`` (``schemas/index.json``), if it has a body."""
    for name, entry in load_index()["schemas"].items():
        if entry.get("role") == "request" and endpoint.key in entry.get("endpoints", []):
            return str(name)
    return None


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/definitions/"):
                raise ValueError(f"unsupported $ref {ref!r}")
            return _resolve(copy.deepcopy(root["definitions"][ref.rsplit("/", 1)[1]]), root)
        return {k: _resolve(v, root) for k, v in node.items() if k not in ("definitions", "examples")}
    if isinstance(node, list):
        return [_resolve(v, root) for v in node]
    return node


def body_spec(profile: Profile, endpoint_name: str) -> BodySpec:
    endpoint = profile.endpoint(endpoint_name)
    name = request_schema_name(endpoint)
    if name is None:
        raise ValueError(f"{endpoint.key} has no request-body schema")
    root = load_schema(name)
    resolved = _resolve(root, root)
    return BodySpec(endpoint, name, resolved["properties"], tuple(resolved.get("required", ())))


def _is_message(node: Mapping[str, Any], profile: Profile) -> bool:
    props = node.get("properties", {})
    return node.get("type") == "object" and any(key in props for key in profile.messages.content_type_keys)


def _message_variants(profile: Profile) -> dict[str, Any]:
    """One schema per (accepted content type, naming key): see GENERATION_DEVIATIONS."""
    messages = profile.messages
    variants = []
    for content_type in messages.accepted_content_types:
        if content_type not in CONTENT_FORMATS:
            raise ValueError(f"no content format for accepted content type {content_type!r}")
        for key in messages.content_type_keys:
            variants.append(
                {
                    "type": "object",
                    "properties": {
                        "role": {"enum": list(messages.roles)},
                        "content": {"type": "string", "format": CONTENT_FORMATS[content_type]},
                        key: {"const": content_type},
                    },
                    "required": [*messages.required, key],
                    "additionalProperties": False,
                }
            )
    return {"anyOf": variants}


def _generative(node: Mapping[str, Any], profile: Profile) -> dict[str, Any]:
    if _is_message(node, profile):
        return _message_variants(profile)
    out = {k: v for k, v in node.items() if k not in ("description", "$comment", "title")}
    kind = node.get("type")
    if kind == "string" and not {"enum", "const", "pattern"} & set(node):
        out = {"type": "string", "format": "cz-text"}
    elif kind == "array":
        out["items"] = _generative(node.get("items", {}), profile)
        out["maxItems"] = MAX_ENTRIES
    elif kind == "object" and isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _generative(node["additionalProperties"], profile)
        out["propertyNames"] = {"format": "cz-key"}
        out["maxProperties"] = MAX_ENTRIES
    return out


def _typed_id(text: str, id_type: str) -> str | int:
    return int(text) if id_type == "integer" else text


def generation_schema(spec: BodySpec, world: World, profile: Profile) -> dict[str, Any]:
    """The schema valid bodies are drawn from: the request schema with the
    GENERATION_DEVIATIONS applied."""
    endpoint = spec.endpoint
    properties: dict[str, Any] = {}
    for name, node in spec.properties.items():
        if name == "stream":
            properties[name] = {"const": False}
        elif name == "user_id":
            properties[name] = {"const": world.user_id}
        elif name == "name" and world.bot_name is not None:
            properties[name] = {"const": world.bot_name}
        elif name in BOT_ID_PARAMS and name in endpoint.id_types:
            properties[name] = {"const": _typed_id(world.bot_id, endpoint.id_types[name])}
        elif name in endpoint.id_types and name in spec.required:
            properties[name] = {"type": "string", "format": "cz-unknown-id"}  # GENERATION_DEVIATIONS
        elif name in endpoint.id_types:
            continue  # an optional conversation id: left out (GENERATION_DEVIATIONS)
        else:
            properties[name] = _generative(node, profile)
    return {
        "type": "object",
        "properties": properties,
        "required": [r for r in spec.required if r in properties],
        "additionalProperties": False,
    }


def valid_bodies(spec: BodySpec, world: World, profile: Profile, *, min_extras: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid bodies with real ids and ``min_extras`` to 2 unknown ``x_cz_*`` keys."""
    generated = from_schema(generation_schema(spec, world, profile), custom_formats=FORMATS)
    extras = st.dictionaries(EXTRA_KEY, SMALL_JSON, min_size=min_extras, max_size=2)
    return st.tuples(generated, extras).map(lambda pair: {**pair[1], **pair[0]})


# --------------------------------------------------------------------------- wrong values

_OBJECT = st.dictionaries(KEY, TEXT, max_size=2)
_ARRAY = st.lists(st.integers(0, 9) | TEXT, max_size=2)
_NUMBER = st.integers(-(10**6), 10**6) | st.sampled_from([1.5, -0.25, 1e300])
Values = tuple[st.SearchStrategy[Any], ...]
_STRICT: dict[str, Values] = {
    # Only types no server could read as the documented one: a number for a string id
    # or a digit string for an int64 id may be coerced (the page's own examples mix them).
    "string": (_OBJECT, _ARRAY),
    "integer": (_OBJECT, _ARRAY),
    "boolean": (_OBJECT, _ARRAY),
    "array": (_OBJECT, TEXT, _NUMBER, st.booleans()),
    "object": (_ARRAY, TEXT, _NUMBER, st.booleans()),
}
_LENIENT: dict[str, Values] = {
    "string": (_OBJECT, _ARRAY, _NUMBER, st.booleans()),
    "integer": (_OBJECT, _ARRAY, TEXT.filter(lambda s: not s.isdigit()), st.booleans(), st.just(1.5)),
    "boolean": (TEXT, _NUMBER, _OBJECT, _ARRAY),
    "array": (_OBJECT, TEXT, _NUMBER, st.booleans()),
    "object": (_ARRAY, TEXT, _NUMBER, st.booleans(), st.dictionaries(KEY, _NUMBER | _OBJECT, min_size=1, max_size=2)),
}


#: Ids (profile id_types) are strings or integers on the wire under READING "Id
#: types": a number or a digit string is never a wrong type for one. A boolean only
#: where the verdict is lenient (a JSON true is an integer 1 to some languages).
_ID_STRICT: Values = (_OBJECT, _ARRAY)
_ID_LENIENT: Values = (_OBJECT, _ARRAY, st.booleans())


def wrong_value(json_type: str, *, strict: bool, salt: int, is_id: bool = False) -> st.SearchStrategy[Any]:
    table: Values
    if is_id:
        table = _ID_STRICT if strict else _ID_LENIENT
    else:
        table = (_STRICT if strict else _LENIENT)[json_type]
    return st.one_of(*_rotate(table, salt))


# --------------------------------------------------------------------------- cases per kind


def _body_case(endpoint: Endpoint, kind: str, change: str, body: bytes) -> FuzzCase:
    return FuzzCase(endpoint.name, kind, endpoint.method, endpoint.path, (), body, change)


def _body_cases(profile: Profile, spec: BodySpec, kind: str, world: World, field: str | None, salt: int) -> st.SearchStrategy[FuzzCase]:
    endpoint = spec.endpoint
    valid = valid_bodies(spec, world, profile)
    if kind == "valid":
        # At least one unknown key: REQ-005 allows them, and the rest of the suite sends
        # documented keys only, so this kind is where tolerating them is judged.
        with_extras = valid_bodies(spec, world, profile, min_extras=1)
        return with_extras.map(lambda b: _body_case(endpoint, kind, "", dump_json(b)))
    if kind == "missing":
        if field not in spec.required:
            raise ValueError(f"{endpoint.key}: {field!r} is not a required parameter")
        return valid.map(lambda b: _body_case(endpoint, kind, f"{field} left out", dump_json({k: v for k, v in b.items() if k != field})))
    if kind == "not-json":

        @st.composite
        def cut(draw: st.DrawFn) -> bytes:
            text = dump_json(draw(valid))
            return text[: draw(st.integers(0, len(text) - 1))]

        broken = st.one_of(st.sampled_from(_rotate(NOT_JSON, salt)), cut())
        return broken.filter(_not_json).map(lambda raw: _body_case(endpoint, kind, "a body that is no JSON text", raw))
    if kind in ("wrong-type", "wrong-optional"):
        strict = kind == "wrong-type"
        names = spec.required if strict else spec.optional
        if not names:
            raise ValueError(f"{endpoint.key}: no {'required' if strict else 'optional'} parameter to retype")

        @st.composite
        def retyped(draw: st.DrawFn) -> FuzzCase:
            body = draw(valid)
            name = draw(st.sampled_from(_rotate(names, salt)))
            value = draw(wrong_value(spec.json_type(name), strict=strict, salt=salt, is_id=name in endpoint.id_types))
            body[name] = value
            shown = json.dumps(value, ensure_ascii=False)[:40]
            case = _body_case(endpoint, kind, f"{name}: {shown} where the table names {spec.json_type(name)}", dump_json(body))
            return replace(case, stream_retyped=name == "stream")

        return retyped()
    if kind == "extreme":
        names = tuple(n for n in spec.strings if not (n == "name" and world.bot_name is not None))
        if not names:
            raise ValueError(f"{endpoint.key}: no string parameter")

        @st.composite
        def extreme(draw: st.DrawFn) -> FuzzCase:
            body = draw(valid)
            name = draw(st.sampled_from(_rotate(names, salt)))
            text = draw(extreme_text(salt))
            body[name] = text
            size = len(text.encode("utf-8", "surrogatepass"))
            return _body_case(endpoint, kind, f"{name}: {text[:24]!r}{'...' if len(text) > 24 else ''} ({size} bytes)", dump_json(body))

        return extreme()
    raise ValueError(f"unknown fuzz kind {kind!r}; kinds: {KINDS}")


def _not_json(raw: bytes) -> bool:
    try:
        json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return True
    return False


def _param_cases(profile: Profile, endpoint: Endpoint, kind: str, world: World, field: str | None, salt: int) -> st.SearchStrategy[FuzzCase]:
    """Cases for an endpoint whose parameters travel in the query or the path."""
    (name,) = endpoint.required
    # A valid case carries at least one unknown query parameter (REQ-005; as in _body_cases).
    extras = st.lists(
        st.tuples(EXTRA_KEY, st.from_regex(r"\A[A-Za-z0-9._~-]{0,12}\Z")), min_size=1 if kind == "valid" else 0, max_size=2
    )
    in_path = endpoint.params_in == "path"
    if kind == "valid":
        values: st.SearchStrategy[str] = st.just(world.bot_id)
        change = ""
    elif kind == "wrong-type":
        table = [v for v in MALFORMED_IDS if not in_path or v]
        values = st.one_of(
            st.sampled_from(_rotate(table, salt)),
            st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20).filter(
                lambda s: not (s.isascii() and s.isdigit())
            ),
        )
        change = f"{name} is no int64"
    elif kind == "missing" and not in_path:
        if field != name:
            raise ValueError(f"{endpoint.key}: {field!r} is not its query parameter")
        return extras.map(lambda ex: FuzzCase(endpoint.name, kind, endpoint.method, endpoint.path, tuple(ex), None, f"{name} left out"))
    else:
        raise ValueError(f"{endpoint.key}: no {kind!r} cases for a {endpoint.params_in} parameter")

    def build(value: str, ex: list[tuple[str, str]]) -> FuzzCase:
        if in_path:
            path = endpoint.url_path(**{name: quote(value.encode("utf-8", "surrogatepass"), safe="")})
            return FuzzCase(endpoint.name, kind, endpoint.method, path, tuple(ex), None, change or f"{name} {value[:24]!r}")
        return FuzzCase(endpoint.name, kind, endpoint.method, endpoint.path, ((name, value), *ex), None, change or f"{name} {value[:24]!r}")

    return st.builds(build, values, extras)


def cases(profile: Profile, endpoint_name: str, kind: str, world: World, *, field: str | None = None, salt: int = 0) -> st.SearchStrategy[FuzzCase]:
    """The cases of one (endpoint, kind); ``field`` names the parameter a ``missing``
    case leaves out."""
    endpoint = profile.endpoint(endpoint_name)
    if endpoint.params_in == "body":
        return _body_cases(profile, body_spec(profile, endpoint_name), kind, world, field, salt)
    return _param_cases(profile, endpoint, kind, world, field, salt)


# --------------------------------------------------------------------------- always-run edge cases
#
# Hypothesis draws a handful of cases per kind, so whether a given boundary is tried
# depends on the seed: a server answering 500 for bodies between 64 KiB and 1 MiB was
# caught in one run and passed in another. The cases below are built without drawing
# and sent by every run as Hypothesis explicit examples (test_fuzz), before -- and in
# addition to -- the drawn ones, whatever --fuzz-examples says (0 switches fuzzing off).
#
# Few on purpose: each is a real request against the rate budget of the documented
# limits (chat 60, management 30, info 100 a minute; tests/test_budget.py). So:
# * wrong-optional (REQ-003, REQ-004): /v3/chat, the run and update -- every endpoint
#   the plan retypes optional parameters of (create makes bots; cancel and publish
#   have no optional parameter). ``stream`` gets each of STREAM_WRONG; every other
#   optional parameter one wrong JSON type, dealt in turn from object, array, string,
#   number, boolean so that the types vary (on /v3/chat all five are sent); the other
#   pairings are Hypothesis's to draw.
# * extreme (REQ-003): the body ladder, deep nesting and the Unicode classes on one
#   endpoint of each rate group that takes a body -- /v3/chat (chat) and update
#   (management). The info group's two endpoints are GETs whose one parameter travels
#   in the query or the path: there is no body to size, and odd text in bot_id is the
#   wrong-type kind's (MALFORMED_IDS).

KIB = 1024
#: Whole request bodies of these sizes in bytes (REQ-003; READING "body size limits":
#: accepted or refused with a 4xx, never a 5xx): each side of 64 KiB (a common buffer
#: and default limit), one between, and each side of 1 MiB (another common default
#: limit, and the reference server's).
BODY_LADDER = (64 * KIB - 1, 64 * KIB + 1, 256 * KIB, 1024 * KIB - 1, 1024 * KIB + 1)
#: ``stream`` of a wrong JSON type. "false" is the hazard: read by its truthiness it
#: streams, and a client that asked for JSON gets an event stream.
STREAM_WRONG: tuple[Any, ...] = ("yes", "false", 1, None)
#: Why a case is left out of a requirement's judgement, by the value it sends. JSON
#: null for an optional parameter is commonly decoded as the parameter absent (Go's
#: encoding/json leaves the field unset; the reference server reads it so): the page
#: does not say otherwise, so null is judged by REQ-003 (never 5xx) only, never by
#: REQ-004's "400 rather than ignoring".
NOT_JUDGED: Mapping[str, frozenset[str]] = {"null": frozenset({"REQ-004"})}
#: Arrays nested this deep in an unknown key (REQ-005 lets a server ignore the key, not
#: skip parsing it): past every common parser's limit (Go's encoding/json 10,000,
#: Python's recursion 1,000, serde_json 128), a 40 KB body.
DEEP_NESTING = 20_000
#: The Unicode classes REQ-003 names, one request each (a server that refuses NUL
#: with a 400 must still be seen surviving astral text).
UNICODE_EDGES: tuple[tuple[str, str], ...] = (
    ("NUL and controls", "a\x00b\x01\x08\x1b[31m\x7f\x85c"),
    ("lone surrogates", "x\ud800y\udfffz"),
    ("bidi and joiners", "\u202eevil\u202c \u2066abc\u2069 a\u200db\u200cc\u2060\ufeff"),
    ("astral planes", "\U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001d54f \U00020000 \U0010ffff"),
)
#: One value of each JSON type, for a parameter of another type.
WRONG_OF_TYPE: Mapping[str, Any] = {"object": {"x_cz": "1"}, "array": ["x"], "string": "x", "number": 1, "boolean": True}
#: The JSON types wrong for a parameter of each documented type (as in _LENIENT: the
#: verdict is lenient), and for an id (READING "Id types": a number or a digit string
#: is never a wrong type for one).
_WRONG_TYPES: Mapping[str, tuple[str, ...]] = {
    "string": ("object", "array", "number", "boolean"),
    "integer": ("object", "array", "string", "boolean"),
    "boolean": ("string", "number", "object", "array"),
    "array": ("object", "string", "number", "boolean"),
    "object": ("array", "string", "number", "boolean"),
}
_WRONG_ID_TYPES = ("object", "array", "boolean")
_TYPE_ORDER = ("object", "array", "string", "number", "boolean")
#: Where the extreme edges ride, per endpoint: the parameter padded to size a body, and
#: the one carrying the Unicode texts (chat: meta_data, an object of strings, so that an
#: accepting server spends no model tokens on the padding; the user's message for text).
EDGE_CARRIERS: Mapping[str, tuple[str, str]] = {"chat": ("meta_data", "message"), "update": ("description", "description")}
#: The endpoints whose wrong-optional rows carry edges (all the plan retypes).
WRONG_OPTIONAL_EDGES = frozenset({"chat", "run", "update"})
#: Text of the base body's message / query (any printable text would do).
_EDGE_TEXT = "你好"


def _edge_base(profile: Profile, spec: BodySpec, world: World) -> dict[str, Any]:
    """A valid body of ``spec`` with no drawn part: real ids, the test's user, the bot's
    kept name, ``stream`` false, and one user text message where the endpoint takes some."""
    endpoint = spec.endpoint
    body: dict[str, Any] = {}
    for name in spec.required:
        if name in BOT_ID_PARAMS and name in endpoint.id_types:
            body[name] = _typed_id(world.bot_id, endpoint.id_types[name])
        elif name == "user_id":
            body[name] = world.user_id
        elif spec.json_type(name) == "string":
            body[name] = _EDGE_TEXT
        else:
            raise ValueError(f"{endpoint.key}: no edge value for required {name!r}")
    if world.bot_name is not None and "name" in spec.properties:
        body["name"] = world.bot_name
    if "stream" in spec.properties:
        body["stream"] = False
    if endpoint.name == "chat":
        body["additional_messages"] = [_edge_message(profile, _EDGE_TEXT)]
    return body


def _edge_message(profile: Profile, content: str) -> dict[str, Any]:
    return {"role": "user", "content": content, profile.messages.content_type_keys[0]: "text"}


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)[:40]


def _wrong_optional_edges(profile: Profile, spec: BodySpec, world: World) -> list[FuzzCase]:
    endpoint = spec.endpoint
    out: list[FuzzCase] = []
    cursor = 0
    for name in spec.optional:
        if name == "stream":
            values: list[Any] = list(STREAM_WRONG)
        else:
            wrong = _WRONG_ID_TYPES if name in endpoint.id_types else _WRONG_TYPES[spec.json_type(name)]
            while _TYPE_ORDER[cursor % len(_TYPE_ORDER)] not in wrong:
                cursor += 1
            values = [WRONG_OF_TYPE[_TYPE_ORDER[cursor % len(_TYPE_ORDER)]]]
            cursor += 1
        for value in values:
            body = {**_edge_base(profile, spec, world), name: value}
            change = f"{name}: {_shown(value)} where the table names {spec.json_type(name)}"
            not_judged = NOT_JUDGED["null"] if value is None else frozenset()
            case = _edge_case(endpoint, "wrong-optional", change, dump_json(body), not_judged)
            out.append(replace(case, stream_retyped=name == "stream"))
    return out


def sized_body(body: Mapping[str, Any], padded: str, size: int) -> bytes:
    """``body`` with ``padded`` (a string parameter, or an object of strings given a
    ``cz_padding`` key) filled with ASCII so the whole JSON text is ``size`` bytes."""
    shaped = dict(body)
    shaped[padded] = "" if not isinstance(body.get(padded, ""), dict) else {**body[padded], "cz_padding": ""}
    fill = size - len(dump_json(shaped))
    if fill < 0:
        raise ValueError(f"a body of {size} bytes cannot hold {padded}")
    if isinstance(shaped[padded], dict):
        shaped[padded] = {**shaped[padded], "cz_padding": "x" * fill}
    else:
        shaped[padded] = "x" * fill
    raw = dump_json(shaped)
    assert len(raw) == size, (len(raw), size)
    return raw


def deeply_nested(body: Mapping[str, Any], depth: int) -> bytes:
    """``body`` plus an unknown key holding arrays nested ``depth`` deep, written as
    text (the encoder would recurse as deep)."""
    head = dump_json(body)
    return head[:-1] + (b"," if len(head) > 2 else b"") + b'"x_cz_deep":' + b"[" * depth + b"]" * depth + b"}"


def _extreme_edges(profile: Profile, spec: BodySpec, world: World) -> list[FuzzCase]:
    endpoint = spec.endpoint
    padded, text_field = EDGE_CARRIERS[endpoint.name]
    base = _edge_base(profile, spec, world)
    if spec.json_type(padded) == "object":
        base[padded] = {}
    out = [
        _edge_case(endpoint, "extreme", f"a body of {size} bytes ({padded} padded)", sized_body(base, padded, size))
        for size in BODY_LADDER
    ]
    for label, text in UNICODE_EDGES:
        body = dict(base)
        if text_field == "message":
            body["additional_messages"] = [_edge_message(profile, text)]
        else:
            body[text_field] = text
        out.append(_edge_case(endpoint, "extreme", f"{text_field}: {label} {text[:24]!r}", dump_json(body)))
    out.append(_edge_case(endpoint, "extreme", f"x_cz_deep: arrays nested {DEEP_NESTING} deep", deeply_nested(base, DEEP_NESTING)))
    return out


def _edge_case(endpoint: Endpoint, kind: str, change: str, body: bytes, not_judged: frozenset[str] = frozenset()) -> FuzzCase:
    return FuzzCase(endpoint.name, kind, endpoint.method, endpoint.path, (), body, change, edge=True, not_judged=not_judged)


def edge_cases(profile: Profile, endpoint_name: str, kind: str, world: World) -> tuple[FuzzCase, ...]:
    """The always-run cases of one (endpoint, kind): none for most."""
    if kind == "wrong-optional" and endpoint_name in WRONG_OPTIONAL_EDGES:
        return tuple(_wrong_optional_edges(profile, body_spec(profile, endpoint_name), world))
    if kind == "extreme" and endpoint_name in EDGE_CARRIERS:
        return tuple(_extreme_edges(profile, body_spec(profile, endpoint_name), world))
    return ()


#: A world for counting edge cases (the count never depends on the ids).
_COUNTING_WORLD = World("1", "cz-conf-count", bot_name="cz-conf-count")


def edge_counts(profile: Profile) -> dict[tuple[str, str], int]:
    """How many always-run cases each (endpoint, kind) of the plan has."""
    return {
        (endpoint, kind): n
        for endpoint, kinds in PRIORITIES.items()
        for kind, _field in kinds
        if (n := len(edge_cases(profile, endpoint, kind, _COUNTING_WORLD)))
    }


# --------------------------------------------------------------------------- the plan

#: The kinds of each endpoint, most valuable first (a small --fuzz-examples runs the
#: first ones). Left out on purpose: valid/wrong-optional/extreme creates (each
#: accepted create makes a bot the spec cannot delete; the suite makes at most 5 per
#: run), a valid cancel (a cancel after the chat ended may answer 0 or an error,
#: READING "Cancel"), extreme publishes (no string parameter).
PRIORITIES: Mapping[str, tuple[tuple[str, str | None], ...]] = {
    "chat": (("valid", None), ("wrong-optional", None), ("extreme", None), ("not-json", None), ("wrong-type", None), ("missing", "bot_id"), ("missing", "user_id")),
    "run": (("valid", None), ("wrong-type", None), ("extreme", None), ("wrong-optional", None), ("not-json", None), ("missing", "agent_id"), ("missing", "query")),
    "cancel": (("wrong-type", None), ("not-json", None), ("extreme", None), ("missing", "conversation_id")),
    "create": (("not-json", None), ("wrong-type", None), ("missing", "name")),
    "update": (("valid", None), ("wrong-optional", None), ("extreme", None), ("wrong-type", None), ("not-json", None), ("missing", "bot_id")),
    "publish": (("valid", None), ("wrong-type", None), ("not-json", None), ("missing", "bot_id")),
    "online_info": (("valid", None), ("wrong-type", None), ("missing", "bot_id")),
    "bot_detail": (("valid", None), ("wrong-type", None)),
}

def fuzzes(profile: Profile) -> bool:
    """Whether the fuzz plan applies to ``profile``: it covers the endpoints of the page's
    request tables, which a profile without them does not have."""
    return set(PRIORITIES) <= {e.name for e in profile.endpoints}


#: Requests per endpoint against the embedded server, chosen so the fuzz module sends
#: per principal 10 chat, 4 management (the fuzz bot's create included) and 20 info
#: requests -- what the budget of 50 / 25 / 90 leaves after the other modules. No
#: create: its one kind that fits (a body that is no JSON) is the chat's and cancel's
#: too, and the management budget is the tightest.
EMBEDDED_EXAMPLES: Mapping[str, int] = {
    "chat": 5, "run": 3, "cancel": 2, "create": 0, "update": 2, "publish": 1, "online_info": 10, "bot_detail": 10,
}
#: At most this many drawn examples per endpoint against a remote target when
#: --fuzz-examples is not given (``budget_examples`` plans fewer when the rate budget
#: would make the run wait for more windows).
REMOTE_EXAMPLES = 25

#: What the first principal's other tests send per rate-limit group in one doc run, the
#: fuzz module aside (tests/test_budget.py counts them at the reference server's limiter
#: and fails when a module outgrows these).
OTHER_REQUESTS: Mapping[str, int] = {"chat": 40, "management": 20, "info": 20}
#: The share of a window's budget the plan spends: a count a little off (a profile's extra
#: request, a 429 waited out and sent again) must not cost a whole extra window.
PLANNED_SHARE = 5 / 6
#: How a group's spare requests are dealt among its fuzzed endpoints (in ``PRIORITIES``
#: order; the first get the remainders).
WEIGHTS: Mapping[str, int] = {
    "chat": 5, "run": 3, "cancel": 2, "create": 1, "update": 2, "publish": 1, "online_info": 1, "bot_detail": 1,
}
#: The requests the fuzz module sends before its drawn examples with the first principal:
#: its own bot's create (a management request).
FUZZ_SETUP: Mapping[str, int] = {"management": 1}


@dataclass(frozen=True)
class BudgetPlan:
    """Drawn examples per endpoint planned from the rate budget (``budget_examples``)."""

    examples: Mapping[str, int]
    #: Rate windows the first principal's requests need (1: no wait before the phase).
    windows: int
    #: The groups' budgets per window the plan read.
    budgets: Mapping[str, int]

    def describe(self) -> str:
        shown = ", ".join(f"{name} {n}" for name, n in self.examples.items())
        return (
            f"examples planned from the rate budget ({', '.join(f'{g}={n}' for g, n in self.budgets.items())} "
            f"per window; {self.windows} window{'s' if self.windows != 1 else ''}): {shown}"
        )


def budget_examples(profile: Profile, budgets: Mapping[str, int], *, cap: int = REMOTE_EXAMPLES) -> BudgetPlan:
    """How many drawn examples each fuzzed endpoint gets so that the first principal's
    requests need as few rate windows as the rest of the run needs anyway.

    Per group, the other modules need ``ceil(OTHER_REQUESTS / planned budget)`` windows
    (the planned budget is ``PLANNED_SHARE`` of the group's); the run needs the largest of
    those (at least one). Whatever those windows leave of a group's planned budget, after
    ``OTHER_REQUESTS`` and ``FUZZ_SETUP``, is dealt over the group's fuzzed endpoints by
    ``WEIGHTS``, each capped at ``cap``. An endpoint in no group is not paced: it gets
    ``cap``. Waiting for a window costs a whole window; an example costs milliseconds."""
    groups = {g.name: g for g in profile.ratelimits.groups}
    planned = {name: max(1, int(budgets.get(name, g.limit) * PLANNED_SHARE)) for name, g in groups.items()}
    windows = max(
        [1, *(-(-(OTHER_REQUESTS.get(name, 0) + FUZZ_SETUP.get(name, 0)) // planned[name]) for name in groups)]
    )
    examples: dict[str, int] = {}
    for name, group in groups.items():
        mine = [e for e in PRIORITIES if e in group.endpoints]
        spare = max(0, windows * planned[name] - OTHER_REQUESTS.get(name, 0) - FUZZ_SETUP.get(name, 0))
        weights = [WEIGHTS.get(e, 1) for e in mine]
        total = sum(weights) or 1
        shares = [min(cap, spare * w // total) for w in weights]
        left = min(spare, cap * sum(1 for w in weights if w)) - sum(shares)
        while left > 0:  # the remainders one by one, in priority order
            for i, weight in enumerate(weights):
                if left > 0 and weight and shares[i] < cap:
                    shares[i] += 1
                    left -= 1
        examples.update(zip(mine, shares, strict=True))
    ordered = {e: examples.get(e, cap) for e in PRIORITIES}
    return BudgetPlan(ordered, windows, {name: budgets.get(name, g.limit) for name, g in groups.items()})

#: Which requirement judges each kind; (kind, endpoint) or (kind, endpoint, field)
#: entries override the kind's default. A row whose requirement the catalogue lacks
#: is deferred by ``plan`` (left out of collection) rather than failing collection.
REQUIREMENTS: Mapping[tuple[str, ...], tuple[str, ...]] = {
    ("valid",): ("REQ-005",),
    ("valid", "run"): ("RUN-001",),  # READING: the run's answer is undocumented: an envelope or a stream, never 5xx
    ("missing", "chat", "bot_id"): ("CHAT-REQ-001",),
    ("missing", "chat", "user_id"): ("CHAT-REQ-003",),
    ("missing", "run", "agent_id"): ("RUN-002",),
    ("missing", "run", "query"): ("RUN-003",),
    ("missing", "cancel", "conversation_id"): ("CANCEL-002",),
    ("missing", "create", "name"): ("BOT-CREATE-002",),
    ("missing", "update", "bot_id"): ("BOT-UPDATE-002",),
    ("missing", "publish", "bot_id"): ("BOT-PUBLISH-002",),
    ("missing", "online_info", "bot_id"): ("BOT-ONLINE-002",),
    ("wrong-type",): ("REQ-002",),
    ("wrong-type", "chat"): ("CHAT-REQ-005",),
    ("wrong-type", "online_info"): ("BOT-ONLINE-008",),
    ("wrong-type", "bot_detail"): ("BOT-GET-002",),
    ("not-json",): ("REQ-001",),
    ("wrong-optional",): ("REQ-003", "REQ-004"),
    ("extreme",): ("REQ-003",),
}

@dataclass(frozen=True)
class Row:
    """One fuzz test: an endpoint, a kind, the requirements judging it, the examples."""

    endpoint: str
    kind: str
    field: str | None
    requirements: tuple[str, ...]
    #: Cases Hypothesis draws (0: the row runs its edge cases only).
    examples: int
    #: Always-run edge cases (``edge_cases``), sent before the drawn ones.
    edges: int = 0

    @property
    def requests(self) -> int:
        """Requests the row sends when no case fails (shrinking sends more)."""
        return self.examples + self.edges

    @property
    def id(self) -> str:
        return f"{self.endpoint}-{self.kind}" + (f"-{self.field}" if self.field else "")


def requirements_for(endpoint: str, kind: str, field: str | None) -> tuple[str, ...]:
    for key in ((kind, endpoint, field or ""), (kind, endpoint), (kind,)):
        if key in REQUIREMENTS:
            return REQUIREMENTS[key]
    raise KeyError(f"no requirement judges {kind!r} cases of {endpoint!r}")


def _deal(total: int, count: int) -> list[int]:
    """``total`` examples over ``count`` kinds in priority order (the first get more)."""
    base, extra = divmod(total, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def plan(
    per_endpoint: Mapping[str, int] | int,
    known: Callable[[str], bool],
    edges: Mapping[tuple[str, str], int] | None = None,
) -> tuple[list[Row], list[Row]]:
    """The fuzz rows to run and the rows deferred because ``known`` (the catalogue)
    lacks one of their requirements. ``per_endpoint``: drawn examples per endpoint;
    ``edges``: the always-run cases per (endpoint, kind) (``edge_counts``), which keep a
    row in the plan when no drawn example is left for it -- unless the endpoint gets 0
    (fuzzing it is off)."""
    rows: list[Row] = []
    deferred: list[Row] = []
    for endpoint, kinds in PRIORITIES.items():
        total = per_endpoint if isinstance(per_endpoint, int) else per_endpoint.get(endpoint, 0)
        for (kind, field), examples in zip(kinds, _deal(total, len(kinds)), strict=True):
            always = (edges or {}).get((endpoint, kind), 0) if total > 0 else 0
            if examples < 1 and always < 1:
                continue
            row = Row(endpoint, kind, field, requirements_for(endpoint, kind, field), examples, always)
            (rows if all(known(r) for r in row.requirements) else deferred).append(row)
    return rows, deferred
