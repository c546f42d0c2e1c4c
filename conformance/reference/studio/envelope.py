"""The studio envelope: codes, success and error answers, the log id.

Success: HTTP 200 ``{"code": 0, "msg": "", "data": ...}``. Error: ``{"code": N, "msg": "..."}``
(no ``data``): HTTP 400 code 400 for bind errors, 401 code 401 for a missing cookie, 404 code
404 for an unknown path, HTTP 200 with a 9-digit code for business errors (``studio_error_status``
"http": a 4xx status by code instead) and for refused credentials (``studio_auth_status`` 401).
The envelope faults (faults/studio.py, STUDIO-ENV-*) are branches here.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import Response

from ..config import ServerConfig

BAD_REQUEST = 400
NO_COOKIE = 401
NOT_FOUND = 404
AUTH_FAILED = 700012006
INVALID_PARAMETER = 100000000  # also "agent not published"
NOT_EXIST = 100000003  # agent not exist, connector not allowed, space not the principal's
NOT_OWNER = 110000001
NO_MODEL = 100000013
CHAT_INVALID = 103000000
CHAT_NOT_OWNER = 103000001
CHAT_PRERUN = 103100001
CHAT_ARGS = 103100002
CHAT_RUN_FAILED = 103200002
CHAT_NOT_FOUND = 103200003
NOT_CANCELLABLE = 103200005

#: studio_error_status="http": the 4xx status of a business error by code (400 otherwise).
HTTP_STATUS_BY_CODE = {
    AUTH_FAILED: 401,
    INVALID_PARAMETER: 400,
    NOT_EXIST: 404,
    NOT_OWNER: 403,
    NO_MODEL: 400,
    CHAT_NOT_OWNER: 403,
    CHAT_PRERUN: 400,
    CHAT_NOT_FOUND: 404,
    NOT_CANCELLABLE: 409,
}
LOGID_HEADER = "X-Log-ID"
#: studio_stack_in_msg: what Coze Plus appends to the msg of a 400 (a Go stack trace).
STACK = "\nstack=goroutine 1 [running]:\nmain.handler()\n\t/app/backend/api/handler.go:42 +0x1d"
_MISSING: Any = object()


class StudioError(Exception):
    """An error answer. ``http_status`` 200 marks a business error (or an auth refusal:
    ``auth``), whose status the variants may change; any other status is sent as it is."""

    def __init__(self, code: int, msg: str, *, http_status: int = 200, auth: bool = False) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.auth = auth


def bad_request(msg: str) -> StudioError:
    return StudioError(BAD_REQUEST, msg, http_status=400)


def new_logid() -> str:
    return str(uuid.uuid4())


def dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def json_answer(body: object, status: int = 200) -> Response:
    return Response(dumps(body), status, media_type="application/json")


def ok(config: ServerConfig, data: object = _MISSING) -> Response:
    body: dict[str, object] = {"code": 0, "msg": None if config.has("studio_success_msg_null") else ""}  # fault: msg null
    if data is not _MISSING:
        body["data"] = data
    return json_answer(body)


def http_status(config: ServerConfig, failure: StudioError) -> int:
    """The HTTP status under the variants studio_auth_status and studio_error_status."""
    if failure.http_status != 200:
        return failure.http_status
    if failure.auth:
        return config.studio_auth_status
    if config.studio_error_status == "http":
        return HTTP_STATUS_BY_CODE.get(failure.code, 400)
    return 200


def error(config: ServerConfig, failure: StudioError) -> Response:
    status = http_status(config, failure)
    msg = failure.msg
    if status == 400 and config.has("studio_stack_in_msg"):
        msg += STACK  # fault: a Go stack trace in msg, as Coze Plus sends it
    code: object = str(failure.code) if config.has("studio_error_code_string") else failure.code  # fault: a string
    return json_answer({"code": code, "msg": msg}, status)
