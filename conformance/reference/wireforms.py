"""Legal JSON wire forms: how an answer's JSON may look and travel besides the default.

Every form here is one the page allows, so the suite must accept it (READING
"Levels": never fail a server for extra JSON keys; "HTTP status of errors": the body
code decides; "Error envelope": ``data: null`` SHOULD, absent accepted):

* extra unknown keys in every JSON object (``json_extra_keys``);
* every object's keys in reverse order (``json_key_order="reversed"``);
* every ``bot_id`` a decimal string (``bot_id_text``; READING "Id types");
* a non-stream answer sent chunked or gzip-encoded (``json_transfer``);
* error envelopes with HTTP 200 (``error_http_status="200"``) or without ``data``
  (``error_data="absent"``);
* one field of a success answer or of an event payload absent, null or of another
  JSON type (``field_forms``; the kill matrix derives which from the response schemas).

Two hooks apply them, so that no handler knows of them: :func:`wire_forms` rewrites
every non-stream JSON answer after the handler (app.py), and :func:`reshape` is applied
to every event payload where the stream writer serializes it (eventstream.py).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .responses import dumps

if TYPE_CHECKING:
    from .config import ServerConfig

#: The unknown keys ``json_extra_keys`` puts first and last in every object: a string
#: and a nested object (with a null, a list and a key that looks like a documented one).
EXTRA_FIRST = ("x_ref_extra", "an unknown key; clients ignore it")
EXTRA_LAST = ("x_ref_extra_object", {"code": "not the envelope's", "list": [1, "two", None], "none": None})
#: How many pieces a chunked answer is written in (the first is a single byte).
CHUNKED_PIECES = 4


#: The value each non-absent field form writes (FIELD_FORMS in config.py).
FORM_VALUES: Mapping[str, object] = {
    "null": None,
    "string": "x_ref_other_type",
    "integer": 7,
    "boolean": False,
    "array": [],
    "object": {},
}


def reshapes(config: ServerConfig) -> bool:
    """Whether :func:`reshape_payload` changes anything under ``config``."""
    return (
        config.json_extra_keys
        or config.json_key_order != "documented"
        or config.bot_id_text
        or any(where.startswith("event:") for where, _, _ in config.field_forms)
    )


def active(config: ServerConfig) -> bool:
    """Whether :func:`wire_forms` changes anything under ``config``."""
    return (
        reshapes(config)
        or config.json_transfer != "plain"
        or config.error_http_status != "code"
        or config.error_data != "null"
        or bool(config.field_forms)
    )


def reshape(config: ServerConfig, value: object) -> object:
    """``value`` with every JSON object in it given the key form of ``config``."""
    if isinstance(value, dict):
        items = [
            (key, _bot_id_text(item) if config.bot_id_text and key == "bot_id" else reshape(config, item))
            for key, item in value.items()
        ]
        if config.json_extra_keys:
            items = [_extra(EXTRA_FIRST), *items, _extra(EXTRA_LAST)]
        if config.json_key_order == "reversed":
            items.reverse()
        return dict(items)
    if isinstance(value, list):
        return [reshape(config, item) for item in value]
    return value


def reshape_payload(config: ServerConfig, payload: Mapping[str, object], event: str = "") -> dict[str, object]:
    """An event payload (an object) of the event named ``event`` in the key form and
    field forms of ``config``."""
    body = json.loads(json.dumps(payload))  # a deep copy: the forms edit it in place
    apply_field_forms(body, [(path, form) for where, path, form in config.field_forms if where == f"event:{event}"])
    shaped = reshape(config, body)
    assert isinstance(shaped, dict)
    return shaped


def apply_field_forms(body: object, forms: list[tuple[str, str]]) -> None:
    """Give each ``(path, form)`` field of ``body`` its form, in place; a path whose
    parent is not there (or not an object) changes nothing."""
    for path, form in forms:
        _apply(body, path.split("."), form)


def _apply(node: object, keys: list[str], form: str) -> None:
    key, rest = keys[0], keys[1:]
    each = key.endswith("[]")
    key = key.removesuffix("[]")
    if not isinstance(node, dict):
        return
    if rest:
        child = node.get(key)
        for item in (child if isinstance(child, list) else []) if each else [child]:
            _apply(item, rest, form)
    elif form == "absent":
        node.pop(key, None)
    elif form == "text":
        value = node.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            node[key] = str(value)
    elif form == "number":
        value = node.get(key)
        if isinstance(value, str) and value.isascii() and value.isdigit():
            node[key] = int(value)  # exact: Python ints never round
    else:
        node[key] = json.loads(json.dumps(FORM_VALUES[form]))


def _matches(template: str, path: str) -> bool:
    """Whether a request path is an endpoint's, written as the page writes it
    (``/v1/bots/:bot_id``: a ``:`` segment matches any one segment)."""
    want, got = template.split("/"), path.split("/")
    return len(want) == len(got) and all(w.startswith(":") or w == g for w, g in zip(want, got, strict=True))


def _bot_id_text(value: object) -> object:
    """An integer bot id as its decimal digits (exact: Python ints never round)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _extra(pair: tuple[str, object]) -> tuple[str, object]:
    key, value = pair
    return key, json.loads(json.dumps(value))  # a fresh copy per object


def wire_forms(config: ServerConfig, request: Request, response: Response) -> Response:
    """A non-stream JSON answer in the wire form of ``config``; others pass unchanged."""
    if not active(config) or isinstance(response, StreamingResponse) or response.media_type != "application/json":
        return response
    body = json.loads(bytes(response.body))
    status = response.status_code
    if isinstance(body, dict) and (status >= 400 or body.get("code") != 0):  # an error envelope
        if config.error_data == "absent":
            body.pop("data", None)
        if config.error_http_status == "200":
            status = 200
    else:  # a success answer
        path = request.url.path
        apply_field_forms(body, [(p, form) for where, p, form in config.field_forms if _matches(where, path)])
    content = dumps(reshape(config, body))
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
    if config.json_transfer == "chunked":
        return StreamingResponse(_pieces(content), status, headers, media_type="application/json")
    if config.json_transfer == "gzip":
        headers["vary"] = "Accept-Encoding"
        if accepts_gzip(request.headers.get("accept-encoding", "")):
            headers["content-encoding"] = "gzip"
            content = gzip.compress(content, mtime=0)
    return Response(content, status, headers, media_type="application/json")


async def _pieces(content: bytes) -> AsyncIterator[bytes]:
    """The body in CHUNKED_PIECES writes (each a chunk of its own on the wire): one byte,
    then the rest in near-equal parts that may split a UTF-8 character."""
    yield content[:1]
    rest = content[1:]
    size = max(1, -(-len(rest) // (CHUNKED_PIECES - 1)))
    for start in range(0, len(rest), size):
        yield rest[start : start + size]


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value allows gzip (RFC 9110 12.5.3): ``gzip``,
    ``x-gzip`` or ``*`` with a q-value above 0, unless gzip itself has q=0."""
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding] = weight
    for coding in ("gzip", "x-gzip"):
        if coding in weights:
            return weights[coding] > 0
    return weights.get("*", 0.0) > 0
