"""Login, the space list and personal access tokens (contract "Principals and auth").

* ``POST /api/passport/web/email/login/`` ``{email, password}`` (no cookie needed) -> the
  user, and ``Set-Cookie: session_key=<new session>; Path=/; HttpOnly``; a wrong email or
  password answers code 700012006 and sets no cookie.
* ``POST /api/playground_api/space/list`` -> the principal's personal space.
* ``POST /api/permission_api/pat/create_personal_access_token_and_permission`` ``{name,
  duration_day?, expire_at?}`` -> a ``pat_…`` token, a Bearer key of the principal from then on.
"""

from __future__ import annotations

import hmac

from starlette.responses import Response

from ..inputs import parse_object, read_body
from ..store import now_seconds
from . import envelope
from .chats import call_body, text
from .envelope import StudioError, bad_request
from .state import Call, user_id_of

DAY = 86_400
DEFAULT_DAYS = 30


async def login(call: Call) -> Response:
    state = call.state
    body = await call_body(call)
    email = text(body, "email", required=True)
    password = text(body, "password", required=True)
    assert email is not None and password is not None
    principal = state.by_email(email)
    right = principal is not None and hmac.compare_digest(principal.password.encode(), password.encode())
    if principal is None or not (right or call.config.has("studio_login_any_password")):  # fault: any password
        raise StudioError(envelope.AUTH_FAILED, "authentication failed: wrong email or password")
    session = state.new_session(principal.name)
    answer = envelope.ok(call.config, {"user_id_str": user_id_of(principal), "name": principal.name, "email": principal.email})
    answer.headers.append("set-cookie", f"session_key={session}; Path=/; HttpOnly")
    return answer


async def space_list(call: Call) -> Response:
    raw = await read_body(call.request, call.config.max_body_bytes)
    if raw.strip():
        parse_object(raw)  # {} or none; anything else must still be a JSON object
    principal = call.state.principals[call.principal]
    space = {"id": principal.space_id, "name": "Personal", "space_type": 1}
    spaces = [] if call.config.has("studio_space_list_empty") else [space]  # fault: the personal space not listed
    return envelope.ok(
        call.config,
        {"bot_space_list": spaces, "has_personal_space": True, "team_space_num": 0, "recently_used_space_list": list(spaces)},
    )


async def create_pat(call: Call) -> Response:
    body = await call_body(call)
    name = text(body, "name", required=True, non_empty=True)
    days = text(body, "duration_day")
    expire_at = body.get("expire_at")
    if expire_at is not None and (isinstance(expire_at, bool) or not isinstance(expire_at, int) or expire_at < 0):
        raise bad_request("invalid expire_at: expected an integer number of seconds")
    created = now_seconds()
    if days is not None and days.isdigit() and days.isascii():
        expire_at = created + int(days) * DAY
    elif expire_at is None:
        expire_at = created + DEFAULT_DAYS * DAY
    token = call.state.new_pat(call.principal)
    pat = {"id": call.state.new_id(), "name": name, "created_at": created, "expire_at": expire_at}
    return envelope.ok(call.config, {"personal_access_token": pat, "token": token})
