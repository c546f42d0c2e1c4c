"""A hostile reverse proxy: forwards every request to an upstream server faithfully,
except the requests a scenario targets, where it misbehaves.

The suite's preflight and every request a scenario does not target reach the real
(reference) server through it, so a run gets past the preflight and meets the hostility
mid-run, in the one test whose request it targets::

    rule = Rule(streamed_chat, cut_stream(after=300))
    with HostileProxy(reference.url, rule) as proxy:
        ... run the suite with --target-url proxy.url ...

A :class:`Rule` pairs a *target* (which requests: :func:`streamed_chat`,
:func:`online_info_of_a_bot`, :func:`chat`, :func:`from_first`, :func:`from_request`,
:func:`every_request`) with a *behaviour* (what the proxy does instead of forwarding:
:func:`cut_stream`, :func:`reset_stream`, :func:`comments_forever`, :func:`never_answer`,
:func:`answer`, :func:`endless_line`, :func:`huge_json`, :func:`trickle`,
:func:`gzip_bomb`, :func:`close_socket`, :func:`go_down`). :func:`self_signed` makes a
certificate for serving it over TLS.

The stdlib (``http.server``, ``http.client``) and ``tests.support.servers`` only: the
proxy must never share code with the client whose behaviour it tests. Every sleeping
behaviour wakes when the proxy stops, and every endless one ends when the client goes
away.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.servers import ServerThread, Stoppable, gzip_bomb_pieces

__all__ = [
    "HOP_BY_HOP",
    "Behaviour",
    "HostileProxy",
    "Incoming",
    "Rule",
    "answer",
    "chat",
    "close_socket",
    "comments_forever",
    "cut_stream",
    "endless_line",
    "every_request",
    "from_first",
    "from_request",
    "go_down",
    "gzip_bomb",
    "huge_json",
    "never_answer",
    "online_info_of_a_bot",
    "reset_stream",
    "self_signed",
    "streamed_chat",
    "trickle",
]

#: Headers that describe one connection, not the message (RFC 9110 7.6.1): the proxy
#: frames its own answers (Content-Length kept when the upstream gave one, else the
#: body ends with the connection).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"})
_PIECE = 64 * 1024
#: The preflight reads ``get_online_info`` of this bot id (the largest int64, no bot).
_PREFLIGHT_BOT_ID = str(2**63 - 1)


class _ClientGone(Exception):
    pass


@dataclass(frozen=True)
class Incoming:
    """One request as it arrived: its number (0-based, in order of arrival) and content."""

    index: int
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def streamed(self) -> bool:
        document = self.json()
        return isinstance(document, dict) and document.get("stream") is True


Target = Callable[[Incoming], bool]


class Conn:
    """What a behaviour acts on: the client's connection and the way to the upstream."""

    def __init__(self, handler: _Handler, incoming: Incoming) -> None:
        self._handler = handler
        self.incoming = incoming

    @property
    def stopping(self) -> threading.Event:
        return self._handler.server.stopping

    def wait(self, seconds: float) -> bool:
        """Sleep; True when the proxy is stopping (the behaviour should end)."""
        return self.stopping.wait(seconds)

    def write(self, data: bytes) -> None:
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError as exc:
            raise _ClientGone from exc

    def head(self, status: int, headers: Sequence[tuple[str, str]], *, reason: str | None = None) -> None:
        """The status line and headers, as given (nothing added)."""
        phrase = reason if reason is not None else http.client.responses.get(status, "")
        lines = [f"HTTP/1.1 {status} {phrase}", *(f"{n}: {v}" for n, v in headers)]
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def close_after(self) -> None:
        """Close the connection once the behaviour returns (a close-delimited body ends)."""
        self._handler.close_connection = True

    def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), not an orderly FIN."""
        sock = self._handler.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass
        self._handler.close_connection = True

    def stop_listening(self) -> None:
        """Close the listening socket: from now on every connection is refused."""
        server = self._handler.server
        # shutdown() waits for serve_forever, which runs in another thread (and cannot
        # return while this handler runs in it, for a non-threaded server): ask, don't wait.
        threading.Thread(target=server.shutdown, daemon=True).start()
        server.socket.close()

    def upstream(self) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send the request on to the upstream; the connection and its open response."""
        proxy = self._handler.server
        request = self.incoming
        connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
        target = request.path + ("?" + _query(request.query) if request.query else "")
        connection.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers:
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                connection.putheader(name, value)
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            connection.putheader("Content-Length", str(len(request.body)))
        connection.endheaders(request.body or None)
        return connection, connection.getresponse()

    def relay(self, *, limit: int | None = None) -> int:
        """Forward the upstream's answer; with ``limit``, only its first ``limit`` body
        bytes (the headers then promise no length). Returns the body bytes sent."""
        connection, response = self.upstream()
        try:
            headers = [(n, v) for n, v in response.getheaders() if n.lower() not in HOP_BY_HOP]
            length = response.getheader("Content-Length")
            if limit is not None or length is None:
                headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
                headers.append(("Connection", "close"))
                self.close_after()
            self.head(response.status, headers, reason=response.reason)
            sent = 0
            while limit is None or sent < limit:
                piece = response.read1(_PIECE if limit is None else min(_PIECE, limit - sent))
                if not piece:
                    break
                self.write(piece)
                sent += len(piece)
            return sent
        finally:
            response.close()
            connection.close()


Behaviour = Callable[[Conn], None]


@dataclass(frozen=True)
class Rule:
    """Requests matching ``target`` meet ``behaviour``; the rest are forwarded."""

    target: Target
    behaviour: Behaviour


def _query(pairs: Sequence[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return urlencode(list(pairs))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection ends on its own
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        proxy = self.server
        with proxy.lock:
            index = proxy.count
            proxy.count += 1
        incoming = Incoming(
            index=index,
            method=self.command,
            path=parts.path,
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            headers=tuple(self.headers.items()),
            body=body,
        )
        conn = Conn(self, incoming)
        hostile = proxy.rule is not None and proxy.rule.target(incoming)
        if hostile:
            proxy.hits.append(incoming)
        try:
            (proxy.rule.behaviour if hostile and proxy.rule is not None else _forward)(conn)
        except _ClientGone:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


def _forward(conn: Conn) -> None:
    conn.relay()


class _Server(Stoppable):
    daemon_threads = True

    def __init__(self, upstream: str, rule: Rule | None, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        assert parts.hostname is not None and parts.port is not None
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.rule = rule
        self.tls = tls
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.count = 0
        self.hits: list[Incoming] = []

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is None:
            return sock, address
        # The handshake happens in the connection's own thread (on first read), so a
        # client that refuses the certificate never blocks the accept loop.
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up, a refused certificate: the test judges the client's side


class HostileProxy(ServerThread["_Server"]):
    """A threaded reverse proxy to ``upstream`` on 127.0.0.1 (port 0), over TLS when
    ``tls`` (a server-side context) is given; ``rule`` picks the requests it spoils.
    ``hits`` are the requests that met the rule's behaviour."""

    what = "proxy"

    def __init__(self, upstream: str, rule: Rule | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self._args = (upstream, rule, tls)

    def _make(self) -> _Server:
        return _Server(*self._args)

    @property
    def url(self) -> str:
        scheme = "https" if self._live.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._live.server_address[1]}"

    @property
    def hits(self) -> list[Incoming]:
        return self._live.hits

    @property
    def requests_seen(self) -> int:
        return self._live.count


# --------------------------------------------------------------------------- targets


def streamed_chat(request: Incoming) -> bool:
    """``POST /v3/chat`` with ``"stream": true``."""
    return request.method == "POST" and request.path == "/v3/chat" and request.streamed


def online_info_of_a_bot(request: Incoming) -> bool:
    """``GET /v1/bot/get_online_info`` of a real bot (not the preflight's probe of a
    bot id that names none)."""
    bot_ids = [v for n, v in request.query if n == "bot_id"]
    return request.method == "GET" and request.path == "/v1/bot/get_online_info" and bot_ids != [_PREFLIGHT_BOT_ID]


def every_request(request: Incoming) -> bool:
    return True


def from_first(target: Target) -> Target:
    """The first request ``target`` matches, and every one after it."""
    lock = threading.Lock()
    started = threading.Event()

    def matches(request: Incoming) -> bool:
        with lock:
            if not started.is_set() and target(request):
                started.set()
            return started.is_set()

    return matches


def chat(request: Incoming) -> bool:
    """``POST /v3/chat``, streamed or not."""
    return request.method == "POST" and request.path == "/v3/chat"


def from_request(n: int) -> Target:
    """The ``n``-th request (0-based) and every one after it."""

    def target(request: Incoming) -> bool:
        return request.index >= n

    return target


# --------------------------------------------------------------------------- behaviours


def cut_stream(after: int) -> Behaviour:
    """The upstream's answer, cut after ``after`` body bytes by an orderly close: the
    stream just ends, without its terminal event."""

    def behave(conn: Conn) -> None:
        conn.relay(limit=after)
        conn.close_after()

    return behave


def reset_stream(after: int) -> Behaviour:
    """The upstream's answer, aborted with a TCP RST after ``after`` body bytes."""

    def behave(conn: Conn) -> None:
        conn.relay(limit=after)
        conn.wait(0.2)  # the bytes sent arrive first; then the reset
        conn.reset()

    return behave


def _open_stream(conn: Conn, content_type: str = "text/event-stream") -> None:
    conn.head(200, [("Content-Type", content_type), ("Cache-Control", "no-cache"), ("Connection", "close")])
    conn.close_after()


def comments_forever(interval: float = 0.1) -> Behaviour:
    """An event stream of keep-alive comments that never ends."""

    def behave(conn: Conn) -> None:
        _open_stream(conn)
        while not conn.wait(interval):
            conn.write(b": keep-alive\n\n")

    return behave


def endless_line(piece: int = _PIECE, interval: float = 0.0) -> Behaviour:
    """An event stream whose first line never ends: ``data: aaaa...`` with no newline."""

    def behave(conn: Conn) -> None:
        _open_stream(conn)
        conn.write(b"data: ")
        filler = b"a" * piece
        while not conn.wait(interval):
            conn.write(filler)

    return behave


def never_answer() -> Behaviour:
    """Read the request, then send nothing (no status line, no header) until the client
    leaves or the proxy stops."""

    def behave(conn: Conn) -> None:
        conn.close_after()
        conn.stopping.wait()

    return behave


def answer(status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> Behaviour:
    """A complete answer of the proxy's own (Content-Length added)."""

    def behave(conn: Conn) -> None:
        conn.head(status, [*headers, ("Content-Length", str(len(body)))])
        conn.write(body)

    return behave


def huge_json(size: int, *, declare_length: bool) -> Behaviour:
    """A 200 JSON envelope of ``size`` bytes, made as it is sent (never held whole)."""
    opening, closing = b'{"code":0,"msg":"success","data":{"pad":"', b'"}}'

    def behave(conn: Conn) -> None:
        headers = [("Content-Type", "application/json")]
        if declare_length:
            headers.append(("Content-Length", str(size)))
        else:
            headers.append(("Connection", "close"))
        conn.close_after()
        conn.head(200, headers)
        conn.write(opening)
        left = size - len(opening) - len(closing)
        filler = b"a" * _PIECE
        while left > 0 and not conn.stopping.is_set():
            conn.write(filler[: min(left, _PIECE)])
            left -= _PIECE
        conn.write(closing)

    return behave


def trickle(interval: float, *, total: int = 1000, content_type: str = "application/json") -> Behaviour:
    """Headers at once, then one body byte every ``interval`` seconds."""

    def behave(conn: Conn) -> None:
        conn.head(200, [("Content-Type", content_type), ("Content-Length", str(total))])
        conn.close_after()
        for _ in range(total):
            conn.write(b" ")
            if conn.wait(interval):
                return

    return behave


def gzip_bomb(layers: int = 1, content_type: str = "application/json") -> Behaviour:
    """A 200 with ``Content-Encoding: gzip`` (``layers`` times) whose body decodes to
    endless zeros, each few KB on the wire to gigabytes: a client that decodes without
    a bound runs out of memory."""

    def behave(conn: Conn) -> None:
        encoding = ", ".join(["gzip"] * layers)
        conn.head(200, [("Content-Type", content_type), ("Content-Encoding", encoding), ("Connection", "close")])
        conn.close_after()
        for piece in gzip_bomb_pieces(layers):
            if conn.stopping.is_set():
                return
            conn.write(piece)

    return behave


def close_socket() -> Behaviour:
    """Read the request, then close the connection without a byte of answer."""

    def behave(conn: Conn) -> None:
        conn.close_after()

    return behave


def go_down() -> Behaviour:
    """The target goes down: this request's connection is reset and the proxy stops
    listening, so every later connection is refused."""

    def behave(conn: Conn) -> None:
        conn.stop_listening()
        conn.reset()

    return behave


# --------------------------------------------------------------------------- TLS


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A fresh self-signed certificate for 127.0.0.1 (its own CA): the proxy's server
    context, and the certificate's PEM file, a CA bundle that trusts it."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coze-conformance hostile proxy")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
