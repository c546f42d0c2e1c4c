"""Preflight: before any test, show that the target is this API and takes the
credentials -- or end the run with one clear line and exit code 3.

A wrong ``--target-url`` (a closed port, a web server, a gateway whose upstream
is down, an http URL that redirects to https) or a rejected key would otherwise
turn into a wall of failed tests blamed on the server. So one cheap request per
principal, within one overall budget (10 s) that holds even against a server
that stalls or trickles (the client's hard deadline), checks three things:

* the target answers at all (kind ``unreachable``);
* it answers with JSON or an event stream, not an HTML page or other non-JSON
  body and not a redirect (kind ``not-this-api``);
* it does not reject a configured credential with 401 (kind ``credentials``).

Which request: ``GET /v1/bot/get_online_info?bot_id=9223372036854775807`` with
Bearer. It is read-only ("获取智能体的在线版本信息"), belongs to the most generous
rate-limit group (Bot 信息 API, 100/min, so it costs the suite the least), and the
id -- the largest int64 -- names no bot, so a conformant server answers a small
JSON envelope (400/404 by READING.md) after authenticating. When a principal has
only a session key, the cookie class's cheapest request has to be a management
one: ``POST /api/draftbot/update_display_info`` with ``{"bot_id": <that id>}``.
Its ``bot_id`` is present (so a server cannot stop at input validation before
checking the cookie) and names no bot (so nothing can change); ``{}`` would
often be refused as a 400 before authentication, and bot id 1 may exist on a
server with sequential ids. One request per principal, never more: the
management group allows only 30 requests a minute.

A principal with both keys has only its API key probed here;
:func:`check_same_principal` (a separate step, as it creates a bot) exercises the
session key and shows that both keys act as one principal.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from conformance.transport.client import (
    ApiClient,
    ApiResponse,
    DeadlineExceeded,
    NotJson,
    ResponseTooLarge,
    TransportError,
    parse_json,
)
from conformance.transport.exchange import ExchangeLog

__all__ = [
    "PREFLIGHT_TIMEOUT",
    "UNKNOWN_BOT_ID",
    "PreflightError",
    "PreflightReport",
    "Probe",
    "check_same_principal",
    "preflight",
]

PREFLIGHT_TIMEOUT = 10.0
#: The largest int64: a valid ``bot_id`` (int64 in the spec's tables) that names no bot.
UNKNOWN_BOT_ID = 2**63 - 1

Kind = Literal["unreachable", "not-this-api", "credentials"]

_INFO = ("GET", "/v1/bot/get_online_info", {"params": {"bot_id": UNKNOWN_BOT_ID}})
_MANAGE = ("POST", "/api/draftbot/update_display_info", {"json": {"bot_id": UNKNOWN_BOT_ID}})

#: What the option that sets each credential is called, for messages.
_OPTION = {
    "COZE_API_KEY": "--api-key (COZE_API_KEY)",
    "COZE_SESSION_KEY": "--session-key (COZE_SESSION_KEY)",
    "COZE_API_KEY_2": "--api-key-2 (COZE_API_KEY_2)",
    "COZE_SESSION_KEY_2": "--session-key-2 (COZE_SESSION_KEY_2)",
}


class PreflightError(Exception):
    """The run cannot start. ``str()`` is one line fit for the terminal."""

    def __init__(self, kind: Kind, message: str, log: ExchangeLog | None = None) -> None:
        super().__init__(kind, message)
        self.kind = kind
        self.message = message
        self.log = log

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Probe:
    """One preflight request and what it showed."""

    credential: str  # the label of the credential tried ("COZE_API_KEY"), or "none"
    auth: str
    method: str
    path: str
    status: int
    media_type: str
    code: int | None  # the envelope's ``code`` when the body is a JSON object with one
    elapsed: float

    @property
    def rejected(self) -> bool:
        """401 by status or by envelope code (the body code decides, READING.md)."""
        return self.credential != "none" and (self.status == 401 or self.code == 401)


@dataclass
class PreflightReport:
    """What the preflight found: the target, each probe, the first answer's headers."""

    target: str
    elapsed: float
    probes: list[Probe]
    server_headers: dict[str, str]
    log: ExchangeLog = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "elapsed": self.elapsed,
            "probes": [dict(vars(p)) for p in self.probes],
            "server_headers": dict(self.server_headers),
            "exchanges": self.log.to_dict(),
        }


def _plan(client: ApiClient) -> list[tuple[str, str, tuple[str, str, dict[str, Any]]]]:
    """(credential label, auth mode, request) per principal: its API key if it has
    one (the cheap info request), else its session key (a management request)."""
    plan = []
    for who, principal in (("", client.principal), ("_2", client.other)):
        if principal is None:
            continue
        prefix = "other-" if who else ""
        if principal.api_key:
            plan.append((f"COZE_API_KEY{who}", f"{prefix}bearer", _INFO))
        elif principal.session_key:
            plan.append((f"COZE_SESSION_KEY{who}", f"{prefix}cookie", _MANAGE))
    if not plan:
        # Settings refuse a target without credentials; still tell reachability.
        plan.append(("none", "none", _INFO))
    return plan


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _describe_body(media_type: str, body: bytes) -> str:
    if not body.strip():
        return f"an empty body ({media_type or 'no Content-Type'})"
    title = _TITLE.search(body[:65536])
    if media_type == "text/html" or title or body.lstrip()[:1] == b"<":
        name = " ".join(title.group(1).decode("utf-8", "replace").split())[:60] if title else ""
        return f'an HTML page ("{name}")' if name else "an HTML page"
    return f"{len(body)} bytes of {media_type or 'no Content-Type'}"


def preflight(client: ApiClient, *, timeout: float = PREFLIGHT_TIMEOUT) -> PreflightReport:
    """Check the target before any test; raise :class:`PreflightError` when it is
    unreachable, not this API, or rejects a configured credential with 401.
    Takes at most ``timeout`` seconds whatever the server does."""
    started = time.monotonic()
    deadline = started + timeout
    log = ExchangeLog()
    api = client.with_log(log)
    target = client.display_url

    def fail(kind: Kind, text: str) -> PreflightError:
        return PreflightError(kind, f"{text} (preflight, {time.monotonic() - started:.1f} s)", log)

    probes: list[Probe] = []
    for credential, auth, (method, path, body) in _plan(client):
        what = f"{method} {path}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise fail("unreachable", f"target {target} is unreachable: no answer within {timeout:g} s")
        sent = time.monotonic()
        try:
            with api.stream(method, path, auth=auth, timeout=min(remaining, client.request_timeout), **body) as answer:
                # An event stream is this API's other answer shape: its headers say enough.
                data = b"" if answer.media_type == "text/event-stream" else answer.read_all()
                status, media_type, exchange = answer.status, answer.media_type, answer.exchange
        except DeadlineExceeded as exc:
            raise fail(
                "unreachable", f"target {target} is unreachable: no complete answer to {what} within {exc.deadline:.1f} s"
            ) from None
        except ResponseTooLarge as exc:
            raise fail(
                "not-this-api", f"target {target} is not the Coze Plus Agent API: {what} answered more than {exc.limit} bytes"
            ) from None
        except TransportError as exc:
            raise fail("unreachable", f"target {target} is unreachable: {exc.cause}") from None

        code: int | None = None
        if 300 <= status < 400:
            location = dict((n.lower(), v) for n, v in exchange.response_headers).get("location", "")
            raise fail(
                "not-this-api",
                f"target {target} is not the Coze Plus Agent API: {what} answered {status}, a redirect to "
                f"{location or '(no Location)'}; if that is the API, pass it as --target-url",
            )
        if media_type != "text/event-stream":
            try:
                document = parse_json(data)
            except NotJson:
                seen = _describe_body(media_type, exchange.response_body)
                if status in (502, 503, 504):
                    raise fail(
                        "unreachable",
                        f"target {target} is unreachable: {what} answered {status} with {seen} "
                        "(a gateway whose upstream is down?)",
                    ) from None
                raise fail(
                    "not-this-api",
                    f"target {target} is not the Coze Plus Agent API: {what} answered {status} with {seen}, not JSON",
                ) from None
            if isinstance(document, Mapping) and type(document.get("code")) is int:
                code = document["code"]
        probes.append(Probe(credential, auth, method, path, status, media_type, code, time.monotonic() - sent))

    rejected = [p for p in probes if p.rejected]
    if rejected:
        which = ", ".join(f"{_OPTION.get(p.credential, p.credential)} on {p.method} {p.path}" for p in rejected)
        raise fail("credentials", f"target {target} rejects the configured credentials with 401: {which}")
    headers = dict(log[0].response_headers) if len(log) else {}
    return PreflightReport(target, time.monotonic() - started, probes, headers, log)


# --------------------------------------------------------------------------- one principal?


def _envelope(response: ApiResponse) -> tuple[int, Any]:
    """(status or envelope code, data): the body code decides when there is one."""
    document = response.json_or_none()
    if isinstance(document, Mapping) and type(document.get("code")) is int:
        code = document["code"]
        return (response.status if response.status >= 400 else code), document.get("data")
    return response.status, None


def _bot_id(data: Any) -> int | None:
    value = data.get("bot_id") if isinstance(data, Mapping) else None
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def check_same_principal(client: ApiClient, *, timeout: float | None = None) -> str | None:
    """When the first principal has both an API key and a session key, show they
    act as one principal; return a usage-error message when they do not, None
    when they do or when the target's answers do not tell.

    Creates one draft bot with the cookie (``POST /api/draftbot/create``, named
    ``cz-conf-preflight-<hex>``), publishes it (a conformant server must show a
    published bot to its owner on ``GET /v1/bots/:bot_id``; a draft it need not),
    and reads it with Bearer. 403/404 on the read after a successful publish means
    the API key is another principal. The spec has no delete, so the bot stays;
    its name says where it came from. Raises :class:`PreflightError` when the
    target stops answering or rejects either key with 401.
    """
    principal = client.principal
    if not (principal.api_key and principal.session_key):
        return None
    target = client.display_url

    def call(method: str, path: str, auth: str, **kwargs: Any) -> ApiResponse:
        try:
            return client.request(method, path, auth=auth, timeout=timeout, **kwargs)
        except TransportError as exc:
            raise PreflightError("unreachable", f"target {target} is unreachable: {exc.cause} (preflight)") from None

    def rejected(option: str, response: ApiResponse, what: str) -> PreflightError:
        return PreflightError(
            "credentials", f"target {target} rejects {option} with 401: {what} answered {response.status} (preflight)"
        )

    name = f"cz-conf-preflight-{secrets.token_hex(4)}"  # 26 characters
    created = call("POST", "/api/draftbot/create", "cookie", json={"name": name})
    code, data = _envelope(created)
    if code == 401:
        raise rejected(_OPTION["COZE_SESSION_KEY"], created, "POST /api/draftbot/create")
    bot_id = _bot_id(data)
    if not (200 <= created.status < 300 and code == 0) or bot_id is None:
        return None  # the create tests will say what is wrong with create
    published = call("POST", "/api/draftbot/publish", "cookie", json={"bot_id": bot_id})
    publish_code, _ = _envelope(published)
    read = call("GET", f"/v1/bots/{bot_id}", "bearer")
    read_code, _ = _envelope(read)
    if read_code == 401:
        raise rejected(_OPTION["COZE_API_KEY"], read, f"GET /v1/bots/{bot_id}")
    if read_code in (403, 404) and 200 <= published.status < 300 and publish_code == 0:
        return (
            "--api-key and --session-key belong to different principals: the bot that --session-key "
            f"created and published ({bot_id}) is not visible to --api-key (GET /v1/bots/{bot_id} answered {read_code})"
        )
    return None
