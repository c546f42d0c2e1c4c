"""Routes of the studio dialect and the gate every request passes.

The path alone decides the auth class (contract "Principals and auth"): ``/api/*`` needs
the ``session_key`` cookie (none: HTTP 401 code 401 -- before a 404 too; a dead one: code
700012006), except the login route; ``/v1/*`` and ``/v3/*`` need ``Authorization: Bearer``
(a cookie does not count: code 700012006), after the route is known (an unknown path is a
404 whatever the credentials). Then the handler; a :class:`StudioError` -- or an ApiError of
the shared input readers, always a 400 -- becomes the error envelope. Every answer carries
``X-Log-ID``. No rate limiter. A capability switched off (studio_retrieve) makes its routes
unknown paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..responses import ApiError
from ..runtime import Runtime
from . import bots, chats, envelope, passport, run
from .envelope import StudioError
from .state import Call, StudioState

Handler = Callable[[Call], Awaitable[Response]]
LOGIN = "/api/passport/web/email/login/"
BOT_DETAILS = "/v1/bots/"
OPENAPI_PREFIXES = ("/v1/", "/v3/")
WEBAPI_PREFIX = "/api/"
#: studio_plain_text_400: the endpoints whose bind errors Coze Plus answers in plain text.
PLAIN_TEXT_PATHS = frozenset({"/api/draftbot/update_display_info", "/api/draftbot/publish"})
#: studio_cookie_refused: the endpoint that refuses a live cookie.
COOKIE_REFUSED_PATH = "/api/draftbot/get_display_info"


@dataclass(frozen=True)
class Endpoint:
    handler: Handler
    #: The ServerConfig capability knob the route needs (contract "Capabilities"), if any.
    capability: str | None = None


ROUTES: dict[tuple[str, str], Endpoint] = {
    ("POST", LOGIN): Endpoint(passport.login),
    ("POST", "/api/playground_api/space/list"): Endpoint(passport.space_list),
    ("POST", "/api/permission_api/pat/create_personal_access_token_and_permission"): Endpoint(passport.create_pat),
    ("POST", "/v3/chat"): Endpoint(chats.create_chat),
    ("GET", "/v3/chat/retrieve"): Endpoint(chats.retrieve, "studio_retrieve"),
    ("GET", "/v3/chat/message/list"): Endpoint(chats.message_list, "studio_retrieve"),
    ("POST", "/v3/chat/cancel"): Endpoint(chats.cancel),
    ("GET", "/v1/bot/get_online_info"): Endpoint(bots.online_info),
    ("GET", BOT_DETAILS + "{bot_id}"): Endpoint(bots.details),
    ("POST", "/api/draftbot/create"): Endpoint(bots.create),
    ("POST", "/api/playground_api/draftbot/update_draft_bot_info"): Endpoint(bots.update_draft),
    ("POST", "/api/draftbot/update_display_info"): Endpoint(bots.update_display_info),
    ("POST", "/api/draftbot/get_display_info"): Endpoint(bots.get_display_info),
    ("POST", "/api/draftbot/publish"): Endpoint(bots.publish),
    ("POST", "/api/conversation/chat"): Endpoint(run.conversation_chat),
}


def _route(state: StudioState, request: Request) -> Endpoint | None:
    path, method = request.url.path, request.method
    endpoint = ROUTES.get((method, path))
    rest = path.removeprefix(BOT_DETAILS)
    if endpoint is None and path.startswith(BOT_DETAILS) and rest and "/" not in rest:
        endpoint = ROUTES.get((method, BOT_DETAILS + "{bot_id}"))
        request.scope["path_params"] = {"bot_id": rest}
    if endpoint is not None and endpoint.capability is not None and not getattr(state.config, endpoint.capability):
        return None  # the capability is off: the route does not exist
    return endpoint


def _not_found(state: StudioState) -> StudioError:
    if state.config.has("studio_unknown_path_200"):
        return StudioError(envelope.NOT_FOUND, "not found")  # fault: HTTP 200
    return StudioError(envelope.NOT_FOUND, "not found", http_status=404)


def _refused(reason: str) -> StudioError:
    return StudioError(envelope.AUTH_FAILED, f"authentication failed: {reason}", auth=True)


def _bearer(state: StudioState, request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    return state.by_api_key(token.strip()) if scheme.lower() == "bearer" and token.strip() else None


def _webapi_principal(state: StudioState, request: Request) -> str:
    has = state.config.has
    first = state.config.principals[0].name
    if has("studio_bearer_on_webapi") and (principal := _bearer(state, request)) is not None:
        return principal  # fault: a Bearer key counts on /api
    cookie = request.cookies.get("session_key")
    if cookie is None and has("studio_no_cookie_not_401"):
        raise _refused("session not exist")  # fault: HTTP 200 code 700012006, not 401
    if cookie is None:
        raise StudioError(envelope.NO_COOKIE, "missing session_key in cookie", http_status=401)
    principal = state.by_session(cookie)
    if principal is None and has("studio_dead_cookie_served"):
        principal = first  # fault: any cookie is a session
    if has("studio_cookie_refused") and request.url.path == COOKIE_REFUSED_PATH:
        principal = None  # fault: this endpoint refuses a live cookie
    if principal is None:
        raise _refused("session not exist")
    return principal


def _openapi_principal(state: StudioState, request: Request) -> str:
    has = state.config.has
    first = state.config.principals[0].name
    if "authorization" not in request.headers:
        cookie = request.cookies.get("session_key")
        if has("studio_cookie_on_openapi") and cookie is not None and (principal := state.by_session(cookie)) is not None:
            return principal  # fault: the WebAPI cookie counts on /v1, /v3
        if has("studio_missing_bearer_served"):
            return first  # fault: no credentials, served
        raise _refused("missing 'Authorization: Bearer <token>' (a session cookie does not count here)")
    principal = _bearer(state, request)
    if has("studio_bearer_refused") and request.url.path.startswith(BOT_DETAILS):
        principal = None  # fault: this endpoint refuses a valid key
    if principal is None:
        raise _refused("invalid or unknown API key")
    return principal


async def _serve(state: StudioState, request: Request) -> Response:
    path = request.url.path
    if path.startswith(WEBAPI_PREFIX):
        endpoint = _route(state, request)
        if endpoint is not None and endpoint.handler is passport.login:
            return await endpoint.handler(Call(state, request, ""))
        principal = _webapi_principal(state, request)
        if endpoint is None:
            raise _not_found(state)
        return await endpoint.handler(Call(state, request, principal))
    endpoint = _route(state, request) if path.startswith(OPENAPI_PREFIXES) else None
    if endpoint is None:
        raise _not_found(state)
    return await endpoint.handler(Call(state, request, _openapi_principal(state, request)))


def _error(state: StudioState, request: Request, failure: StudioError) -> Response:
    if failure.http_status == 400 and request.url.path in PLAIN_TEXT_PATHS and state.config.has("studio_plain_text_400"):
        return PlainTextResponse(failure.msg, 400)  # fault: a bind error in plain text, as Coze Plus sends it
    return envelope.error(state.config, failure)


class _Asgi:
    """The dispatcher as a raw ASGI app: Starlette routes every method to it (a function
    endpoint would get GET only, and a 405 in plain text for the rest)."""

    def __init__(self, dispatch: Callable[[Request], Awaitable[Response]]) -> None:
        self.dispatch = dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.dispatch(Request(scope, receive))
        await response(scope, receive, send)


def create_studio_app(runtime: Runtime) -> Starlette:
    """The studio dialect's ASGI app on ``runtime`` (``app.state.runtime``, ``app.state.studio``)."""
    state = StudioState(runtime)

    async def dispatch(request: Request) -> Response:
        try:
            response = await _serve(state, request)
        except StudioError as failure:
            response = _error(state, request, failure)
        except ApiError as failure:  # the shared input readers: a bind error
            response = _error(state, request, envelope.bad_request(failure.msg))
        except Exception:  # a bug, never an answer to bad input
            response = envelope.json_answer({"code": 500, "msg": "internal server error"}, 500)
        if not state.config.has("studio_no_logid"):  # fault: no X-Log-ID
            response.headers[envelope.LOGID_HEADER] = envelope.new_logid()
        return response

    app = Starlette(routes=[Route("/{path:path}", _Asgi(dispatch))])
    app.router.redirect_slashes = False
    app.state.runtime = runtime
    app.state.studio = state
    return app
