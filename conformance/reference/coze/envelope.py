"""The cloud envelope: codes, the log id, success and error answers.

Success: HTTP 200, ``{"code": 0, "msg": "", "data": ..., "detail": {"logid": L}}``.
Error: ``{"code": N, "msg": "...", "detail": {"logid": L}}``, HTTP 200 for business
errors (as the cloud answers them) and HTTP 401 for a refused credential (the variants
coze_error_status and coze_auth_status choose the other legal statuses; coze_extra_fields
adds undocumented keys). Every answer
carries ``x-tt-logid: L`` (cozepy reads the log id from that header only).
The envelope faults (faults/coze.py: ENV-*) are applied here, where the body is built.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.responses import Response

from ..config import ServerConfig
from ..responses import ApiError

BAD_REQUEST = 4000
AUTH_FAILED = 4100
FORBIDDEN = 4101
NOT_FOUND = 4200
RATE_LIMITED = 4013
NOT_PUBLISHED = 4015
CONVERSATION_BUSY = 4016
NOT_CANCELLABLE = 4104
SERVER_ERROR = 5000

#: The doc dialect's errors (raised by the shared input readers, inputs.py) as cloud codes.
FROM_DOC_CODE = {400: BAD_REQUEST, 401: AUTH_FAILED, 403: FORBIDDEN, 404: NOT_FOUND, 429: RATE_LIMITED, 500: SERVER_ERROR}

#: coze_error_status="http": the HTTP status of a business error by its code (5000 keeps 500).
HTTP_STATUS_BY_CODE = {
    BAD_REQUEST: 400,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    RATE_LIMITED: 429,
    NOT_PUBLISHED: 403,
    CONVERSATION_BUSY: 409,
    NOT_CANCELLABLE: 409,
    SERVER_ERROR: 500,
}
#: coze_extra_fields: the undocumented keys an envelope carries (top level and detail).
ENVELOPE_EXTRA = {"debug_url": ""}
DETAIL_EXTRA = {"extra": {"region": "reference"}}

LOGID_HEADER = "x-tt-logid"
_MISSING: Any = object()


class CozeError(Exception):
    """An error answer with a cloud code; ``http_status`` 200 unless said otherwise."""

    def __init__(self, code: int, msg: str, *, http_status: int = 200) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status


def from_api_error(error: ApiError) -> CozeError:
    """A doc-dialect ApiError (the shared body and field readers raise them) in cloud terms:
    a 400 is a 4000 business error (HTTP 200); a 500 stays HTTP 500."""
    code = FROM_DOC_CODE.get(error.code, SERVER_ERROR)
    return CozeError(code, error.msg, http_status=500 if code == SERVER_ERROR else 200)


def bad_request(msg: str) -> CozeError:
    return CozeError(BAD_REQUEST, msg)


def new_logid() -> str:
    """Like the cloud's: a UTC timestamp and random hex, e.g. ``20250402153012A1B2...``."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(10).upper()


def _body(config: ServerConfig, logid: str, code: int, msg: str, data: object) -> dict[str, object]:
    body: dict[str, object] = {"code": code, "msg": msg}
    if data is not _MISSING:
        body["data"] = data
    if not config.has("coze_no_logid"):  # fault: no detail.logid (nor the header: see logid_headers)
        body["detail"] = {"logid": logid, **(DETAIL_EXTRA if config.coze_extra_fields else {})}
    if config.coze_extra_fields:
        body.update(ENVELOPE_EXTRA)  # variant: undocumented keys
    if code == 0 and config.has("coze_success_without_msg"):
        del body["msg"]  # fault: a success without msg
    if code != 0 and config.has("coze_error_without_msg"):
        del body["msg"]  # fault: an error without msg
    return body


def logid_headers(config: ServerConfig, logid: str) -> dict[str, str]:
    return {} if config.has("coze_no_logid") else {LOGID_HEADER: logid}  # fault: coze_no_logid


def dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def ok(config: ServerConfig, logid: str, data: object = _MISSING) -> Response:
    body = _body(config, logid, 0, "", data)
    return Response(dumps(body), 200, headers=logid_headers(config, logid), media_type="application/json")


def http_status(config: ServerConfig, failure: CozeError) -> int:
    """The HTTP status of an error answer under the variants coze_auth_status and coze_error_status."""
    if failure.http_status == 401:
        return config.coze_auth_status
    if failure.http_status == 200 and config.coze_error_status == "http":
        return HTTP_STATUS_BY_CODE.get(failure.code, 400)
    return failure.http_status


def error(config: ServerConfig, logid: str, failure: CozeError) -> Response:
    body = _body(config, logid, failure.code, failure.msg, _MISSING)
    return Response(dumps(body), http_status(config, failure), headers=logid_headers(config, logid), media_type="application/json")
