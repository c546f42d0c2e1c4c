"""The ASGI application: one route per documented endpoint, nothing more.

Every endpoint runs the same gate before its handler, in this order:
authentication (401), then the rate limit of its group (429), then the handler's own
validation (400), lookups (403/404) and work. Checking credentials first means an
anonymous caller learns nothing about ids or body rules; counting a request before
validating it means a client cannot dodge the limit with bad bodies.
Unknown paths and methods answer a 404 envelope: the documented codes are
400/401/403/404/429/500 (spec "错误码"), and the page has no 405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import bots, chat
from .auth import EndpointClass, authenticate
from .config import RateGroup, ServerConfig
from .coze.app import create_coze_app
from .ratelimit import (
    Decision,
    broken_refusal,
    peek_user_id,
    rate_key,
    retry_after_headers,
)
from .responses import ApiError, envelope_faults, error_response
from .runtime import Runtime
from .studio.app import create_studio_app
from .wireforms import wire_forms

Handler = Callable[[Runtime, Request, str], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    group: RateGroup
    endpoint_class: EndpointClass


#: The documented endpoints (spec: 对话聊天 API, 智能体管理 API, 智能体信息 API) with
#: their rate-limit group (spec "速率限制"; READING "Rate-limit groups" -- cancel
#: counts as chat) and auth class (READING "Auth per endpoint").
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/v3/chat", chat.chat_v3, "chat", "openapi"),
    Endpoint("POST", "/v3/chat/cancel", chat.cancel, "chat", "openapi"),
    Endpoint("POST", "/api/conversation/chat", chat.chat_internal, "chat", "webapi"),
    Endpoint("POST", "/api/draftbot/create", bots.create, "management", "webapi"),
    Endpoint("POST", "/api/draftbot/update_display_info", bots.update_display_info, "management", "webapi"),
    Endpoint("POST", "/api/draftbot/publish", bots.publish, "management", "webapi"),
    Endpoint("GET", "/v1/bot/get_online_info", bots.online_info, "info", "openapi"),
    Endpoint("GET", "/v1/bots/{bot_id}", bots.details, "info", "openapi"),
)

_GROUP_TITLES = {"chat": "Chat API", "management": "Bot 管理 API", "info": "Bot 信息 API"}


def _gate(runtime: Runtime, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    config = runtime.config
    # The rate-limit variants (config.py): cancel in the chat group or in none, the chat
    # counted per principal or per principal and user_id (READING "Rate-limit groups",
    # "\"per user\" in the rate-limit table").
    limited = config.cancel_limited or endpoint.path != "/v3/chat/cancel"
    by_user_id = config.rate_key == "user_id" and endpoint.path == "/v3/chat"

    async def run(request: Request) -> Response:
        failure: ApiError | None = None
        limiter = runtime.limiter if limited else None
        admitted: Decision | None = None
        try:
            principal = authenticate(
                request,
                endpoint.endpoint_class,
                by_class=config.auth_modes == "by_class",
                api_keys=runtime.principal_by_api_key,
                session_keys=runtime.principal_by_session_key,
                faults=config.faults,
            )
            if limiter is not None:
                user_id = None
                if by_user_id:  # a bounded peek; the handler gets the same body again
                    request, user_id = await peek_user_id(request, config.max_body_bytes)
                decision = limiter.decide(rate_key(principal, user_id), endpoint.group)
                if not decision.admitted:
                    headers = retry_after_headers(config, decision)
                    broken = broken_refusal(config, headers)  # a rate-limit fault's 429, if on
                    if broken is not None:
                        return broken
                    raise ApiError(
                        429,
                        f"too many requests: {_GROUP_TITLES[endpoint.group]} allows"
                        f" {config.limit_for(endpoint.group)} per {config.rate_window:g} s;"
                        f" retry after {decision.retry_after} s",
                        headers=headers,
                    )
                admitted = decision
            response = await endpoint.handler(runtime, request, principal)
        except ApiError as error:
            response, failure = error_response(error), error
        status = response.status_code
        if limiter is not None and admitted is not None and not config.rate_count_errors and 400 <= status < 500:
            limiter.release(admitted)  # variant: a 4xx answer keeps no slot (a 429 never took one)
        # The envelope faults of faults/wire.py reword the answer, when any fault is on.
        if config.faults:
            response = envelope_faults(config, endpoint.path, response, failure)
        # The JSON wire forms of wireforms.py (a no-op with the default knobs).
        return wire_forms(config, request, response)

    run.__name__ = endpoint.handler.__name__
    return run


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return _answer_error(request, ApiError(404, f"no such endpoint: {request.method} {request.url.path}"))
    code = exc.status_code if exc.status_code in (400, 401, 403, 429) else 400
    return _answer_error(request, ApiError(code, str(exc.detail)))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug, never an answer to bad input: the fuzz test fails on any 5xx it sees.
    return _answer_error(request, ApiError(500, "internal server error"))


def _answer_error(request: Request, error: ApiError) -> Response:
    """An error outside the documented endpoints, in the server's JSON wire forms too."""
    return wire_forms(request.app.state.runtime.config, request, error_response(error))


#: The dialects served by an app of their own, by name (the doc dialect's is below).
_OTHER_DIALECTS: dict[str, Callable[[Runtime], Starlette]] = {"coze": create_coze_app, "studio": create_studio_app}


def create_app(config: ServerConfig | None = None) -> Starlette:
    """The reference server's ASGI app; its :class:`Runtime` is ``app.state.runtime``.

    ``config.dialect`` "coze" or "studio" serves that dialect's routes (coze/app.py,
    studio/app.py), not these."""
    runtime = Runtime(config or ServerConfig())
    other = _OTHER_DIALECTS.get(runtime.config.dialect)
    if other is not None:  # e.g. the Coze cloud v3 routes instead (coze/), or Coze Studio's (studio/)
        return other(runtime)
    routes = [Route(e.path, _gate(runtime, e), methods=[e.method]) for e in ENDPOINTS]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
    )
    # "/v3/chat/" must not be redirected to "/v3/chat": no documented endpoint redirects.
    app.router.redirect_slashes = False
    app.state.runtime = runtime
    return app
