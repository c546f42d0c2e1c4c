"""The JSON envelope every non-stream answer travels in (spec "响应格式", "错误处理").

Success: ``{"code": 0, "msg": "success", "data": {...}}``; the cancel example has no
``data`` (spec "取消对话"), so ``data`` is optional here. Error: ``{"code": N, "msg":
"...", "data": null}`` with the HTTP status equal to ``N`` (spec "错误响应格式").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import Response, StreamingResponse

if TYPE_CHECKING:
    from .config import ServerConfig

#: The error codes the spec lists (spec "错误码"). The server produces no other status.
ERROR_CODES = frozenset({400, 401, 403, 404, 429, 500})

_MISSING: Any = object()


class ApiError(Exception):
    """An error answer: raised anywhere in a handler, rendered by :func:`error_response`."""

    def __init__(self, code: int, msg: str, *, headers: Mapping[str, str] | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"ApiError code {code} is not a documented error code")
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.headers = dict(headers or {})


class BodyTooLarge(ApiError):
    """A request body over ``max_body_bytes``: a 400 like any other, a class of its own
    only so that the huge-body faults can answer it their way."""

    def __init__(self, limit: int) -> None:
        super().__init__(400, f"request body too large: more than {limit} bytes")


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON; big integers go out as exact digits (Python ints never round)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def json_response(body: Mapping[str, object], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(body), status_code=status, headers=dict(headers or {}), media_type="application/json")


def ok_response(msg: str, data: object = _MISSING) -> Response:
    body: dict[str, object] = {"code": 0, "msg": msg}
    if data is not _MISSING:
        body["data"] = data
    return json_response(body)


def error_response(error: ApiError) -> Response:
    return json_response({"code": error.code, "msg": error.msg, "data": None}, error.code, error.headers)


# Faults (faults/wire.py) -----------------------------------------------------------

#: What an nginx in front of the server says when its upstream fails.
BAD_GATEWAY_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
_CANCEL_PATH = "/v3/chat/cancel"
_RUN_PATH = "/api/conversation/chat"


def envelope_faults(config: ServerConfig, path: str, response: Response, error: ApiError | None) -> Response:
    """The answer of ``path`` as a server with the envelope faults of ``config`` words it.

    Every documented endpoint's answer passes here (app.py), so each envelope fault is a
    line or two in this one place. Event streams pass unchanged.
    """
    has = config.has
    if isinstance(error, BodyTooLarge):
        if has("validation_huge_body_500"):  # fault: the body buffer overflows into a 500
            return error_response(ApiError(500, "internal server error"))
        if has("err_huge_body_plain_text"):  # fault: a proxy's 413 page, not the envelope
            return Response(b"413 Request Entity Too Large", 413, media_type="text/plain")
        if has("err_huge_body_bad_gateway"):  # fault: the upstream died; the proxy's 502 page
            return Response(BAD_GATEWAY_PAGE, 502, media_type="text/html")
    if isinstance(response, StreamingResponse) or response.media_type != "application/json":
        return response
    body = json.loads(bytes(response.body))
    status = response.status_code
    if error is None:
        if has("env_success_without_msg"):  # fault: {"code": 0, "data": {...}}
            del body["msg"]
        if has("env_success_msg_ok"):  # fault: msg "OK" (SHOULD "success")
            body["msg"] = "OK"
        if has("env_run_success_without_data") and path == _RUN_PATH:  # fault: no data on success
            del body["data"]
        return json_response(body, status)
    if has("err_without_msg"):  # fault: {"code": 400, "data": null}
        del body["msg"]
    if has("err_data_not_null"):  # fault: data {} (SHOULD null)
        body["data"] = {}
    if has("err_status_200"):  # fault: every error answered with HTTP 200 (SHOULD = code)
        status = 200
    if has("err_cancel_code_string") and path == _CANCEL_PATH and error.code == 400:  # fault: code "400"
        body["code"] = "400"
    if has("err_run_code_4000") and path == _RUN_PATH and error.code == 400:  # fault: code 4000, not listed
        body["code"] = 4000
    return json_response(body, status, error.headers)
