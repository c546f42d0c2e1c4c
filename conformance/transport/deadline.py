"""Hard deadlines for httpx: a network backend that clamps every blocking socket
operation to the time left before the current operation's deadline.

httpx's timeouts bound each socket operation, not a request: a server that
trickles one byte a second, or sends SSE comments forever, never trips a read
timeout. A watchdog thread that closes the socket would be another way, but
before the response headers arrive httpx exposes no socket to close, and
closing a socket does not wake a thread blocked on it. So instead the client
sets one monotonic deadline (:func:`deadline_scope`) around each call into
httpx, and this backend gives every DNS lookup, connect, TLS handshake, send
and recv at most the time left. No operation outlives the deadline, so the
bound is hard: the deadline plus a few milliseconds.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

__all__ = ["DeadlineTransport", "deadline_scope"]

_WRITE_PIECE = 64 * 1024

#: The monotonic deadline of the operation running in this thread (or context).
#: Set around every call into httpx and cleared before control returns to the
#: caller, so a stream held open across other requests keeps its own deadline.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("conformance_deadline", default=None)


def _clamp(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise expired("the overall deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # In pieces, so a peer that reads slowly meets a fresh clamp per piece
        # rather than one timeout per send() of the whole buffer.
        for at in range(0, len(buffer), _WRITE_PIECE):
            self._inner.write(buffer[at : at + _WRITE_PIECE], _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # CPython bounds a whole handshake by the socket timeout, so one clamp suffices.
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """Addresses of ``host``. getaddrinfo takes no timeout and can block for
    many seconds on a broken resolver, so it runs in a daemon thread we stop
    waiting for at the deadline."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    worker = threading.Thread(target=work, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise httpcore.ConnectTimeout(f"resolving {host!r} took longer than the deadline")
    if "error" in result:
        error = result["error"]
        # httpcore's pool re-raises with ``from None``: the cause must be in the message.
        raise httpcore.ConnectError(f"cannot resolve host {host!r} ({error.strerror or error})")
    return list(dict.fromkeys(str(info[4][0]) for info in result["infos"]))


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port, _clamp(timeout, httpcore.ConnectTimeout))
        last: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    address, port, _clamp(timeout, httpcore.ConnectTimeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
                continue
            return _DeadlineStream(stream)
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - the suite only speaks TCP
        return _DeadlineStream(
            self._inner.connect_unix_socket(path, _clamp(timeout, httpcore.ConnectTimeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:  # pragma: no cover - used by httpcore retries only
        time.sleep(seconds)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class DeadlineTransport(httpx.BaseTransport):
    """httpx's own HTTPTransport, rebuilt on public httpcore API so that the
    connection pool uses the deadline-clamping backend (httpx offers no hook
    for a network backend). httpcore exceptions are left unmapped: the client
    turns them into its own errors."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=_DeadlineBackend(), max_connections=200, keepalive_expiry=5.0
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        origin = core_request.url.origin
        pooled = any(c.can_handle_request(origin) and c.is_idle() for c in self._pool.connections)
        try:
            response = self._pool.handle_request(core_request)
        except httpcore.RemoteProtocolError as exc:
            # A keep-alive connection the server closed while it sat idle in the pool (its
            # idle timeout ran out just as the request went out): the server read nothing
            # on it. Sent once more, on a fresh connection -- what urllib3 and browsers do
            # for the same race. Any other failure, or one on a fresh connection, stands.
            if not pooled or "without sending a response" not in str(exc):
                raise
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()



@contextlib.contextmanager
def deadline_scope(deadline: float) -> Iterator[None]:
    """Bound every socket operation inside the block by ``deadline`` (monotonic)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)
