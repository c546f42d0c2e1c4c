"""Witness: @coze/api, the official JavaScript SDK, streams a chat from the coze dialect.

js/coze_chat_stream.mjs uses the SDK as its README does -- ``new CozeAPI({token,
baseURL})``, ``client.chat.stream({bot_id, user_id, additional_messages})`` iterated to
the end -- and prints a JSON summary. The SDK is pinned (js/package.json, 1.3.9) and
installed from the committed lockfile with ``npm ci`` when js/node_modules does not hold
it (node_modules is never committed).

The target is the ``coze_target`` fixture: if ``ServerConfig`` has a ``dialect`` field it
is ``ReferenceServer(ServerConfig(dialect="coze"))`` with a published bot; otherwise a
replay stub that answers ``POST /v3/chat`` with the Coze cloud capture
tests/data/sse/coze-cloud/chat_text_stream_resp.txt, Content-Type text/event-stream.

Two things about that capture (cozepy's test fixture, see the README beside it) shape the
stub. The file ends
without a line terminator after its last line, ``data:"[DONE]"``; @coze/api reads an
unterminated last line as an error, so the stub sends the capture with that line ended
(``test_sdk_refuses_an_unterminated_last_line`` pins why). And the fixture's deltas are
trimmed ("2", "0", "星期三", "。" against the answer "2024 年 10 月 1 日是星期三。"), so
against the capture the SDK must hand over exactly the deltas and answer in it; against
a server the deltas must join to the completed answer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from conformance.reference import ReferenceServer, ServerConfig
from tests.support.servers import ScriptedServer, raw_answer

JS = Path(__file__).parent / "js"
SCRIPT = "coze_chat_stream.mjs"
CAPTURE = Path(__file__).parents[1] / "data" / "sse" / "coze-cloud" / "chat_text_stream_resp.txt"
#: npm ci of the lockfile: about 5 s with a warm cache, more with a cold one.
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 30.0


def _pinned_version() -> str:
    version: str = json.loads((JS / "package.json").read_text(encoding="utf-8"))["dependencies"]["@coze/api"]
    return version


def _installed_version(root: Path) -> str | None:
    manifest = root / "node_modules" / "@coze" / "api" / "package.json"
    if not manifest.is_file():
        return None
    version: str = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    return version


def npm_ci(prefix: Path) -> None:
    """``npm ci --prefix prefix``, bounded; a clear failure if npm is missing or fails."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: the @coze/api witness installs the SDK with npm ci (Node.js ships npm)", pytrace=False)
    command = [npm, "ci", "--prefix", str(prefix), "--no-audit", "--no-fund"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} did not finish within {INSTALL_TIMEOUT:g} s (is the npm registry reachable?)", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}", pytrace=False)


@pytest.fixture(scope="session")
def coze_js(node: str) -> Path:
    """js/ with the pinned @coze/api installed (npm ci once, under a lock for xdist)."""
    with FileLock(str(JS / ".npm-ci.lock"), timeout=INSTALL_TIMEOUT + 60):
        if _installed_version(JS) != _pinned_version():
            npm_ci(JS)
    installed = _installed_version(JS)
    assert installed == _pinned_version(), f"npm ci installed @coze/api {installed}, package.json pins {_pinned_version()}"
    return JS


@dataclass(frozen=True)
class CozeTarget:
    url: str
    api_key: str
    bot_id: str
    #: The bytes a replay stub sends, or None for a live server.
    replayed: bytes | None = None


def terminated(capture: bytes) -> bytes:
    """The capture with its last event ended as every other: ``\\n\\n`` after its last line."""
    return capture if capture.endswith(b"\n\n") else capture.rstrip(b"\n") + b"\n\n"


def has_coze_dialect() -> bool:
    return "dialect" in {f.name for f in dataclasses.fields(ServerConfig)}


@pytest.fixture(scope="module")
def coze_target() -> Iterator[CozeTarget]:
    """The reference server's coze dialect when it exists, else the capture's replay stub."""
    if has_coze_dialect():
        with ReferenceServer(ServerConfig(dialect="coze")) as server:
            principal = server.config.principals[0]
            yield CozeTarget(server.url, principal.api_key, server.seed_published_bot(principal.name))
    else:
        body = terminated(CAPTURE.read_bytes())
        with ScriptedServer({"POST /v3/chat": raw_answer(200, body, [("Content-Type", "text/event-stream")])}) as stub:
            yield CozeTarget(stub.url, "replay-stub-key", "7379462189365198898", replayed=body)


def run_sdk(node: str, js: Path, target: CozeTarget) -> dict[str, Any]:
    env = {**os.environ, "COZE_BASE_URL": target.url, "COZE_API_KEY": target.api_key, "COZE_BOT_ID": target.bot_id}
    try:
        done = subprocess.run([node, SCRIPT], cwd=js, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{SCRIPT} did not end within {RUN_TIMEOUT:g} s; its output:\n{exc.stdout!r}\n{exc.stderr!r}")
    assert done.returncode == 0, f"{SCRIPT} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return summary


def answer_in(stream: bytes) -> tuple[str, str | None]:
    """The deltas (joined) and the completed answer of a coze stream, decoded here, not by the SDK."""
    deltas, completed, event = "", None, None
    for line in stream.decode("utf-8").split("\n"):
        field, _, value = line.partition(":")
        if field == "event":
            event = value
        elif field == "data" and event == "conversation.message.delta":
            deltas += json.loads(value)["content"]
        elif field == "data" and event == "conversation.message.completed" and json.loads(value)["type"] == "answer":
            completed = json.loads(value)["content"]
    return deltas, completed


def test_sdk_streams_a_chat_to_the_end(node: str, coze_js: Path, coze_target: CozeTarget) -> None:
    summary = run_sdk(node, coze_js, coze_target)
    assert summary["coze_error"] is None, f"@coze/api threw: {summary['coze_error']}"
    assert summary["other_error"] is None, summary["other_error"]
    assert summary["finished"], summary
    unknown = [name for name in summary["events"] if name not in summary["event_types"]]
    assert not unknown, f"event names that are no ChatEventType of @coze/api: {unknown} (it knows {summary['event_types']})"
    assert summary["events"][-1:] == ["done"], summary["events"]
    assert summary["error_events"] == [], summary["error_events"]
    assert "conversation.message.delta" in summary["events"], summary["events"]
    assert summary["chat_status"] == "completed", summary
    if coze_target.replayed is None:
        assert summary["deltas"] == summary["completed"], "the deltas do not join to the completed answer"
    else:
        assert (summary["deltas"], summary["completed"]) == answer_in(coze_target.replayed)


def test_sdk_refuses_an_unterminated_last_line(node: str, coze_js: Path) -> None:
    """Why the stub ends the capture's last line: @coze/api 1.3.9 keeps an unterminated
    line in its buffer and, at the end of the body, hands it over as an ``error`` event
    whose data is the raw line -- which ``chat.stream`` fails to parse as JSON.
    """
    capture = CAPTURE.read_bytes()
    assert not capture.endswith(b"\n"), "the capture now ends its last line: this test and the stub's terminated() can go"
    with ScriptedServer({"POST /v3/chat": raw_answer(200, capture, [("Content-Type", "text/event-stream")])}) as stub:
        summary = run_sdk(node, coze_js, CozeTarget(stub.url, "replay-stub-key", "7379462189365198898", replayed=capture))
    assert summary["coze_error"] == {"name": "CozeError", "message": 'Could not parse message into JSON:data:"[DONE]"'}
    assert "done" not in summary["events"] and summary["events"][-1] == "conversation.chat.completed", summary["events"]


@pytest.mark.slow
def test_lockfile_installs_from_scratch(node: str, tmp_path: Path) -> None:
    """What a fresh CI clone does: ``npm ci`` of the committed package.json and lockfile."""
    for name in ("package.json", "package-lock.json"):
        shutil.copy(JS / name, tmp_path / name)
    npm_ci(tmp_path)
    assert _installed_version(tmp_path) == _pinned_version()
