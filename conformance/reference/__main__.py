"""``python -m conformance.reference --port 8080``: a stand-in Coze Plus to poke with curl.

Seeds one published bot with a fixed id (so the README's ``curl -N`` line works as one
command), prints its id, the development credentials and that curl line, and serves
until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .config import DEV_PRINCIPALS, DIALECTS, LOGIN_DIALECTS, SESSION_DIALECTS, STUDIO_CAPABILITIES, ServerConfig
from .server import ReferenceServer

#: The demo bot's id: 19 digits and not representable as a float, like every id here.
DEMO_BOT_ID = 7493710240598375123
DEMO_TOOLS: tuple[dict[str, object], ...] = (
    {"type": "knowledge_base", "knowledge_id": 7493710240598375201},
    {"type": "plugin", "plugin_id": 7493710240598375301},
)


def curl_line(url: str, api_key: str, bot_id: int | str) -> str:
    """A shell-ready command that streams one chat (spec "Chat V3" request example)."""
    body = {
        "bot_id": str(bot_id),
        "user_id": "user_001",
        "stream": True,
        "additional_messages": [{"role": "user", "content": "你好,请介绍一下你自己", "content_type": "text"}],
    }
    return " ".join(
        [
            "curl -N",
            shlex.quote(f"{url}/v3/chat"),
            "-H",
            shlex.quote(f"Authorization: Bearer {api_key}"),
            "-H",
            shlex.quote("Content-Type: application/json"),
            "-d",
            shlex.quote(json.dumps(body, ensure_ascii=False, separators=(",", ":"))),
        ]
    )


#: --studio-capabilities: the names that stand for every capability, or none (Coze Plus fb00b21).
ALL_CAPABILITIES = "all"
NO_CAPABILITIES = frozenset({"none", "cp"})


def studio_capabilities(text: str) -> dict[str, bool]:
    """``--studio-capabilities``: "all", "none" / "cp", or a comma list of STUDIO_CAPABILITIES,
    as the ServerConfig knobs ``studio_<name>``."""
    value = text.strip().lower()
    if value == ALL_CAPABILITIES:
        chosen = set(STUDIO_CAPABILITIES)
    elif value in NO_CAPABILITIES:
        chosen = set()
    else:
        chosen = {name.strip() for name in value.split(",") if name.strip()}
        unknown = sorted(chosen - set(STUDIO_CAPABILITIES))
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"expected all, none, cp or a comma list of {', '.join(STUDIO_CAPABILITIES)}; got {text!r}"
            )
    return {f"studio_{name}": name in chosen for name in STUDIO_CAPABILITIES}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.reference",
        description="Serve the Coze Plus Agent API reference server with development credentials.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind, 0 for any free port (default: %(default)s)")
    parser.add_argument(
        "--token-delay", type=float, default=0.02, help="seconds between streamed tokens (default: %(default)s)"
    )
    parser.add_argument("--no-rate-limits", action="store_true", help="switch the documented rate limits off")
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="doc",
        help="doc: the documented API; coze: the Coze cloud v3 API as cozepy speaks it; studio: Coze Studio /"
        " Coze Plus (docs/studio-contract.md) (default: %(default)s)",
    )
    parser.add_argument(
        "--studio-capabilities",
        type=studio_capabilities,
        default=ALL_CAPABILITIES,
        metavar="CAPS",
        help="the studio dialect's capabilities: all, none or cp (Coze Plus fb00b21: none), or a comma list of"
        f" {', '.join(STUDIO_CAPABILITIES)} (default: %(default)s)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a deliberate breakage (repeatable; see conformance/reference/faults/)",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="keep bots, versions and conversations in this SQLite file (default: in memory)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            token_delay=args.token_delay,
            rate_limits=not args.no_rate_limits,
            dialect=args.dialect,
            faults=frozenset(args.fault),
            db_path=args.db,
            **args.studio_capabilities,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        server = ReferenceServer(config)
    except (OSError, ValueError, sqlite3.Error) as exc:  # an unusable --db file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    owner = DEV_PRINCIPALS[0]
    if server.runtime.store.bot(DEMO_BOT_ID) is None:  # a --db file from an earlier run has it
        server.seed_published_bot(
            owner.name,
            name="客服助手",
            description="专业的客服智能助手",
            prompt="你是一个专业的客服助手...",
            model="reference-echo",
            tools=DEMO_TOOLS,
            bot_id=DEMO_BOT_ID,
        )
    try:
        server.start()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # These are the documented development credentials of a local test server, not secrets.
    lines = [
        f"Coze Plus reference server ({config.dialect} dialect) on {server.url}",
        f"Published bot (owner {owner.name}): {DEMO_BOT_ID}",
        *([f"Data kept in {config.db_path}"] if config.db_path is not None else []),
        "Development credentials:",
        *(
            f"  {p.name}: Authorization: Bearer {p.api_key}"
            + (f"  |  Cookie: session_key={p.session_key}" if config.dialect in SESSION_DIALECTS else "")
            + (f"  |  login {p.email} / {p.password}" if config.dialect in LOGIN_DIALECTS else "")
            for p in config.principals
        ),
        "Stream a chat:",
        curl_line(server.url, owner.api_key, DEMO_BOT_ID),
        "Ctrl-C stops the server.",
    ]
    print("\n".join(lines), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
