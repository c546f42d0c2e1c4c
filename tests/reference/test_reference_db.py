"""``--db PATH`` / ``ServerConfig(db_path=...)``: the reference server keeps its data in SQLite.

Bots (draft, online version, every publish), conversations and the coze dialect's chats
survive a restart; parallel writers (threads over HTTP, threads and a second process on
the store) lose nothing; without a path nothing changes (the in-memory store).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig
from conformance.reference.dbstore import SqliteStore
from conformance.reference.store import BotProfile, Store

ALICE, BOB = DEV_PRINCIPALS
TIMEOUT = httpx.Timeout(10.0)
DEMO_BOT_ID = 7493710240598375123
REPO = Path(__file__).resolve().parents[2]


def bearer(principal: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {principal.api_key}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Api:
    """The doc dialect's bot and chat calls for one client."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def create_bot(self, **fields: Any) -> dict[str, Any]:
        created: dict[str, Any] = data(self.client.post("/api/draftbot/create", json={"name": "test bot"} | fields))
        return created

    def publish(self, bot_id: int | str) -> dict[str, Any]:
        published: dict[str, Any] = data(self.client.post("/api/draftbot/publish", json={"bot_id": int(bot_id)}))
        return published

    def chat(self, bot_id: int | str, text: str = "hello", **extra: Any) -> dict[str, Any]:
        body = {
            "bot_id": str(bot_id),
            "user_id": "user_001",
            "additional_messages": [{"role": "user", "content": text, "content_type": "text"}],
        } | extra
        answered: dict[str, Any] = data(self.client.post("/v3/chat", json=body))
        return answered


@contextmanager
def served(db: Path, *extra: str) -> Iterator[str]:
    """``python -m conformance.reference --db db`` on a free port; its URL. Stopped with Ctrl-C."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance.reference", "--port", str(port), "--token-delay", "0", "--db", str(db), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
        cwd=REPO,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        printed = []
        for line in process.stdout:
            printed.append(line)
            if line.startswith("Ctrl-C"):
                break
        assert printed and printed[-1].startswith("Ctrl-C"), process.stderr.read()
        assert f"Data kept in {db}\n" in printed
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == 0


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0, body
    return body["data"]


# ------------------------------------------------------------------------------ restarts


def test_the_command_keeps_bots_versions_and_conversations_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "reference.db"
    with served(db, "--no-rate-limits") as url, httpx.Client(base_url=url, headers=bearer(ALICE), timeout=TIMEOUT) as c:
        api = Api(c)
        bot_id = api.create_bot(name="Persistent", description="kept")["bot_id"]
        assert api.publish(bot_id)["version"] == 1
        data(c.post("/api/draftbot/update_display_info", json={"bot_id": bot_id, "name": "Persistent 2"}))
        assert api.publish(bot_id)["version"] == 2
        data(c.post("/api/draftbot/update_display_info", json={"bot_id": bot_id, "description": "draft only"}))
        first = api.chat(bot_id, "remember me")
        assert first["content"].startswith("Turn 1 ")
        demo_before = data(c.get(f"/v1/bots/{DEMO_BOT_ID}"))
    assert db.exists()
    with served(db, "--no-rate-limits") as url, httpx.Client(base_url=url, headers=bearer(ALICE), timeout=TIMEOUT) as c:
        api = Api(c)
        online = data(c.get("/v1/bot/get_online_info", params={"bot_id": str(bot_id)}))
        assert (online["bot_id"], online["name"], online["description"], online["version"]) == (
            bot_id,
            "Persistent 2",
            "kept",
            2,
        )
        details = data(c.get(f"/v1/bots/{bot_id}"))
        assert details["description"] == "draft only" and details["status"] == "online" and details["version"] == 2
        # The demo bot is kept, not seeded a second time.
        assert data(c.get(f"/v1/bots/{DEMO_BOT_ID}")) == demo_before
        second = api.chat(bot_id, "second message", ConversationID=first["conversation_id"])
        assert second["conversation_id"] == first["conversation_id"]
        assert second["content"].startswith("Turn 2 ") and "second message" in second["content"]
        assert api.publish(bot_id)["version"] == 3
        # Ownership is kept too: bob still cannot see alice's bot.
        other = httpx.get(f"{url}/v1/bots/{bot_id}", headers=bearer(BOB), timeout=TIMEOUT)
        assert other.status_code == 403


def test_the_coze_dialect_keeps_bots_conversations_and_chats(tmp_path: Path) -> None:
    config = ServerConfig(dialect="coze", token_delay=0, db_path=str(tmp_path / "coze.db"))
    with ReferenceServer(config) as srv, httpx.Client(base_url=srv.url, headers=bearer(ALICE), timeout=TIMEOUT) as c:
        bot_id = data(c.post("/v1/bot/create", json={"space_id": "7000000000000000100", "name": "Coze kept"}))["bot_id"]
        assert data(c.post("/v1/bot/publish", json={"bot_id": bot_id, "connector_ids": ["1024"]}))["version"] == "1"
        message = {"role": "user", "content": "hello", "content_type": "text"}
        chat = data(c.post("/v3/chat", json={"bot_id": bot_id, "user_id": "u1", "additional_messages": [message]}))
        where = {"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
        deadline = time.monotonic() + 5
        while (status := data(c.post("/v3/chat/retrieve", params=where))["status"]) != "completed":
            assert time.monotonic() < deadline, status
            time.sleep(0.02)
        before = data(c.post("/v3/chat/retrieve", params=where))
        messages = data(c.get("/v3/chat/message/list", params=where))
    with ReferenceServer(config) as srv, httpx.Client(base_url=srv.url, headers=bearer(ALICE), timeout=TIMEOUT) as c:
        online = data(c.get("/v1/bot/get_online_info", params={"bot_id": bot_id}))
        assert online["name"] == "Coze kept" and online["version"] == "1"
        after = data(c.post("/v3/chat/retrieve", params=where))
        assert after == before and after["status"] == "completed" and after["usage"]["token_count"] > 0
        assert data(c.get("/v3/chat/message/list", params=where)) == messages
        cancel = c.post("/v3/chat/cancel", json=where).json()
        assert cancel["code"] == 4104  # finished before the restart: no longer cancellable
        again = {"bot_id": bot_id, "user_id": "u1", "stream": True, "additional_messages": [message | {"content": "again"}]}
        with c.stream("POST", "/v3/chat", params={"conversation_id": chat["conversation_id"]}, json=again) as response:
            body = response.read().decode("utf-8")
        assert "Turn 2 " in body


def test_the_seed_helper_and_ids_on_a_reopened_file(tmp_path: Path) -> None:
    config = ServerConfig(token_delay=0, db_path=str(tmp_path / "seed.db"))
    with ReferenceServer(config) as srv:
        bot_id = srv.seed_published_bot("alice", bot_id=DEMO_BOT_ID)
    with ReferenceServer(config) as srv:
        with pytest.raises(ValueError, match="already in use"):
            srv.seed_published_bot("alice", bot_id=DEMO_BOT_ID)
        other = srv.seed_published_bot("bob")
        assert other != bot_id and int(other) > 2**53
        found = srv.runtime.store.bot(int(bot_id))
        assert found is not None and found.owner == "alice" and found.version == 1


# ------------------------------------------------------------------------------ parallel writers

THREADS = 8
ROUNDS = 25


def test_parallel_http_writers_lose_no_update_and_no_version(tmp_path: Path) -> None:
    """8 threads x 25 rounds of update + publish on one bot: 200 distinct versions, 1..200,
    and every version published the name its writer had just set."""
    config = ServerConfig(token_delay=0, rate_limits=False, db_path=str(tmp_path / "parallel.db"))
    with ReferenceServer(config) as srv:
        bot_id = srv.seed_published_bot("alice")  # version 1
        versions: list[int] = []
        failures: list[str] = []
        guard = threading.Lock()

        def writer(index: int) -> None:
            with httpx.Client(base_url=srv.url, headers=bearer(ALICE), timeout=TIMEOUT) as c:
                for round_ in range(ROUNDS):
                    name = f"w{index}-r{round_}"
                    update = c.post("/api/draftbot/update_display_info", json={"bot_id": bot_id, "name": name})
                    publish = c.post("/api/draftbot/publish", json={"bot_id": bot_id})
                    with guard:
                        if update.status_code != 200 or publish.status_code != 200:
                            failures.append(f"{update.status_code} {publish.status_code}: {publish.text}")
                        else:
                            versions.append(publish.json()["data"]["version"])

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        total = THREADS * ROUNDS
        assert sorted(versions) == list(range(2, total + 2))
        history = srv.runtime.store.versions(int(bot_id))
        assert [version for version, _ in history] == list(range(1, total + 2))
        published = {profile.name for _, profile in history[1:]}
        # Each publish snapshots a name some writer set; the last publish is the online version.
        assert published <= {f"w{i}-r{r}" for i in range(THREADS) for r in range(ROUNDS)}
        bot = srv.runtime.store.bot(int(bot_id))
        assert bot is not None and bot.version == total + 1 and bot.online == history[-1][1]


_SECOND_PROCESS = textwrap.dedent(
    """
    import sys
    from conformance.reference.dbstore import SqliteStore
    store = SqliteStore(sys.argv[1])
    bot_id, rounds = int(sys.argv[2]), int(sys.argv[3])
    for _ in range(rounds):
        bot = store.bot(bot_id)
        store.publish(bot)
        conversation = store.conversation(sys.argv[4])
        store.start_chat(conversation, [])
    store.close()
    """
)


def test_threads_and_a_second_process_on_one_file_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    store = SqliteStore(path)
    bot = store.create_bot("alice", BotProfile(name="shared"))
    conversation = store.create_conversation("alice", bot.bot_id, str(store.new_id()))
    other = subprocess.Popen(
        [sys.executable, "-c", _SECOND_PROCESS, path, str(bot.bot_id), str(ROUNDS * 2), conversation.conversation_id],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    minted: list[int] = []
    guard = threading.Lock()

    def writer(index: int) -> None:
        for round_ in range(ROUNDS):
            found = store.bot(bot.bot_id)
            assert found is not None
            store.update_draft(found, description=f"{index}-{round_}")
            store.publish(found)
            store.start_chat(store.conversation(conversation.conversation_id) or conversation, [])
            with guard:
                minted.append(store.new_id())

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, errors = other.communicate(timeout=60)
    assert other.returncode == 0, errors
    total = THREADS * ROUNDS + ROUNDS * 2
    history = store.versions(bot.bot_id)
    assert [version for version, _ in history] == list(range(1, total + 1))
    final = store.conversation(conversation.conversation_id)
    assert final is not None and final.chats == total
    assert len(set(minted)) == len(minted) == THREADS * ROUNDS
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM bot_versions").fetchone()[0] == total
    conn.close()


# ------------------------------------------------------------------------------ defaults and bad input


def test_without_a_path_the_store_is_in_memory(tmp_path: Path) -> None:
    assert ServerConfig().db_path is None
    with ReferenceServer(ServerConfig(token_delay=0)) as srv:
        assert type(srv.runtime.store) is Store
    assert list(tmp_path.iterdir()) == []


def test_bad_input_on_a_persistent_store_is_never_a_5xx(tmp_path: Path) -> None:
    config = ServerConfig(token_delay=0, rate_limits=False, db_path=str(tmp_path / "bad.db"))
    with ReferenceServer(config) as srv, httpx.Client(base_url=srv.url, headers=bearer(ALICE), timeout=TIMEOUT) as c:
        bot_id = srv.seed_published_bot("alice")
        cases: list[tuple[str, Any]] = [
            ("/api/draftbot/create", {"name": "\x00"}),
            ("/api/draftbot/create", {"name": "x" * 100_000, "description": "长" * 1000}),
            ("/api/draftbot/create", b'{"name": "\\ud800"}'),
            ("/api/draftbot/update_display_info", {"bot_id": "9" * 30, "name": "x"}),
            ("/api/draftbot/update_display_info", {"bot_id": 2**63, "name": "x"}),
            ("/api/draftbot/publish", {"bot_id": -1}),
            ("/v3/chat", {"bot_id": bot_id, "user_id": "u", "ConversationID": "1' OR '1'='1"}),
            ("/v3/chat", {"bot_id": bot_id, "user_id": "u", "conversation_id": "x" * 5000}),
        ]
        for path, body in cases:
            response = c.post(path, content=body) if isinstance(body, bytes) else c.post(path, json=body)
            assert response.status_code < 500, (path, response.text)
        assert c.get("/v1/bots/99999999999999999999999").status_code < 500


def test_an_unusable_db_file_is_refused_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not an sqlite file" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "conformance.reference", "--port", "0", "--db", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 2 and "error:" in result.stderr
