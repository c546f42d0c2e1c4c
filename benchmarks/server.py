"""The reference server against bare Starlette + uvicorn, and the suite's strategies
(issue #15, items 5 and 6).

Run: ``python -m benchmarks.server`` (options: ``--streams``, ``--requests``,
``--concurrency``, ``--examples``).

Both servers run in subprocesses (``python -m conformance.reference --port 0
--token-delay 0 --no-rate-limits`` and ``python -m benchmarks.bare``, the same uvicorn
settings), driven by the same asyncio httpx client in this process:

1. non-stream chats/s and SSE streams/s (``--requests`` of each, ``--concurrency`` at
   a time on one pool; every stream checked event by event), best of two alternating
   rounds; printed with the RATIO reference/bare; then the same on plain asyncio
   connections with no HTTP library (``raw_rate``: httpx spends more CPU per request
   than either server, so through it both servers look alike);
2. ``--streams`` (default 500) concurrent stream chats released at once
   (benchmarks/load.py): every event checked against the fake model, p50/p99 time to
   first event (client included), each server's peak RSS (VmHWM) and the client's;
   the RATIO of the p99s reference/bare;
3. Hypothesis examples/s of the suite's valid /v3/chat cases
   (``conformance.oracle.strategies.cases``) and of plain hypothesis-jsonschema on the
   same generation schema, and their RATIO.

Figures move with machine load: compare the ratios of one run. Exits 1 if a stream
lost or changed an event, or an answer was not a success; speed is never judged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from benchmarks.bare import BOT_NAME
from benchmarks.load import (
    API_KEY,
    HEAD,
    TAIL,
    StreamResult,
    breakdown,
    expected_tokens,
    headers,
    one_stream,
    percentile,
    prompt_for,
    request_body,
    run_streams,
    summary,
    verify,
)

#: The demo bot of ``python -m conformance.reference`` (its README), named BOT_NAME.
BOT_ID = "7493710240598375123"
#: Streams per client in the sharded load (see benchmarks/load.run_streams).
SHARD = 25
_URL = re.compile(r"(http://127\.0\.0\.1:\d+)")


@dataclass
class Served:
    name: str
    process: subprocess.Popen[str]
    url: str

    def peak_rss_mib(self) -> float:
        """The subprocess's peak resident memory so far (VmHWM), in MiB."""
        return _vm_hwm(self.process.pid)


def _vm_hwm(pid: int | str) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_peak(pid: int | str) -> bool:
    """Reset a process's VmHWM (Linux: 5 into clear_refs); False where not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def start(name: str, argv: list[str]) -> Served:
    process = subprocess.Popen(
        [sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    for line in process.stdout:
        if match := _URL.search(line):
            return Served(name, process, match.group(1))
        if time.monotonic() > deadline:
            break
    process.kill()
    raise RuntimeError(f"{name} did not print its URL: {argv}")


def stop(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(10)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()


async def _pooled(n: int, concurrency: int, one: Callable[[httpx.AsyncClient, int], Awaitable[bool]]) -> tuple[float, int]:
    """``n`` calls of ``one``, ``concurrency`` at a time on one pool: (per second, failures)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    failures = 0
    next_index = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures, next_index
        while next_index < n:
            index, next_index = next_index, next_index + 1
            if not await one(client, index):
                failures += 1

    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await asyncio.gather(*(one(client, -1 - i) for i in range(concurrency)))  # warm the pool
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return n / elapsed, failures


def json_rate(url: str, n: int, concurrency: int) -> tuple[float, int]:
    async def one(client: httpx.AsyncClient, index: int) -> bool:
        body = request_body(BOT_ID, prompt_for(index), stream=False)
        response = await client.post(f"{url}/v3/chat", content=body, headers=headers())
        return response.status_code == 200 and json.loads(response.content)["code"] == 0

    return asyncio.run(_pooled(n, concurrency, one))


def sse_rate(url: str, n: int, concurrency: int) -> tuple[float, int]:
    async def one(client: httpx.AsyncClient, index: int) -> bool:
        result = StreamResult(index, prompt_for(abs(index)))
        go = asyncio.Event()
        go.set()
        await one_stream(client, url, BOT_ID, result, go)
        return not verify(result, BOT_NAME)

    return asyncio.run(_pooled(n, concurrency, one))


async def _raw_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, body: bytes) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 POST /v3/chat on an open connection: (status, body),
    a Content-Length or a chunked body."""
    head = (
        f"POST /v3/chat HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {API_KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in fields:
        return status, await reader.readexactly(int(fields["content-length"]))
    parts = []
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        parts.append((await reader.readexactly(size + 2))[:-2])
    await reader.readuntil(b"\r\n")
    return status, b"".join(parts)


def raw_rate(url: str, n: int, concurrency: int, *, stream: bool) -> tuple[float, int]:
    """Like json_rate / sse_rate, on ``concurrency`` plain asyncio connections that
    write requests and read answers with no HTTP library: the servers' own throughput
    (httpx costs more CPU per request than either server here). A stream counts as
    right when it holds the event count the fake model implies."""
    host_port = url.removeprefix("http://")
    host, _, port = host_port.partition(":")

    async def run() -> tuple[float, int]:
        failures = 0
        next_index = 0

        async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> bool:
            prompt = prompt_for(abs(index))
            status, body = await _raw_exchange(reader, writer, host_port, request_body(BOT_ID, prompt, stream=stream))
            if status != 200:
                return False
            if stream:
                return body.count(b"\n\n") == len(HEAD) + len(expected_tokens(prompt, BOT_NAME)) + len(TAIL)
            return bool(json.loads(body)["code"] == 0)

        async def worker(k: int) -> None:
            nonlocal failures, next_index
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                await one(reader, writer, -1 - k)  # warm
                await ready.wait()
                while next_index < n:
                    index, next_index = next_index, next_index + 1
                    if not await one(reader, writer, index):
                        failures += 1
            finally:
                writer.close()

        ready = asyncio.Event()
        tasks = [asyncio.create_task(worker(k)) for k in range(concurrency)]
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        ready.set()
        await asyncio.gather(*tasks)
        return n / (time.perf_counter() - t0), failures

    return asyncio.run(run())


def load(served: Served, streams: int, per_client: int | None = None) -> tuple[list[StreamResult], float, float]:
    """The concurrent-stream load: results, the server's and the client's peak RSS (MiB)
    during it (peaks since the start of the process where a reset is not allowed)."""
    _reset_peak(served.process.pid)
    _reset_peak("self")
    results = asyncio.run(run_streams(served.url, BOT_ID, streams, timeout=120, per_client=per_client))
    client = _vm_hwm("self")
    if client != client:  # nan: no /proc
        client = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results, served.peak_rss_mib(), client


def examples_per_second(n: int) -> tuple[float, float]:
    """Hypothesis examples/s of the suite's valid /v3/chat cases and of plain
    hypothesis-jsonschema on the same generation schema."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis_jsonschema import from_schema

    from conformance.oracle.profile import load_profile
    from conformance.oracle.strategies import FORMATS, World, body_spec, cases, generation_schema

    profile = load_profile("doc")
    world = World(bot_id=BOT_ID, user_id="cz-conf-bench-0123abcd")
    suite = cases(profile, "chat", "valid", world)
    plain = from_schema(generation_schema(body_spec(profile, "chat"), world, profile), custom_formats=FORMATS)

    def rate(strategy: st.SearchStrategy[object]) -> float:
        count = 0

        @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(strategy)
        def probe(value: object) -> None:
            nonlocal count
            count += 1

        t0 = time.perf_counter()
        probe()
        return count / (time.perf_counter() - t0)

    rate(plain)  # warm both (schema resolution, caches)
    return rate(suite), rate(plain)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=500, help="concurrent streams of the load (default 500)")
    parser.add_argument("--requests", type=int, default=1000, help="requests and streams per throughput round (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight in the throughput rounds (default 32)")
    parser.add_argument("--examples", type=int, default=300, help="Hypothesis examples per strategy (default 300)")
    args = parser.parse_args(argv)

    status = 0
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ref = start("reference", ["-m", "conformance.reference", "--port", "0", "--token-delay", "0", "--no-rate-limits"])
    bare = start("bare", ["-m", "benchmarks.bare"])
    try:
        rates: dict[tuple[str, str], float] = {}
        rounds: tuple[tuple[str, Callable[[str, int, int], tuple[float, int]]], ...] = (
            ("json", json_rate),
            ("sse", sse_rate),
            ("raw json", lambda url, n, c: raw_rate(url, n, c, stream=False)),
            ("raw sse", lambda url, n, c: raw_rate(url, n, c, stream=True)),
        )
        for _ in range(2):  # alternate, keep the best: load elsewhere on the machine hits both
            for served in (ref, bare):
                for kind, fn in rounds:
                    rate, failures = fn(served.url, args.requests, args.concurrency)
                    if failures:
                        print(f"FAIL: {served.name} {kind}: {failures} of {args.requests} answers wrong")
                        status = 1
                    rates[served.name, kind] = max(rate, rates.get((served.name, kind), 0.0))
        for kind, label in (
            ("json", "non-stream chats/s"),
            ("sse", "SSE streams/s"),
            ("raw json", "raw-socket chats/s"),
            ("raw sse", "raw-socket streams/s"),
        ):
            mine, theirs = rates["reference", kind], rates["bare", kind]
            client = "httpx" if not kind.startswith("raw") else "no HTTP library"
            print(
                f"{label:>20}: reference {mine:8.1f}  bare Starlette {theirs:8.1f}  RATIO reference/bare {mine / theirs:.3f}"
                f"  ({args.requests} per round, {args.concurrency} in flight, {client})"
            )

        for per_client in (None, SHARD):
            pool = f"one client, a pool of {args.streams}" if per_client is None else f"a client per {per_client} streams"
            p99: dict[str, float] = {}
            for served in (ref, bare):
                results, server_mib, client_mib = load(served, args.streams, per_client)
                bad = {r.index: p for r in results if (p := verify(r, BOT_NAME))}
                if bad:
                    print(f"FAIL: {served.name}: {len(bad)} of {args.streams} streams lost or changed events: {list(bad.items())[:3]}")
                    status = 1
                firsts = [r.first_event for r in results if r.first_event is not None]
                p99[served.name] = percentile(firsts, 99) if firsts else float("nan")
                print(
                    f"{served.name:>9} load ({pool}): {summary(results)}; every event delivered: {not bad};"
                    f" peak RSS server {server_mib:.1f} MiB, client {client_mib:.1f} MiB"
                )
                print(f"{'':>15}{breakdown(results)}")
            print(f"p99 time to first event at {args.streams} streams ({pool}): RATIO reference/bare {p99['reference'] / p99['bare']:.3f}")
    finally:
        stop(ref)
        stop(bare)

    suite, plain = examples_per_second(args.examples)
    print(
        f"Hypothesis examples/s (valid /v3/chat bodies, {args.examples} each): suite cases {suite:.1f}"
        f"  hypothesis-jsonschema {plain:.1f}  RATIO suite/plain {suite / plain:.3f}"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
