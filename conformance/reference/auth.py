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

from .responses import ApiError

EndpointClass = Literal["openapi", "webapi"]

#: RFC 9110 §11.6.1: a 401 answer carries a challenge.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="coze-plus-reference"'}


#: The mode-refusal faults (faults/api.py): fault -> (endpoint class, refused mode, path
#: prefix). Each refuses one mode on ONE endpoint of the class, not the whole class: the
#: auth tests judge every endpoint, so one endpoint is enough to fail the requirement,
#: and the other endpoints keep serving the rest of the suite.
MODE_REFUSALS: Mapping[str, tuple[EndpointClass, str, str]] = {
    "auth_bearer_refused_on_openapi": ("openapi", "bearer", "/v3/chat/cancel"),
    "auth_cookie_refused_on_webapi": ("webapi", "cookie", "/api/conversation/chat"),
    "auth_cookie_refused_on_openapi": ("openapi", "cookie", "/"),
    "auth_bearer_refused_on_webapi": ("webapi", "bearer", "/"),
}


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
    faults: frozenset[str] = frozenset(),
) -> str:
    """The principal's name, or a 401 :class:`ApiError`.

    Every credential the endpoint accepts must be valid, and when both are sent they
    must name the same principal: a request is never half-authenticated.
    ``faults`` switches on the auth faults of faults/api.py (each a branch marked there).
    """
    if "auth_no_check" in faults:  # fault: whatever fails the check is the first principal
        try:
            return authenticate(request, endpoint_class, by_class=by_class, api_keys=api_keys, session_keys=session_keys)
        except ApiError:
            return next(iter(api_keys.values()))
    accept_bearer = not by_class or endpoint_class == "openapi"
    accept_cookie = not by_class or endpoint_class == "webapi"
    for fault, (refused_class, mode, path) in MODE_REFUSALS.items():  # faults: one mode refused
        if fault in faults and endpoint_class == refused_class and request.url.path.startswith(path):
            accept_bearer, accept_cookie = accept_bearer and mode != "bearer", accept_cookie and mode != "cookie"
    principals: set[str] = set()

    header = request.headers.get("authorization")
    if header is not None and accept_bearer:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("invalid Authorization header: expected 'Bearer <api_key>'")
        principal = _lookup(token.strip(), api_keys)
        if principal is None and "auth_any_bearer" in faults:  # fault: a wrong token passes
            principal = next(iter(api_keys.values()))
        if principal is None:
            raise _unauthorized("invalid API key")
        principals.add(principal)

    session = request.cookies.get("session_key")
    if session is not None and accept_cookie:
        principal = _lookup(session, session_keys)
        if principal is None and "auth_any_cookie" in faults:  # fault: a wrong cookie passes
            principal = next(iter(session_keys.values()))
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
