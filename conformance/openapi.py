"""An OpenAPI 3.1 document of the Agent API, built from the suite's own data
(``coze-conformance export-openapi``; issue 8, item 7).

Nothing here is written twice: the bodies are the JSON Schemas of ``schemas/``
(with their roles from ``schemas/index.json``), and the endpoints, their auth
classes, parameters and listed error codes come from the wire profile
(``conformance/profiles/<name>.toml``). So schemathesis or Postman users test
against exactly what the suite checks.

The schemas are draft-07; OpenAPI 3.1 reads JSON Schema 2020-12, in which a
``$ref`` inside a component resolves against the whole document. Each schema's
``definitions`` therefore become components of their own (``chat.request.message``)
and every ``#/definitions/x`` is rewritten to point at them. A draft-07 keyword
2020-12 reads differently would be mistranslated, so one is an error here.

Server-sent events have no standard description in OpenAPI 3.1: a streaming
answer is ``text/event-stream`` with the payload schema of each event name under
the ``x-sse-events`` extension.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from conformance.profile import Endpoint, Profile, load_profile
from conformance.schemas import load_index, load_schema

__all__ = ["OpenApiError", "build_openapi"]

OPENAPI_VERSION = "3.1.0"

# Keywords whose meaning differs between draft-07 and 2020-12 (or that 2020-12 dropped).
_UNTRANSLATED = ("dependencies", "additionalItems", "$recursiveRef")


class OpenApiError(ValueError):
    """A schema uses something this export cannot carry into OpenAPI 3.1 faithfully."""


def _component(schema_name: str, definition: str) -> str:
    return f"{schema_name}.{definition}"


def _translate(node: Any, schema_name: str, where: str = "") -> Any:
    """A draft-07 schema as a 2020-12 schema inside an OpenAPI document."""
    if isinstance(node, list):
        return [_translate(v, schema_name, f"{where}/{i}") for i, v in enumerate(node)]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _UNTRANSLATED or (key == "items" and isinstance(value, list)):
            raise OpenApiError(f"{schema_name}{where}: draft-07 {key!r} has no faithful 2020-12 form here")
        if key in ("$schema", "definitions"):
            continue
        if key == "$ref":
            match = re.fullmatch(r"#/definitions/([A-Za-z0-9_.-]+)", value)
            if match is None:
                raise OpenApiError(f"{schema_name}{where}: $ref {value!r} is not a local definition")
            out[key] = f"#/components/schemas/{_component(schema_name, match.group(1))}"
            continue
        if key in ("properties", "patternProperties"):
            # Property names are names, not keywords: translate only their schemas.
            out[key] = {k: _translate(v, schema_name, f"{where}/{key}/{k}") for k, v in value.items()}
            continue
        out[key] = _translate(value, schema_name, f"{where}/{key}")
    return out


def _components(index: Mapping[str, Any]) -> dict[str, Any]:
    components: dict[str, Any] = {}
    for name in index["schemas"]:
        schema = load_schema(name)
        entries = {name: schema, **{_component(name, d): s for d, s in schema.get("definitions", {}).items()}}
        for key, value in entries.items():
            if key in components:
                raise OpenApiError(f"component name {key!r} is used twice")
            components[key] = _translate(value, name)
    return components


def _schemas_for(index: Mapping[str, Any], endpoint: Endpoint, role: str, outcome: str | None = None) -> list[str]:
    return [
        name
        for name, entry in index["schemas"].items()
        if entry["role"] == role and endpoint.key in entry["endpoints"] and (outcome is None or entry.get("outcome") == outcome)
    ]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    if endpoint.params_in not in ("query", "path"):
        return []
    params = []
    for name in endpoint.required:
        # READING "Id types": ids travel as decimal text in queries and paths.
        schema: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+$"} if endpoint.id_types.get(name) == "digits" else {"type": "string"}
        params.append({"name": name, "in": endpoint.params_in, "required": True, "schema": schema})
    return params


def _responses(index: Mapping[str, Any], profile: Profile, endpoint: Endpoint) -> dict[str, Any]:
    success = _schemas_for(index, endpoint, "response", "success")
    events = _schemas_for(index, endpoint, "event")
    content: dict[str, Any] = {}
    if success:
        content["application/json"] = {"schema": _ref(success[0])}
    if events:
        sse: dict[str, Any] = {e: _ref(name) for name in events for e in index["schemas"][name]["events"]}
        sse.update({e: {"description": why} for e, why in index.get("events_without_schema", {}).items()})
        content["text/event-stream"] = {
            "schema": {"type": "string", "description": "An event stream (stream: true); each event's data is the JSON payload named in x-sse-events."},
            "x-sse-events": sse,
        }
    if content:
        ok: dict[str, Any] = {"description": profile.envelope.success_description, "content": content}
    else:
        ok = {"description": "Not documented by the page: an envelope or an event stream, never a 5xx (READING).",
              "content": {"application/json": {"schema": {}}, "text/event-stream": {"schema": {"type": "string"}}}}
    responses: dict[str, Any] = {"200": ok}
    error = _schemas_for(index, endpoint, "response", "error")
    for code in profile.envelope.error_codes:
        # READING "HTTP status of errors": the body code decides; the same HTTP status is SHOULD.
        responses[str(code.code)] = {
            "description": code.description,
            **({"content": {"application/json": {"schema": _ref(error[0])}}} if error else {}),
        }
    return responses


def _operation(index: Mapping[str, Any], profile: Profile, endpoint: Endpoint) -> dict[str, Any]:
    auth = profile.auth[endpoint.auth]
    others = [c.name for c in profile.auth.classes if c.name != auth.name]
    operation: dict[str, Any] = {
        "operationId": endpoint.name,
        "summary": endpoint.key,
        "description": (
            f"Auth: {auth.mode} ({auth.name}) MUST be accepted"
            + (f"; accepting {', '.join(others)} is SHOULD (READING 'Auth per endpoint')." if others else ".")
            + f" Rate-limit group: {endpoint.rate_group}."
        ),
        "tags": [endpoint.rate_group],
        "security": [{auth.name: []}],
        "responses": _responses(index, profile, endpoint),
    }
    parameters = _parameters(endpoint)
    if parameters:
        operation["parameters"] = parameters
    requests = _schemas_for(index, endpoint, "request")
    if endpoint.params_in == "body" and requests:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(requests[0])}}}
    return operation


def _security_schemes(profile: Profile) -> dict[str, Any]:
    schemes: dict[str, Any] = {}
    for c in profile.auth.classes:
        if c.mode == "bearer":
            schemes[c.name] = {"type": "http", "scheme": (c.scheme or "Bearer").lower(), "description": "API key (OpenAPI endpoints)"}
        else:
            schemes[c.name] = {"type": "apiKey", "in": "cookie", "name": c.cookie or "session_key", "description": "Session key (WebAPI endpoints)"}
    return schemes


def build_openapi(profile_name: str = "doc", *, version: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``profile_name`` (a plain, JSON-ready dict)."""
    if version is None:
        import conformance

        version = conformance.__version__
    profile = load_profile(profile_name)
    index = load_index()
    paths: dict[str, Any] = {}
    for endpoint in profile.endpoints:
        path = re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"{\1}", endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(index, profile, endpoint)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Coze Plus Agent API (智能体 API)",
            "version": version,
            "description": (
                f"Generated by coze-plus-conformance from its '{profile.name}' profile and JSON Schemas: "
                f"{profile.description}"
            ),
        },
        "servers": [{"url": "https://your-domain.com", "description": "your deployment"}],
        "paths": paths,
        "components": {"schemas": copy.deepcopy(_components(index)), "securitySchemes": _security_schemes(profile)},
    }
