"""State shared by every process of one run (the controller and all xdist workers).

xdist workers are separate processes; what must exist once per run -- the run id, the
published bot the read-only tests share, the count of bots created, the pacer's send
log, the rate-limit phase's barrier -- lives in small JSON files under pytest's base
temp dir, each guarded by a file lock (pytest-xdist's documented recipe for
session-scoped fixtures shared across workers).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

#: The file of the suite's own fixtures' state; the pacer and the barrier name theirs.
DEFAULT_FILE = "conformance-shared.json"
#: How long a process waits for another to release the lock before giving up (a
#: process that dies holding it releases it with its file descriptor).
LOCK_TIMEOUT = 60.0


class SharedState:
    """A small JSON document shared across processes of one run: read, changed and
    written under a file lock, so every process sees one consistent state."""

    def __init__(self, folder: Path, name: str = DEFAULT_FILE) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / name
        self.lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        # A temporary file of this process and thread, then an atomic rename: a reader
        # never sees half a document.
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(self.path)

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply ``change`` to the document (in place) and store it; returns its result."""
        with self.lock:
            data = self._read()
            result = change(data)
            self._write(data)
            return result

    def read(self) -> dict[str, Any]:
        with self.lock:
            return self._read()

    def get_or_create(self, key: str, factory: Callable[[], Any]) -> Any:
        """The value under ``key``, made by ``factory`` in exactly one process.

        A factory that raises stores nothing: the next caller tries again, so one
        worker's transport hiccup does not poison the whole run."""
        with self.lock:
            data = self._read()
            if key not in data:
                data[key] = factory()
                self._write(data)
            return data[key]

    def increment(self, key: str, limit: int | None = None) -> int:
        """Add one to a counter and return it; refuse (ValueError) beyond ``limit``."""

        def add(data: dict[str, Any]) -> int:
            value = int(data.get(key, 0)) + 1
            if limit is not None and value > limit:
                raise ValueError(f"{key}: limit of {limit} reached")
            data[key] = value
            return value

        result: int = self.update(add)
        return result

    def get(self, key: str, default: Any = None) -> Any:
        return self.read().get(key, default)
