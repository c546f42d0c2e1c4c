"""Fixtures of the reference server's own tests.

Everything talks to a real server over a real socket (uvicorn in a thread, port 0):
``httpx.ASGITransport`` and Starlette's ``TestClient`` buffer or hang on streams.
One shared server (rate limits off, no token delay) serves the tests that need no
special configuration; they create their own bots, so they never step on each other.
Tests that need other settings start their own with ``start_server``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource

from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig

ALICE, BOB = DEV_PRINCIPALS
TIMEOUT = httpx.Timeout(10.0)


def bearer(principal: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {principal.api_key}"}


def cookie(principal: Any) -> dict[str, str]:
    return {"Cookie": f"session_key={principal.session_key}"}


@dataclass(frozen=True)
class Event:
    """One decoded SSE event: its name and its JSON payload."""

    name: str
    payload: dict[str, Any]


def decode_events(raw: bytes) -> list[Event]:
    """Decode a whole SSE body with httpx-sse's WHATWG decoder (not the suite's checker).

    Lines split at CR, LF and CRLF only; the leading BOM that WHATWG skips is dropped
    first, because httpx-sse does not. Blocks without data (a lone ``retry:``) are no
    events here.
    """
    raw = raw.removeprefix("\ufeff".encode("utf-8"))
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=raw)
    return [Event(sse.event, json.loads(sse.data)) for sse in EventSource(response).iter_sse() if sse.data]


@dataclass
class Api:
    """A principal's view of a server, with the handful of calls tests repeat."""

    client: httpx.Client

    def create_bot(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "test bot"} | fields
        response = self.client.post("/api/draftbot/create", json=body)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def publish(self, bot_id: int | str) -> dict[str, Any]:
        response = self.client.post("/api/draftbot/publish", json={"bot_id": int(bot_id)})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def published_bot(self, **fields: Any) -> int:
        bot_id: int = self.create_bot(**fields)["bot_id"]
        self.publish(bot_id)
        return bot_id

    def chat_body(self, bot_id: int | str, text: str = "hello", **extra: Any) -> dict[str, Any]:
        return {
            "bot_id": str(bot_id),
            "user_id": "user_001",
            "additional_messages": [{"role": "user", "content": text, "content_type": "text"}],
        } | extra

    def chat(self, bot_id: int | str, text: str = "hello", **extra: Any) -> dict[str, Any]:
        response = self.client.post("/v3/chat", json=self.chat_body(bot_id, text, **extra))
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def stream(self, path: str, body: dict[str, Any], **kwargs: Any) -> tuple[httpx.Response, list[Event]]:
        with self.client.stream("POST", path, json=body, **kwargs) as response:
            raw = response.read()
        return response, decode_events(raw)

    def chat_stream(self, bot_id: int | str, text: str = "hello", **extra: Any) -> list[Event]:
        response, events = self.stream("/v3/chat", self.chat_body(bot_id, text, stream=True, **extra))
        assert response.status_code == 200
        return events


@pytest.fixture(scope="session")
def ref_server() -> Iterator[ReferenceServer]:
    with ReferenceServer(ServerConfig(token_delay=0, rate_limits=False)) as server:
        yield server


def _client(server: ReferenceServer, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=headers, timeout=TIMEOUT)


@pytest.fixture(scope="session")
def alice(ref_server: ReferenceServer) -> Iterator[Api]:
    with _client(ref_server, bearer(ALICE)) as client:
        yield Api(client)


@pytest.fixture(scope="session")
def bob(ref_server: ReferenceServer) -> Iterator[Api]:
    with _client(ref_server, bearer(BOB)) as client:
        yield Api(client)


@pytest.fixture(scope="session")
def anonymous(ref_server: ReferenceServer) -> Iterator[httpx.Client]:
    with _client(ref_server, {}) as client:
        yield client


@pytest.fixture(scope="session")
def decode() -> Callable[[bytes], list[Event]]:
    """:func:`decode_events`, for tests that decode raw stream bytes themselves."""
    return decode_events


StartServer = Callable[..., ReferenceServer]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start servers with the given ServerConfig fields (token_delay=0 unless given)."""
    with ExitStack() as stack:

        def start(**fields: Any) -> ReferenceServer:
            fields.setdefault("token_delay", 0)
            return stack.enter_context(ReferenceServer(ServerConfig(**fields)))

        yield start


@pytest.fixture
def api_for() -> Iterator[Callable[..., Api]]:
    """An :class:`Api` for any server and principal (Bearer unless headers are given)."""
    with ExitStack() as stack:

        def make(server: ReferenceServer, principal: Any = ALICE, headers: dict[str, str] | None = None) -> Api:
            client = stack.enter_context(_client(server, bearer(principal) if headers is None else headers))
            return Api(client)

        yield make
