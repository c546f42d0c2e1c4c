"""The suite's HTTP client: auth by mode, hard deadlines, a size cap, no redirects,
and a redacted exchange log (``conformance.transport.exchange``).

Every conformance test talks to the target through :class:`ApiClient`:

* **Auth by mode** (``auth=``): the spec's two schemes -- ``Authorization: Bearer``
  (OpenAPI) and the ``session_key`` cookie (WebAPI) -- for the first principal,
  the second principal, a deliberately wrong credential, both, or none.
* **Overall deadlines**: one monotonic deadline per request (``request_timeout``)
  or per stream (``stream_timeout``, for its whole life), enforced on every
  socket operation by ``conformance.transport.deadline`` -- a hard bound even against a
  server that trickles a byte a second or sends SSE comments forever (httpx's
  read timeout is per read and never trips). Expiry raises
  :class:`DeadlineExceeded` with what arrived so far.
* **A size cap** (``max_body_bytes``) on every body and stream, counted on the
  decoded bytes as they are decoded (``conformance.transport.decoding``): a gzip
  bomb stops at the cap, not at the end of memory.
* **No redirects** are followed: a 3xx is an answer to judge.
* **A target that went down** (an :class:`Outage` shared by a run's clients): after a
  few requests in a row got no answer at all, the rest fail at once with
  :class:`TargetDown` instead of each waiting out its deadline.
* **No cookie jar**: a ``Set-Cookie`` from the target never leaks into a later
  request (an ``auth="none"`` test must send no credential). **No environment**:
  no proxy variables, no ``~/.netrc`` credentials.
* **The exchange log** records every request and response already redacted and
  replays it as curl (README "What a run tells you").
"""

from __future__ import annotations

import contextlib
import json as _json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import httpcore
import httpx

from conformance.transport.deadline import DeadlineTransport, deadline_scope
from conformance.transport.decoding import ACCEPT_ENCODING, BodyDecoder
from conformance.transport.exchange import (
    WRONG_API_KEY,
    WRONG_SESSION_KEY,
    Exchange,
    ExchangeLog,
    redact_header,
    redact_url,
)
from conformance.transport.redact import Redactor

__all__ = [
    "AUTH_MODES",
    "WRONG_API_KEY",
    "WRONG_SESSION_KEY",
    "ApiClient",
    "ApiResponse",
    "ApiStream",
    "DeadlineExceeded",
    "Exchange",
    "ExchangeLog",
    "MissingCredential",
    "NotJson",
    "Outage",
    "Principal",
    "ResponseTooLarge",
    "TargetDown",
    "TransportError",
    "default_auth_for_path",
    "describe_error",
    "parse_json",
]

#: The auth modes of :meth:`ApiClient.request` and :meth:`ApiClient.stream`.
AUTH_MODES = (
    "default",  # the endpoint's own class: cookie on /api/*, Bearer elsewhere (READING.md)
    "bearer",
    "cookie",
    "both",
    "none",
    "wrong-bearer",
    "wrong-cookie",
    "other",  # the second principal, in the endpoint's default mode
    "other-bearer",
    "other-cookie",
)
#: Environment variable names the curl reproduction uses for each credential;
#: they are also the redaction labels, so a marker maps to its variable.
ENV_LABELS = {
    ("first", "api_key"): "COZE_API_KEY",
    ("first", "session_key"): "COZE_SESSION_KEY",
    ("other", "api_key"): "COZE_API_KEY_2",
    ("other", "session_key"): "COZE_SESSION_KEY_2",
}


try:
    from importlib.metadata import version as _dist_version

    USER_AGENT = f"coze-plus-conformance/{_dist_version('coze-plus-conformance')}"
except Exception:  # pragma: no cover - not installed as a distribution
    USER_AGENT = "coze-plus-conformance/dev"


# --------------------------------------------------------------------------- errors


class TransportError(Exception):
    """The request got no complete HTTP answer (connection refused, reset, TLS,
    a malformed response, a deadline). The message is redacted and names the
    request; ``cause`` is the short cause alone ("connection refused"), ``reason``
    the cause with the phase it struck in ("connection refused (connecting)")."""

    def __init__(
        self,
        message: str,
        *,
        exchange: Exchange | None = None,
        elapsed: float | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exchange = exchange
        self.elapsed = elapsed
        self.cause = cause or message

    @property
    def reason(self) -> str:
        if self.exchange is not None and self.exchange.error:
            return self.exchange.error
        return self.cause


class DeadlineExceeded(TransportError):
    """The overall deadline of a request or stream passed. ``received`` is what
    arrived before it (redacted, capped like the log); ``deadline`` the budget in s."""

    def __init__(
        self,
        message: str,
        *,
        exchange: Exchange | None = None,
        elapsed: float | None = None,
        deadline: float = 0.0,
        received: bytes = b"",
    ) -> None:
        super().__init__(message, exchange=exchange, elapsed=elapsed, cause=f"deadline of {deadline:g} s exceeded")
        self.deadline = deadline
        self.received = received


class ResponseTooLarge(TransportError):
    """The response body or stream exceeded ``max_body_bytes`` (``limit``)."""

    def __init__(
        self, message: str, *, exchange: Exchange | None = None, elapsed: float | None = None, limit: int = 0
    ) -> None:
        super().__init__(message, exchange=exchange, elapsed=elapsed, cause=f"more than {limit} bytes")
        self.limit = limit


class TargetDown(TransportError):
    """Not sent: the run's :class:`Outage` found the target down."""


class MissingCredential(Exception):
    """An auth mode needs a credential that is not configured (a test should skip)."""


class NotJson(ValueError):
    """A response body is not a JSON text; ``reason`` says why, briefly ("not UTF-8 at
    byte 19 (b'\\xff')", "Expecting value: line 1 column 1 (char 0)")."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


# --------------------------------------------------------------------------- outage


class Outage:
    """Whether a target went down mid-run, shared by the clients of one run (thread-safe).

    A request that got no answer at all -- refused, reset, closed or silent before its
    status line -- is a miss; any answer ends a run of misses. After ``limit`` misses in
    a row the target counts as down: a host that stopped answering would otherwise make
    every remaining request wait out its whole deadline, one after another, and a run of
    a hundred tests against it take a hundred deadlines. While it is down, requests fail
    at once, except one every ``cooldown`` seconds, sent to see whether it came back (a
    circuit breaker's half-open state): a blip of a few seconds fails the requests it
    hit, not the rest of the run."""

    def __init__(self, limit: int = 3, *, cooldown: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._misses: list[str] = []
        self._probe_at = 0.0

    def answered(self) -> None:
        with self._lock:
            self._misses.clear()

    def missed(self, reason: str) -> None:
        with self._lock:
            self._misses.append(reason)
            if len(self._misses) >= self.limit:
                self._probe_at = self._clock() + self.cooldown

    @property
    def down(self) -> str | None:
        """Why the target counts as down, or None while it does not."""
        with self._lock:
            return self._why()

    def refusal(self) -> str | None:
        """Why a request must not be sent now, or None: the target is up, or it is down
        and this request is the one that looks whether it came back."""
        with self._lock:
            why = self._why()
            if why is None:
                return None
            now = self._clock()
            if now >= self._probe_at:
                self._probe_at = now + self.cooldown
                return None
            return why

    def _why(self) -> str | None:
        if len(self._misses) < self.limit:
            return None
        return f"{len(self._misses)} requests in a row got no answer, the last: {self._misses[-1]}"


# --------------------------------------------------------------------------- principal


def _check_secret(owner: str, name: str, value: str | None) -> None:
    if value is None:
        return
    if value == "":
        raise ValueError(f"{owner}: the {name} is empty")
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"{owner}: the {name} contains a line break or NUL, which no HTTP header can carry")
    if name == "session key" and any(ch in value for ch in "; "):
        raise ValueError(f"{owner}: the session key contains ';' or a space, which a cookie value cannot carry")


class Principal:
    """One API identity: an API key (Bearer), a session key (cookie), or both.

    ``repr`` shows whether each credential is set, never its value.
    """

    __slots__ = ("label", "api_key", "session_key")

    def __init__(self, label: str, api_key: str | None = None, session_key: str | None = None) -> None:
        _check_secret(f"principal {label}", "API key", api_key)
        _check_secret(f"principal {label}", "session key", session_key)
        self.label = label
        self.api_key = api_key
        self.session_key = session_key

    def __repr__(self) -> str:
        def state(v: str | None) -> str:
            return "<set>" if v else "<unset>"

        return f"Principal({self.label!r}, api_key={state(self.api_key)}, session_key={state(self.session_key)})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Principal):
            return NotImplemented
        return (self.label, self.api_key, self.session_key) == (other.label, other.api_key, other.session_key)

    def __hash__(self) -> int:
        return hash((self.label, self.api_key, self.session_key))


def default_auth_for_path(path: str) -> str:
    """The auth class of an endpoint (READING.md, "Auth per endpoint"): the
    session cookie on the WebAPI ``/api/*``, Bearer on the OpenAPI rest."""
    return "cookie" if path.startswith("/api/") else "bearer"


def _ssl_context(verify: bool | str | ssl.SSLContext) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True:
        return httpx.create_ssl_context(verify=True)
    if verify is False:
        return httpx.create_ssl_context(verify=False)
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    if os.path.isfile(verify):
        return ssl.create_default_context(cafile=verify)
    raise ValueError(f"CA bundle {verify!r} is neither a file nor a directory")


def _refusing_jar() -> CookieJar:
    """A cookie jar that accepts nothing: the target's Set-Cookie must never turn
    into a credential of a later request (an ``auth="none"`` test sends none)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


_TRANSPORT_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, httpx.HTTPError)


def describe_error(exc: BaseException) -> str:
    """A short, human reason for a transport failure ("connection refused")."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    for e in seen:
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({e.verify_message}); use --ca-bundle or --insecure"
        if isinstance(e, ssl.SSLError):
            return f"TLS error ({e.reason or e})"
        if isinstance(e, socket.gaierror):
            return f"cannot resolve host ({e.strerror or e})"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(e, ConnectionAbortedError | BrokenPipeError):
            return "connection closed by peer"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror[:1].lower() + e.strerror[1:]
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpcore.RemoteProtocolError):
        if "without sending complete message body" in text or "disconnected without" in text:
            return f"server closed the connection early ({text})"
        return f"malformed HTTP response ({text})"
    return text


# --------------------------------------------------------------------------- responses


def _media_type(headers: httpx.Headers) -> str:
    return str(headers.get("content-type", "")).split(";", 1)[0].strip().lower()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes, *, what: str = "response body") -> Any:
    """Strict RFC 8259 JSON: UTF-8, no NaN/Infinity; integers stay exact (ids
    exceed 2^53 and must never pass through a float)."""
    try:
        text = body.decode("utf-8")
        return _json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 at byte {exc.start} ({body[exc.start : exc.start + 4]!r})"
    except ValueError as exc:
        reason = str(exc)
    preview = body[:80].decode("utf-8", "replace")
    raise NotJson(f"{what} is not JSON ({reason}): {preview!r}", reason)


class ApiResponse:
    """A complete answer: status, headers, body bytes, timing, and its exchange."""

    def __init__(self, status: int, headers: httpx.Headers, body: bytes, elapsed: float, exchange: Exchange) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.exchange = exchange

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower-cased ("" when absent)."""
        return _media_type(self.headers)

    def json(self) -> Any:
        """The body as JSON; raises :class:`NotJson` (with a preview) otherwise."""
        return parse_json(self.body, what=f"body of {self.exchange.method} {self.exchange.path} ({self.status})")

    def json_or_none(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return self.json()
        except NotJson:
            return None

    def __repr__(self) -> str:
        return f"<ApiResponse {self.status} {self.exchange.method} {self.exchange.path} {len(self.body)} bytes>"


class ApiStream:
    """An open streamed answer. Iterate :meth:`chunks`; the whole stream, from the
    request on, ends by its deadline (``stream_timeout``)."""

    def __init__(
        self,
        response: httpx.Response,
        exchange: Exchange,
        *,
        started: float,
        deadline: float,
        max_bytes: int,
    ) -> None:
        self._response = response
        self.exchange = exchange
        self.status = response.status_code
        self.headers = response.headers
        self.started = started
        self.deadline = deadline
        self._max_bytes = max_bytes
        self._iter: Iterator[bytes] | None = None
        self._received = bytearray()
        self.done = False

    @property
    def media_type(self) -> str:
        return _media_type(self.headers)

    @property
    def received(self) -> bytes:
        """Every byte received so far (as sent: this is the test's data, not the log's)."""
        return bytes(self._received)

    def _next(self, deadline: float) -> tuple[bytes, float] | None:
        """The next chunk, or None at the end of the stream."""
        if self.done:
            return None
        if time.monotonic() >= deadline:
            raise _Expired
        if self._iter is None:
            self._iter = _decoded(self._response)
        try:
            with deadline_scope(deadline):
                chunk = next(self._iter)
        except StopIteration:
            self._end()
            return None
        except httpcore.TimeoutException:
            raise _Expired from None
        now = time.monotonic()
        self._received += chunk
        self.exchange._add_chunk(now - self.started, chunk)
        if len(self._received) > self._max_bytes:
            elapsed = now - self.started
            reason = f"stream exceeded {self._max_bytes} bytes"
            self._end(error=reason)
            raise ResponseTooLarge(
                f"{self._what()}: {reason}", exchange=self.exchange, elapsed=elapsed, limit=self._max_bytes
            )
        return chunk, now

    def _what(self) -> str:
        return f"{self.exchange.method} {self.exchange.url}"

    def _expired(self) -> DeadlineExceeded:
        elapsed = time.monotonic() - self.started
        budget = self.deadline - self.started
        self._end(error=f"stream deadline of {budget:g} s exceeded")
        return DeadlineExceeded(
            f"{self._what()}: stream deadline of {budget:g} s exceeded after {elapsed:.1f} s "
            f"({len(self._received)} bytes in {self.exchange.chunk_count} chunks received)",
            exchange=self.exchange,
            elapsed=elapsed,
            deadline=budget,
            received=self.exchange.response_body,
        )

    def chunks(self) -> Iterator[tuple[bytes, float]]:
        """``(bytes, time.monotonic() at arrival)`` until the stream ends; raises
        :class:`DeadlineExceeded`, :class:`ResponseTooLarge` or :class:`TransportError`."""
        while True:
            try:
                item = self._next(self.deadline)
            except _Expired:
                raise self._expired() from None
            except _TRANSPORT_ERRORS as exc:
                raise self._failed(exc) from exc
            if item is None:
                return
            yield item

    def read_all(self) -> bytes:
        """Read to the end (bounded by the deadline); returns every byte received."""
        for _ in self.chunks():
            pass
        return self.received

    def json(self) -> Any:
        """The whole body as JSON (for an error envelope answered to a stream request)."""
        return parse_json(self.read_all(), what=f"body of {self.exchange.method} {self.exchange.path}")

    def drain(self, seconds: float) -> list[tuple[bytes, float]]:
        """Read for at most ``seconds`` more (never past the stream's deadline) and
        return what arrived. Never raises for time or a dropped connection: after a
        terminal event a server may keep the stream open or cut it (READING.md,
        "After the terminal event"); both are recorded in the exchange."""
        until = min(self.deadline, time.monotonic() + seconds)
        got: list[tuple[bytes, float]] = []
        while True:
            try:
                item = self._next(until)
            except _Expired:
                self.close()
                return got
            except _TRANSPORT_ERRORS as exc:
                self._end(error=f"{describe_error(exc)} (while draining)")
                return got
            if item is None:
                return got
            got.append(item)

    def _failed(self, exc: BaseException) -> TransportError:
        elapsed = time.monotonic() - self.started
        cause = self.exchange._redactor.redact(describe_error(exc))
        self._end(error=f"{cause} (reading the stream)")
        message = f"{self._what()}: {cause} after {elapsed:.1f} s (reading the stream)"
        return TransportError(message, exchange=self.exchange, elapsed=elapsed, cause=cause)

    def _end(self, error: str | None = None) -> None:
        self.done = True
        self.exchange._finish(time.monotonic() - self.started, error)
        self._response.close()

    def close(self) -> None:
        """Close the connection (idempotent); the exchange keeps what arrived."""
        if not self.done:
            self._end()
        else:
            self._response.close()

    def __repr__(self) -> str:
        return f"<ApiStream {self.status} {self.exchange.method} {self.exchange.path} {len(self._received)} bytes>"


class _Expired(Exception):
    pass


# --------------------------------------------------------------------------- client


class _Unset:
    def __repr__(self) -> str:
        return "<no body>"


NO_BODY: Any = _Unset()


class ApiClient:
    """The suite's HTTP client for one target and one principal (plus optionally
    the other principal, for isolation tests). Thread-safe; close it when done."""

    def __init__(
        self,
        base_url: str,
        principal: Principal,
        *,
        other: Principal | None = None,
        request_timeout: float = 30,
        stream_timeout: float = 60,
        max_body_bytes: int = 16 * 2**20,
        extra_headers: Mapping[str, str] = {},  # noqa: B006 - never mutated
        verify: bool | str | ssl.SSLContext = True,
        log: ExchangeLog | None = None,
        redactor: Redactor | None = None,
        auth_for_path: Callable[[str], str] | None = None,
        outage: Outage | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL must be http(s)://host[:port][/prefix], got {redact_url(base_url, Redactor())!r}")
        if parts.username is not None or parts.password is not None:
            # httpx would turn userinfo into Basic auth and overwrite the auth mode's
            # Authorization header; a gateway credential belongs in --header.
            raise ValueError(
                f"base URL must not carry credentials (user:password@): {redact_url(base_url, Redactor())!r}; "
                "pass a gateway's credentials with --header"
            )
        if request_timeout <= 0 or stream_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self.base_url = base_url.rstrip("/")
        self.principal = principal
        self.other = other
        self.request_timeout = float(request_timeout)
        self.stream_timeout = float(stream_timeout)
        self.max_body_bytes = max_body_bytes
        self.extra_headers = dict(extra_headers)
        self.auth_for_path = auth_for_path or default_auth_for_path
        self.outage = outage
        self.log = log if log is not None else ExchangeLog()
        own = Redactor(
            [
                (ENV_LABELS[("first", "api_key")], principal.api_key),
                (ENV_LABELS[("first", "session_key")], principal.session_key),
                (ENV_LABELS[("other", "api_key")], other.api_key if other else None),
                (ENV_LABELS[("other", "session_key")], other.session_key if other else None),
            ]
        )
        # The caller's labels win: a client built for the second principal gets
        # its principal's secrets labelled COZE_API_KEY_2 from the settings, and
        # the role-based labels above only fill in secrets it did not name.
        self.redactor = redactor.merged(own) if redactor is not None else own
        self._tls = "insecure" if verify is False else (verify if isinstance(verify, str) else None)
        self._http = httpx.Client(
            transport=DeadlineTransport(_ssl_context(verify)),
            # trust_env=False: no proxy from the environment (it would bypass the
            # deadline backend) and no ~/.netrc (it would add credentials to
            # requests meant to carry none).
            trust_env=False,
            follow_redirects=False,
            cookies=_refusing_jar(),
            # Only the codings the client decodes within its size cap.
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        )
        self._owner = True

    # ---- lifecycle

    def with_log(self, log: ExchangeLog) -> ApiClient:
        """A view of this client (same connections) recording into ``log``."""
        view = object.__new__(ApiClient)
        view.__dict__.update(self.__dict__)
        view.log = log
        view._owner = False
        return view

    def close(self) -> None:
        if self._owner:
            self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ApiClient({self.display_url!r}, {self.principal!r}, other={self.other!r})"

    @property
    def display_url(self) -> str:
        """The base URL as it may be shown (no userinfo, no secret)."""
        return redact_url(self.base_url, self.redactor)

    # ---- auth

    def _need(self, who: Literal["first", "other"], kind: Literal["api_key", "session_key"]) -> str:
        principal = self.principal if who == "first" else self.other
        if principal is None:
            raise MissingCredential("no second principal is configured (--api-key-2 / --session-key-2)")
        value = principal.api_key if kind == "api_key" else principal.session_key
        if not value:
            option = {"api_key": "--api-key", "session_key": "--session-key"}[kind] + ("-2" if who == "other" else "")
            raise MissingCredential(f"{option} ({ENV_LABELS[(who, kind)]}) is not configured")
        return value

    def resolve_auth(self, path: str, auth: str) -> str:
        """The concrete mode ``auth`` means for ``path`` (e.g. default -> bearer)."""
        if auth not in AUTH_MODES:
            raise ValueError(f"unknown auth mode {auth!r}; one of {', '.join(AUTH_MODES)}")
        if auth in ("default", "other"):
            mode = self.auth_for_path(path)
            if mode not in ("bearer", "cookie"):
                raise ValueError(f"auth_for_path({path!r}) returned {mode!r}, not 'bearer' or 'cookie'")
            return mode if auth == "default" else f"other-{mode}"
        return auth

    def _auth_headers(self, mode: str) -> list[tuple[str, str]]:
        if mode == "none":
            return []
        if mode == "wrong-bearer":
            return [("Authorization", f"Bearer {WRONG_API_KEY}")]
        if mode == "wrong-cookie":
            return [("Cookie", f"session_key={WRONG_SESSION_KEY}")]
        who: Literal["first", "other"] = "other" if mode.startswith("other-") else "first"
        kind = mode.removeprefix("other-")
        headers = []
        if kind in ("bearer", "both"):
            headers.append(("Authorization", f"Bearer {self._need(who, 'api_key')}"))
        if kind in ("cookie", "both"):
            headers.append(("Cookie", f"session_key={self._need(who, 'session_key')}"))
        return headers

    # ---- requests

    def _build(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        auth: str,
        budget: float,
    ) -> tuple[httpx.Request, str, bytes | None]:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if json is not NO_BODY and content is not None:
            raise ValueError("give json= or content=, not both")
        mode = self.resolve_auth(path.split("?", 1)[0], auth)
        merged: dict[str, tuple[str, str]] = {}  # lower name -> (name, value)
        for name, value in self.extra_headers.items():
            # The auth mode owns the credential headers; "none" must send none.
            if name.lower() not in ("authorization", "cookie"):
                merged[name.lower()] = (name, value)
        for name, value in self._auth_headers(mode):
            merged[name.lower()] = (name, value)
        body = content
        if json is not NO_BODY:
            body = _json.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
            merged.setdefault("content-type", ("Content-Type", "application/json"))
        for name, value in (headers or {}).items():
            merged[name.lower()] = (name, value)
        request = self._http.build_request(
            method,
            self.base_url + path,
            params=cast(Any, params),
            content=body,
            # Bytes, so a non-ASCII credential goes out as UTF-8 instead of failing.
            headers=[(name.encode("latin-1"), value.encode("utf-8")) for name, value in merged.values()],
            timeout=httpx.Timeout(budget),
        )
        return request, mode, body

    def _begin(self, request: httpx.Request, mode: str, body: bytes | None, stream: bool) -> Exchange:
        def text(raw: bytes) -> str:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw.decode("latin-1")

        cap = self.log.body_cap
        return self.log._new(
            method=request.method,
            url=redact_url(str(request.url), self.redactor),
            request_headers=[
                (text(n), redact_header(text(n), text(v), self.redactor)) for n, v in request.headers.raw
            ],
            request_body=None
            if body is None
            else self.redactor.redact_bytes(body[:cap], truncated=len(body) > cap),
            auth=mode,
            stream=stream,
            started_at=time.time(),
            tls=self._tls,
            redactor=self.redactor,
        )

    def _refuse_if_down(self, exchange: Exchange) -> None:
        why = self.outage.refusal() if self.outage is not None else None
        if why is None:
            return
        cause = f"the target went down mid-run ({why}); not sent"
        exchange._finish(0.0, cause)
        raise TargetDown(f"{exchange.method} {exchange.url}: {cause}", exchange=exchange, elapsed=0.0, cause=cause)

    def _answered(self) -> None:
        if self.outage is not None:
            self.outage.answered()

    def _missed(self, failure: TransportError) -> None:
        if self.outage is not None:
            self.outage.missed(failure.reason)

    def _fail(self, exchange: Exchange, exc: BaseException, started: float, budget: float, phase: str) -> TransportError:
        elapsed = time.monotonic() - started
        what = f"{exchange.method} {exchange.url}"
        if isinstance(exc, httpcore.ConnectError | httpcore.ConnectTimeout):
            phase = "connecting"
        if isinstance(exc, httpcore.TimeoutException | _Expired):
            reason = f"deadline of {budget:g} s exceeded ({phase})"
            exchange._finish(elapsed, reason)
            return DeadlineExceeded(
                f"{what}: deadline of {budget:g} s exceeded after {elapsed:.1f} s ({phase})",
                exchange=exchange,
                elapsed=elapsed,
                deadline=budget,
                received=exchange.response_body,
            )
        cause = self.redactor.redact(describe_error(exc))
        exchange._finish(elapsed, f"{cause} ({phase})")
        message = f"{what}: {cause} ({phase}, {elapsed:.1f} s)"
        return TransportError(message, exchange=exchange, elapsed=elapsed, cause=cause)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = NO_BODY,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: str = "default",
        timeout: float | None = None,
    ) -> ApiResponse:
        """Send one request and read the whole answer, within ``timeout``
        (default ``request_timeout``) from start to last byte.

        ``json=`` is serialised here (compact, UTF-8, integers exact); ``content=``
        sends bytes as they are. ``headers=`` override everything, credential
        headers included (to send a malformed ``Authorization``, say).
        """
        budget = self.request_timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + budget
        request, mode, body = self._build(
            method, path, json=json, params=params, content=content, headers=headers, auth=auth, budget=budget
        )
        exchange = self._begin(request, mode, body, stream=False)
        self._refuse_if_down(exchange)
        phase = "waiting for the response headers"
        received = bytearray()
        try:
            with deadline_scope(deadline):
                response = self._http.send(request, stream=True)
                self._answered()
                try:
                    exchange._set_response(response.status_code, response.reason_phrase, _header_items(response.headers))
                    phase = "reading the response body"
                    self._read_body(response, received, deadline)
                finally:
                    response.close()
        except _TooLarge as big:
            elapsed = time.monotonic() - started
            reason = f"response body too large ({big}; limit {self.max_body_bytes})"
            exchange._set_body(bytes(received))
            exchange._finish(elapsed, reason)
            raise ResponseTooLarge(
                f"{exchange.method} {exchange.url}: {reason}", exchange=exchange, elapsed=elapsed, limit=self.max_body_bytes
            ) from None
        except (_Expired, httpcore.TimeoutException, *_TRANSPORT_ERRORS) as exc:
            exchange._set_body(bytes(received))
            failure = self._fail(exchange, exc, started, budget, phase)
            if exchange.status is None:
                self._missed(failure)
            raise failure from exc
        elapsed = time.monotonic() - started
        exchange._set_body(bytes(received))
        exchange._finish(elapsed)
        return ApiResponse(response.status_code, response.headers, bytes(received), elapsed, exchange)

    def _read_body(self, response: httpx.Response, into: bytearray, deadline: float) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _TooLarge(f"Content-Length {declared}")
        for chunk in _decoded(response):
            into += chunk
            if len(into) > self.max_body_bytes:
                raise _TooLarge(f"more than {self.max_body_bytes} bytes")
            if time.monotonic() >= deadline:
                raise _Expired

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = NO_BODY,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: str = "default",
        timeout: float | None = None,
    ) -> Iterator[ApiStream]:
        """Send one request and yield the open answer as an :class:`ApiStream`;
        its whole life, from the request on, is bounded by ``timeout`` (default
        ``stream_timeout``). The connection is closed on leaving the block."""
        budget = self.stream_timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + budget
        request, mode, body = self._build(
            method, path, json=json, params=params, content=content, headers=headers, auth=auth, budget=budget
        )
        exchange = self._begin(request, mode, body, stream=True)
        self._refuse_if_down(exchange)
        try:
            with deadline_scope(deadline):
                response = self._http.send(request, stream=True)
        except (httpcore.TimeoutException, *_TRANSPORT_ERRORS) as exc:
            failure = self._fail(exchange, exc, started, budget, "waiting for the response headers")
            self._missed(failure)
            raise failure from exc
        self._answered()
        exchange._set_response(response.status_code, response.reason_phrase, _header_items(response.headers))
        answer = ApiStream(response, exchange, started=started, deadline=deadline, max_bytes=self.max_body_bytes)
        try:
            yield answer
        finally:
            answer.close()


class _TooLarge(Exception):
    pass


def _decoded(response: httpx.Response) -> Iterator[bytes]:
    """The body as the test reads it: raw network chunks, their Content-Encoding undone
    in bounded pieces (httpx's own decoding has no bound: see ``transport.decoding``)."""
    decoder = BodyDecoder(response.headers.get_list("content-encoding"))
    for raw in response.iter_raw():
        yield from decoder.decode(raw)


def _header_items(headers: httpx.Headers) -> list[tuple[str, str]]:
    return [(n.decode("latin-1"), v.decode("utf-8", "replace")) for n, v in headers.raw]
