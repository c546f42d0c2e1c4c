"""Tiny misbehaving HTTP servers for the project's own tests.

Real sockets on 127.0.0.1, port 0, one thread per connection (stdlib
``http.server``): the client's deadlines, size cap and redaction must be proven
against bytes on a wire, not against a mock transport. Each behaviour is a
handler factory; a :class:`ScriptedServer` maps paths to handlers::

    with ScriptedServer({"/slow": trickle(), "/echo": echo()}) as server:
        client = ApiClient(server.url, ...)

Every sleeping handler wakes when the server stops, so a test never waits for
a stalled handler to finish.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "Handler",
    "RecordedRequest",
    "ScriptedServer",
    "big_body",
    "close_without_answer",
    "closed_port_url",
    "echo",
    "envelope",
    "gzip_bomb",
    "gzip_bomb_pieces",
    "header_trickle",
    "html_page",
    "json_answer",
    "raw_answer",
    "redirect",
    "reset_without_answer",
    "sequence",
    "sse_comments_forever",
    "sse_events",
    "stall_after_headers",
    "stall_before_headers",
    "trickle",
    "unauthorized",
]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None


class _ClientGone(Exception):
    pass


class Exchange(BaseHTTPRequestHandler):
    """The handler a behaviour receives: the request plus safe write helpers."""

    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection ends on its own
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    # ---- helpers for behaviours

    @property
    def stopping(self) -> threading.Event:
        return self.server.stopping

    def wait(self, seconds: float) -> bool:
        """Sleep; True when the server is stopping (the behaviour should end)."""
        return self.stopping.wait(seconds)

    def write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as exc:
            raise _ClientGone from exc

    def answer(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = (), *, length: bool = True) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.write(body)

    # ---- dispatch

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.request_record = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers=list(self.headers.items()),
            body=body,
        )
        self.server.requests.append(self.request_record)
        routes = self.server.routes
        handler = routes.get(f"{self.command} {parts.path}") or routes.get(parts.path) or routes.get("*")
        try:
            if handler is None:
                self.answer(404, b'{"code":404,"msg":"no such route","data":null}', [("Content-Type", "application/json")])
            else:
                handler(self)
        except _ClientGone:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


Handler = Callable[[Exchange], None]


class Stoppable(ThreadingHTTPServer):
    """A threaded stdlib server with an event its handlers watch to end early."""

    stopping: threading.Event


class _Server(Stoppable):
    daemon_threads = True

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        super().__init__(("127.0.0.1", 0), Exchange)
        self.routes = dict(routes)
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, OSError):
            self.errors.append(exc)


S = TypeVar("S", bound=Stoppable)


class ServerThread(Generic[S]):
    """Serves a :class:`Stoppable` server on a daemon thread: ``start``/``stop`` and a
    context manager; subclasses say how to make the server (``_make``)."""

    what = "server"

    def __init__(self) -> None:
        self._server: S | None = None
        self._thread: threading.Thread | None = None

    def _make(self) -> S:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = self._make()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(5)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _live(self) -> S:
        if self._server is None:
            raise RuntimeError(f"{self.what} not started")
        return self._server


class ScriptedServer(ServerThread["_Server"]):
    """A threaded HTTP server whose routes are behaviours (see the factories below).

    ``routes`` keys are ``"/path"``, ``"METHOD /path"`` or ``"*"`` (anything else);
    unknown paths answer a 404 JSON envelope. ``requests`` records what arrived.
    """

    def __init__(self, routes: Mapping[str, Handler] | Handler) -> None:
        super().__init__()
        self._routes = routes if isinstance(routes, Mapping) else {"*": routes}

    def _make(self) -> _Server:
        return _Server(self._routes)

    @property
    def url(self) -> str:
        port = self._live.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._live.requests

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by behaviours (a test may assert there are none)."""
        return self._live.errors


def closed_port_url() -> str:
    """A URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- behaviours

JSON = [("Content-Type", "application/json")]


def envelope(code: int, msg: str = "", data: Any = None) -> dict[str, Any]:
    return {"code": code, "msg": msg or ("success" if code == 0 else "error"), "data": data}


def json_answer(status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()) -> Handler:
    body = json.dumps(payload, ensure_ascii=False).encode()

    def handle(ex: Exchange) -> None:
        ex.answer(status, body, [*JSON, *headers])

    return handle


def raw_answer(status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> Handler:
    def handle(ex: Exchange) -> None:
        ex.answer(status, body, headers)

    return handle


def unauthorized() -> Handler:
    """401 with the spec's error envelope, whatever the credentials."""
    return json_answer(401, envelope(401, "unauthorized"))


def html_page(status: int = 200, title: str = "Welcome to nginx!") -> Handler:
    body = f"<!DOCTYPE html>\n<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
    return raw_answer(status, body.encode(), [("Content-Type", "text/html; charset=utf-8")])


def echo(status: int = 200, extra_headers: Sequence[tuple[str, str]] = ()) -> Handler:
    """Answers a JSON object describing the request: method, path, query,
    headers and body text (so a secret sent comes back JSON-escaped)."""

    def handle(ex: Exchange) -> None:
        r = ex.request_record
        payload = {
            "method": r.method,
            "path": r.path,
            "query": r.query,
            "headers": r.headers,
            "body": r.body.decode("utf-8", "replace"),
        }
        ex.answer(status, json.dumps(payload).encode(), [*JSON, *extra_headers])

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    return raw_answer(status, b"", [("Location", location)])


def big_body(size: int, *, declare_length: bool = True) -> Handler:
    """``size`` bytes of JSON-ish filler, with or without a Content-Length."""

    def handle(ex: Exchange) -> None:
        ex.answer(200, b"[" + b"0," * ((size - 2) // 2) + b"0]", JSON, length=declare_length)

    return handle


def trickle(total: int = 1000, interval: float = 1.0, content_type: str = "application/json") -> Handler:
    """Headers at once, then the body one byte per ``interval`` (a per-read
    timeout never fires)."""

    def handle(ex: Exchange) -> None:
        ex.send_response(200)
        ex.send_header("Content-Type", content_type)
        ex.send_header("Content-Length", str(total))
        ex.end_headers()
        ex.write(b"")
        for _ in range(total):
            ex.write(b" ")
            if ex.wait(interval):
                break
        ex.close_connection = True

    return handle


def header_trickle(interval: float = 0.5) -> Handler:
    """The status line, then one header byte per ``interval``: the headers never end."""

    def handle(ex: Exchange) -> None:
        ex.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not ex.wait(interval):
            ex.write(b"a")
        ex.close_connection = True

    return handle


def stall_after_headers(content_length: int = 100) -> Handler:
    def handle(ex: Exchange) -> None:
        ex.send_response(200)
        ex.send_header("Content-Type", "application/json")
        ex.send_header("Content-Length", str(content_length))
        ex.end_headers()
        ex.write(b"")
        ex.stopping.wait()
        ex.close_connection = True

    return handle


def stall_before_headers() -> Handler:
    def handle(ex: Exchange) -> None:
        ex.stopping.wait()
        ex.close_connection = True

    return handle


def close_without_answer() -> Handler:
    """Read the request, then close the connection without a byte of answer."""

    def handle(ex: Exchange) -> None:
        ex.close_connection = True

    return handle


def reset_without_answer() -> Handler:
    """Read the request, then abort the connection with a TCP RST (SO_LINGER 0)."""

    def handle(ex: Exchange) -> None:
        ex.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ex.connection.close()
        ex.close_connection = True

    return handle


def sse_comments_forever(interval: float = 0.1) -> Handler:
    """An event stream of keep-alive comments that never ends."""

    def handle(ex: Exchange) -> None:
        ex.send_response(200)
        ex.send_header("Content-Type", "text/event-stream")
        ex.send_header("Connection", "close")
        ex.end_headers()
        ex.close_connection = True
        while not ex.wait(interval):
            ex.write(b": keep-alive\n\n")

    return handle


def sse_events(pieces: Iterable[bytes], gap: float = 0.05, *, keep_open: float = 0.0) -> Handler:
    """Sends ``pieces`` as separate writes ``gap`` seconds apart (so each is its
    own chunk on the wire), optionally holds the stream open, then closes."""
    parts = list(pieces)

    def handle(ex: Exchange) -> None:
        ex.send_response(200)
        ex.send_header("Content-Type", "text/event-stream")
        ex.send_header("Connection", "close")
        ex.end_headers()
        ex.close_connection = True
        for piece in parts:
            ex.write(piece)
            if ex.wait(gap):
                return
        if keep_open:
            ex.wait(keep_open)

    return handle


def sequence(*handlers: Handler) -> Handler:
    """The n-th request gets the n-th behaviour (the last one repeats)."""
    lock = threading.Lock()
    count = iter(range(1 << 30))

    def handle(ex: Exchange) -> None:
        with lock:
            n = next(count)
        handlers[min(n, len(handlers) - 1)](ex)

    return handle


#: Deflate of 1 MiB of zeros, full-flushed: every such block is the same 1037 bytes, so
#: an endless gzip member of zeros is its header and this block, repeated.
_ZEROS_MIB = 1 << 20


def _zero_block() -> bytes:
    encoder = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    encoder.compress(bytes(_ZEROS_MIB))
    encoder.flush(zlib.Z_FULL_FLUSH)  # the first block differs (no history yet): skip it
    block = encoder.compress(bytes(_ZEROS_MIB)) + encoder.flush(zlib.Z_FULL_FLUSH)
    return block


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # RFC 1952: deflate, no name, no time


def gzip_bomb_pieces(layers: int = 1, *, mib_per_piece: int = 64) -> Iterator[bytes]:
    """An endless gzip member of zeros, gzipped ``layers`` (1 or 2) times, made as it is
    read. One layer: each piece is ~66 KB and decodes to ``mib_per_piece`` MiB. Two
    layers: each piece is ~2.4 KB and decodes to 1 GiB."""
    block = _zero_block()
    inner = _GZIP_HEADER + block * (mib_per_piece - 1)
    if layers == 1:
        yield inner
        while True:
            yield block * mib_per_piece
    outer = zlib.compressobj(9, zlib.DEFLATED, 31)
    gib = block * 1024
    first = outer.compress(_GZIP_HEADER + gib) + outer.flush(zlib.Z_SYNC_FLUSH)
    yield first
    while True:
        yield outer.compress(gib) + outer.flush(zlib.Z_SYNC_FLUSH)


def gzip_bomb(layers: int = 1, content_type: str = "application/json") -> Handler:
    """A 200 with ``Content-Encoding: gzip`` (``layers`` times, close-delimited) whose
    body decodes to endless zeros (:func:`gzip_bomb_pieces`)."""

    def handle(ex: Exchange) -> None:
        ex.send_response(200)
        ex.send_header("Content-Type", content_type)
        ex.send_header("Content-Encoding", ", ".join(["gzip"] * layers))
        ex.send_header("Connection", "close")
        ex.end_headers()
        ex.close_connection = True
        for piece in gzip_bomb_pieces(layers):
            if ex.stopping.is_set():
                return
            ex.write(piece)

    return handle
