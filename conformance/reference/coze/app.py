"""Routes of the coze dialect and the gate every request passes.

The gate: a log id, then the Bearer key (HTTP 401, code 4100: no session cookies in
this dialect), then the handler; a :class:`CozeError` -- or an ApiError of the shared
input readers (inputs.py), mapped by envelope.from_api_error -- becomes the error
envelope. There is no rate limiter (the contract has no rate-limit requirement).
Unknown paths and methods answer HTTP 404 with code 4200; an unexpected exception
(a bug) HTTP 500 with code 5000.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..responses import ApiError
from ..runtime import Runtime
from . import bots, chats, envelope
from .envelope import CozeError
from .state import Call, CozeState

Handler = Callable[[Call], Awaitable[Response]]

#: (methods, path, handler). retrieve is a POST in cozepy and @coze/api, a GET in Coze Studio.
ROUTES: tuple[tuple[tuple[str, ...], str, Handler], ...] = (
    (("POST",), "/v3/chat", chats.create_chat),
    (("POST", "GET"), "/v3/chat/retrieve", chats.retrieve),
    (("GET",), "/v3/chat/message/list", chats.message_list),
    (("POST",), "/v3/chat/cancel", chats.cancel),
    (("POST",), "/v1/bot/create", bots.create),
    (("POST",), "/v1/bot/update", bots.update),
    (("POST",), "/v1/bot/publish", bots.publish),
    (("GET",), "/v1/bot/get_online_info", bots.online_info),
    (("GET",), "/v1/bots/{bot_id}", bots.details),
)

#: coze_bearer_refused: the one endpoint that refuses a valid key (not get_online_info:
#: a client's preflight probes that one, and would stop the run before any judgement).
BEARER_REFUSED_PREFIX = "/v1/bots/"


def _lookup(secret: str, keys: dict[str, str]) -> str | None:
    found = None
    for known, principal in keys.items():  # every key compared, in constant time
        if hmac.compare_digest(secret.encode("utf-8"), known.encode("utf-8")):
            found = principal
    return found


def authenticate(state: CozeState, request: Request) -> str:
    """The principal of ``Authorization: Bearer <api key>``, or a 401 with code 4100."""
    has, keys = state.config.has, state.runtime.principal_by_api_key
    first = next(iter(keys.values()))
    header = request.headers.get("authorization")
    if header is None and has("coze_no_credentials_served"):
        return first  # fault: a request without credentials is served
    if header is None:
        raise CozeError(envelope.AUTH_FAILED, "missing credentials: 'Authorization: Bearer <api key>'", http_status=401)
    scheme, _, token = header.strip().partition(" ")
    principal = _lookup(token.strip(), keys) if scheme.lower() == "bearer" else None
    if principal is None and has("coze_any_bearer"):
        principal = first  # fault: any key is accepted
    if has("coze_bearer_refused") and request.url.path.startswith(BEARER_REFUSED_PREFIX):
        principal = None  # fault: this endpoint refuses the valid key
    if principal is None:
        raise CozeError(envelope.AUTH_FAILED, "authentication failed: invalid API key", http_status=401)
    return principal


def _gate(state: CozeState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        logid = envelope.new_logid()
        try:
            principal = authenticate(state, request)
            return await handler(Call(state, request, principal, logid))
        except CozeError as failure:
            return envelope.error(state.config, logid, failure)
        except ApiError as failure:
            return envelope.error(state.config, logid, envelope.from_api_error(failure))

    run.__name__ = handler.__name__
    return run


def create_coze_app(runtime: Runtime) -> Starlette:
    """The coze dialect's ASGI app on ``runtime`` (``app.state.runtime``, ``app.state.coze``)."""
    state = CozeState(runtime)

    def answer(request: Request, failure: CozeError) -> Response:
        return envelope.error(state.config, envelope.new_logid(), failure)

    async def http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (404, 405):
            return answer(request, CozeError(envelope.NOT_FOUND, f"no such endpoint: {request.method} {request.url.path}", http_status=404))
        return answer(request, CozeError(envelope.BAD_REQUEST, str(exc.detail)))

    async def unexpected(request: Request, exc: Exception) -> Response:
        return answer(request, CozeError(envelope.SERVER_ERROR, "internal server error", http_status=500))

    app = Starlette(
        routes=[Route(path, _gate(state, handler), methods=list(methods)) for methods, path, handler in ROUTES],
        exception_handlers={HTTPException: http_exception, Exception: unexpected},
    )
    app.router.redirect_slashes = False
    app.state.runtime = runtime
    app.state.coze = state
    return app
