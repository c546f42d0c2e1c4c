"""Concurrent SSE chats from one asyncio httpx client (issue #15, item 5).

``run_streams`` opens N ``stream: true`` chats at once on one ``httpx.AsyncClient``
(HTTP/1.1, a pool of N connections), reads every stream to its end and returns, per
stream, the events received (name and data) and the time from sending the request
to the first complete event. ``verify`` compares each stream with what the reference's
fake model sent for its prompt (``conformance.reference.model``): the event names in
order, one delta per token, the deltas joined equal to the completed content, and the
terminal event last. Used by ``tests/test_load.py`` (100 streams, in-process server)
and ``benchmarks/server.py`` (500 streams, the server in a subprocess).

Nothing here asserts a speed: the figures are reported, never judged.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from conformance.reference import model

#: The development credential of the first principal (conformance/reference/README.md).
API_KEY = "dev-alice-api-key"
#: The events of one chat around its deltas (chat.py's module docstring, default config).
HEAD = ("conversation.chat.created", "conversation.chat.in_progress")
TAIL = ("conversation.message.completed", "conversation.chat.completed", "conversation.stream.done")


@dataclass
class StreamResult:
    """One stream as the client saw it."""

    index: int
    prompt: str
    status: int = 0
    events: list[tuple[str, str]] = field(default_factory=list)
    #: Seconds from sending the request to the first complete event (None: no event).
    first_event: float | None = None
    #: Seconds from sending the request to the end of the stream.
    total: float | None = None
    error: str | None = None
    #: Seconds from sending the request to each step httpx traces (``PHASES``): where
    #: the time to first event goes (connect, request written, response headers).
    phases: dict[str, float] = field(default_factory=dict)


#: httpcore trace events kept in ``StreamResult.phases``, with their short names.
PHASES = {
    "connection.connect_tcp.complete": "connected",
    "http11.send_request_body.complete": "sent",
    "http11.receive_response_headers.complete": "headers",
}


def prompt_for(index: int) -> str:
    """Prompts of different lengths, so the streams carry different token counts."""
    return f"load stream {index}: " + "你好" * (index % 17)


def request_body(bot_id: str, prompt: str, *, stream: bool) -> bytes:
    body = {
        "bot_id": bot_id,
        "user_id": "load-user",
        "stream": stream,
        "additional_messages": [{"role": "user", "content": prompt, "content_type": "text"}],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def headers() -> dict[str, str]:
    return {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}


def parse_block(block: bytes) -> tuple[str, str]:
    """The event name and data of one SSE block (LF line ends, the reference's default)."""
    name, data = "message", []
    for line in block.decode("utf-8").split("\n"):
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    return name, "\n".join(data)


async def one_stream(client: httpx.AsyncClient, url: str, bot_id: str, result: StreamResult, start: asyncio.Event) -> None:
    await start.wait()
    body = request_body(bot_id, result.prompt, stream=True)
    t0 = time.perf_counter()

    async def trace(name: str, info: object) -> None:
        if name in PHASES:
            result.phases[PHASES[name]] = time.perf_counter() - t0

    try:
        stream = client.stream("POST", f"{url}/v3/chat", content=body, headers=headers(), extensions={"trace": trace})
        async with stream as response:
            result.status = response.status_code
            buffer = b""
            async for chunk in response.aiter_raw():
                buffer += chunk
                while (end := buffer.find(b"\n\n")) >= 0:
                    block, buffer = buffer[:end], buffer[end + 2 :]
                    if result.first_event is None:
                        result.first_event = time.perf_counter() - t0
                    result.events.append(parse_block(block))
            if buffer.strip():
                result.error = f"{len(buffer)} bytes after the last complete event"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.total = time.perf_counter() - t0


async def run_streams(url: str, bot_id: str, n: int, *, timeout: float = 60.0, per_client: int | None = None) -> list[StreamResult]:
    """N concurrent stream chats, all released at once; every stream read to its end.

    One ``httpx.AsyncClient`` with a pool of N connections, or with ``per_client`` one
    client (and pool) per that many streams, all on this event loop: httpcore's pool
    does O(connections x requests) work per request start and end (encode/httpcore#1035),
    so one pool of 500 spends most of the client's time in bookkeeping.
    """
    size = n if per_client is None else max(1, per_client)
    results = [StreamResult(i, prompt_for(i)) for i in range(n)]
    start = asyncio.Event()
    clients = [
        httpx.AsyncClient(
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size), timeout=httpx.Timeout(timeout, pool=timeout)
        )
        for _ in range(0, n, size)
    ]
    try:
        tasks = [asyncio.create_task(one_stream(clients[r.index // size], url, bot_id, r, start)) for r in results]
        await asyncio.sleep(0)  # every task waits on the event: they start together
        start.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    finally:
        for client in clients:
            await client.aclose()
    return results


def expected_tokens(prompt: str, bot_name: str) -> list[str]:
    """The tokens the fake model streams for the first chat of a new conversation."""
    history = [model.Turn("user", prompt, "text")]
    return model.tokenize(model.answer(history, 1, bot_name, "echo"))


def verify(result: StreamResult, bot_name: str) -> list[str]:
    """What is wrong with one stream (empty: every event the model sent was delivered)."""
    problems: list[str] = []
    if result.error:
        problems.append(result.error)
    if result.status != 200:
        problems.append(f"HTTP {result.status}")
    tokens = expected_tokens(result.prompt, bot_name)
    names = [name for name, _ in result.events]
    want = [*HEAD, *["conversation.message.delta"] * len(tokens), *TAIL]
    if names != want:
        problems.append(f"{len(names)} events, expected {len(want)} ({len(tokens)} deltas): got {names[:3]}...{names[-2:]}")
        return problems
    deltas = [json.loads(data)["message_item"]["content"] for name, data in result.events if name == "conversation.message.delta"]
    completed = json.loads(result.events[len(HEAD) + len(tokens)][1])["message_item"]["content"]
    if deltas != tokens or "".join(deltas) != completed:
        problems.append(f"content differs: deltas {''.join(deltas)!r}, completed {completed!r}, model {''.join(tokens)!r}")
    return problems


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(results: Sequence[StreamResult]) -> str:
    firsts = [r.first_event for r in results if r.first_event is not None]
    totals = [r.total for r in results if r.total is not None]
    events = sum(len(r.events) for r in results)
    if not firsts:
        return f"{len(results)} streams, no event received"
    return (
        f"{len(results)} streams, {events} events; time to first event p50 {percentile(firsts, 50) * 1e3:.1f} ms"
        f" p99 {percentile(firsts, 99) * 1e3:.1f} ms max {max(firsts) * 1e3:.1f} ms;"
        f" last stream done after {max(totals) * 1e3:.0f} ms"
    )


def breakdown(results: Sequence[StreamResult]) -> str:
    """p50/p99 of each traced step (ms from sending the request): where the first event's time goes."""
    parts = []
    for phase in (*PHASES.values(), "first event"):
        values = [r.first_event if phase == "first event" else r.phases.get(phase) for r in results]
        known = [v for v in values if v is not None]
        if known:
            parts.append(f"{phase} p50 {percentile(known, 50) * 1e3:.0f} / p99 {percentile(known, 99) * 1e3:.0f}")
    return "ms after the request: " + ", ".join(parts)
