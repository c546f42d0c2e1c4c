"""Reading and validating request input: bounded bodies, exact JSON, typed fields.

Every failure here is an :class:`ApiError` 400 whose ``msg`` names the field, so bad
input gets a clear 4xx envelope and never a 5xx (spec "错误码" 400 "请求参数错误").
Ids above 2^53 are the reason this module exists instead of ``request.json()``: the
JSON text is parsed with integers kept as Python ints and fractions as ``Decimal``, so
no number ever passes through a float (READING "Id types").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, NoReturn

from starlette.requests import Request

from .config import ServerConfig
from .responses import ApiError, BodyTooLarge

#: Ids are int64 on the wire (spec tables "int64"); anything wider is not an id.
INT64_MAX = 2**63 - 1
#: Deeper documents are refused before anything walks them.
MAX_DEPTH = 64
#: Content types a message may carry (spec "附加消息格式" and "消息内容类型").
CONTENT_TYPES = frozenset({"text", "image", "file", "object_string", "card"})
ROLES = frozenset({"user", "assistant"})

#: req_body_over_64kib_500: the body size past which that fault answers 500.
FAULT_BODY_BYTES = 64 * 1024

_DIGITS = re.compile(r"[0-9]{1,19}")


def bad_request(msg: str) -> NoReturn:
    raise ApiError(400, msg)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused once it is known to exceed ``limit`` bytes.

    A declared Content-Length above the limit is refused before reading anything;
    otherwise chunks are consumed until the total passes the limit. uvicorn hands the
    body over in socket-sized pieces and pauses reading while they wait, so the
    server holds at most the limit plus one piece -- never the whole oversized body.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> NoReturn:
    bad_request(f"malformed JSON: {name} is not a JSON number")


#: The documented keys of each JSON body (spec request tables), for the fault
#: ``req_unknown_key_refused`` only: the clean server ignores keys it does not know.
DOCUMENTED_KEYS: Mapping[str, frozenset[str]] = {
    "/v3/chat": frozenset(
        {"bot_id", "user_id", "stream", "ConversationID", "conversation_id", "additional_messages",
         "custom_variables", "meta_data", "extra_params"}
    ),
    "/v3/chat/cancel": frozenset({"conversation_id"}),
    "/api/conversation/chat": frozenset({"agent_id", "conversation_id", "query", "stream", "additional_messages"}),
    "/api/draftbot/create": frozenset({"name", "description", "icon_url", "prompt", "model"}),
    "/api/draftbot/update_display_info": frozenset({"bot_id", "name", "description", "icon_url"}),
    "/api/draftbot/publish": frozenset({"bot_id"}),
}


async def read_object(request: Request, config: ServerConfig) -> dict[str, Any]:
    """The request's JSON object body, bounded by ``config.max_body_bytes``."""
    raw = await read_body(request, config.max_body_bytes)
    if config.has("req_body_over_64kib_500") and len(raw) > FAULT_BODY_BYTES:
        raise ApiError(500, "internal server error")  # fault: a 64 KiB buffer overflows into a 500
    value = parse_object(raw, config.faults)
    if config.has("req_unknown_key_refused"):  # fault: a strict schema refuses unknown keys
        refuse_unknown(value, DOCUMENTED_KEYS.get(request.url.path, frozenset(value)), "field")
    return value


def refuse_unknown(names: Iterable[str], documented: frozenset[str], what: str) -> None:
    """The fault ``req_unknown_key_refused``: a 400 for the first undocumented name."""
    for name in names:
        if name not in documented:
            bad_request(f"unknown {what}: {shorten(name)}")


def parse_object(raw: bytes, faults: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Parse a JSON object body exactly: ints stay ints, fractions become Decimal."""
    try:
        value = _parse_json(raw)
    except ApiError:
        if "req_not_json_500" in faults:  # fault: the parser's exception escapes the handler
            raise ApiError(500, "internal server error") from None
        raise
    if not isinstance(value, dict):
        bad_request("request body must be a JSON object")
    check_document(value)
    return value


def _parse_json(raw: bytes) -> Any:
    """The JSON text of ``raw``; a 400 when it is none (empty, not UTF-8, malformed)."""
    if not raw.strip():
        bad_request("request body must be a JSON object")
    try:
        # utf-8-sig: a leading BOM is tolerated (RFC 8259 lets parsers ignore it).
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_request(f"request body is not valid UTF-8 (byte {exc.start})")
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ApiError:
        raise
    except json.JSONDecodeError as exc:
        bad_request(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        # ValueError: an integer longer than Python's int-parsing limit;
        # RecursionError: nesting deeper than the C scanner allows.
        bad_request(f"malformed JSON: {type(exc).__name__}")


def check_document(value: object) -> None:
    """Refuse text no answer could carry back: lone surrogates, NUL, deep nesting.

    A lone surrogate (``"\\ud800"`` is valid JSON) cannot be encoded as UTF-8, so an
    answer echoing it would fail; NUL is refused for the same reason downstream
    systems refuse it. Iterative, so a deep document cannot exhaust the stack.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            bad_request(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def shorten(text: str, limit: int = 40) -> str:
    """Client text quoted in an error message, cut to a readable length."""
    return text if len(text) <= limit else text[:limit] + "…"


def check_text(text: str) -> None:
    if "\x00" in text:
        bad_request("text must not contain NUL (U+0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        bad_request("text must not contain lone surrogates (\\ud800-\\udfff)")


def parse_id_text(text: str, field: str) -> int:
    """A positive int64 written as ASCII digits (``str.isdigit`` would accept '١')."""
    if not _DIGITS.fullmatch(text) or not 0 < int(text) <= INT64_MAX:
        bad_request(f"invalid {field}: expected a positive 64-bit integer id")
    return int(text)


class Fields:
    """Typed access to a parsed JSON object; every miss is a 400 naming the field.

    JSON ``null`` for an optional field reads as absent; for a required one, as missing.
    ``faults`` are the server's switched-on faults (faults/wire.py): the message ones,
    and the request ones that answer a parameter of the wrong JSON type otherwise.
    """

    def __init__(self, body: Mapping[str, Any], prefix: str = "", faults: frozenset[str] = frozenset()) -> None:
        self.body = body
        self.prefix = prefix  # names nested fields in messages: "additional_messages[0]."
        self.faults = faults

    def _get(self, name: str) -> Any:
        return self.body.get(name)

    def _wrong_type(self, name: str, expected: str, *, required: bool) -> None:
        """A parameter of the wrong JSON type: 400, or -- under a request fault of the
        top level -- a 500, or (optional ones) ``None``: the parameter read as absent."""
        if not self.prefix:
            if required and "req_required_wrong_type_500" in self.faults:  # fault: the handler crashes
                raise ApiError(500, "internal server error")
            if not required and "req_optional_wrong_type_500" in self.faults:  # fault: the handler crashes
                raise ApiError(500, "internal server error")
            if not required and "req_optional_wrong_type_ignored" in self.faults:  # fault: read as absent
                return None
        bad_request(f"invalid {self.prefix}{name}: expected {expected}")

    def str_(self, name: str, *, required: bool = False, non_empty: bool = False) -> str | None:
        value = self._get(name)
        if value is None:
            if required:
                bad_request(f"missing required field: {self.prefix}{name}")
            return None
        if not isinstance(value, str):
            self._wrong_type(name, "a string", required=required)
            return None
        if non_empty and not value.strip():
            bad_request(f"invalid {self.prefix}{name}: must not be empty")
        return value

    def required_str(self, name: str, *, non_empty: bool = False) -> str:
        value = self.str_(name, required=True, non_empty=non_empty)
        assert value is not None
        return value

    def bool_(self, name: str) -> bool:
        value = self._get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            self._wrong_type(name, "a boolean", required=False)
            return False  # read as absent (the fault req_optional_wrong_type_ignored)
        return value

    def bot_id(self, name: str) -> int:
        """A required bot id: a JSON integer or a decimal string (both documented forms)."""
        value = self._get(name)
        if value is None:
            bad_request(f"missing required field: {self.prefix}{name}")
        if isinstance(value, (dict, list)):
            self._wrong_type(name, "an integer id", required=True)
        return coerce_id(value, self.prefix + name)

    def conversation_ref(self, name: str, *, required: bool = False) -> str | None:
        """A conversation id as exact text: a string, or an integer's digits."""
        value = self._get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self._wrong_type(name, "a string id", required=required)
            return None
        text = str(value)
        if not text.strip():
            bad_request(f"invalid {self.prefix}{name}: must not be empty")
        return text

    def string_map(self, name: str) -> dict[str, str]:
        """``custom_variables`` / ``meta_data`` / ``extra_params``: objects of strings."""
        value = self._get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self._wrong_type(name, "an object", required=False)
            return {}
        for key, item in value.items():
            if not isinstance(item, str):
                bad_request(f"invalid {self.prefix}{name}.{shorten(key)}: expected a string value")
        return dict(value)

    def messages(self, name: str) -> list[Message]:
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self._wrong_type(name, "an array", required=False)
            return []
        return [parse_message(item, f"{self.prefix}{name}[{index}]", self.faults) for index, item in enumerate(value)]


def coerce_id(value: object, name: str) -> int:
    if isinstance(value, bool):
        bad_request(f"invalid {name}: expected an integer id")
    if isinstance(value, Decimal):
        value = _integral(value, name)
    if isinstance(value, int):
        if not 0 < value <= INT64_MAX:
            bad_request(f"invalid {name}: expected a positive 64-bit integer id")
        return value
    if isinstance(value, str):
        return parse_id_text(value, name)
    bad_request(f"invalid {name}: expected an integer id")


def _integral(value: Decimal, name: str) -> int:
    """A JSON number with no fractional part (``1302.0``, ``1.302e3``) is the integer it
    spells: JSON Schema calls it an integer, and the exported OpenAPI document types
    ids as integers. Read exactly from the Decimal, never through a float; a fraction,
    or a magnitude beyond int64 (checked before building the int), stays a 400."""
    if not value.is_finite() or value.adjusted() > 18 or value != value.to_integral_value():
        bad_request(f"invalid {name}: expected an integer id")
    return int(value)


class Message:
    """One entry of ``additional_messages``."""

    __slots__ = ("role", "content", "content_type")

    def __init__(self, role: str, content: str, content_type: str) -> None:
        self.role = role
        self.content = content
        self.content_type = content_type


#: The content-type faults of faults/wire.py: each refuses one documented type.
_REFUSED_KIND_FAULTS = {
    "image": "msg_image_refused",
    "object_string": "msg_object_string_refused",
    "card": "msg_card_refused",
}


def parse_message(item: object, where: str, faults: frozenset[str] = frozenset()) -> Message:
    if not isinstance(item, dict):
        bad_request(f"invalid {where}: expected an object")
    fields = Fields(item, prefix=f"{where}.")
    role = fields.str_("role")
    if role is None and "msg_missing_role_accepted" in faults:
        role = "user"  # fault: a message without role is taken as the user's
    if role is None:
        bad_request(f"missing required field: {where}.role")
    if role not in ROLES or (role == "assistant" and "msg_assistant_refused" in faults):  # fault: user only
        bad_request(f"invalid {where}.role: expected one of user, assistant")
    content = fields.str_("content")
    if content is None and "validation_missing_content_500" in faults:
        raise ApiError(500, "internal server error")  # fault: the missing key crashes the handler
    if content is None and "msg_missing_content_accepted" in faults:
        content = ""  # fault: a message without content is an empty one
    if content is None:
        bad_request(f"missing required field: {where}.content")
    # READING "additional_messages[].content_type": either key; both missing is 400.
    content_type = fields.str_("content_type")
    alias = None if "msg_type_alias_refused" in faults else fields.str_("type")  # fault: the table's key only
    if content_type is not None and alias is not None and content_type != alias:
        bad_request(f"invalid {where}: content_type and type disagree")
    kind = content_type if content_type is not None else alias
    if kind is None and "msg_no_content_type_accepted" in faults:
        kind = "text"  # fault: neither key is taken as text
    if kind is None:
        bad_request(f"missing required field: {where}.content_type")
    if kind not in CONTENT_TYPES or _REFUSED_KIND_FAULTS.get(kind) in faults:
        bad_request(f"invalid {where}.content_type: expected one of {', '.join(sorted(CONTENT_TYPES))}")
    if kind == "object_string":
        # An object_string carries a JSON document as text (spec "消息内容类型").
        try:
            json.loads(content, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, RecursionError, ApiError):
            bad_request(f"invalid {where}.content: object_string content must be JSON text")
    elif kind in ("image", "file") and not content.strip():
        bad_request(f"invalid {where}.content: {kind} content must be a URL")
    return Message(role, content, kind)
