"""The JSON Schemas in ``schemas/`` and their loader ``conformance.oracle.schemas``.

Every test is a table built from the schemas themselves (each example, each required
key, each documented field, each timestamp) or from the vendored spec page (its JSON
examples and its request tables), so a new schema or a new field is covered without a
new test. Deviations from the page are named data with the READING row that justifies
them, never scattered skips.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft7Validator

import conformance
from conformance.oracle import schemas
from conformance.oracle.schemas import (
    SchemaViolation,
    event_schema_for,
    load_index,
    load_schema,
    schema_names,
    validate,
)

PACKAGE_DIR = Path(conformance.__file__).resolve().parent
SPEC_TEXT = (PACKAGE_DIR / "spec" / "agent-api.zh.md").read_text(encoding="utf-8")
PROFILE = tomllib.loads((PACKAGE_DIR / "oracle" / "profiles" / "doc.toml").read_text(encoding="utf-8"))
REPO_PYPROJECT = PACKAGE_DIR.parent / "pyproject.toml"

JsonPath = tuple[str | int, ...]
# Every timestamp refers to this one definition (test_timestamps_use_the_shared_definition),
# which is how the milliseconds test finds them.
TIMESTAMP_REF = "#/definitions/timestamp"


# --------------------------------------------------------------------------- helpers


def ptr(path: JsonPath) -> str:
    """The pointer format of ``SchemaViolation.instance_path`` (root shown as ``/``)."""
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


def resolve(root: dict[str, Any], sub: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref``s (the only kind the schemas use, see test_refs_are_local)."""
    while "$ref" in sub:
        sub = root["definitions"][sub["$ref"].removeprefix("#/definitions/")]
    return sub


@dataclass(frozen=True)
class Node:
    """A position in an example together with the (resolved) schema that governs it."""

    path: JsonPath
    schema: dict[str, Any]
    value: Any
    documented: bool  # reached through ``properties`` or ``items``, not ``additionalProperties``


def walk(root: dict[str, Any], sub: dict[str, Any], value: Any, path: JsonPath = (), documented: bool = True) -> Iterator[Node]:
    sub = resolve(root, sub)
    yield Node(path, sub, value, documented)
    if isinstance(value, dict):
        for key, child in value.items():
            if key in sub.get("properties", {}):
                yield from walk(root, sub["properties"][key], child, (*path, key), True)
            elif isinstance(sub.get("additionalProperties"), dict):
                yield from walk(root, sub["additionalProperties"], child, (*path, key), False)
    elif isinstance(value, list) and isinstance(sub.get("items"), dict):
        for index, child in enumerate(value):
            yield from walk(root, sub["items"], child, (*path, index), True)


def get_at(instance: Any, path: JsonPath) -> Any:
    for part in path:
        instance = instance[part]
    return instance


def with_value(instance: Any, path: JsonPath, value: Any) -> Any:
    mutated = copy.deepcopy(instance)
    get_at(mutated, path[:-1])[path[-1]] = value
    return mutated


def without_keys(instance: Any, path: JsonPath, keys: tuple[str, ...]) -> Any:
    mutated = copy.deepcopy(instance)
    target = get_at(mutated, path)
    for key in keys:
        del target[key]
    return mutated


def reordered(value: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# One value of each JSON type, to put where the schema's ``type`` does not allow it.
VALUES_BY_TYPE: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "integer": 7,
    "number": 1.5,
    "string": "7",
    "array": [],
    "object": {},
}


def allowed_types(schema: dict[str, Any]) -> set[str]:
    declared = schema["type"]
    types = {declared} if isinstance(declared, str) else set(declared)
    if "number" in types:
        types.add("integer")  # JSON Schema: every integer is a number
    return types


def assert_violation(violations: list[SchemaViolation], path: JsonPath, keyword: str) -> SchemaViolation:
    """The violation at ``path`` with ``keyword``; fails listing what was found instead."""
    found = [v for v in violations if v.instance_path == ptr(path) and v.keyword == keyword]
    assert found, f"expected a {keyword!r} violation at {ptr(path)}; got: {[str(v) for v in violations] or 'none'}"
    violation = found[0]
    text = str(violation)
    # The requirement on failure output: instance path, keyword and value.
    assert violation.instance_path in text and repr(keyword) in text and violation.value in text, text
    return violation


# --------------------------------------------------------------------------- tables

NAMES = schema_names()
INDEX = load_index()
REQUEST_NAMES = [n for n in NAMES if INDEX["schemas"][n]["role"] == "request"]


def examples_of(name: str) -> list[Any]:
    examples: list[Any] = load_schema(name)["examples"]
    return examples


def example_params() -> list[Any]:
    return [pytest.param(name, i, id=f"{name}[{i}]") for name in NAMES for i in range(len(examples_of(name)))]


def nodes(name: str, index: int) -> Iterator[Node]:
    schema = load_schema(name)
    return walk(schema, schema, schema["examples"][index])


def required_removal_params() -> list[Any]:
    params = []
    for name in NAMES:
        for i in range(len(examples_of(name))):
            for node in nodes(name, i):
                if not isinstance(node.value, dict):
                    continue
                for key in node.schema.get("required", []):
                    if key in node.value:
                        params.append(pytest.param(name, i, node.path, (key,), "required", id=f"{name}[{i}]{ptr(node.path)}-{key}"))
                # "Either key" groups (READING 'additional_messages[].content_type'): an
                # anyOf of required-only branches; removing every present alternative
                # must fail.
                branches = node.schema.get("anyOf", [])
                if branches and all(set(b) == {"required"} for b in branches):
                    group = tuple(k for b in branches for k in b["required"] if k in node.value)
                    params.append(pytest.param(name, i, node.path, group, "anyOf", id=f"{name}[{i}]{ptr(node.path)}-{'+'.join(group)}"))
    return params


def typed_field_params() -> list[Any]:
    return [
        pytest.param(name, i, node.path, id=f"{name}[{i}]{ptr(node.path)}")
        for name in NAMES
        for i in range(len(examples_of(name)))
        for node in nodes(name, i)
        if node.path and node.documented and "type" in node.schema
    ]


def timestamp_params() -> list[Any]:
    params = []
    for name in NAMES:
        schema = load_schema(name)
        for i, example in enumerate(schema["examples"]):
            for node in walk(schema, schema, example):
                if isinstance(node.value, dict):
                    for key, sub in node.schema.get("properties", {}).items():
                        if key in node.value and sub.get("$ref") == TIMESTAMP_REF:
                            params.append(pytest.param(name, i, (*node.path, key), id=f"{name}[{i}]{ptr((*node.path, key))}"))
    return params


def object_level_params() -> list[Any]:
    return [
        pytest.param(name, i, node.path, id=f"{name}[{i}]{ptr(node.path)}")
        for name in NAMES
        for i in range(len(examples_of(name)))
        for node in nodes(name, i)
        if isinstance(node.value, dict)
    ]


# Documented fields that carry no ``type`` on purpose, with the reading that says so.
UNTYPED_FIELDS: dict[tuple[str, str], str] = {
    ("chat_cancel.response", "data"): "READING 'Success msg, data': the cancel example has no data; any value is accepted",
    ("error.response", "data"): "READING 'Error envelope': data: null SHOULD (checked in code), absent accepted",
    ("event.conversation_error", "error"): "only 「data.error」 in the JavaScript client; shape not shown",
}


# --------------------------------------------------------------------------- examples and mutations


@pytest.mark.parametrize(("name", "index"), example_params())
def test_example_validates(name: str, index: int) -> None:
    example = examples_of(name)[index]
    assert validate(name, example) == []


@pytest.mark.parametrize(("name", "index"), example_params())
def test_example_with_keys_reordered_validates(name: str, index: int) -> None:
    # Through JSON text, so the reordering reaches the validator as a server would send it.
    text = json.dumps(reordered(examples_of(name)[index]), ensure_ascii=False)
    assert validate(name, json.loads(text)) == []


@pytest.mark.parametrize(("name", "index", "path", "keys", "keyword"), required_removal_params())
def test_example_without_required_key_is_rejected(name: str, index: int, path: JsonPath, keys: tuple[str, ...], keyword: str) -> None:
    mutated = without_keys(examples_of(name)[index], path, keys)
    assert_violation(validate(name, mutated), path, keyword)


@pytest.mark.parametrize(("name", "index", "path"), typed_field_params())
def test_field_of_wrong_json_type_is_rejected(name: str, index: int, path: JsonPath) -> None:
    schema = load_schema(name)
    node = next(n for n in walk(schema, schema, schema["examples"][index]) if n.path == path)
    wrong = [v for t, v in VALUES_BY_TYPE.items() if t not in allowed_types(node.schema)]
    assert wrong, f"{name} {ptr(path)} accepts every JSON type; give it a type or list it in UNTYPED_FIELDS"
    for value in wrong:
        assert_violation(validate(name, with_value(schema["examples"][index], path, value)), path, "type")


@pytest.mark.parametrize(("name", "index", "path"), timestamp_params())
def test_timestamp_in_milliseconds_is_rejected(name: str, index: int, path: JsonPath) -> None:
    example = examples_of(name)[index]
    millis = get_at(example, path) * 1000
    violation = assert_violation(validate(name, with_value(example, path, millis)), path, "maximum")
    assert violation.value == str(millis)  # exact digits: no float on the way


@pytest.mark.parametrize(("name", "index", "path"), object_level_params())
def test_extra_unknown_key_is_accepted(name: str, index: int, path: JsonPath) -> None:
    # READING 'Levels': never fail a server for extra JSON keys, in requests or responses.
    example = examples_of(name)[index]
    schema = load_schema(name)
    node = next(n for n in walk(schema, schema, example) if n.path == path)
    # A string-valued map (custom_variables, ...) takes a string; other objects any value.
    extra: Any = "extra" if isinstance(node.schema.get("additionalProperties"), dict) else {"nested": [1, "two", None]}
    mutated = copy.deepcopy(example)
    get_at(mutated, path)["x_conformance_unknown_key"] = extra
    assert validate(name, mutated) == []


# --------------------------------------------------------------------------- the schemas themselves


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_draft_07(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(schema)
    assert "$id" not in schema  # no absolute id: the files are read from wherever they are installed
    assert schema["title"] and schema["description"] and schema["examples"]


def all_subschemas(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    yield where, node
    if isinstance(node, dict):
        for key, child in node.items():
            if key != "examples":
                yield from all_subschemas(child, f"{where}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from all_subschemas(child, f"{where}/{index}")


@pytest.mark.parametrize("name", NAMES)
def test_refs_are_local_and_resolve(name: str) -> None:
    # hypothesis-jsonschema resolves local definitions only, and a recursive $ref would
    # make generation impossible: every $ref points into this file's definitions.
    schema = load_schema(name)
    for where, node in all_subschemas(schema):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            target = node["$ref"]
            assert target.startswith("#/definitions/"), f"{name}{where}: non-local $ref {target}"
            definition = schema["definitions"][target.removeprefix("#/definitions/")]
            assert target not in json.dumps(definition), f"{name}{where}: recursive $ref {target}"


@pytest.mark.parametrize("name", NAMES)
def test_no_object_forbids_unknown_keys(name: str) -> None:
    # READING 'Levels': extra keys are never a failure, in requests or responses.
    for where, node in all_subschemas(load_schema(name)):
        if isinstance(node, dict) and "properties" in node:
            assert node.get("additionalProperties", True) is not False, f"{name}{where}"


@pytest.mark.parametrize("name", NAMES)
def test_numbers_in_schema_are_integers(name: str) -> None:
    # Bounds compared with ids and timestamps beyond 2**53 must not be floats.
    for where, node in all_subschemas(load_schema(name)):
        assert not isinstance(node, float), f"{name}{where}: float {node!r}"


@pytest.mark.parametrize("name", NAMES)
def test_timestamps_use_the_shared_definition(name: str) -> None:
    # test_timestamp_in_milliseconds_is_rejected finds timestamps by this $ref.
    for where, node in all_subschemas(load_schema(name)):
        if isinstance(node, dict) and isinstance(node.get("properties"), dict):
            for key, sub in node["properties"].items():
                if key.endswith("_at"):
                    assert sub == {"$ref": TIMESTAMP_REF}, f"{name}{where}/properties/{key}"


@pytest.mark.parametrize("name", NAMES)
def test_every_documented_field_has_a_type(name: str) -> None:
    schema = load_schema(name)

    def props(sub: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        sub = resolve(schema, sub)
        for key, child in sub.get("properties", {}).items():
            yield f"{prefix}{key}", resolve(schema, child)
            yield from props(child, f"{prefix}{key}.")
        if isinstance(sub.get("items"), dict):
            yield from props(sub["items"], f"{prefix}[].")

    untyped = {field for field, sub in props(schema, "") if "type" not in sub}
    assert untyped == {field for (owner, field) in UNTYPED_FIELDS if owner == name}


def test_shared_definitions_are_identical_in_every_file() -> None:
    # Each file is standalone (hypothesis-jsonschema needs local refs), so shared
    # definitions are copies; this keeps the copies from drifting apart.
    seen: dict[str, tuple[str, Any]] = {}
    for name in NAMES:
        for key, definition in load_schema(name).get("definitions", {}).items():
            first = seen.setdefault(key, (name, definition))
            assert definition == first[1], f"definition {key!r} differs between {first[0]} and {name}"


def spec_normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("name", NAMES)
def test_quotes_in_descriptions_are_verbatim_from_the_page(name: str) -> None:
    spec = spec_normalised(SPEC_TEXT)
    quotes = [q for _, node in all_subschemas(load_schema(name)) if isinstance(node, str) for q in re.findall(r"「(.+?)」", node)]
    missing = [q for q in quotes if spec_normalised(q) not in spec]
    assert not missing, f"{name}: not on the page: {missing}"


# --------------------------------------------------------------------------- the schemas against the page


def page_bodies() -> list[Any]:
    """Every JSON body the page shows: ``json`` code blocks and SSE ``data:`` lines."""
    decoder = json.JSONDecoder()
    bodies = []
    lines = SPEC_TEXT.splitlines(keepends=True)
    offset = 0
    for number, line in enumerate(lines):
        if line.strip() == "json" and number + 1 < len(lines):
            bodies.append(decoder.raw_decode(SPEC_TEXT, offset + len(line))[0])
        elif line.startswith("data: {"):
            bodies.append(decoder.raw_decode(line.removeprefix("data: "))[0])
        offset += len(line)
    return bodies


def ordered_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # key order kept: "verbatim" means the order too


# Page bodies that READING rules invalid; each must be rejected for the reasons given.
PAGE_BODIES_READING_REJECTS: list[Any] = [
    pytest.param(
        "chat.request",
        {"bot_id": 123456789, "query": "请分析这张图片", "additional_messages": [{"role": "user", "type": "image", "content": "https://example.com/image.jpg"}]},
        {("/", "required"), ("/bot_id", "type")},
        id="multimodal-example",  # READING 'Id types' and 'query and user_id in /v3/chat'
    ),
]


def test_every_page_body_is_an_example_or_a_named_rejection() -> None:
    embedded = {ordered_text(e) for name in NAMES for e in examples_of(name)}
    rejected = {ordered_text(p.values[1]) for p in PAGE_BODIES_READING_REJECTS}
    bodies = page_bodies()
    assert len(bodies) >= 20, "the page parser found too few bodies"
    leftover = [b for b in bodies if ordered_text(b) not in embedded | rejected]
    assert not leftover, f"page bodies in no schema's examples: {leftover}"


@pytest.mark.parametrize(("name", "body", "expected"), PAGE_BODIES_READING_REJECTS)
def test_page_body_that_reading_rules_out_is_rejected(name: str, body: Any, expected: set[tuple[str, str]]) -> None:
    assert ordered_text(body) in {ordered_text(b) for b in page_bodies()}
    assert {(v.instance_path, v.keyword) for v in validate(name, body)} == expected


@pytest.mark.parametrize("name", NAMES)
def test_description_says_where_the_examples_come_from(name: str) -> None:
    page = {ordered_text(b) for b in page_bodies()}
    from_page = any(ordered_text(e) in page for e in examples_of(name))
    description = load_schema(name)["description"]
    assert ("verbatim" in description) == from_page, description
    assert ("The page shows no" in description) == (not from_page), description


# Response and event keys the page shows but READING lets a server omit.
OPTIONAL_ON_PAGE: dict[tuple[str, str], dict[str, str]] = {
    ("bot_get.response", "/data"): {"tools": "READING 'Fields the API cannot set'", "model": "READING 'Fields the API cannot set'"},
    ("bot_online_info.response", "/data"): {"model": "READING 'Fields the API cannot set'"},
    ("error.response", "/"): {"data": "READING 'Error envelope': data: null SHOULD, absent accepted"},
    **{
        (name, "/"): {"event": "READING 'event key in SSE payloads': expected (SHOULD) only"}
        for name in NAMES
        if INDEX["schemas"][name]["role"] == "event"
    },
}


def shown_keys(value: Any, path: str, acc: dict[str, set[str]]) -> dict[str, set[str]]:
    """Keys at each object level of a page body; array items merge by intersection."""
    if isinstance(value, dict):
        acc[path] = acc[path] & set(value) if path in acc else set(value)
        for key, child in value.items():
            shown_keys(child, f"{path.rstrip('/')}/{key}", acc)
    elif isinstance(value, list):
        for child in value:
            shown_keys(child, f"{path.rstrip('/')}/*", acc)
    return acc


def schema_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    sub = resolve(schema, schema)
    for part in [p for p in path.split("/") if p]:
        sub = resolve(schema, sub["items"] if part == "*" else sub["properties"][part])
    return sub


@pytest.mark.parametrize("name", [n for n in NAMES if INDEX["schemas"][n]["role"] != "request"])
def test_response_requires_what_the_page_shows(name: str) -> None:
    schema = load_schema(name)
    page = {ordered_text(b) for b in page_bodies()}
    shown = [e for e in schema["examples"] if ordered_text(e) in page]
    if not shown:
        # READING 'Payload of chat.created / in_progress / failed': require no more than
        # the page shows -- here, nothing.
        assert not any(isinstance(n, dict) and n.get("required") for _, n in all_subschemas(schema)), name
        return
    for path, keys in shown_keys(shown[0], "/", {}).items():
        sub = schema_at(schema, path)
        optional = set(OPTIONAL_ON_PAGE.get((name, path), {}))
        assert set(sub.get("required", [])) == keys - optional, f"{name} {path}"
        assert keys <= set(sub.get("properties", {})), f"{name} {path}: shown but not typed: {keys - set(sub['properties'])}"


def request_tables(endpoint: str) -> dict[str, list[tuple[str, str, bool]]]:
    """The page's parameter tables for ``endpoint``: ``{"": top-level rows, "<array>": its item rows}``,
    each row (name, type, required)."""
    method, path = endpoint.split(" ")
    start = re.search(rf"接口地址\s*{method} {re.escape(path)}(?![A-Za-z0-9_/])", SPEC_TEXT)
    assert start, f"{endpoint} not on the page"
    section = SPEC_TEXT[start.end() :].split("接口地址")[0]
    tables: dict[str, list[tuple[str, str, bool]]] = {}
    owner = ""
    for line in section.splitlines():
        heading = re.search(r"\((\w+)\)\s*$", line)
        if heading and not line.startswith("|"):
            owner = heading.group(1)
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and cells[2] in ("是", "否"):
            tables.setdefault(owner, []).append((cells[0], cells[1], cells[2] == "是"))
    return tables


TABLE_TYPES = {"string": "string", "int64": "integer", "boolean": "boolean", "array": "array", "object": "object"}

# Where a request schema differs from the page's table, and the READING row why:
# properties the table does not list, and 必填 rows that are not in ``required``.
EXTRA_PROPERTIES: dict[tuple[str, str, str], str] = {
    ("chat.request", "", "conversation_id"): "READING 'Conversation id in a chat request'",
    ("chat.request", "additional_messages", "type"): "READING 'additional_messages[].content_type': either key",
}
REQUIRED_ROWS_NOT_REQUIRED: dict[tuple[str, str, str], str] = {
    ("chat.request", "additional_messages", "content_type"): "same row: an anyOf with `type` instead",
}


@pytest.mark.parametrize("name", REQUEST_NAMES)
def test_request_schema_follows_the_page_table(name: str) -> None:
    schema = load_schema(name)
    (endpoint,) = INDEX["schemas"][name]["endpoints"]
    tables = request_tables(endpoint)
    assert "" in tables, f"no parameter table for {endpoint}"
    for owner, rows in tables.items():
        sub = resolve(schema, schema)
        if owner:
            sub = resolve(schema, resolve(schema, sub["properties"][owner])["items"])
        props = {k: resolve(schema, v) for k, v in sub["properties"].items()}
        extra = {k for (n, o, k) in EXTRA_PROPERTIES if (n, o) == (name, owner)}
        assert set(props) == {row[0] for row in rows} | extra, f"{name} {owner or '/'}"
        for row_name, row_type, _ in rows:
            assert props[row_name]["type"] == TABLE_TYPES[row_type], f"{name} {owner}/{row_name}"
        not_required = {k for (n, o, k) in REQUIRED_ROWS_NOT_REQUIRED if (n, o) == (name, owner)}
        assert set(sub["required"]) == {r[0] for r in rows if r[2]} - not_required, f"{name} {owner or '/'}"


# --------------------------------------------------------------------------- index.json


def test_index_covers_every_file_and_nothing_else() -> None:
    assert set(INDEX["schemas"]) == set(NAMES)
    files = {p.name for p in schemas.schema_dir().glob("*.json")}
    assert files == {f"{n}.json" for n in NAMES} | {"index.json"}


@pytest.mark.parametrize("name", NAMES)
def test_index_entry_is_well_formed(name: str) -> None:
    entry = INDEX["schemas"][name]
    kind = name.rsplit(".", 1)[-1] if not name.startswith("event.") else "event"
    assert entry["role"] == {"request": "request", "response": "response", "event": "event"}[kind]
    assert (entry["role"] == "response") == ("outcome" in entry)
    assert entry["endpoints"], name
    for endpoint in entry["endpoints"]:
        method, path = endpoint.split(" ")
        assert re.search(rf"{method}\s*{re.escape(path)}(?![A-Za-z0-9_/])", SPEC_TEXT), f"{endpoint} not on the page"
    assert bool(entry["events"]) == (entry["role"] == "event")


@pytest.mark.parametrize("name", [n for n in NAMES if INDEX["schemas"][n]["role"] == "event"])
def test_event_schema_pins_the_event_key_to_its_name(name: str) -> None:
    # READING 'event key in SSE payloads': when present it MUST equal the SSE name.
    (event,) = INDEX["schemas"][name]["events"]
    assert load_schema(name)["properties"]["event"]["const"] == event
    assert event_schema_for(event) == name


def profile_event_names() -> set[str]:
    stream = PROFILE["stream"]
    keys = ("start_events", "delta_events", "message_completed_events", "chat_completed_events", "chat_failed_events", "error_events", "terminal_events", "events_with_event_key")
    return {event for key in keys for event in stream[key]}


@pytest.mark.parametrize("event", sorted(profile_event_names()))
def test_every_profile_event_has_a_schema_or_a_reason(event: str) -> None:
    in_schema = event_schema_for(event) is not None
    assert in_schema != (event in INDEX["events_without_schema"]), event


def test_unknown_event_has_no_schema() -> None:
    # READING 'Levels': unknown event types are never a failure, so nothing to validate.
    assert event_schema_for("conversation.audio.delta") is None


# --------------------------------------------------------------------------- loader API


def test_unknown_schema_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown schema 'chat\.reqest'; known: .*chat\.request"):
        load_schema("chat.reqest")


def test_load_schema_returns_a_copy() -> None:
    load_schema("chat.request")["required"].append("mutated")
    assert "mutated" not in load_schema("chat.request")["required"]
    assert validate("chat.request", examples_of("chat.request")[0]) == []


def test_schema_dir_is_the_repo_folder_in_a_source_tree() -> None:
    assert schemas.schema_dir() == PACKAGE_DIR.parent / "schemas"


def test_violation_prints_path_keyword_and_value() -> None:
    body = with_value(examples_of("chat.response")[0], ("data", "created_at"), 1704067200000)
    (violation,) = validate("chat.response", body)
    assert violation == SchemaViolation(
        instance_path="/data/created_at",
        keyword="maximum",
        value="1704067200000",
        message="1704067200000 is greater than the maximum of 4102444800",
        schema_path="/properties/data/properties/created_at/maximum",
    )
    assert str(violation) == "at /data/created_at: 'maximum' failed — 1704067200000 is greater than the maximum of 4102444800"


def test_violation_appends_a_value_the_message_does_not_show() -> None:
    body = without_keys(examples_of("chat.request")[0], (), ("user_id",))
    (violation,) = validate("chat.request", body)
    assert str(violation).startswith("at /: 'required' failed — 'user_id' is a required property (value: {'bot_id': '123456789'")
    assert len(violation.value) <= 120  # a whole body is truncated


def test_violations_are_sorted_by_instance_path() -> None:
    body = {"msg": 1, "data": {"version": 0, "published_at": 1, "bot_id": -1, "status": "online"}, "code": 1}
    found = [(v.instance_path, v.keyword) for v in validate("draftbot_publish.response", body)]
    assert found == [("/code", "const"), ("/data/bot_id", "minimum"), ("/data/published_at", "minimum"), ("/data/version", "minimum"), ("/msg", "type")]


def test_array_indexes_sort_numerically() -> None:
    messages = [{"role": "user", "content": "hi", "content_type": "text"} for _ in range(11)]
    messages[2]["role"] = messages[10]["role"] = "system"
    body = {"bot_id": "1", "user_id": "u", "additional_messages": messages}
    paths = [v.instance_path for v in validate("chat.request", body)]
    assert paths == ["/additional_messages/2/role", "/additional_messages/10/role"]


@pytest.mark.parametrize(
    "bot_id",
    [
        pytest.param(2**63 - 1, id="int64-max"),
        pytest.param(2**53 + 1, id="beyond-float"),
        pytest.param("9007199254740993", id="decimal-string-beyond-float"),
    ],
)
def test_big_ids_survive(bot_id: int | str) -> None:
    text = json.dumps({"code": 0, "msg": "success", "data": {"bot_id": bot_id, "version": 1, "status": "online", "published_at": 1704067400}})
    assert validate("draftbot_publish.response", json.loads(text)) == []


def test_big_timestamp_is_reported_with_exact_digits() -> None:
    stamp = 2**60 + 1  # 1152921504606846977; a float would print ...6976
    (violation,) = validate("chat.response", with_value(examples_of("chat.response")[0], ("data", "created_at"), stamp))
    assert violation.value == "1152921504606846977"


def test_module_is_not_shadowed_by_a_package_of_the_same_name() -> None:
    # A wheel holding both conformance/oracle/schemas.py and a package conformance.oracle.schemas
    # imports the package (directories win), hiding this module. Guard the layout.
    declared = tomllib.loads(REPO_PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    modules = {f"conformance.{p.stem}" for p in PACKAGE_DIR.glob("*.py")}
    assert not set(declared) & modules, f"packages that shadow modules: {sorted(set(declared) & modules)}"


# --------------------------------------------------------------------------- generation


@cache
def strategy_for(name: str) -> st.SearchStrategy[Any]:
    return from_schema(load_schema(name))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=5, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_hypothesis_generates_valid_instances(name: str, data: st.DataObject) -> None:
    instance = data.draw(strategy_for(name))
    assert validate(name, instance) == []
