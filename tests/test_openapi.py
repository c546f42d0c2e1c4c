"""The OpenAPI 3.1 export: valid, complete, and saying what the suite's schemas say."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conformance.openapi import OpenApiError, _translate, build_openapi
from conformance.profile import load_profile
from conformance.schemas import load_index, load_schema, schema_names

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


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"] == "3.1.0"
    validate(DOC)  # openapi-spec-validator; raises on any violation


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
    assert detail["parameters"] == [{"name": "bot_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}]
    assert detail["security"] == [{"openapi": []}]
    online = DOC["paths"]["/v1/bot/get_online_info"]["get"]
    assert [(p["name"], p["in"]) for p in online["parameters"]] == [("bot_id", "query")]
    create = DOC["paths"]["/api/draftbot/create"]["post"]
    assert create["security"] == [{"webapi": []}]
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


# --------------------------------------------------------------------------- fidelity

# The whole document as one resource: its components' "#/components/..." refs
# resolve against it, as an OpenAPI 3.1 tool resolves them.
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
