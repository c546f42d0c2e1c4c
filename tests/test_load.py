"""The reference server under load: 100 concurrent SSE chats (issue #15, item 5).

One asyncio ``httpx.AsyncClient`` (HTTP/1.1, a pool of 100 connections) opens 100
``stream: true`` chats at once against ``ReferenceServer(ServerConfig(token_delay=0,
rate_limits=False))``; every stream must deliver every event the fake model sent for
its prompt (benchmarks/load.py ``verify``) and the run must end within a bound
(bounded termination, never a speed). Time to first event (p50/p99) and the peak of
Python allocations (tracemalloc: client and server share this process) are printed,
never asserted; ``python -m benchmarks.server`` measures the 500-stream figures.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest

from benchmarks.load import breakdown, run_streams, summary, verify
from conformance.reference import ReferenceServer, ServerConfig

#: Takes a few seconds on a loaded CI machine: out of the fast loop.
pytestmark = pytest.mark.slow

STREAMS = 100
#: The whole run's bound: generous, so that only a hang (a lost event, a stream never
#: closed, a pool exhausted) fails it, not a slow machine.
BOUND_SECONDS = 120.0
BOT_NAME = "Load bot"


def test_100_concurrent_streams_deliver_every_event(capsys: pytest.CaptureFixture[str]) -> None:
    config = ServerConfig(token_delay=0, rate_limits=False)
    with ReferenceServer(config) as server:
        bot_id = server.seed_published_bot(principal="alice", name=BOT_NAME)
        tracemalloc.start()
        try:
            t0 = time.monotonic()
            results = asyncio.run(run_streams(server.url, bot_id, STREAMS, timeout=BOUND_SECONDS))
            elapsed = time.monotonic() - t0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    problems = {r.index: p for r in results if (p := verify(r, BOT_NAME))}
    assert not problems, f"{len(problems)} of {STREAMS} streams lost or changed events: {dict(list(problems.items())[:5])}"
    assert len(results) == STREAMS and all(r.events for r in results)
    assert elapsed < BOUND_SECONDS
    with capsys.disabled():
        print(f"\nload: {summary(results)}; run {elapsed:.2f} s; peak traced Python memory {peak / 2**20:.1f} MiB")
        print(f"load: {breakdown(results)}")
