"""The exchange log: every request and response of a test, redacted before it is
stored, and its replay as copy-pasteable curl (
"Redaction everywhere").

What is redacted: ``Authorization``, ``Proxy-Authorization``, ``Cookie`` and
``Set-Cookie`` values whatever they hold (a gateway token or a cookie the target
set is a credential too), URL userinfo, and every configured secret in every
encoding (``conformance.transport.redact``) in URLs, headers, bodies, stream chunks and
error messages. The deliberately wrong credentials of the ``wrong-*`` auth modes
are not secrets and stay visible, so a reader sees the test meant them.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from conformance.transport.redact import Redactor

__all__ = [
    "DEFAULT_LOG_BODY_CAP",
    "REDACTED",
    "WRONG_API_KEY",
    "WRONG_SESSION_KEY",
    "Exchange",
    "ExchangeLog",
    "redact_header",
    "redact_url",
]

#: The deliberately wrong credentials. They are not secrets, so logs and curl
#: show them as they are.
WRONG_API_KEY = "cz-conformance-wrong-api-key"
WRONG_SESSION_KEY = "cz-conformance-wrong-session-key"

REDACTED = "***REDACTED***"
#: Bytes of a request or response body kept in the log (the test sees all of it).
DEFAULT_LOG_BODY_CAP = 256 * 1024
#: Chunk records kept per stream (an endless stream of comments must stay cheap).
MAX_LOGGED_CHUNKS = 10_000


def _blob(data: bytes | None) -> dict[str, str] | None:
    if data is None:
        return None
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _unblob(blob: Mapping[str, str] | None) -> bytes | None:
    if blob is None:
        return None
    if "text" in blob:
        return blob["text"].encode("utf-8")
    return base64.b64decode(blob["base64"])


def redact_url(url: str, redactor: Redactor) -> str:
    """``url`` without userinfo and with every configured secret replaced."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{REDACTED}@{host}")
    return redactor.redact(urlunsplit(parts))


_AUTH_SCHEMES = {"bearer", "basic", "token", "digest", "negotiate"}
_MARKER = re.compile(r"\*\*\*([A-Za-z_][A-Za-z0-9_]*)\*\*\*")


def _keep_token(token: str, wrong: str) -> bool:
    return token == wrong or _MARKER.fullmatch(token) is not None


def redact_header(name: str, value: str, redactor: Redactor) -> str:
    """A header value fit for a log: credentials never pass, whether configured
    or not (a gateway token, a cookie the target set)."""
    lname = name.lower()
    value = redactor.redact(value)
    if lname in ("authorization", "proxy-authorization"):
        scheme, sep, token = value.partition(" ")
        if not sep:
            return value if (scheme.lower() in _AUTH_SCHEMES or _keep_token(scheme, WRONG_API_KEY)) else REDACTED
        return f"{scheme} {token}" if _keep_token(token.strip(), WRONG_API_KEY) else f"{scheme} {REDACTED}"
    if lname == "cookie":
        kept = []
        for pair in value.split(";"):
            cname, sep, cvalue = pair.strip().partition("=")
            if not sep:
                kept.append(cname if _keep_token(cname, WRONG_SESSION_KEY) else REDACTED)
            else:
                kept.append(f"{cname}={cvalue if _keep_token(cvalue, WRONG_SESSION_KEY) else REDACTED}")
        return "; ".join(kept)
    if lname in ("location", "content-location", "refresh"):
        return redact_url(value, redactor) if "@" in value else value
    if lname == "set-cookie":
        first, sep, attributes = value.partition(";")
        cname, eq, _ = first.partition("=")
        return f"{cname.strip()}={REDACTED}{sep}{attributes}" if eq else f"{REDACTED}{sep}{attributes}"
    return value


def _shell_single(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


_DOUBLE_UNSAFE = re.compile(r"[\"\\$`!]")


def _shell_arg(text: str, *, credentials: bool = False) -> str:
    """Quote ``text`` for sh. With ``credentials`` (the Authorization and Cookie
    headers, which this client builds from the raw secret) each ``***LABEL***``
    marker becomes a ``$LABEL`` reference, so curl reads the secret from the
    environment; elsewhere a marker may stand for an encoded form of the secret
    and stays as a visible placeholder."""
    if not credentials:
        return f'"{text}"' if not _DOUBLE_UNSAFE.search(text) else _shell_single(text)
    pieces = _MARKER.split(text)  # literal, label, literal, label, ..., literal
    literals, labels = pieces[0::2], pieces[1::2]
    if not any(_DOUBLE_UNSAFE.search(lit) for lit in literals):
        out = literals[0]
        for label, lit in zip(labels, literals[1:], strict=True):
            out += f"${{{label}}}" if lit[:1].isalnum() or lit[:1] == "_" else f"${label}"
            out += lit
        return f'"{out}"'
    out = _shell_single(literals[0]) if literals[0] else ""
    for label, lit in zip(labels, literals[1:], strict=True):
        out += f'"${label}"' + (_shell_single(lit) if lit else "")
    return out or "''"


#: Headers curl sends itself or that only describe this client; left out of curl.
_CURL_SKIP = {"host", "content-length", "accept-encoding", "connection", "user-agent"}


class Exchange:
    """One request and its answer, redacted before it is stored.

    For a stream the raw chunks are held privately *while the stream is open*
    (a secret split across two chunks can only be found in their join); every
    public view -- ``response_body``, ``chunks``, ``to_dict``, pickling -- is
    redacted, and closing the stream replaces the raw chunks by the redacted ones.
    """

    def __init__(
        self,
        *,
        index: int,
        method: str,
        url: str,
        request_headers: Sequence[tuple[str, str]],
        request_body: bytes | None,
        auth: str,
        stream: bool,
        started_at: float,
        tls: str | None = None,
        body_cap: int = DEFAULT_LOG_BODY_CAP,
        redactor: Redactor | None = None,
    ) -> None:
        self.index = index
        self.method = method
        self.url = url
        self.request_headers = list(request_headers)
        self.request_body = request_body
        self.auth = auth
        self.stream = stream
        self.started_at = started_at
        self.tls = tls
        self.status: int | None = None
        self.reason: str | None = None
        self.response_headers: list[tuple[str, str]] = []
        self.elapsed: float | None = None
        self.error: str | None = None
        self.body_truncated = False
        self.total_bytes = 0
        self.chunk_count = 0
        self._body: bytes = b""
        self._chunks: list[tuple[float, bytes]] = []
        self._raw: list[tuple[float, bytes]] | None = None  # open stream only
        self._raw_bytes = 0
        self._body_cap = body_cap
        self._redactor = redactor or Redactor()

    # ---- recording (the client calls these)

    def _set_response(self, status: int, reason: str, headers: Sequence[tuple[str, str]]) -> None:
        self.status = status
        self.reason = reason
        self.response_headers = [(n, redact_header(n, v, self._redactor)) for n, v in headers]
        if self.stream:
            self._raw = []

    def _set_body(self, raw: bytes, total: int | None = None) -> None:
        self.total_bytes = len(raw) if total is None else total
        cut = raw[: self._body_cap]
        self.body_truncated = len(cut) < self.total_bytes
        self._body = self._redactor.redact_bytes(cut, truncated=self.body_truncated)

    def _add_chunk(self, t: float, chunk: bytes) -> None:
        self.total_bytes += len(chunk)
        self.chunk_count += 1
        if self._raw is None:
            return
        room = self._body_cap - self._raw_bytes
        if room <= 0 or len(self._raw) >= MAX_LOGGED_CHUNKS:
            self.body_truncated = True
            return
        if len(chunk) > room:
            chunk = chunk[:room]
            self.body_truncated = True
        self._raw.append((t, chunk))
        self._raw_bytes += len(chunk)

    def _finish(self, elapsed: float, error: str | None = None) -> None:
        if self.elapsed is None:
            self.elapsed = elapsed
        if error is not None and self.error is None:
            self.error = self._redactor.redact(error)
        if self._raw is not None:
            self._chunks = self._redacted_chunks()
            self._body = b"".join(c for _, c in self._chunks)
            self._raw = None

    def _redacted_chunks(self) -> list[tuple[float, bytes]]:
        raw = self._raw or []
        pieces = self._redactor.redact_chunks([c for _, c in raw], truncated=self.body_truncated)
        return [(t, p) for (t, _), p in zip(raw, pieces, strict=True)]

    # ---- views

    @property
    def response_body(self) -> bytes:
        """The response body (a stream: every byte so far), redacted and capped."""
        if self._raw is not None:
            return b"".join(c for _, c in self._redacted_chunks())
        return self._body

    @property
    def chunks(self) -> list[tuple[float, bytes]]:
        """A stream's chunks as ``(seconds since the request started, bytes)``, redacted."""
        if self._raw is not None:
            return self._redacted_chunks()
        return list(self._chunks)

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def summary(self) -> str:
        """One line: ``POST /v3/chat -> 200 (0.12 s, 345 bytes)``."""
        if self.status is not None:
            outcome = f"{self.status}"
        else:
            outcome = "no answer"
        details = []
        if self.elapsed is not None:
            details.append(f"{self.elapsed:.2f} s")
        if self.status is not None:
            details.append(f"{self.total_bytes} bytes" + (f" in {self.chunk_count} chunks" if self.stream else ""))
        if self.error:
            details.append(self.error)
        return f"{self.method} {self.path} -> {outcome} ({', '.join(details)})"

    def to_text(self, max_body: int = 8192) -> str:
        """An HTTP-like transcript for a report attachment (redacted)."""
        lines = [f"{self.method} {self.url}", *(f"{n}: {v}" for n, v in self.request_headers)]
        if self.request_body is not None:
            lines += ["", self.request_body[:max_body].decode("utf-8", "replace")]
        lines.append("")
        if self.status is None:
            lines.append(f"(no answer: {self.error})")
            return "\n".join(lines)
        lines.append(f"HTTP {self.status} {self.reason or ''}".rstrip())
        lines += [f"{n}: {v}" for n, v in self.response_headers]
        lines.append("")
        if self.stream:
            for t, chunk in self.chunks:
                lines.append(f"[+{t:.3f} s] {chunk.decode('utf-8', 'replace')!r}")
        else:
            lines.append(self.response_body[:max_body].decode("utf-8", "replace"))
        if self.body_truncated:
            lines.append(f"(truncated; {self.total_bytes} bytes in all)")
        if self.error:
            lines.append(f"(error: {self.error})")
        return "\n".join(lines)

    def to_curl(self) -> str:
        """A copy-pasteable curl command; credentials come from the environment
        (``$COZE_API_KEY``, ``$COZE_SESSION_KEY``, ``..._2``), never their values."""
        args: list[str] = ["curl -sS -i"]
        if self.stream:
            args[0] += " -N"
        if self.tls == "insecure":
            args.append("-k")
        elif self.tls:
            args.append(f"--cacert {_shell_single(self.tls)}")
        if self.method != "GET" or self.request_body is not None:
            args.append(f"-X {self.method}")
        args.append(_shell_arg(self.url))
        for name, value in self.request_headers:
            lname = name.lower()
            if lname in _CURL_SKIP or (lname == "accept" and value == "*/*"):
                continue
            credentials = lname in ("authorization", "cookie", "proxy-authorization")
            if lname == "cookie":
                args.append(f"-b {_shell_arg(value, credentials=True)}")
            else:
                args.append(f"-H {_shell_arg(f'{name}: {value}', credentials=credentials)}")
        prefix = ""
        if self.request_body is not None:
            try:
                text = self.request_body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None and "\0" not in text:
                args.append(f"--data-binary {_shell_single(text)}")
            else:
                octal = "".join(f"\\{b:03o}" for b in self.request_body)
                prefix = f"printf '{octal}' | "
                args.append("--data-binary @-")
        return prefix + " \\\n  ".join(args)

    # ---- serialisation

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data (redacted), for reports and xdist."""
        return {
            "index": self.index,
            "method": self.method,
            "url": self.url,
            "request_headers": [list(h) for h in self.request_headers],
            "request_body": _blob(self.request_body),
            "auth": self.auth,
            "stream": self.stream,
            "started_at": self.started_at,
            "tls": self.tls,
            "status": self.status,
            "reason": self.reason,
            "response_headers": [list(h) for h in self.response_headers],
            "response_body": _blob(self.response_body),
            "body_truncated": self.body_truncated,
            "total_bytes": self.total_bytes,
            "chunk_count": self.chunk_count,
            "chunks": [{"t": round(t, 6), **(_blob(c) or {})} for t, c in self.chunks],
            "elapsed": self.elapsed,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Exchange:
        ex = cls(
            index=data["index"],
            method=data["method"],
            url=data["url"],
            request_headers=[(h[0], h[1]) for h in data["request_headers"]],
            request_body=_unblob(data["request_body"]),
            auth=data["auth"],
            stream=data["stream"],
            started_at=data["started_at"],
            tls=data.get("tls"),
        )
        ex.status = data["status"]
        ex.reason = data.get("reason")
        ex.response_headers = [(h[0], h[1]) for h in data["response_headers"]]
        ex._body = _unblob(data["response_body"]) or b""
        ex.body_truncated = data["body_truncated"]
        ex.total_bytes = data["total_bytes"]
        ex.chunk_count = data["chunk_count"]
        ex._chunks = [(c["t"], _unblob(c) or b"") for c in data["chunks"]]
        ex.elapsed = data["elapsed"]
        ex.error = data["error"]
        return ex

    def __getstate__(self) -> dict[str, Any]:
        return self.to_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(Exchange.from_dict(state).__dict__)

    def __repr__(self) -> str:
        return f"<Exchange #{self.index} {self.summary()}>"


class ExchangeLog:
    """Every exchange of one test (or one preflight), in order, redacted.

    Cheap to create per test; picklable and ``to_dict()``-able for reports.
    ``limit`` bounds its memory: beyond it the oldest exchanges are dropped
    (and counted), since a failure is explained by what happened last.
    """

    def __init__(self, *, body_cap: int = DEFAULT_LOG_BODY_CAP, limit: int = 500) -> None:
        self.exchanges: list[Exchange] = []
        self.dropped = 0
        self.body_cap = body_cap
        self.limit = limit
        self._next_index = 1
        # A test may send from several threads (rate limits, cancel during a stream).
        self._lock = threading.Lock()

    def _new(self, **fields: Any) -> Exchange:
        with self._lock:
            ex = Exchange(index=self._next_index, body_cap=self.body_cap, **fields)
            self._next_index += 1
            self.exchanges.append(ex)
            if len(self.exchanges) > self.limit:
                del self.exchanges[0]
                self.dropped += 1
        return ex

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.exchanges)

    def __iter__(self) -> Iterator[Exchange]:
        return iter(list(self.exchanges))

    def __getitem__(self, index: int) -> Exchange:
        return self.exchanges[index]

    def __bool__(self) -> bool:
        # An empty log is still a log: ``log or ExchangeLog()`` must not replace it.
        return True

    def to_curl_script(self) -> str:
        """The whole sequence as a shell script, setup requests included."""
        used = sorted(
            {
                label
                for ex in self.exchanges
                for name, value in ex.request_headers
                if name.lower() in ("authorization", "cookie", "proxy-authorization")
                for label in _MARKER.findall(value)
            }
        )
        lines = ["#!/bin/sh", "# Credentials are read from the environment; export them first."]
        lines += [f': "${{{var}:?export {var} first}}"' for var in used]
        if self.dropped:
            lines.append(f"# ({self.dropped} earlier exchanges not kept)")
        for ex in self.exchanges:
            lines += ["", f"# {ex.index}. {ex.summary()}", ex.to_curl()]
        return "\n".join(lines) + "\n"

    def to_text(self, max_body: int = 8192) -> str:
        return "\n\n".join(ex.to_text(max_body) for ex in self.exchanges)

    def to_dict(self) -> dict[str, Any]:
        return {"dropped": self.dropped, "exchanges": [ex.to_dict() for ex in self.exchanges]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExchangeLog:
        log = cls()
        log.dropped = data.get("dropped", 0)
        log.exchanges = [Exchange.from_dict(e) for e in data["exchanges"]]
        log._next_index = max((e.index for e in log.exchanges), default=0) + 1
        return log

    def __repr__(self) -> str:
        return f"<ExchangeLog {len(self.exchanges)} exchanges>"


