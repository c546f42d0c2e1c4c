"""Running the reference server: uvicorn in a background thread on a real socket.

A real socket, because SSE must be tested as a client sees it: ``httpx.ASGITransport``
and Starlette's ``TestClient`` buffer or hang on endless streams. The pattern is
httpx's own test server (``serve_in_thread``), on port 0 so parallel runs never collide.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType

import uvicorn

from .app import create_app
from .config import ServerConfig
from .runtime import Runtime
from .store import BotProfile

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class ReferenceServer:
    """The reference server, started and stopped from the calling thread.

    >>> with ReferenceServer(ServerConfig(token_delay=0)) as srv:   # doctest: +SKIP
    ...     bot_id = srv.seed_published_bot(principal="alice")
    ...     httpx.get(f"{srv.url}/v1/bots/{bot_id}", headers=...)
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.app = create_app(self.config)
        self.runtime: Runtime = self.app.state.runtime
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._port is None:
            raise RuntimeError("ReferenceServer is not running: call start() first")
        return f"http://{self.config.host}:{self._port}"

    def start(self) -> ReferenceServer:
        if self._thread is not None:
            raise RuntimeError("ReferenceServer.start() called twice")
        uv_config = uvicorn.Config(
            self.app,
            host=self.config.host,
            port=self.config.port,
            log_level="warning",
            # No dictConfig of the host process's logging: uvicorn only sets its levels.
            log_config=None,
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            loop="asyncio",
            # Open streams end at once on stop (Runtime.shut_down); this only bounds
            # a handler that somehow did not.
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(uv_config)
        self._thread = threading.Thread(target=self._run, name=f"reference-server-{id(self):x}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive():
                self._thread.join()
                self._server = self._thread = None  # so start() may be retried
                raise RuntimeError(
                    f"reference server failed to start on {self.config.host}:{self.config.port}"
                    f" ({self._failure!r}); is the port in use?"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"reference server did not start within {_START_TIMEOUT:g} s")
            time.sleep(0.005)
        self._port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def _run(self) -> None:
        assert self._server is not None
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # SystemExit from uvicorn on a bind failure, too
            self._failure = exc

    async def _serve(self) -> None:
        assert self._server is not None
        self._loop = asyncio.get_running_loop()
        await self._server.serve()

    def stop(self) -> None:
        """Stop promptly: end every open stream, then let uvicorn close the connections."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        if self._loop is not None:
            self.runtime.request_stop(self._loop)
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT)
        self._server = self._thread = self._loop = None
        self._port = None
        self.runtime.store.close()  # a persistent store's connections (reopened on use)

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def seed_published_bot(
        self,
        principal: str = "alice",
        *,
        name: str = "Reference bot",
        description: str = "A bot seeded by the reference server",
        icon_url: str = "https://example.com/icon.png",
        prompt: str = "You are the Coze Plus reference bot.",
        model: str | None = "reference-echo",
        tools: tuple[dict[str, object], ...] = (),
        bot_id: int | None = None,
    ) -> str:
        """Create and publish a bot owned by ``principal``; its id as a decimal string.

        Works before or after :meth:`start`. ``bot_id`` fixes the id (the demo bot of
        ``python -m conformance.reference`` has a documented one).
        """
        if principal not in {p.name for p in self.config.principals}:
            raise ValueError(f"unknown principal {principal!r}: not in ServerConfig.principals")
        profile = BotProfile(
            name=name, description=description, icon_url=icon_url, prompt=prompt, model=model, tools=tools
        )
        store = self.runtime.store
        bot = store.create_bot(principal, profile, bot_id=bot_id)
        store.publish(bot)
        return str(bot.bot_id)
