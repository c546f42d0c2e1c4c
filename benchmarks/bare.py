"""A bare Starlette + uvicorn app answering what the reference answers for a chat.

The floor ``benchmarks/server.py`` compares the reference server against: ``POST
/v3/chat`` with the same Bearer key answers the same JSON envelope (non-stream) or the
same events (stream: created, in_progress, one delta per token, completed message,
completed chat, stream done; ``event: x`` / ``data: {json}`` blocks), the text from the
reference's own fake model (``conformance.reference.model``), but with none of the
reference's work: no store, no validation beyond the key, no limiter, no running-chat
registry, no per-token yield to the loop. Same uvicorn settings as ReferenceServer
(h11, asyncio loop, no access log).

Run: ``python -m benchmarks.bare`` -- prints ``bare Starlette on http://127.0.0.1:PORT``
(a free port) and serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from conformance.reference import model

#: The reference's demo bot (python -m conformance.reference), so both answer the same text.
BOT_ID = 7493710240598375123
BOT_NAME = "客服助手"
API_KEY = "dev-alice-api-key"


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _event(name: str, **fields: object) -> bytes:
    return f"event: {name}\ndata: {_dump({'event': name, **fields})}\n\n".encode()


async def chat(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return Response(_dump({"code": 401, "msg": "unauthorized", "data": None}), 401, media_type="application/json")
    body = json.loads(await request.body())
    prompt = body["additional_messages"][-1]["content"]
    tokens = model.tokenize(model.answer([model.Turn("user", prompt, "text")], 1, BOT_NAME, "echo"))
    ids = {"conversation_id": "7493710240598375500", "chat_id": "7493710240598375501", "bot_id": BOT_ID}
    created_at = int(time.time())
    usage = {"prompt_tokens": 1, "completion_tokens": len(tokens), "total_tokens": 1 + len(tokens)}

    def item(content: str) -> dict[str, object]:
        return {"id": "7493710240598375502", **ids, "role": "assistant", "type": "answer", "content": content, "content_type": "text"}

    if not body.get("stream"):
        data = item("".join(tokens)) | {"created_at": created_at, "usage": usage}
        return Response(_dump({"code": 0, "msg": "success", "data": data}), media_type="application/json")

    chat_object = {"id": ids["chat_id"], "conversation_id": ids["conversation_id"], "bot_id": BOT_ID, "created_at": created_at}

    async def events() -> AsyncIterator[bytes]:
        for status in ("created", "in_progress"):
            yield _event(f"conversation.chat.{status}", chat=chat_object | {"status": status})
        for token in tokens:
            yield _event("conversation.message.delta", message_item=item(token))
        yield _event("conversation.message.completed", message_item=item("".join(tokens)))
        yield _event("conversation.chat.completed", run_record_item=chat_object | {"status": "completed", "usage": usage})
        yield _event("conversation.stream.done")

    return StreamingResponse(events(), headers={"content-type": "text/event-stream", "cache-control": "no-store"})


app = Starlette(routes=[Route("/v3/chat", chat, methods=["POST"])])


def main() -> int:
    # proto IPPROTO_TCP, as uvicorn's own bind gets it from getaddrinfo: asyncio sets
    # TCP_NODELAY only on sockets that say so, and without it Nagle holds the first
    # event behind the response head until the client's delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_level="warning", log_config=None, access_log=False, lifespan="off", http="h11", ws="none", loop="asyncio"
    )
    server = uvicorn.Server(config)
    print(f"bare Starlette on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
