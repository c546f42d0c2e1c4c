"""The envelope judge: every answer seen anywhere in a conformance test is judged.

READING ("Error envelope", "Success msg, data", "HTTP status of errors"): a response is
an error when its HTTP status is >= 400 or its body ``code`` is not 0; an error MUST be
the envelope ``{code, msg}`` with a listed code, ``data: null`` SHOULD, the HTTP status
equal to the code SHOULD; a success MUST be ``{code: 0, msg, data}`` (cancel: ``data``
may be absent, ``null`` or any value) and ``msg`` "success" SHOULD. And every 5xx seen anywhere is
itself a failure. These requirements are judged by the plugin on every exchange of every
suite test, so no test declares them (``EXCHANGE_REQUIREMENTS``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from conformance.oracle.profile import Profile

# The judge's rules; the catalogue's ``rule`` field says which requirement of a profile
# each one judges (a rule a profile does not map is not judged in it).
SUCCESS_SHAPE = "envelope.success_shape"
SUCCESS_MSG = "envelope.success_msg"
ERROR_SHAPE = "envelope.error_shape"
ERROR_DATA_NULL = "envelope.error_data_null"
ERROR_STATUS = "envelope.error_status"
NO_SERVER_ERROR = "envelope.no_server_error"
LOGID = "envelope.logid"
NO_STACK_TRACE = "envelope.no_stack_trace"

RULES: dict[str, str] = {
    SUCCESS_SHAPE: "a success is the envelope with code 0, a string msg and (where documented) a data object",
    SUCCESS_MSG: "a success's msg is the profile's preferred text",
    ERROR_SHAPE: "an error is a JSON object with an error code and a string msg",
    ERROR_DATA_NULL: "an error carries data: null",
    ERROR_STATUS: "an error's HTTP status equals its code",
    NO_SERVER_ERROR: "no answer is a server error (HTTP 5xx, code 5xx, or an error event with a 5xx code)",
    LOGID: "an answer carries its log id in the profile's header and body key, the same value",
    NO_STACK_TRACE: "an error's msg carries no stack trace",
}


def exchange_requirements(catalogue: Mapping[str, Any]) -> dict[str, str]:
    """rule -> requirement id: what the plugin judges on every exchange of every test
    (never declared by a test). ``catalogue`` is the run profile's subset."""
    return {rule: r.id for r in catalogue.values() if not r.retired for rule in r.rules if rule in RULES}


def all_exchange_requirements(catalogue: Mapping[str, Any]) -> frozenset[str]:
    """The ids any profile judges on every exchange."""
    return frozenset(r.id for r in catalogue.values() if any(rule in RULES for rule in r.rules))


Check = Callable[..., bool]
#: A Go errorx stack trace appended to an error string ("\nstack=..."), or a Python one.
_STACK = re.compile(r"(?:^|\n)\s*stack=|Traceback \(most recent call last\)|\n\s+at [\w.$]+\(|goroutine \d+ \[")


def _endpoint_path(profile: Profile, url: str, base_path: str) -> Any:
    path = urlsplit(url).path
    if base_path and path.startswith(base_path):
        path = path[len(base_path) :] or "/"
    for endpoint in profile.endpoints:
        pattern = endpoint.path.split("/")
        parts = path.split("/")
        if len(pattern) == len(parts) and all(p.startswith(":") or p == q for p, q in zip(pattern, parts, strict=True)):
            return endpoint
    return None


def judge_exchanges(
    exchanges: Iterable[Any],
    profile: Profile,
    check: Check,
    *,
    base_path: str = "",
    rules: Mapping[str, str] | None = None,
) -> None:
    """Judge every finished, non-stream answer of ``exchanges`` (event streams are the
    grammar's). ``check`` is a soft check: it records and never stops the test.
    ``rules`` maps the judge's rules to the profile's requirement ids
    (``exchange_requirements``); a rule it does not map is not judged."""
    if rules is not None:
        check = _mapped(check, rules)
    env = profile.envelope
    for exchange in exchanges:
        status = exchange.status
        if status is None or exchange.body_truncated:
            continue
        where = f"{exchange.method} {urlsplit(exchange.url).path} -> HTTP {status}"
        media = dict((n.lower(), v) for n, v in exchange.response_headers).get("content-type", "")
        # An event stream is judged as one however it was asked for: READING
        # "`/api/conversation/chat` response" lets the run answer a stream unasked.
        # (A /v3/chat that streams unasked breaks CHAT-REQ-004, not the envelope.)
        if media.split(";")[0].strip().lower() == profile.stream["media_type"]:
            _judge_stream_errors(exchange, media, profile, check, where)
            continue
        check(NO_SERVER_ERROR, status < 500, expected="HTTP status < 500", actual=status, detail=where)
        try:
            body = json.loads(exchange.response_body)
        except (ValueError, UnicodeDecodeError):
            body = None
        code = body.get(env.code_key) if isinstance(body, dict) else None
        if env.logid_header and not env.logid_key:
            header = dict((n.lower(), v) for n, v in exchange.response_headers).get(env.logid_header.lower())
            check(
                LOGID,
                bool(header and header.strip()),
                expected=f"a log id in the {env.logid_header} header",
                actual=f"header {header!r}",
                detail=where,
            )
        if env.logid_header and env.logid_key and isinstance(body, dict):
            headers = dict((n.lower(), v) for n, v in exchange.response_headers)
            header, inner = headers.get(env.logid_header.lower()), _logid(body, env.logid_key)
            check(
                LOGID,
                bool(header) and isinstance(inner, str) and inner == header,
                expected=f"the same log id in the {env.logid_header} header and at {env.logid_key}",
                actual=f"header {header!r}, {env.logid_key} {inner!r}",
                detail=where,
            )
        if isinstance(code, int) and not isinstance(code, bool) and 500 <= code < 600:
            check(NO_SERVER_ERROR, False, expected="no code 500", actual=code, detail=where)
        endpoint = _endpoint_path(profile, exchange.url, base_path)
        outside = endpoint is not None and endpoint.success_key is not None
        if outside and status < 400 and isinstance(body, dict) and (env.code_key not in body or code == env.success_code):
            # An endpoint that may answer its object outside the envelope's data: the bare
            # object, or under a key of its own, with or without a code (the envelope with
            # the object at data stays legal).
            key = endpoint.success_key if endpoint is not None else None
            inner = body if key == "" and env.code_key not in body else body.get(key) if key else None
            if inner is None:
                inner = body.get(env.data_key)
            check(
                SUCCESS_SHAPE,
                isinstance(inner, dict | list)
                and (env.code_key not in body or (type(code) is int and isinstance(body.get(env.msg_key), str))),
                expected=("the bare object" if key == "" else f"an object at {key!r}")
                + f" or at {env.data_key!r} (with {env.code_key} 0 and a string {env.msg_key} when a code is given)",
                actual=_excerpt(exchange.response_body),
                detail=where,
            )
            continue
        is_error = status >= 400 or code != env.success_code
        if is_error:
            listed = code in env.codes if env.error_codes_closed else code != env.success_code
            shaped = (
                isinstance(body, dict)
                and isinstance(code, int)
                and not isinstance(code, bool)
                and listed
                and isinstance(body.get(env.msg_key), str)
            )
            codes = f"in {sorted(env.codes)}" if env.error_codes_closed else "a non-zero integer"
            check(
                ERROR_SHAPE,
                shaped,
                expected=f"a JSON object with {env.code_key} {codes} and a string {env.msg_key}",
                actual=_excerpt(exchange.response_body),
                detail=where,
            )
            msg = body.get(env.msg_key) if isinstance(body, dict) else None
            if isinstance(msg, str):
                check(
                    NO_STACK_TRACE,
                    _STACK.search(msg) is None,
                    expected="a msg without a stack trace",
                    actual=_excerpt(msg.encode()),
                    detail=where,
                )
            if shaped:
                # READING "Error envelope": "`data: null` SHOULD (absent is accepted)" --
                # absent is accepted at MUST level (ERR-001 passes it) and the documented
                # `data: null` is checked at SHOULD (READING "Levels"), so absent fails here.
                check(
                    ERROR_DATA_NULL,
                    env.data_key in body and body[env.data_key] is None,
                    expected=f"{env.data_key}: null",
                    actual=(
                        _excerpt(json.dumps(body[env.data_key], ensure_ascii=False)) if env.data_key in body else f"no {env.data_key} key"
                    ),
                    detail=where,
                )
                check(ERROR_STATUS, status == code, expected=f"HTTP status {code}", actual=status, detail=where)
            continue
        data_optional = endpoint is not None and not endpoint.success_data
        data = body.get(env.data_key) if isinstance(body, dict) else None
        shaped = (
            isinstance(body, dict)
            and type(code) is int  # 0.0 equals 0 in Python, but it is not a JSON integer
            and isinstance(body.get(env.msg_key), str)
            # READING "Success msg, data": a data object on success, except on an endpoint
            # whose success carries none (cancel), where data may be absent, null or any value.
            and (isinstance(data, dict) or data_optional)
        )
        check(
            SUCCESS_SHAPE,
            shaped,
            expected=f"a JSON object with {env.code_key} 0, a string {env.msg_key} and a {env.data_key} object",
            actual=_excerpt(exchange.response_body),
            detail=where,
        )
        if shaped:
            check(
                SUCCESS_MSG,
                body[env.msg_key] == env.preferred_success_msg,
                expected=repr(env.preferred_success_msg),
                actual=repr(body[env.msg_key]),
                detail=where,
            )


def _mapped(check: Check, rules: Mapping[str, str]) -> Check:
    def judge(rule: str, *args: Any, **kwargs: Any) -> bool:
        requirement = rules.get(rule)
        return True if requirement is None else check(requirement, *args, **kwargs)

    return judge


def _logid(body: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


def _judge_stream_errors(exchange: Any, media: str, profile: Profile, check: Check, where: str) -> None:
    """A 5xx inside an event stream is still a server error (ERR-004): an error event
    whose code is 500 or more, at ``code`` or ``error.code``."""
    from conformance.oracle.sse import SSEChecker

    checker = SSEChecker(media, profile.stream["media_type"])
    checker.feed(exchange.response_body, 0.0)
    for event in checker.events:
        if event.type not in profile.stream["error_events"]:
            continue
        try:
            payload = json.loads(event.data)
        except ValueError:
            continue
        nested = payload.get("error") if isinstance(payload, dict) else None
        codes = [payload.get("code") if isinstance(payload, dict) else None, nested.get("code") if isinstance(nested, dict) else None]
        server_error = any(isinstance(c, int) and not isinstance(c, bool) and 500 <= c < 600 for c in codes)
        check(NO_SERVER_ERROR, not server_error, expected="no error event with a 5xx code", actual=event.data[:300], detail=where)


def error_event_code(data: str, key: str = "code") -> Any:
    """The code an error event's data carries: at ``key`` as in the spec's error section,
    or at ``error.<key>`` as its client example reads it (ERR-SSE-001); None otherwise."""
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    if key in payload:
        return payload[key]
    error = payload.get("error")
    return error.get(key) if isinstance(error, dict) else None


def _excerpt(body: bytes | str, limit: int = 300) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= limit else text[:limit] + "..."
