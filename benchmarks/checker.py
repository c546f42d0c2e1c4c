"""Throughput of the SSE checker against httpx-sse's parser (issue #15, item 3).

Run: ``python -m benchmarks.checker`` (options: ``--mb``, ``--reps``).

It builds a Coze-style stream (``event:x\\ndata:{json}\\n\\n``, bare JSON
payloads, Chinese text in the deltas), feeds it to ``SSEChecker`` and to
httpx-sse (``EventSource(httpx.Response(...)).iter_sse()`` over a chunked byte
stream) in 4 KiB chunks and in 1-7-byte chunks (deterministic random sizes),
and prints MB/s for each (best of ``--reps``) and the ratio checker/httpx-sse.
Then it injects one invalid UTF-8 byte mid-stream: the checker must report it
(rule and byte offset), or the script exits 1. Ratios are printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Iterator

import httpx
from httpx_sse import EventSource

from conformance.oracle.sse import SSEChecker

_TEXT = "你好！我是扣子智能体，很高兴为你服务。今天的天气晴朗，适合出门散步。"


def coze_stream(target_bytes: int, seed: int = 15) -> bytes:
    """A Coze chat stream of about ``target_bytes``: created, in_progress, deltas,
    completed message and chat, ``done`` -- lines ended by LF, no final blank line
    missing (each event is closed)."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    size = 0
    conv, chat = "7382159487131697202", "7382159487131713586"
    head = {"id": chat, "conversation_id": conv, "bot_id": "7379462189365198898", "status": "created"}
    for name in ("conversation.chat.created", "conversation.chat.in_progress"):
        block = f"event:{name}\ndata:{json.dumps(head, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
        parts.append(block)
        size += len(block)
    msg_id = 7382160000000000000
    while size < target_bytes:
        msg_id += 1
        for _ in range(rng.randint(5, 40)):
            start = rng.randrange(len(_TEXT))
            delta = {
                "id": str(msg_id),
                "conversation_id": conv,
                "bot_id": "7379462189365198898",
                "role": "assistant",
                "type": "answer",
                "content": _TEXT[start : start + rng.randint(1, 12)],
                "content_type": "text",
                "chat_id": chat,
            }
            block = (
                "event:conversation.message.delta\ndata:"
                + json.dumps(delta, ensure_ascii=False, separators=(",", ":"))
                + "\n\n"
            ).encode()
            parts.append(block)
            size += len(block)
        done = {"id": str(msg_id), "conversation_id": conv, "role": "assistant", "type": "answer", "content": _TEXT}
        block = f"event:conversation.message.completed\ndata:{json.dumps(done, ensure_ascii=False)}\n\n".encode()
        parts.append(block)
        size += len(block)
    parts.append(b'event:conversation.chat.completed\ndata:{"id":"' + chat.encode() + b'","status":"completed"}\n\n')
    parts.append(b'event:done\ndata:"[DONE]"\n\n')
    return b"".join(parts)


def chunks_fixed(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def chunks_tiny(data: bytes, seed: int = 7) -> list[bytes]:
    """1-7-byte chunks, sizes from a seeded generator (the same every run)."""
    rng = random.Random(seed)
    out: list[bytes] = []
    i = 0
    while i < len(data):
        n = rng.randint(1, 7)
        out.append(data[i : i + n])
        i += n
    return out


def run_checker(chunks: list[bytes]) -> int:
    checker = SSEChecker("text/event-stream")
    for chunk in chunks:
        checker.feed(chunk, 0.0)
    checker.close(0.0)
    return len(checker.events)


def run_httpx_sse(chunks: list[bytes]) -> int:
    def stream() -> Iterator[bytes]:
        yield from chunks

    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream())
    return sum(1 for _ in EventSource(response).iter_sse())


def best_mbps(fn: Callable[[list[bytes]], int], chunks: list[bytes], nbytes: int, reps: int) -> tuple[float, int]:
    best = float("inf")
    events = 0
    for _ in range(reps):
        t0 = time.perf_counter()
        events = fn(chunks)
        best = min(best, time.perf_counter() - t0)
    return nbytes / best / 1e6, events


def injected_violation(data: bytes) -> int:
    """Replace one byte mid-stream, inside a JSON payload, by 0xFF; the checker
    must report sse.invalid_utf8 at exactly that offset. Returns the exit status."""
    at = data.index(b'"content":"', len(data) // 2) + len(b'"content":"')
    bad = data[:at] + b"\xff" + data[at + 1 :]
    checker = SSEChecker("text/event-stream")
    for chunk in chunks_fixed(bad, 4096):
        checker.feed(chunk, 0.0)
    checker.close(0.0)
    hits = [f for f in checker.findings if f.rule == "sse.invalid_utf8"]
    for f in checker.findings:
        print(f"injected 0xFF at byte {at}: finding {f.rule} at offset {f.offset}: {f.message}")
    if len(hits) != 1 or hits[0].offset != at or len(checker.findings) != 1:
        print(f"FAIL: expected exactly one sse.invalid_utf8 at offset {at}, got {checker.findings!r}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mb", type=float, default=10.0, help="stream size in MB (default 10)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions; the best is kept (default 3)")
    args = parser.parse_args(argv)

    data = coze_stream(int(args.mb * 1e6))
    print(f"stream: {len(data)} bytes, Coze-style, LF line ends")
    status = 0
    for label, chunks in (("4 KiB chunks", chunks_fixed(data, 4096)), ("1-7-byte chunks", chunks_tiny(data))):
        mine, n_mine = best_mbps(run_checker, chunks, len(data), args.reps)
        theirs, n_theirs = best_mbps(run_httpx_sse, chunks, len(data), args.reps)
        print(
            f"{label:>16}: checker {mine:7.2f} MB/s  httpx-sse {theirs:7.2f} MB/s  "
            f"RATIO checker/httpx-sse {mine / theirs:.3f}  ({len(chunks)} chunks, {n_mine} events)"
        )
        if n_mine != n_theirs:
            print(f"FAIL: the checker dispatched {n_mine} events, httpx-sse {n_theirs}")
            status = 1
    return injected_violation(data) or status


if __name__ == "__main__":
    sys.exit(main())
