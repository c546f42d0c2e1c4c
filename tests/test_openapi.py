"""The OpenAPI 3.2 export: valid, complete, and saying what the suite's schemas and profile say."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conformance.oracle.openapi import (
    ID_DIGITS_PATTERN,
    JSON_TEXT_PATTERN,
    LINKS,
    OPENAPI_VERSION,
    REQUEST_NARROWING,
    SCHEMATHESIS_CONFIG,
    TEXT_PATTERN,
    OpenApiError,
    _translate,
    build_openapi,
    link_name,
)
from conformance.oracle.profile import load_profile
from conformance.oracle.schemas import load_index, load_schema, schema_names

DOC = build_openapi()
INDEX = load_index()
PROFILE = load_profile("doc")


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_the_document_is_valid_openapi_3_2() -> None:
    assert DOC["openapi"] == OPENAPI_VERSION == "3.2.0"
    validate(DOC)  # openapi-spec-validator (its 3.2 schema, from the version); raises on any violation


def test_every_reference_resolves_inside_the_document() -> None:
    components = DOC["components"]["schemas"]
    targets = set(refs(DOC))
    assert targets, "the document references its components"
    assert {t.removeprefix("#/components/schemas/") for t in targets} <= set(components)
    assert all(t.startswith("#/components/schemas/") for t in targets)


def test_every_schema_and_every_endpoint_is_there() -> None:
    assert set(INDEX["schemas"]) <= set(DOC["components"]["schemas"])
    operations = {(method.upper(), path) for path, item in DOC["paths"].items() for method in item}
    assert operations == {(e.method, e.path.replace(":bot_id", "{bot_id}")) for e in PROFILE.endpoints}


def test_parameters_auth_and_errors_come_from_the_profile() -> None:
    detail = DOC["paths"]["/v1/bots/{bot_id}"]["get"]
    assert detail["parameters"] == [{"name": "bot_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_DIGITS_PATTERN}}]
    # READING "Auth per endpoint": either mode alone authenticates; the endpoint's own first.
    assert detail["security"] == [{"openapi": []}, {"webapi": []}]
    online = DOC["paths"]["/v1/bot/get_online_info"]["get"]
    assert [(p["name"], p["in"]) for p in online["parameters"]] == [("bot_id", "query")]
    create = DOC["paths"]["/api/draftbot/create"]["post"]
    assert create["security"] == [{"webapi": []}, {"openapi": []}]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/draftbot_create.request"}
    assert {code for code in create["responses"]} == {"200", *(str(c.code) for c in PROFILE.envelope.error_codes)}
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["openapi"]["scheme"] == "bearer" and schemes["webapi"] == {
        "type": "apiKey", "in": "cookie", "name": "session_key", "description": "Session key (WebAPI endpoints)"
    }


def test_the_chat_stream_lists_every_event_payload() -> None:
    stream = DOC["paths"]["/v3/chat"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    documented = {e for entry in INDEX["schemas"].values() for e in entry["events"]} | set(INDEX["events_without_schema"])
    assert set(stream["x-sse-events"]) == documented
    assert stream["x-sse-events"]["conversation.message.delta"] == {"$ref": "#/components/schemas/event.message_delta"}


def test_each_event_of_the_stream_is_described_by_its_payload_schema() -> None:
    """OpenAPI 3.2: ``itemSchema`` is one event; its data is JSON under the event's schema."""
    stream = DOC["paths"]["/v3/chat"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    assert "schema" not in stream  # in 3.2 that would be the whole stream
    item = stream["itemSchema"]
    assert set(item["properties"]) == {"event", "data", "id", "retry"} and item["required"] == ["data"]
    by_event = {rule["if"]["properties"]["event"]["const"]: rule["then"]["properties"]["data"] for rule in item["allOf"]}
    with_schema = {e: name for name, entry in INDEX["schemas"].items() for e in entry["events"]}
    assert by_event == {
        e: {"contentMediaType": "application/json", "contentSchema": {"$ref": f"#/components/schemas/{name}"}}
        for e, name in with_schema.items()
    }
    # Unknown event names and `done` are legal (READING "Levels", "Terminal event").
    validator = Draft202012Validator(item, registry=REGISTRY)
    assert validator.is_valid({"event": "done", "data": "[DONE]"})
    assert validator.is_valid({"event": "x-unknown", "data": "anything"})
    assert not validator.is_valid({"event": "conversation.message.delta"})  # no data


def test_every_link_names_a_real_operation_and_parameter() -> None:
    names = {e.name: e for e in PROFILE.endpoints}
    seen = []
    for path, item in DOC["paths"].items():
        for operation in item.values():
            for name, link in operation["responses"]["200"].get("links", {}).items():
                target = names[link["operationId"]]
                given = link.get("requestBody") or {k.split(".", 1)[1]: v for k, v in link["parameters"].items()}
                linked = [k for k, v in given.items() if isinstance(v, str) and v.startswith("$response.body#")]
                assert len(linked) == 1 and linked[0] in target.required, (path, name)
                values = {k: v for k, v in given.items() if k != linked[0]}
                seen.append((operation["operationId"], given[linked[0]].removeprefix("$response.body#"), target.name, linked[0], name))
                assert name == link_name(target.name, linked[0], {k: values[k] for k in values if k == "stream"})
    assert sorted(row[:4] for row in seen) == sorted(row[:4] for row in LINKS)


def test_a_whole_body_link_sends_a_request_the_exported_schema_accepts() -> None:
    links = DOC["paths"]["/api/draftbot/publish"]["post"]["responses"]["200"]["links"]
    for stream in (False, True):
        link = links[link_name("chat", "bot_id", {"stream": stream})]
        assert link["x-schemathesis"] == {"merge_body": False}
        body = {**link["requestBody"], "bot_id": "7493710240598375123"}  # the id as the chat table sends it
        assert body["stream"] is stream and not {"ConversationID", "conversation_id"} & set(body)
        assert exported("chat.request").is_valid(body)


# --------------------------------------------------------------------------- what a server must accept


def test_the_narrowing_rules_are_written_in_the_document() -> None:
    description = DOC["info"]["description"]
    assert all(f"- {name}: {why}" in description for name, why in REQUEST_NARROWING.items())
    assert "no 405" in description


@pytest.mark.parametrize(
    ("schema", "instance", "valid"),
    [
        pytest.param("chat.request", {"bot_id": "12", "user_id": "u"}, True, id="chat-minimal"),
        pytest.param("chat.request", {"bot_id": "0", "user_id": "u"}, False, id="chat-bot_id-zero"),
        pytest.param("chat.request", {"bot_id": "012", "user_id": "u"}, False, id="chat-bot_id-leading-zero"),
        pytest.param("chat.request", {"bot_id": "12", "user_id": " "}, False, id="chat-user_id-blank"),
        pytest.param("chat.request", {"bot_id": "12", "user_id": "a\x00"}, False, id="chat-user_id-nul"),
        pytest.param("chat.request", {"bot_id": "12", "user_id": "用户"}, True, id="chat-user_id-cjk"),
        pytest.param("chat.request", {"bot_id": "12", "user_id": "u", "x": "a\x00"}, False, id="unknown-key-nul-value"),
        pytest.param("chat.request", {"bot_id": "12", "user_id": "u", "a\x00": 1}, False, id="unknown-key-nul-name"),
        pytest.param("chat.request", {"bot_id": "12", "user_id": "u", "x": {"deep": 1}}, False, id="unknown-key-object"),
        pytest.param("chat.request", {"bot_id": "12", "user_id": "u", "x": None}, True, id="unknown-key-null"),
        pytest.param("chat.request", {"bot_id": "12", "user_id": "u", "ConversationID": "c", "conversation_id": "c"}, False, id="two-conversation-forms"),
        pytest.param("chat.request", {"bot_id": "12", "user_id": "u", "conversation_id": "c"}, True, id="one-conversation-form"),
        pytest.param("conversation_chat.request", {"agent_id": 1, "query": ""}, False, id="run-query-empty"),
        pytest.param("conversation_chat.request", {"agent_id": 0, "query": "q"}, False, id="run-agent_id-zero"),
        pytest.param("conversation_chat.request", {"agent_id": 1302.0, "query": "q"}, True, id="run-agent_id-integral-float"),
        pytest.param("conversation_chat.request", {"agent_id": 1302.5, "query": "q"}, False, id="run-agent_id-fraction"),
        pytest.param("draftbot_create.request", {"name": "  "}, False, id="create-name-blank"),
    ],
)
def test_request_schemas_say_what_every_server_must_accept(schema: str, instance: Any, valid: bool) -> None:
    assert exported(schema).is_valid(instance) is valid


def message(**fields: Any) -> dict[str, Any]:
    return {"bot_id": "12", "user_id": "u", "additional_messages": [{"role": "user", **fields}]}


@pytest.mark.parametrize(
    ("fields", "valid"),
    [
        pytest.param({"content": "hi", "content_type": "text"}, True, id="text"),
        pytest.param({"content": "hi", "type": "text"}, True, id="text-by-type"),
        pytest.param({"content": "hi", "type": "text", "content_type": "text"}, False, id="both-keys"),
        pytest.param({"content": "https://example.com/a.png", "content_type": "image"}, True, id="image"),
        pytest.param({"content": '{"k":"v"}', "content_type": "object_string"}, True, id="object-string"),
        pytest.param({"content": "{not json", "content_type": "object_string"}, False, id="object-string-not-json"),
        pytest.param({"content": "hi", "content_type": "card"}, False, id="card-is-should-only"),
        pytest.param({"content": "hi", "content_type": "file"}, False, id="file-has-no-requirement"),
        pytest.param({"content": " ", "content_type": "text"}, False, id="blank-text"),
    ],
)
def test_a_message_has_one_accepted_content_type(fields: dict[str, Any], valid: bool) -> None:
    assert exported("chat.request").is_valid(message(**fields)) is valid


def test_the_integer_ids_say_how_1302_0_is_read() -> None:
    node = DOC["components"]["schemas"]["conversation_chat.request.int64_id"]
    assert node["type"] == "integer" and node["format"] == "int64" and node["minimum"] == 1
    assert "1302.0" in node["description"]


def test_patterns_compile_as_python_regular_expressions() -> None:
    import re

    assert re.search(TEXT_PATTERN, "你好") and not re.search(TEXT_PATTERN, "\u3000\t")
    assert re.search(JSON_TEXT_PATTERN, '{"a":"b","c_1":""}') and not re.search(JSON_TEXT_PATTERN, '{"a":1}')


def test_the_schemathesis_settings_are_shipped_with_the_package() -> None:
    text = SCHEMATHESIS_CONFIG.read_text(encoding="utf-8")
    assert "[checks.unsupported_method]" in text and "[checks.negative_data_rejection]" in text


# --------------------------------------------------------------------------- fidelity

# The whole document as one resource: its components' "#/components/..." refs
# resolve against it, as an OpenAPI 3.1+ tool resolves them.
REGISTRY: Registry[Any] = Registry().with_resource("urn:coze-openapi", Resource.from_contents(DOC, default_specification=DRAFT202012))


def exported(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"urn:coze-openapi#/components/schemas/{name}"}, registry=REGISTRY)


def mutations(example: Any) -> Iterator[Any]:
    """The example itself, then without each required top-level key, then with each
    top-level value replaced by a value of another JSON type."""
    yield example
    if isinstance(example, dict):
        for key in example:
            smaller = dict(example)
            del smaller[key]
            yield smaller
            others: tuple[Any, ...] = (None, [], {}, "x", 7, True)
            for other in others:
                if type(other) is not type(example[key]):
                    yield {**example, key: other}
                    break


@pytest.mark.parametrize("name", schema_names())
def test_the_exported_schema_judges_like_the_original(name: str) -> None:
    original = Draft7Validator(load_schema(name))
    translated = exported(name)
    for example in load_schema(name).get("examples", []):
        for instance in mutations(copy.deepcopy(example)):
            assert original.is_valid(instance) == translated.is_valid(instance), instance


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        pytest.param({"dependencies": {"a": ["b"]}}, r"draft-07 'dependencies'", id="dependencies"),
        pytest.param({"items": [{"type": "string"}]}, r"draft-07 'items'", id="tuple-items"),
        pytest.param({"properties": {"a": {"$ref": "other.json#/x"}}}, r"/properties/a: \$ref 'other.json#/x' is not a local", id="remote-ref"),
    ],
)
def test_what_cannot_be_carried_over_is_an_error(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(OpenApiError, match=message):
        _translate(schema, "demo")


def test_property_names_are_not_mistaken_for_keywords() -> None:
    schema = {"properties": {"definitions": {"type": "string"}, "$schema": {"type": "integer"}}}
    assert _translate(schema, "demo") == schema
