"""The JSON envelope every non-stream answer travels in (spec "响应格式", "错误处理").

Success: ``{"code": 0, "msg": "success", "data": {...}}``; the cancel example has no
``data`` (spec "取消对话"), so ``data`` is optional here. Error: ``{"code": N, "msg":
"...", "data": null}`` with the HTTP status equal to ``N`` (spec "错误响应格式").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

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
