"""An OpenAPI 3.2 document of the Agent API, built from the suite's own data
(``coze-conformance export-openapi [--profile NAME]``).

Nothing here is written twice: the bodies are the JSON Schemas of ``schemas/``
(with their roles from ``schemas/index.json``), and the endpoints, their auth
classes, parameters, listed error codes, message rules and ids come from the wire
profile (``conformance/oracle/profiles/<name>.toml``). One profile gives one document
(:class:`_Builder` reads nothing else), so schemathesis or Postman users test
against exactly what the suite checks.

The schemas are draft-07; OpenAPI 3.1+ reads JSON Schema 2020-12, in which a
``$ref`` inside a component resolves against the whole document. Each schema's
``definitions`` therefore become components of their own (``chat.request.message``)
and every ``#/definitions/x`` is rewritten to point at them. A draft-07 keyword
2020-12 reads differently would be mistranslated, so one is an error here.

What the document adds to the schemas, so that a tool sending schema-valid requests
(schemathesis's positive checks) expects exactly what every conformant server must
accept:

* Request bodies and parameters are narrowed to what the suite's own "valid" fuzz
  kind sends (``conformance.oracle.strategies.GENERATION_DEVIATIONS``): text printable and
  not blank, ids positive int64, one accepted content type per message. Each rule
  and its reason is in ``REQUEST_NARROWING`` and in the document's description;
  responses and events are exactly the schemas.
* Security: every auth class is an alternative (READING "Auth per endpoint": the
  endpoint's own mode MUST be accepted, the other SHOULD), its own first.
* Server-sent events: OpenAPI 3.2's ``itemSchema`` of ``text/event-stream``
  describes one event (``event``, ``data``, ``id``, ``retry``); each documented event
  name's ``data`` is JSON (``contentMediaType``) valid under its payload schema
  (``contentSchema``). Unknown event names are legal (READING "Levels"). The names
  and schemas are also listed under ``x-sse-events``.
* Links (``LINKS``): an id a response returns feeds the operations that take it, so
  a stateful run (schemathesis) creates a bot, publishes it, chats and cancels.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conformance.oracle.profile import Endpoint, Profile, load_profile
from conformance.oracle.schemas import load_index, load_schema
from conformance.oracle.strategies import CONTENT_FORMATS, GENERATION_DEVIATIONS

__all__ = ["LINKS", "OPENAPI_VERSION", "REQUEST_NARROWING", "SCHEMATHESIS_CONFIG", "OpenApiError", "build_openapi", "link_name"]

OPENAPI_VERSION = "3.2.0"
#: The schemathesis settings for the document: the checks it leaves off, each with its reason.
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")

# Keywords whose meaning differs between draft-07 and 2020-12 (or that 2020-12 dropped).
_UNTRANSLATED = ("dependencies", "additionalItems", "$recursiveRef")


class OpenApiError(ValueError):
    """A schema uses something this export cannot carry into OpenAPI faithfully."""


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


# --------------------------------------------------------------------------- requests: what a server MUST accept

#: Printable text with at least one character that is not white space (``str.strip``).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
#: Printable text, empty allowed: names and values of unknown keys.
ANY_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
INT64_MAX = 2**63 - 1


def _digits_up_to(limit: int) -> str:
    """A regular expression for the decimal text of 1..``limit``, no leading zero."""
    text = str(limit)
    shorter = f"[1-9][0-9]{{0,{len(text) - 2}}}" if len(text) > 1 else ""
    same_length = []
    for i, digit in enumerate(text):
        low = "1" if i == 0 else "0"
        if digit > low:
            below = low if int(digit) - 1 == int(low) else f"{low}-{int(digit) - 1}"
            rest = len(text) - i - 1
            same_length.append(f"{text[:i]}[{below}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    same_length.append(text)
    return "^(?:" + "|".join(filter(None, [shorter, *same_length])) + ")$"


#: A positive int64 as decimal digits, no leading zero (READING "Id types": ids are
#: int64, compared as text; "0" is no id).
ID_DIGITS_PATTERN = _digits_up_to(INT64_MAX)
#: JSON text: no regular expression says all of it, so this covers a plain subset, an
#: object of up to three short string values (what the suite's valid requests send).
JSON_TEXT_PATTERN = (
    r'^\{(?:"[a-z][a-z0-9_]{0,11}":"[^"\\\x00-\x1f]{0,24}"'
    r'(?:,"[a-z][a-z0-9_]{0,11}":"[^"\\\x00-\x1f]{0,24}"){0,2})?\}$'
)
#: The strategies' content formats (conformance.oracle.strategies.CONTENT_FORMATS) as OpenAPI schemas.
_CONTENT_SCHEMAS: Mapping[str, dict[str, Any]] = {
    "cz-text": {"type": "string", "pattern": TEXT_PATTERN},
    "cz-url": {"type": "string", "format": "uri"},
    "cz-json-text": {"type": "string", "contentMediaType": "application/json", "pattern": JSON_TEXT_PATTERN},
}

#: Where the exported request schemas are narrower than ``schemas/``, and why: a
#: schema-valid request must be one every conformant server accepts (a tool such as
#: schemathesis expects no 400 for one). The suite's own valid requests follow the same
#: rules (GENERATION_DEVIATIONS).
REQUEST_NARROWING: Mapping[str, str] = {
    "text": (
        f"every free-text string (no enum, const or pattern) matches {TEXT_PATTERN}: "
        + GENERATION_DEVIATIONS["text"]
    ),
    "ids in JSON": (
        "an integer id is 1..2^63-1 (format int64). The suite sends integer literals (READING 'Id types'), but"
        " JSON Schema calls 1302.0 an integer too and no keyword can exclude it, so tools such as schemathesis"
        " send it: the reference server reads it exactly as the integer 1302 (never through a float); the suite"
        " judges no server on it. A string id is the decimal text of 1..2^63-1, no leading zero (\"0\" is no id)."
    ),
    "ids in queries and paths": "the decimal text of 1..2^63-1, no leading zero (READING 'Id types').",
    "messages": (
        GENERATION_DEVIATIONS["messages"]
        + " object_string content is JSON text (contentMediaType application/json); its pattern covers a plain"
        " subset, an object of up to three short string values."
    ),
    "conversation ids": (
        "a request names its conversation in one of the body forms at most (profile [conversation]): READING"
        " 'Conversation id in a chat request' has a server honour at least one form, and two that differ may be"
        " refused."
    ),
    "unknown keys": (
        "every object allows unknown keys (READING 'Levels'), named and valued with printable text"
        f" ({ANY_TEXT_PATTERN}), null, booleans or integers: NUL and other control characters are the"
        " extreme kind's (2xx or 4xx), never a valid request's."
    ),
}

_ID_INTEGER_NOTE = REQUEST_NARROWING["ids in JSON"]


def _narrow(node: Any, profile: Profile) -> Any:
    """A draft-07 request schema narrowed by REQUEST_NARROWING (before translation)."""
    if isinstance(node, list):
        return [_narrow(v, profile) for v in node]
    if not isinstance(node, Mapping):
        return node
    if _is_message(node, profile):
        return _message_variants(node, profile)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "definitions"):
            out[key] = {k: _narrow(v, profile) for k, v in value.items()}
        elif key in ("examples", "enum", "const"):
            out[key] = value
        else:
            out[key] = _narrow(value, profile)
    kind = out.get("type")
    if kind == "string" and out.get("pattern") == profile.ids.bot_id_string_pattern:
        out["pattern"] = ID_DIGITS_PATTERN
    elif kind == "string" and not {"enum", "const", "pattern", "format"} & set(out):
        out["pattern"] = TEXT_PATTERN
    elif kind == "integer" and "minimum" in out:
        out["format"] = "int64"
        out["description"] = f"{out.get('description', '')} {_ID_INTEGER_NOTE}".strip()
    elif kind == "object":
        out.setdefault("propertyNames", {"pattern": ANY_TEXT_PATTERN})
        out.setdefault("additionalProperties", _unknown_value())
        forms = [f.key for f in profile.conversation.forms if f.location == "body" and f.key in out.get("properties", {})]
        if len(forms) > 1:
            out["not"] = {"required": forms} if len(forms) == 2 else {"anyOf": [{"required": list(pair)} for pair in itertools.combinations(forms, 2)]}
    return out


def _unknown_value() -> dict[str, Any]:
    return {"type": ["null", "boolean", "integer", "string"], "pattern": ANY_TEXT_PATTERN}


def _is_message(node: Mapping[str, Any], profile: Profile) -> bool:
    props = node.get("properties", {})
    return node.get("type") == "object" and isinstance(props, Mapping) and any(k in props for k in profile.messages.content_type_keys)


def _message_variants(node: Mapping[str, Any], profile: Profile) -> dict[str, Any]:
    """One schema per (accepted content type, naming key), as the suite sends them."""
    messages = profile.messages
    variants = []
    for content_type in messages.accepted_content_types:
        if CONTENT_FORMATS.get(content_type) not in _CONTENT_SCHEMAS:
            raise OpenApiError(f"no content schema for accepted content type {content_type!r}")
        for key in messages.content_type_keys:
            variants.append(
                {
                    "type": "object",
                    "properties": {
                        "role": {"type": "string", "enum": list(messages.roles)},
                        "content": dict(_CONTENT_SCHEMAS[CONTENT_FORMATS[content_type]]),
                        key: {"type": "string", "const": content_type},
                    },
                    "required": [*messages.required, key],
                    "additionalProperties": False,
                }
            )
    description = f"{node.get('description', '')} Narrowed: {REQUEST_NARROWING['messages']}".strip()
    return {"description": description, "anyOf": variants}


# --------------------------------------------------------------------------- links

#: Which success answers feed which operations (OpenAPI links; schemathesis's stateful
#: phase follows them): (source endpoint, JSON pointer in its body, target endpoint,
#: target parameter, body values the linked request carries besides the id).
#: Chats take the bot of a publish: READING "Chat with a draft bot" says nothing, so the
#: suite publishes before chatting. ``/v1/bots/:bot_id`` takes the bot of a publish
#: too: its answer schema (version, published_at) is the page's example of a published
#: bot, and a draft's details are not documented. A publish leads to two chats: one
#: without a stream, whose JSON answer has the data.conversation_id the cancel link
#: reads, and one streamed, whose events are checked against the stream's itemSchema.
LINKS: tuple[tuple[str, str, str, str, Mapping[str, Any]], ...] = (
    ("create", "/data/bot_id", "update", "bot_id", {}),
    ("create", "/data/bot_id", "publish", "bot_id", {}),
    ("create", "/data/bot_id", "online_info", "bot_id", {}),
    ("update", "/data/bot_id", "publish", "bot_id", {}),
    ("publish", "/data/bot_id", "online_info", "bot_id", {}),
    ("publish", "/data/bot_id", "bot_detail", "bot_id", {}),
    ("publish", "/data/bot_id", "chat", "bot_id", {"stream": False}),
    ("publish", "/data/bot_id", "chat", "bot_id", {"stream": True}),
    ("publish", "/data/bot_id", "run", "agent_id", {}),
    ("chat", "/data/conversation_id", "cancel", "conversation_id", {}),
)
#: Targets whose linked request is a whole body rather than values merged into a
#: generated one (schemathesis: ``x-schemathesis: {merge_body: false}``): the first
#: example of the target's request schema that names no conversation, with the link's
#: values and id. A generated chat body nearly always names a made-up conversation (an
#: unknown one: 404), and only a chat that is answered gives the cancel its conversation.
WHOLE_BODY_LINKS = frozenset({"chat"})


def link_name(target: str, param: str, values: Mapping[str, Any]) -> str:
    """``chat_bot_id_stream_false``: the target, the linked parameter, the fixed values."""
    return "_".join([target, param, *(f"{k}_{json.dumps(v)}" for k, v in values.items())])


# --------------------------------------------------------------------------- the builder


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _openapi_path(endpoint: Endpoint) -> str:
    return re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"{\1}", endpoint.path)


class _Builder:
    """The document of one profile: everything it says comes from ``profile`` and the
    schema index."""

    def __init__(self, profile: Profile, index: Mapping[str, Any]) -> None:
        self.profile = profile
        self.index = index

    def schemas_for(self, endpoint: Endpoint, role: str, outcome: str | None = None) -> list[str]:
        return [
            name
            for name, entry in self.index["schemas"].items()
            if entry["role"] == role and endpoint.key in entry["endpoints"] and (outcome is None or entry.get("outcome") == outcome)
        ]

    # ---- components

    def components(self) -> dict[str, Any]:
        components: dict[str, Any] = {}
        for name, entry in self.index["schemas"].items():
            schema = load_schema(name)
            if entry["role"] == "request":
                schema = _narrow(schema, self.profile)
            entries = {name: schema, **{_component(name, d): s for d, s in schema.get("definitions", {}).items()}}
            for key, value in entries.items():
                if key in components:
                    raise OpenApiError(f"component name {key!r} is used twice")
                components[key] = _translate(value, name)
        return components

    def security_schemes(self) -> dict[str, Any]:
        schemes: dict[str, Any] = {}
        for c in self.profile.auth.classes:
            if c.mode == "bearer":
                schemes[c.name] = {"type": "http", "scheme": (c.scheme or "Bearer").lower(), "description": "API key (OpenAPI endpoints)"}
            else:
                schemes[c.name] = {"type": "apiKey", "in": "cookie", "name": c.cookie or "session_key", "description": "Session key (WebAPI endpoints)"}
        return schemes

    # ---- operations

    def parameters(self, endpoint: Endpoint) -> list[dict[str, Any]]:
        if endpoint.params_in not in ("query", "path"):
            return []
        params = []
        for name in endpoint.required:
            schema: dict[str, Any] = {"type": "string", "pattern": TEXT_PATTERN}
            if endpoint.id_types.get(name) == "digits":
                schema = {"type": "string", "pattern": ID_DIGITS_PATTERN}
            params.append({"name": name, "in": endpoint.params_in, "required": True, "schema": schema})
        return params

    def event_stream(self, endpoint: Endpoint) -> dict[str, Any] | None:
        events = self.schemas_for(endpoint, "event")
        if not events:
            return None
        named = [(e, name) for name in events for e in self.index["schemas"][name]["events"]]
        sse: dict[str, Any] = {e: _ref(name) for e, name in named}
        sse.update({e: {"description": why} for e, why in self.index.get("events_without_schema", {}).items()})
        item = {
            "description": (
                "One server-sent event. Each documented event name's data is a JSON payload valid under its schema;"
                " an event without a documented payload (" + ", ".join(self.index.get("events_without_schema", {}))
                + ") and unknown event names are legal (READING 'Levels')."
            ),
            "type": "object",
            "properties": {
                "event": {"type": "string"},
                "data": {"type": "string"},
                "id": {"type": "string"},
                "retry": {"type": "integer", "minimum": 0},
            },
            "required": ["data"],
            "allOf": [
                {
                    "if": {"properties": {"event": {"const": e}}, "required": ["event"]},
                    "then": {"properties": {"data": {"contentMediaType": "application/json", "contentSchema": _ref(name)}}},
                }
                for e, name in named
            ],
        }
        return {"itemSchema": item, "x-sse-events": sse}

    def responses(self, endpoint: Endpoint) -> dict[str, Any]:
        profile = self.profile
        success = self.schemas_for(endpoint, "response", "success")
        content: dict[str, Any] = {}
        if success:
            content["application/json"] = {"schema": _ref(success[0])}
        stream = self.event_stream(endpoint)
        if stream is not None:
            content[str(profile.stream["media_type"])] = stream
        if content:
            ok: dict[str, Any] = {"description": profile.envelope.success_description, "content": content}
        else:
            ok = {
                "description": "Not documented by the page: an envelope or an event stream, never a 5xx (READING).",
                "content": {"application/json": {"schema": {}}, str(profile.stream["media_type"]): {"itemSchema": {"type": "object"}}},
            }
        links = self.links(endpoint)
        if links:
            ok["links"] = links
        responses: dict[str, Any] = {"200": ok}
        error = self.schemas_for(endpoint, "response", "error")
        for code in profile.envelope.error_codes:
            # READING "HTTP status of errors": the body code decides; the same HTTP status is SHOULD.
            responses[str(code.code)] = {
                "description": code.description,
                **({"content": {"application/json": {"schema": _ref(error[0])}}} if error else {}),
            }
        return responses

    def links(self, endpoint: Endpoint) -> dict[str, Any]:
        links: dict[str, Any] = {}
        for source, pointer, target_name, param, values in LINKS:
            if source != endpoint.name:
                continue
            target = self.profile.endpoint(target_name)
            if param not in target.required:
                raise OpenApiError(f"link {source} -> {target_name}: {param!r} is not a required parameter of {target.key}")
            expression = f"$response.body#{pointer}"
            link: dict[str, Any] = {
                "operationId": target.name,
                "description": f"{param} of {target.key} from {pointer} of this answer",
            }
            if target.params_in == "body" and target.name in WHOLE_BODY_LINKS:
                link["requestBody"] = {**self.base_body(target), param: expression, **values}
                link["x-schemathesis"] = {"merge_body": False}
            elif target.params_in == "body":
                link["requestBody"] = {param: expression, **values}
            elif values:
                raise OpenApiError(f"link {source} -> {target_name}: fixed values need a JSON body")
            else:
                link["parameters"] = {f"{target.params_in}.{param}": expression}
            links[link_name(target.name, param, values)] = link
        return links

    def base_body(self, endpoint: Endpoint) -> dict[str, Any]:
        """The first example of ``endpoint``'s request schema that names no conversation."""
        forms = {f.key for f in self.profile.conversation.forms if f.location == "body"}
        for name in self.schemas_for(endpoint, "request"):
            for example in load_schema(name).get("examples", []):
                if not forms & set(example):
                    return copy.deepcopy(example)
        raise OpenApiError(f"{endpoint.key}: no request example without a conversation id to link to")

    def operation(self, endpoint: Endpoint) -> dict[str, Any]:
        auth = self.profile.auth[endpoint.auth]
        others = [c.name for c in self.profile.auth.classes if c.name != auth.name]
        operation: dict[str, Any] = {
            "operationId": endpoint.name,
            "summary": endpoint.key,
            "description": (
                f"Auth: {auth.mode} ({auth.name}) MUST be accepted"
                + (f"; accepting {', '.join(others)} is SHOULD (READING 'Auth per endpoint')." if others else ".")
                + f" Rate-limit group: {endpoint.rate_group}."
            ),
            "tags": [endpoint.rate_group],
            # Alternatives: any one scheme alone authenticates (its own first).
            "security": [{auth.name: []}, *({name: []} for name in others)],
            "responses": self.responses(endpoint),
        }
        parameters = self.parameters(endpoint)
        if parameters:
            operation["parameters"] = parameters
        requests = self.schemas_for(endpoint, "request")
        if endpoint.params_in == "body" and requests:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(requests[0])}}}
        return operation

    def description(self) -> str:
        rules = "\n".join(f"- {name}: {why}" for name, why in REQUEST_NARROWING.items())
        codes = "/".join(str(c.code) for c in self.profile.envelope.error_codes)
        return (
            f"Generated by coze-plus-conformance from its '{self.profile.name}' profile and JSON Schemas: "
            f"{self.profile.description}.\n\n"
            "Request schemas describe what every conformant server MUST accept; they are narrower than the page"
            " where the page leaves a server free to refuse:\n"
            f"{rules}\n\n"
            f"A method a path does not list, and an unknown path: the page says nothing (READING) and its error codes"
            f" are {codes}, with no 405; the reference server answers a 404 envelope."
        )

    def document(self, version: str) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for endpoint in self.profile.endpoints:
            paths.setdefault(_openapi_path(endpoint), {})[endpoint.method.lower()] = self.operation(endpoint)
        return {
            "openapi": OPENAPI_VERSION,
            "info": {"title": "Coze Plus Agent API (智能体 API)", "version": version, "description": self.description()},
            "servers": [{"url": "https://your-domain.com", "description": "your deployment"}],
            "paths": paths,
            "components": {"schemas": copy.deepcopy(self.components()), "securitySchemes": self.security_schemes()},
        }


def build_openapi(profile_name: str = "doc", *, version: str | None = None) -> dict[str, Any]:
    """The OpenAPI document for ``profile_name`` (a plain, JSON-ready dict)."""
    if version is None:
        import conformance

        version = conformance.__version__
    return _Builder(load_profile(profile_name), load_index()).document(version)
