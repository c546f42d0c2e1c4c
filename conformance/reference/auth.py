"""Who is calling: the API key (``Authorization: Bearer``) or the ``session_key`` cookie.

Spec "认证方式" documents both modes: Session (WebAPI, ``Cookie: session_key=…``)
and API Key (OpenAPI, ``Authorization: Bearer …``). READING "Auth per endpoint": an
endpoint MUST accept the mode of its class (Bearer on /v1 and /v3, the cookie on
/api) and SHOULD accept the other; by default this server accepts both everywhere,
and ``auth_modes="by_class"`` narrows it to the class's mode.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Literal

from starlette.requests import Request

from .envelope import ApiError

EndpointClass = Literal["openapi", "webapi"]

#: RFC 9110 §11.6.1: a 401 answer carries a challenge.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="coze-plus-reference"'}


def _unauthorized(msg: str) -> ApiError:
    return ApiError(401, msg, headers=CHALLENGE)


def _lookup(secret: str, table: Mapping[str, str]) -> str | None:
    # Compare every key in constant time, so timing reveals nothing about a near miss.
    found = None
    for known, principal in table.items():
        if hmac.compare_digest(secret.encode("utf-8"), known.encode("utf-8")):
            found = principal
    return found


def authenticate(
    request: Request,
    endpoint_class: EndpointClass,
    *,
    by_class: bool,
    api_keys: Mapping[str, str],
    session_keys: Mapping[str, str],
) -> str:
    """The principal's name, or a 401 :class:`ApiError`.

    Every credential the endpoint accepts must be valid, and when both are sent they
    must name the same principal: a request is never half-authenticated.
    """
    accept_bearer = not by_class or endpoint_class == "openapi"
    accept_cookie = not by_class or endpoint_class == "webapi"
    principals: set[str] = set()

    header = request.headers.get("authorization")
    if header is not None and accept_bearer:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("invalid Authorization header: expected 'Bearer <api_key>'")
        principal = _lookup(token.strip(), api_keys)
        if principal is None:
            raise _unauthorized("invalid API key")
        principals.add(principal)

    session = request.cookies.get("session_key")
    if session is not None and accept_cookie:
        principal = _lookup(session, session_keys)
        if principal is None:
            raise _unauthorized("invalid session_key cookie")
        principals.add(principal)

    if len(principals) > 1:
        raise _unauthorized("the API key and the session_key cookie belong to different users")
    if not principals:
        wanted = {
            (True, True): "an 'Authorization: Bearer <api_key>' header or a 'session_key' cookie",
            (True, False): "an 'Authorization: Bearer <api_key>' header",
            (False, True): "a 'session_key' cookie",
        }[(accept_bearer, accept_cookie)]
        raise _unauthorized(f"missing credentials: this endpoint needs {wanted}")
    return principals.pop()
